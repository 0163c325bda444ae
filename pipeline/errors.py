"""Errors that reach the user as one clear message and an exit code (never a traceback)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mark:
    """A position in a source file, 1-based like editors show it."""

    path: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class Diagnostic:
    """One located problem: `file:line:col: message; hint`."""

    message: str
    mark: Mark | None = None
    hint: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.mark}: " if self.mark else ""
        text = f"{where}{self.severity}: {self.message}"
        if self.hint:
            text += f"; {self.hint}"
        return text


class PipelineError(Exception):
    """Base class: carries the exit code the CLI should return."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class InputError(PipelineError):
    """Bad user input (matrix.yml, lock, CLI values). May hold several diagnostics."""

    def __init__(
        self,
        message: str = "",
        *,
        mark: Mark | None = None,
        hint: str | None = None,
        diagnostics: list[Diagnostic] | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.diagnostics = diagnostics or [Diagnostic(message, mark, hint)]

    def __str__(self) -> str:
        return "\n".join(str(d) for d in self.diagnostics)


class EnvironmentProblem(PipelineError):
    """The machine cannot do what was asked (Docker unreachable, tool missing, ...)."""


class ImageBuildError(EnvironmentProblem):
    """An image failed to build; the message carries the tail of its log."""


class ReportError(EnvironmentProblem):
    """A report file could not be written (disk full, read-only, ...); exit 2."""
