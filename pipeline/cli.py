"""Command-line interface: argument parsing and dispatch only.

The wiring of a run lives in pipeline.run.context (RunContext, signals), its report files
and output in pipeline.report.run_output; the commands here connect the two.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, InputError, PipelineError
from pipeline.paths import cache_dir, find_matrix

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


def build_parser() -> argparse.ArgumentParser:
    """The `pipeline` argument parser."""
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


def _filters(args: argparse.Namespace) -> Any:
    from pipeline.plan.select import Filters

    return Filters(kernels=tuple(args.kernel), features=tuple(args.features),
                   jobs=tuple(args.job), axes=tuple(args.axis))


def _note(message: object) -> None:
    """A `pipeline: ` line on stderr."""
    print(f"pipeline: {message}", file=sys.stderr)


def _load(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    from pipeline.model.expand import expand
    from pipeline.model.matrix import load_matrix

    matrix = load_matrix(find_matrix(explicit=args.matrix))
    jobs = expand(matrix)
    for warning in matrix.warnings:
        _note(warning)
    return matrix, jobs


def _changed(args: argparse.Namespace, matrix: Any, jobs: list[Any]
             ) -> tuple[set[str] | None, list[str]]:
    """(ids of the jobs affected by --changed-since, the changed files); (None, []) without
    the option."""
    if not getattr(args, "changed_since", None):
        return None, []
    from pipeline.plan.changes import affected_jobs, changed_since

    paths = changed_since(matrix.root, args.changed_since)
    return affected_jobs(jobs, paths), paths


def _selected(args: argparse.Namespace) -> tuple[Any, list[Any], Any, list[str]]:
    """(matrix, all jobs, the selection of the filters and --changed-since, changed files)."""
    from pipeline.plan.select import select

    matrix, jobs = _load(args)
    only, changed = _changed(args, matrix, jobs)
    return matrix, jobs, select(matrix, jobs, _filters(args), only), changed


def cmd_validate(args: argparse.Namespace) -> int:
    matrix, jobs = _load(args)
    print(f"{matrix.path}: ok ({len(jobs)} jobs, {len(matrix.kernels)} kernels, "
          f"{len(matrix.features)} feature sets)")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from pipeline.report.listing import print_jobs

    _, _, selection, _ = _selected(args)
    if not selection.jobs:
        print("[]" if args.json else f"no job is affected by changes since "
              f"{args.changed_since}")
        return EXIT_OK
    print_jobs(selection.jobs, selection.chosen, args.json)
    return EXIT_OK


def cmd_schema(_args: argparse.Namespace) -> int:
    from pipeline.model.schema import MATRIX_SCHEMA

    print(json.dumps(MATRIX_SCHEMA, indent=2))
    return EXIT_OK


def cmd_lock(args: argparse.Namespace) -> int:
    from pipeline.debian.offered import lock_command

    matrix, jobs = _load(args)
    return lock_command(matrix.kernel_sources(jobs), matrix.root, args.update, args.check, _note)


def cmd_images(args: argparse.Namespace) -> int:
    from pipeline.plan.select import select
    from pipeline.run.context import toolchain_images

    matrix, jobs = _load(args)
    selection = select(matrix, jobs, _filters(args))
    for line in toolchain_images(matrix, selection.jobs, args.action == "build", _note):
        print(line)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from pipeline.report.progress import printer
    from pipeline.report.run_output import resolve_run, show_nothing_to_run
    from pipeline.run.context import check_still_offered, locked_kernels
    from pipeline.run.executor import docker_client

    matrix, jobs, selection, changed = _selected(args)
    console = Console(stderr=args.json)
    if not selection.jobs:
        show_nothing_to_run(printer(console), changed, args.changed_since, args.json)
        return EXIT_OK
    locked_kernels(matrix, selection.jobs)  # a stale lock is an error before any work
    # absolute: job directories are bind-mounted, and Docker takes a relative path for a
    # volume name
    reports = Path(args.reports).resolve() if args.reports else matrix.root / "reports"
    if args.baseline:  # a wrong --baseline is exit 2 before the run, not after it
        resolve_run(reports, args.baseline)
    client = docker_client()  # an unreachable engine is exit 2 before a run directory exists
    check_still_offered(matrix, selection.jobs, client, lambda m: _note(f"warning: {m}"))
    return _run(args, console, matrix, jobs, selection.jobs, reports, client)


def _run(args: argparse.Namespace, console: Any, matrix: Any, all_jobs: list[Any],
         jobs: list[Any], reports: Path, client: Any) -> int:
    """Run `jobs` into a new run directory, write its report, show the outcome."""
    from pipeline.report.progress import Progress, printer
    from pipeline.report.run_output import show_run, write_run_report
    from pipeline.report.summary import new_run_dir
    from pipeline.run.context import build_context, stop_on_signals
    from pipeline.run.runner import run_job
    from pipeline.run.scheduler import Scheduler, default_parallelism

    say = printer(console)
    run_id, run_dir = new_run_dir(reports)
    started = datetime.now(UTC)
    ctx = build_context(matrix, jobs, run_id, run_dir, say, args.verbose, all_jobs=all_jobs,
                        read_cache=not args.no_cache, client=client, offered_checked=True)
    progress = Progress(console, jobs, live=console.is_terminal and not args.verbose
                        and not args.json)
    scheduler = Scheduler(lambda job: run_job(ctx, job), args.jobs or default_parallelism(),
                          args.fail_fast, on_start=progress.start, on_finish=progress.finish)
    with stop_on_signals(ctx, progress.say, "this run's containers and VMs",
                         scheduler.interrupted):
        say(f"run {run_id}: {len(jobs)} jobs, up to {scheduler.parallel} at once")
        with progress:
            results = scheduler.run(jobs)
    summary, regressions, index = write_run_report(reports, run_dir, run_id, matrix.path,
                                                   jobs, results, started, args.baseline)
    show_run(summary, regressions, index, console, run_dir, args.json)
    if scheduler.interrupted.is_set():
        return 130
    return EXIT_OK if summary["status"] == "passed" else EXIT_FAILED


def _one_job(args: argparse.Namespace) -> tuple[Any, list[Any], Any, Path]:
    """(matrix, all jobs, the job JOB_ID names, its --dir, created)."""
    from pipeline.run.context import find_job

    matrix, jobs = _load(args)
    job = find_job(matrix, jobs, args.job_id)
    out = Path(args.dir).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--dir {args.dir}: cannot create it: {exc.strerror or exc}") from None
    return matrix, jobs, job, out


def cmd_job(args: argparse.Namespace) -> int:
    from pipeline.results.status import OK_STATUSES
    from pipeline.run.context import build_context, stop_on_signals
    from pipeline.run.runner import run_job

    matrix, jobs, job, out = _one_job(args)

    def say(message: str) -> None:
        print(message, flush=True)

    ctx = build_context(matrix, [job], out.name, out, say, args.verbose,
                        Path(args.needs_dir).resolve() if args.needs_dir else None,
                        all_jobs=jobs, read_cache=not args.no_cache)
    if args.print_key:
        print((ctx.keys.key(job) if ctx.keys else None) or "")
        return EXIT_OK
    missing = [n for n in job.needs if not (ctx.needs_dir or out).joinpath(n, "artifacts")
               .is_dir()]
    if missing:
        _note(f"warning: artifacts of needs not found: {', '.join(missing)}")
    with stop_on_signals(ctx, say, "this job's containers and VM") as interrupted:
        result = run_job(ctx, job)
    print(f"{result.status.upper()} {job.id} ({result.seconds:.1f} s): "
          f"{result.tests} tests, {result.failures} failures, {result.errors} errors"
          + (f"; {result.message}" if result.message else ""))
    if interrupted.is_set():
        return 130
    return EXIT_OK if result.status in OK_STATUSES else EXIT_FAILED


def cmd_cache(args: argparse.Namespace) -> int:
    from pipeline.report.listing import print_cache
    from pipeline.run.store import ResultCache

    cache = ResultCache()
    removed = None
    if args.action == "prune":
        removed, _ = cache.prune()
    elif args.action == "clear":
        removed = cache.clear()
    print_cache(cache.stats(), removed, cache.enabled, args.json)
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    from pipeline.report.listing import print_runs
    from pipeline.report.run_output import reports_dir

    print_runs(reports_dir(args.reports, args.matrix), args.json)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.report.run_output import reports_dir, reprint_run

    summary, index = reprint_run(reports_dir(args.reports, args.matrix), args.run,
                                 args.baseline, args.json)
    if args.open:
        import webbrowser

        webbrowser.open(index.as_uri())
    return EXIT_OK if summary.get("status") == "passed" else EXIT_FAILED


def cmd_convert(args: argparse.Namespace) -> int:
    from pipeline.report.junit_output import convert

    convert(args.log, args.format, args.name, args.output)
    return EXIT_OK


COMMANDS = {
    "validate": cmd_validate, "list": cmd_list, "schema": cmd_schema, "lock": cmd_lock,
    "run": cmd_run, "runs": cmd_runs, "report": cmd_report, "job": cmd_job,
    "images": cmd_images, "convert": cmd_convert, "cache": cmd_cache,
}
# commands whose module is imported only when they run (Buildbot, adoption)
LAZY = {"master": "pipeline.buildbot.control", "hook": "pipeline.buildbot.control",
        "worker": "pipeline.buildbot.worker", "init": "pipeline.adopt.commands",
        "doctor": "pipeline.adopt.commands"}


def handler(command: str) -> Any:
    """The function that runs `command`."""
    if command in COMMANDS:
        return COMMANDS[command]
    return getattr(importlib.import_module(LAZY[command]), f"cmd_{command}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 all passed, 1 a job failed, 2 bad input or environment."""
    raw = sys.argv[1:] if argv is None else argv
    if any("\0" in arg for arg in raw):  # only in-process callers can pass one
        print("pipeline: error: an argument contains a NUL byte", file=sys.stderr)
        return EXIT_USAGE
    args = build_parser().parse_args(argv)
    try:
        return handler(args.command)(args)
    except InputError as exc:
        for diagnostic in exc.diagnostics:
            _note(diagnostic)
        return exc.exit_code
    except PipelineError as exc:
        print(f"pipeline: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("pipeline: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        return _internal_error(exc)


def _internal_error(exc: Exception) -> int:
    """Save the traceback in the cache directory and name it in one line."""
    details = traceback.format_exc()
    try:
        path: Path | str = cache_dir() / "last-internal-error.txt"
        Path(path).write_text(details)
    except OSError:
        path = "nowhere: the cache directory is not writable"
    print(f"pipeline: internal error: {exc.__class__.__name__}: {exc} "
          f"(details in {path}; please report it)", file=sys.stderr)
    return EXIT_USAGE + 1


if __name__ == "__main__":
    sys.exit(main())
