"""The matrix view model and renderer shared by the run report and the Buildbot dashboard.

Both pages turn their data (a run directory; Buildbot's REST data for a commit) into a list
of `Cell` records (job id, kind, axes, status, counts, links) and hand them to `matrix()`:
one table per axis (rows = kernels or feature sets, each crossed with the cells' values of
user-defined axes such as `6.12 · arm64`; columns = job kinds), drawn by the macros of
templates/matrix.html.j2 with one status palette.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from pipeline.paths import template_cache
from pipeline.results.status import CACHED, CANCELLED, ERROR, FAILED, INTERRUPTED, PASSED, SKIPPED

TEMPLATES = Path(__file__).parent / "templates"
MAX_CELL_FAILURES = 4
# Cell states of the live dashboard, beside the job statuses of pipeline.results.status.
RUNNING, PENDING, ABSENT = "running", "pending", "absent"
NOT_RUN = (CANCELLED, SKIPPED, PENDING, ABSENT)
# status -> (foreground, background, border); the terminal uses STATUS_STYLE's colours
STATUS_COLOURS = {
    PASSED: ("#116329", "#dafbe1", "#2da44e"),
    FAILED: ("#a40e26", "#ffebe9", "#cf222e"),
    ERROR: ("#82071e", "#ffd8d3", "#a40e26"),
    SKIPPED: ("#57606a", "#f0f2f4", "#8c959f"),
    CANCELLED: ("#7d4e00", "#fff8c5", "#bf8700"),
    INTERRUPTED: ("#6639ba", "#fbefff", "#8250df"),
    CACHED: ("#0550ae", "#ddf4ff", "#218bff"),
    RUNNING: ("#953800", "#fff1e5", "#fb8f44"),
    PENDING: ("#57606a", "#ffffff", "#afb8c1"),
    ABSENT: ("#6e7781", "#f6f8fa", "#d0d7de"),
}
STATUS_ICON = {
    PASSED: "\u2714", FAILED: "\u2718", ERROR: "\u26a0", SKIPPED: "\u2013",
    CANCELLED: "\u2298", INTERRUPTED: "\u23f8", CACHED: "\u21bb",
    RUNNING: "\u25b6", PENDING: "\u25cb", ABSENT: "\u00b7",
}


@dataclass
class Failing:
    """A failing test of one job, with its message and the JUnit text (first errors/panic)."""

    name: str
    short: str
    kind: str
    message: str
    first_line: str
    detail: str
    anchor: str


@dataclass
class Link:
    """A link of a cell; `exists` False shows the label struck through, not linked."""

    label: str
    href: str
    exists: bool = True
    target: str | None = None


@dataclass
class Cell:
    """One job of the matrix: the record both pages build their tables from."""

    id: str
    name: str
    axes: dict[str, str]
    status: str
    duration: str = ""
    message: str = ""
    tests: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failing: list[Failing] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    anchor: str = ""
    result: str = ""  # the source's own word for the outcome (Buildbot's "warnings")
    commit: str = ""  # the commit whose build this is (the dashboard's branch state)
    carried: bool = False  # an older commit's result, carried forward to the branch head
    history: list[tuple[str, str]] = field(default_factory=list)  # (status, commit), newest first
    broken_since: str = ""  # "abc1234: subject" of the first commit of a run of failures
    bench: str = ""  # a bench job's summary line (pipeline.report.bench_view.bench_line)

    def __post_init__(self) -> None:
        self.anchor = self.anchor or anchor("job", self.id)

    @property
    def ran(self) -> bool:
        """False for jobs that never started (cancelled before running, no directory)."""
        return bool(self.links) or self.status not in NOT_RUN

    @property
    def more_failing(self) -> int:
        return max(0, len(self.failing) - MAX_CELL_FAILURES)


BUILTIN_AXES = ("kernel", "features")
SEP = " \u00b7 "  # joins axis values in row and column labels


@dataclass
class Grid:
    """A table: one row per axis value (kernel or feature set, crossed with the values of
    user-defined axes), one column per job kind."""

    title: str
    axis: str
    columns: list[str]
    rows: list[tuple[str, list[Cell | None]]] = field(default_factory=list)
    label: str = ""  # what the rows are, e.g. "kernel · arch"


@dataclass
class Matrix:
    """The tables of a set of cells, and the cells with neither a kernel nor features."""

    grids: list[Grid]
    others: list[Cell]

    @property
    def empty(self) -> bool:
        return not self.grids and not self.others


def duration(seconds: float | None) -> str:
    """4.2 s, 3 m 05 s, 1 h 02 m."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} m {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} m"


