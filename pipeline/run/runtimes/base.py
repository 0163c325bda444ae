"""The Runtime interface and the registry that picks a job's runtime."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, TypeVar

from pipeline.errors import InputError
from pipeline.model.expand import Job
from pipeline.run.frame import JobFrame


class Runtime(ABC):
    """Where and how a job's work runs (containers, a VM, ...), for one job.

    The runner calls execute(): prepare(), then run() if prepare() succeeded, and always
    collect() and reproduce_lines(). A runtime records everything in its JobFrame (log
    lines, steps, test cases, status); it raises only for environment problems
    (PipelineError, OSError), which the runner turns into the job's error.
    """

    name: ClassVar[str]

    def __init__(self, frame: JobFrame) -> None:
        self.frame = frame

    @classmethod
    @abstractmethod
    def handles(cls, job: Job) -> bool:
        """Whether this runtime runs `job` (exactly one registered runtime does)."""

    @abstractmethod
    def prepare(self) -> bool:
        """Resolve what the job runs on (image, kernel, inputs); False if that failed (the
        frame then says why)."""

    @abstractmethod
    def run(self) -> None:
        """Run the job's work; record steps, test cases and the status in the frame."""

    def collect(self) -> None:
        """Always called last: hand files back to the caller, remove scratch space (by
        default there is nothing to do)."""
        return None

    @abstractmethod
    def reproduce_lines(self) -> list[str]:
        """The body of reproduce.sh: commands that redo what ran ([] if nothing did)."""

    def execute(self) -> None:
        """prepare, run, collect; then the frame gets the reproducer lines."""
        try:
            if self.prepare():
                self.run()
        finally:
            self.collect()
            self.frame.reproducer = self.reproduce_lines()


RUNTIMES: list[type[Runtime]] = []
R = TypeVar("R", bound=type[Runtime])


def register(cls: R) -> R:
    """Class decorator: make a runtime available to runtime_for()."""
    RUNTIMES.append(cls)
    return cls


def runtime_for(job: Job) -> type[Runtime]:
    """The registered runtime that runs `job`."""
    for cls in RUNTIMES:
        if cls.handles(job):
            return cls
    raise InputError(f"no runtime runs job {job.id!r} "
                     f"(known: {', '.join(c.name for c in RUNTIMES) or 'none'})")
