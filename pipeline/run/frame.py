"""What one job accumulates while it runs (JobFrame), shared by the runner and the runtimes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from junitparser import Error, TestCase, TestSuite

from pipeline.debian.images import ImageRef
from pipeline.model.expand import Job
from pipeline.results.status import PASSED
from pipeline.run.masking import Masker

if TYPE_CHECKING:
    from pipeline.run.runner import RunContext


def job_dir(ctx: RunContext, job: Job) -> Path:
    """Where a job's results go: reports/<run>/<job id>/."""
    return ctx.run_dir / job.id


@dataclass
class JobFrame:
    """What one job accumulates while it runs; the runner's finish() writes the job directory."""

    ctx: RunContext
    job: Job
    directory: Path
    log: Any
    started: float
    started_at: str
    suite: TestSuite
    status: str = PASSED
    message: str = ""
    image: ImageRef | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    reproducer: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    masker: Masker = field(default_factory=Masker)
    write_error: OSError | None = None  # the first failed write of log.txt

    @property
    def artifacts(self) -> Path:
        """The job's artifacts/ directory (what it wrote to $OUT)."""
        return self.directory / "artifacts"

    def emit(self, line: str) -> None:
        """One log line (secrets masked) to log.txt and the caller's log; a failed write of
        log.txt (disk full) is remembered, never raised: the job goes on and errors."""
        line = self.masker.mask(line)
        if self.write_error is None:
            try:
                self.log.write(line + "\n")
                self.log.flush()
            except OSError as exc:
                self.write_error = exc
        self.ctx.log(self.job.id, line)

    def fail(self, status: str, message: str) -> None:
        """Set the job's status and message unless an earlier problem already did."""
        if self.status == PASSED:
            self.status, self.message = status, self.masker.mask(message)

    def error_case(self, name: str, message: str, kind: str) -> None:
        """Add a test case with an Error result (secrets masked) to the job's suite."""
        message = self.masker.mask(message)
        case = TestCase(name, classname=self.job.id)
        err = Error(message.splitlines()[0][:500] if message else kind, kind)
        err.text = message
        case.result = [err]
        self.suite.add_testcase(case)
