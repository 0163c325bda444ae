"""Command-line interface: argument parsing (pipeline.cli.parser) and dispatch only.

The wiring of a run lives in pipeline.run.context (RunContext, signals), its report files
and output in pipeline.report.run_output; the commands here connect the two. Each command
imports what it uses when it runs: `pipeline --help` or `pipeline list` load neither
Docker's SDK nor Jinja2 nor rich.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from pipeline.cli.parser import build_parser, named_command
from pipeline.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, InputError, PipelineError
from pipeline.paths import cache_dir, find_matrix


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
    from pipeline.run.prefetch import vm_identity

    matrix, jobs, selection, changed = _selected(args)
    # what VM jobs run on (their keys: QEMU's --version) found while this one goes on
    identity = vm_identity(selection.jobs)
    from rich.console import Console

    from pipeline.report.progress import printer
    from pipeline.report.run_output import resolve_run, show_nothing_to_run
    from pipeline.run.context import check_still_offered, locked_kernels
    from pipeline.run.executor import docker_client

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
    images = check_still_offered(matrix, selection.jobs, client,
                                 lambda m: _note(f"warning: {m}"))
    return _run(args, console, matrix, jobs, selection.jobs, reports, client,
                (images, identity))


def _run(args: argparse.Namespace, console: Any, matrix: Any, all_jobs: list[Any],
         jobs: list[Any], reports: Path, client: Any, started_work: tuple[Any, Any]) -> int:
    """Run `jobs` into a new run directory, write its report, show the outcome."""
    from datetime import UTC, datetime

    from pipeline.report.progress import Progress, printer
    from pipeline.report.run_output import show_run, write_run_report
    from pipeline.report.summary import new_run_dir
    from pipeline.run.context import build_context, start_order, stop_on_signals
    from pipeline.run.runner import run_job
    from pipeline.run.scheduler import Scheduler, default_parallelism

    say = printer(console)
    run_id, run_dir = new_run_dir(reports)
    started = datetime.now(UTC)
    images, identity = started_work
    ctx = build_context(matrix, jobs, run_id, run_dir, say, args.verbose, all_jobs=all_jobs,
                        read_cache=not args.no_cache, client=client, checked=images,
                        vm_runtime=identity)
    progress = Progress(console, jobs, live=console.is_terminal and not args.verbose
                        and not args.json)
    scheduler = Scheduler(lambda job: run_job(ctx, job), args.jobs or default_parallelism(),
                          args.fail_fast, on_start=progress.start, on_finish=progress.finish)
    with stop_on_signals(ctx, progress.say, "this run's containers and VMs",
                         scheduler.interrupted):
        say(f"run {run_id}: {len(jobs)} jobs, up to {scheduler.parallel} at once")
        with progress:
            results = scheduler.run(start_order(ctx, jobs))
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
    args = build_parser(others=named_command(raw) not in COMMANDS).parse_args(argv)
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
    import traceback

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
