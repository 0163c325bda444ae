"""The `pipeline` command line: its parser (the commands themselves are pipeline.cli's)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _add_filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters (repeatable; needs are added automatically)")
    group.add_argument("--kernel", action="append", default=[], metavar="VERSION",
                       help="kernel version; 6.1 matches 6.1 and 6.1.x, never 6.12")
    group.add_argument("--features", action="append", default=[], metavar="NAME",
                       help="cargo feature set name")
    group.add_argument("--job", action="append", default=[], metavar="GLOB",
                       help="job id or name glob, e.g. 'kmod-build/*'")
    group.add_argument("--axis", action="append", default=[], metavar="AXIS=VALUE",
                       help="a value of a user-defined axis (matrix.yml `axes:`), e.g. cc=clang")


def _add_changed_since(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--changed-since", metavar="REV",
                        help="only jobs whose `inputs` match a file changed since git REV "
                             "(committed, uncommitted or untracked), and the jobs that need "
                             "them; their needs are added as usual")


def build_parser(others: bool = True) -> argparse.ArgumentParser:
    """The `pipeline` argument parser; without `others`, without the commands of other
    modules (Buildbot, adoption): for a command line that names a command of pipeline.cli
    (named_command()), which neither parses nor runs them, so that their modules are not
    imported for nothing."""
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="Build and test a kernel module and its Rust crate over a matrix of "
                    "kernels and feature sets, in Docker and QEMU.")
    parser.add_argument("--matrix", metavar="PATH",
                        help="matrix file (default: matrix.yml here or in the nearest parent)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_matrix_commands(sub)
    _add_run_command(sub)
    _add_report_commands(sub)
    _add_job_command(sub)
    _add_tool_commands(sub)
    if not others:
        return parser
    from pipeline.buildbot.control import add_parsers as add_buildbot_parsers

    add_buildbot_parsers(sub)  # `master` and `hook` (Buildbot)
    from pipeline.buildbot.worker import add_parsers as add_worker_parsers

    add_worker_parsers(sub)  # `worker` (a Buildbot worker for a remote master)
    from pipeline.adopt.commands import add_parsers as add_adopt_parsers

    add_adopt_parsers(sub)  # `init` and `doctor` (a new project, the host)
    return parser


def _add_matrix_commands(sub: Subparsers) -> None:
    """validate, list, schema, lock: the matrix itself."""
    sub.add_parser("validate", help="check matrix.yml and print warnings")
    p = sub.add_parser("list", help="list the expanded jobs")
    _add_filters(p)
    _add_changed_since(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("schema", help="print the JSON Schema of matrix.yml")
    p = sub.add_parser("lock", help="resolve kernels to exact Debian ABIs into matrix.lock")
    p.add_argument("--update", action="store_true", help="re-resolve every kernel")
    p.add_argument("--check", action="store_true", help="only report the kernels whose suite "
                   "no longer offers their locked packages (exit 1 if any)")


def _add_run_command(sub: Subparsers) -> None:
    """run: the matrix, or a filtered part of it."""
    p = sub.add_parser("run", help="run the matrix (or a filtered part) locally")
    _add_filters(p)
    _add_changed_since(p)
    p.add_argument("--no-cache", action="store_true",
                   help="run every job even if its result is cached (passed results are "
                        "still stored)")
    p.add_argument("-j", "--jobs", type=positive_int, default=None, metavar="N",
                   help="jobs at once (default: number of CPUs)")
    p.add_argument("--fail-fast", action="store_true", help="cancel the rest at the first failure")
    p.add_argument("--reports", metavar="DIR", help="reports directory (default: ./reports "
                   "next to matrix.yml)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--baseline", metavar="RUN", help="compare with this run (id or directory) "
                   "instead of the previous run of the same matrix")
    p.add_argument("-v", "--verbose", action="store_true", help="stream job output")


def _add_report_commands(sub: Subparsers) -> None:
    """runs, report: past runs."""
    p = sub.add_parser("runs", help="list past runs in reports/")
    p.add_argument("--reports", metavar="DIR", help="reports directory")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("report", help="reprint a run's summary and rewrite its index.html")
    p.add_argument("run", nargs="?", default="latest", help="run id or directory (default: "
                   "latest)")
    p.add_argument("--reports", metavar="DIR", help="reports directory")
    p.add_argument("--baseline", metavar="RUN", help="compare with this run")
    p.add_argument("--open", action="store_true", help="open index.html in a browser")
    p.add_argument("--json", action="store_true", help="print summary.json")


def _add_job_command(sub: Subparsers) -> None:
    """job: exactly one job, as a Buildbot step runs it."""
    p = sub.add_parser("job", help="run exactly one job (no needs), as a Buildbot step does")
    p.add_argument("job_id", metavar="JOB_ID", help="an id from `pipeline list`")
    p.add_argument("--dir", required=True, metavar="DIR",
                   help="results go to DIR/<job id>/ (log.txt, junit.xml, artifacts/, ...)")
    p.add_argument("--needs-dir", metavar="DIR",
                   help="where the needs' results are (default: --dir)")
    p.add_argument("--no-cache", action="store_true",
                   help="run the job even if its result is cached")
    p.add_argument("--print-key", action="store_true",
                   help="print the job's result-cache key and exit (nothing while its "
                        "image is not built yet); Buildbot asks the master's store with it")
    p.add_argument("-v", "--verbose", action="store_true", help="stream job output")


def _add_tool_commands(sub: Subparsers) -> None:
    """cache, images, convert."""
    p = sub.add_parser("cache", help="the result cache: show its size, prune it, clear it")
    p.add_argument("action", choices=["info", "prune", "clear"])
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("images", help="build or list toolchain images")
    p.add_argument("action", choices=["build", "list"])
    _add_filters(p)
    p = sub.add_parser("convert", help="convert test output to JUnit XML")
    p.add_argument("format", choices=["ktap", "libtest"])
    p.add_argument("log", help="log file ('-' for stdin)")
    p.add_argument("-o", "--output", metavar="FILE", help="write JUnit here (default: stdout)")
    p.add_argument("--name", default=None, help="test suite name")


def named_command(argv: list[str]) -> str | None:
    """The command an argument list names when it is plain: its first argument after
    `--matrix PATH` options; None when it asks for help or has other options first (then
    the whole parser is built)."""
    args = iter(argv)
    for arg in args:
        if not arg.startswith("-"):
            return arg
        if arg.startswith("--m") and "--matrix".startswith(arg):
            next(args, None)  # its value
        elif not (arg.startswith("--m") and "--matrix".startswith(arg.split("=", 1)[0])):
            return None
    return None
