"""The one status and result model: job statuses, their order and styles, JobResult.

Pure data, no I/O: the runner, scheduler, terminal progress, reports and Buildbot all
speak these words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASSED, FAILED, ERROR, SKIPPED, CANCELLED, INTERRUPTED, CACHED = (
    "passed", "failed", "error", "skipped", "cancelled", "interrupted", "cached",
)
STATUSES = (PASSED, CACHED, FAILED, ERROR, SKIPPED, CANCELLED, INTERRUPTED)
OK_STATUSES = (PASSED, CACHED)  # what dependents and the run's status count as success
# The terminal's rich style per status (the HTML palette is report/view.py's).
STATUS_STYLE = {
    PASSED: "green", FAILED: "red", ERROR: "red", SKIPPED: "yellow",
    CANCELLED: "yellow", INTERRUPTED: "magenta", CACHED: "cyan",
}


@dataclass
class JobResult:
    """The outcome of one job, as summary.json and the terminal show it."""

    id: str
    status: str
    seconds: float = 0.0
    message: str = ""
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    failing: list[dict[str, str]] = field(default_factory=list)
    image: str | None = None
    directory: str | None = None

    @property
    def ok(self) -> bool:
        """Whether dependents may use this result (passed or cached)."""
        return self.status in OK_STATUSES

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
