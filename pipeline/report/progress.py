"""Live progress of a run: a rich matrix table on a terminal, one-line events otherwise."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pipeline.model.expand import Job
from pipeline.results.status import STATUS_STYLE, JobResult

STYLE = {**STATUS_STYLE, "running": "bold blue", "queued": "dim"}


def _row_key(job: Job) -> str:
    """The live table's row: the kernel or feature set, with the user axes' values."""
    axes = job.axes()
    extra = "".join(f" \u00b7 {v}" for v in job.axis_values.values())
    if "kernel" in axes:
        return f"kernel {axes['kernel']}{extra}"
    if "features" in axes:
        return f"features {axes['features']}{extra}"
    return "other jobs"


def printer(console: Any) -> Callable[[str], None]:
    """A function printing plain lines (no markup, no highlighting) on a rich console."""
    def say(message: str) -> None:
        console.print(message, highlight=False, markup=False, soft_wrap=True)
    return say


class Progress:
    """Tracks job states; renders them as a live table (TTY) or prints events (logs)."""

    def __init__(self, console: Any, jobs: list[Job], live: bool) -> None:
        self.console = console
        self.jobs = jobs
        self.live_mode = live
        self.state: dict[str, str] = {j.id: "queued" for j in jobs}
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self._live: Any = None

    def __enter__(self) -> Progress:
        if self.live_mode:
            from rich.live import Live

            self._live = Live(self._table(), console=self.console, refresh_per_second=2,
                              get_renderable=self._table, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def say(self, message: str) -> None:
        """A message above the table (or a plain line)."""
        self.console.print(message, highlight=False, markup=False, soft_wrap=True)

    def start(self, job: Job) -> None:
        with self._lock:
            self.state[job.id] = "running"
            self.started[job.id] = time.monotonic()
        if not self.live_mode:
            self.say(f"START  {job.id}")

    def finish(self, job: Job, result: JobResult) -> None:
        with self._lock:
            self.state[job.id] = result.status
            self.seconds[job.id] = result.seconds
        if not self.live_mode:
            self.say(f"{result.status.upper():<6} {job.id} ({result.seconds:.1f} s)"
                     + (f": {result.message}" if result.message else ""))
        elif result.status not in ("passed", "cached"):
            self.say(f"{result.status.upper()} {job.id}: {result.message}")

    def _cell(self, job: Job) -> str:
        status = self.state[job.id]
        if status == "running":
            elapsed = time.monotonic() - self.started[job.id]
            text = f"running {elapsed:.0f}s"
        elif status == "queued":
            text = "queued"
        else:
            text = f"{status} {self.seconds.get(job.id, 0):.1f}s"
        return f"[{STYLE.get(status, '')}]{text}[/]"

    def _table(self) -> Any:
        from rich.table import Table

        with self._lock:
            kinds = list(dict.fromkeys(j.name for j in self.jobs))
            rows = list(dict.fromkeys(_row_key(j) for j in self.jobs))
            done = sum(1 for s in self.state.values() if s not in ("queued", "running"))
            table = Table(title=f"{done}/{len(self.jobs)} jobs done, "
                                f"{time.monotonic() - self.t0:.0f}s", title_justify="left")
            table.add_column("")
            for kind in kinds:
                table.add_column(kind)
            for row in rows:
                cells = []
                for kind in kinds:
                    match = [j for j in self.jobs if j.name == kind and _row_key(j) == row]
                    cells.append("\n".join(self._cell(j) for j in match) if match else "")
                table.add_row(row, *cells)
            return table