def version_key(version: str) -> tuple[Any, ...]:
    """Sort key for kernel versions: 5.10.200 < 6.1 < 6.6-rt < 6.9 < 6.12."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+]", version))


def anchor(*parts: str) -> str:
    """An HTML id from free text: x-job-kmod-build-6-1."""
    return "x-" + re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(parts)).strip("-")


def href(*parts: str) -> str:
    """A relative URL from path parts, each segment quoted."""
    return "/".join(quote(p) for p in "/".join(parts).split("/") if p)


def _column(c: Cell) -> str:
    """The job kind; in the kernel table with the cell's feature set."""
    if "kernel" in c.axes and "features" in c.axes:
        return SEP.join([c.name, c.axes["features"]])
    return c.name


def _user_axes(c: Cell) -> list[str]:
    return [k for k in c.axes if k not in BUILTIN_AXES]


def _grid(title: str, axis: str, group: list[Cell],
          order: Callable[[str], Any] | None) -> Grid:
    """Rows: the `axis` value crossed with the user axes' values (in the cells' order)."""
    def row_of(c: Cell) -> str:
        return SEP.join([c.axes[axis], *(c.axes[k] for k in _user_axes(c))])

    columns = list(dict.fromkeys(_column(c) for c in group))
    rows = list(dict.fromkeys((c.axes[axis], row_of(c)) for c in group))
    if order:  # by the axis value; rows of one value keep the order they appeared in
        rows.sort(key=lambda r: order(r[0]))
    label = {"kernel": "kernel", "features": "feature set"}[axis]
    users = list(dict.fromkeys(k for c in group for k in _user_axes(c)))
    grid = Grid(title, axis, columns, label=SEP.join([label, *users]))
    by_cell = {(row_of(c), _column(c)): c for c in group}
    for _, row in rows:
        grid.rows.append((row, [by_cell.get((row, col)) for col in columns]))
    return grid


def matrix(cells: Iterable[Cell]) -> Matrix:
    """Kernels (x the user axes) x job kinds, the feature set joining the column; then
    feature sets (x the user axes) x job kinds; then the cells with neither."""
    cells = list(cells)
    kernel = [c for c in cells if "kernel" in c.axes]
    features = [c for c in cells if "kernel" not in c.axes and "features" in c.axes]
    grids = []
    if kernel:
        grids.append(_grid("Kernels", "kernel", kernel, version_key))
    if features:
        grids.append(_grid("Feature sets", "features", features, None))
    others = [c for c in cells if "kernel" not in c.axes and "features" not in c.axes]
    return Matrix(grids, others)


def favicon(status: str) -> str:
    """A data: URL of a dot in the status's colour."""
    colour = STATUS_COLOURS.get(status, STATUS_COLOURS[FAILED])[2]
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>"
           f"<circle cx='8' cy='8' r='7' fill='{colour}'/></svg>")
    return "data:image/svg+xml," + quote(svg)


def environment() -> Environment:
    """The Jinja environment of the matrix templates (autoescape on, palette as globals)."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True, bytecode_cache=template_cache("report"))
    env.globals.update(colours=STATUS_COLOURS, icons=STATUS_ICON,
                       max_cell_failures=MAX_CELL_FAILURES)
    return env


_ENV: Environment | None = None


def render(template: str, **context: Any) -> str:
    """Render one of templates/ (report.html.j2, dashboard.html.j2) with the palette."""
    global _ENV
    if _ENV is None:
        _ENV = environment()
    return _ENV.get_template(template).render(**context)
