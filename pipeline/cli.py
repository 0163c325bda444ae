"""Command-line interface: argument parsing and dispatch only."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    InputError,
    PipelineError,
    ReportError,
)
from pipeline.paths import cache_dir, find_matrix


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

    sub.add_parser("validate", help="check matrix.yml and print warnings")
    p = sub.add_parser("list", help="list the expanded jobs")
    _add_filters(p)
    _add_changed_since(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("schema", help="print the JSON Schema of matrix.yml")

    p = sub.add_parser("lock", help="resolve kernels to exact Debian ABIs into matrix.lock")
    p.add_argument("--update", action="store_true", help="re-resolve every kernel")

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

    p = sub.add_parser("job", help="run exactly one job (no needs), as a Buildbot step does")
    p.add_argument("job_id", metavar="JOB_ID", help="an id from `pipeline list`")
    p.add_argument("--dir", required=True, metavar="DIR",
                   help="results go to DIR/<job id>/ (log.txt, junit.xml, artifacts/, ...)")
    p.add_argument("--needs-dir", metavar="DIR",
                   help="where the needs' results are (default: --dir)")
    p.add_argument("--no-cache", action="store_true",
                   help="run the job even if its result is cached")
    p.add_argument("-v", "--verbose", action="store_true", help="stream job output")

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

    from pipeline.buildbot.control import add_parsers as add_buildbot_parsers

    add_buildbot_parsers(sub)  # `master` and `hook` (Buildbot)
    return parser


def _filters(args: argparse.Namespace) -> Any:
    from pipeline.plan.select import Filters

    return Filters(kernels=tuple(args.kernel), features=tuple(args.features),
                   jobs=tuple(args.job))


def _load(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    from pipeline.model.expand import expand
    from pipeline.model.matrix import load_matrix

    matrix = load_matrix(find_matrix(explicit=args.matrix))
    jobs = expand(matrix)
    for warning in matrix.warnings:
        print(f"pipeline: {warning}", file=sys.stderr)
    return matrix, jobs


def cmd_validate(args: argparse.Namespace) -> int:
    matrix, jobs = _load(args)
    print(f"{matrix.path}: ok ({len(jobs)} jobs, {len(matrix.kernels)} kernels, "
          f"{len(matrix.features)} feature sets)")
    return EXIT_OK


def _changed(args: argparse.Namespace, matrix: Any, jobs: list[Any]
             ) -> tuple[set[str] | None, list[str]]:
    """(ids of the jobs affected by --changed-since, the changed files); (None, []) without
    the option."""
    if not getattr(args, "changed_since", None):
        return None, []
    from pipeline.plan.changes import affected_jobs, changed_since

    paths = changed_since(matrix.root, args.changed_since)
    return affected_jobs(jobs, paths), paths


def cmd_list(args: argparse.Namespace) -> int:
    from pipeline.plan.select import select

    matrix, jobs = _load(args)
    only, _ = _changed(args, matrix, jobs)
    selection = select(matrix, jobs, _filters(args), only)
    if not selection.jobs:
        print("[]" if args.json else f"no job is affected by changes since "
              f"{args.changed_since}")
        return EXIT_OK
    rows = [{"id": j.id, "name": j.name, "axes": j.axes(), "image": j.spec.image,
             "needs": list(j.needs), "inputs": list(j.spec.inputs), "timeout": j.timeout,
             "selected": j.id in selection.chosen} for j in selection.jobs]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    width = max(len(r["id"]) for r in rows)
    for row in rows:
        needs = f"  needs: {', '.join(row['needs'])}" if row["needs"] else ""
        extra = "" if row["selected"] else "  (needed)"
        image = f"image: {row['image']}" if row["image"] else "vm"
        print(f"{row['id']:<{width}}  {image}{needs}{extra}")
    return EXIT_OK


def cmd_schema(_args: argparse.Namespace) -> int:
    from pipeline.model.schema import MATRIX_SCHEMA

    print(json.dumps(MATRIX_SCHEMA, indent=2))
    return EXIT_OK


def cmd_lock(args: argparse.Namespace) -> int:
    from pipeline.debian.lock import LOCK_NAME, read_lock, resolve_all, write_lock

    matrix, _ = _load(args)
    path = matrix.root / LOCK_NAME
    existing = read_lock(path)
    resolved = resolve_all(matrix.kernels.values(), existing, args.update,
                           log=lambda m: print(f"pipeline: {m}", file=sys.stderr))
    write_lock(path, resolved)
    for version, kernel in resolved.items():
        print(f"{version:<8} {kernel.abi:<28} {kernel.headers.package}={kernel.headers.version}")
    print(f"wrote {path}")
    return EXIT_OK


def _image_base(matrix: Any) -> Any:
    from pipeline.debian.images import ImageBase

    mode = os.environ.get("KMATRIX_IMAGE_BASE", matrix.image_base)
    if mode not in ("mmdebstrap", "registry"):
        raise InputError(f"KMATRIX_IMAGE_BASE={mode!r} is not a known image base",
                         hint="use mmdebstrap or registry")
    return ImageBase(mode=mode, registry_image=matrix.registry_image)


def _locked_kernels(matrix: Any, jobs: list[Any]) -> dict[str, Any]:
    from pipeline.debian.lock import LOCK_NAME, check_lock, read_lock

    wanted = {j.kernel for j in jobs if j.kernel}
    sources = [matrix.kernels[k] for k in matrix.kernels if k in wanted]
    return check_lock(sources, read_lock(matrix.root / LOCK_NAME), matrix.root / LOCK_NAME)


def cmd_images(args: argparse.Namespace) -> int:
    from pipeline.debian.images import ImageBuilder, ImageCatalog
    from pipeline.plan.select import select
    from pipeline.run.executor import docker_client

    matrix, jobs = _load(args)
    selection = select(matrix, jobs, _filters(args))
    kernels = _locked_kernels(matrix, selection.jobs)
    catalog = ImageCatalog(matrix.root / "images")
    builder = ImageBuilder(docker_client() if args.action == "build" else None, catalog,
                           _image_base(matrix), log=lambda m: print(f"pipeline: {m}",
                                                                    file=sys.stderr))
    seen = set()
    for job in selection.jobs:
        if not job.spec.image:  # a VM job boots a kernel; it has no toolchain image
            continue
        kernel = kernels.get(job.kernel) if catalog.per_kernel(job.spec.image) else None
        key = (job.spec.image, kernel.version if kernel else None)
        if key in seen:
            continue
        seen.add(key)
        if args.action == "list":
            _, _, tag = builder.plan(job.spec.image, kernel)
            print(tag)
        else:
            ref = builder.ensure(job.spec.image, kernel)
            print(f"{ref.tag}  {'built' if ref.built else 'present'} ({ref.seconds:.1f} s)")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from pipeline.plan.select import select
    from pipeline.report.progress import Progress
    from pipeline.report.summary import new_run_dir, render_summary
    from pipeline.run.executor import docker_client
    from pipeline.run.runner import run_job
    from pipeline.run.scheduler import Scheduler, default_parallelism

    matrix, jobs = _load(args)
    only, changed = _changed(args, matrix, jobs)
    selection = select(matrix, jobs, _filters(args), only)
    console = Console(stderr=args.json)
    def say(m: str) -> None:
        console.print(m, highlight=False, markup=False, soft_wrap=True)
    if not selection.jobs:
        say(f"nothing to run: {len(changed)} file(s) changed since {args.changed_since}, "
            "none of them an input of the selected jobs")
        if args.json:
            print(json.dumps({"run": None, "status": "passed", "changed": changed,
                              "results": []}, indent=2))
        return EXIT_OK
    _locked_kernels(matrix, selection.jobs)  # a stale lock is an error before any work
    # absolute: job directories are bind-mounted, and Docker takes a relative path for a
    # volume name
    reports = Path(args.reports).resolve() if args.reports else matrix.root / "reports"
    if args.baseline:  # a wrong --baseline is exit 2 before the run, not after it
        _resolve_run(reports, args.baseline)
    client = docker_client()  # an unreachable engine is exit 2 before a run directory exists
    run_id, run_dir = new_run_dir(reports)
    started = datetime.now(UTC)
    ctx = _context(matrix, selection.jobs, run_id, run_dir, say, args.verbose,
                   all_jobs=jobs, read_cache=not args.no_cache, client=client)
    containers = ctx.containers
    progress = Progress(console, selection.jobs, live=console.is_terminal and not args.verbose
                        and not args.json)
    scheduler = Scheduler(lambda job: run_job(ctx, job), args.jobs or default_parallelism(),
                          args.fail_fast, on_start=progress.start, on_finish=progress.finish)

    def interrupt(signum: int, _frame: Any) -> None:
        progress.say(f"pipeline: {signal.Signals(signum).name}: stopping this run's "
                     "containers and VMs")
        scheduler.interrupted.set()
        ctx.cancel.set()  # VM jobs stop their QEMU
        threading.Thread(target=containers.stop_all, daemon=True).start()

    old = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    say(f"run {run_id}: {len(selection.jobs)} jobs, up to {scheduler.parallel} at once")
    try:
        with progress:
            results = scheduler.run(selection.jobs)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    summary, regressions, index = _write_run_report(reports, run_dir, run_id, matrix.path,
                                                    selection.jobs, results, started,
                                                    args.baseline)
    if args.json:
        print(json.dumps({**summary, "regressions": regressions.to_json() if regressions
                          else None, "html": str(index)}, indent=2))
    else:
        render_summary(summary, console, run_dir, regressions, index)
    if scheduler.interrupted.is_set():
        return 130
    return EXIT_OK if summary["status"] == "passed" else EXIT_FAILED


def _write_run_report(reports: Path, run_dir: Path, run_id: str, matrix_path: Path,
                      jobs: list[Any], results: dict[str, Any], started: datetime,
                      baseline: str | None) -> tuple[dict[str, Any], Any, Path]:
    """summary.json, junit.xml, index.html, then reports/latest (last, so it only ever
    points at a complete report). ReportError names what still stands."""
    from pipeline.report.summary import latest_target, point_latest, write_summary

    try:
        summary = write_summary(run_dir, run_id, matrix_path, jobs, results, started)
        regressions, index = _html_and_regressions(reports, run_dir, matrix_path, baseline)
        point_latest(reports, run_dir)
    except ReportError as exc:
        previous = latest_target(reports)
        kept = (f"{reports / 'latest'} still points at the previous report ({previous}), "
                "which is intact" if previous and previous != run_dir.name
                else f"{reports / 'latest'} was not changed")
        raise ReportError(f"{exc.message}; the report of run {run_id} is incomplete",
                          hint=f"{kept}; free space and run again") from None
    return summary, regressions, index


def _with_needs(jobs: list[Any], all_jobs: list[Any]) -> list[Any]:
    """`jobs` and their needs, transitively (what cache keys depend on)."""
    by_id = {j.id: j for j in all_jobs}
    seen = {j.id: j for j in jobs}
    stack = list(jobs)
    while stack:
        for need in stack.pop().needs:
            if need in by_id and need not in seen:
                seen[need] = by_id[need]
                stack.append(by_id[need])
    return list(seen.values())


def _context(matrix: Any, jobs: list[Any], run_id: str, run_dir: Path, say: Any,
             verbose: bool, needs_dir: Path | None = None, all_jobs: list[Any] | None = None,
             read_cache: bool = True, client: Any = None) -> Any:
    from pipeline.debian.images import ImageBuilder, ImageCatalog
    from pipeline.plan.keys import KeyComputer, docker_image_id
    from pipeline.run import vm
    from pipeline.run.executor import ContainerRunner, docker_client
    from pipeline.run.runner import RunContext
    from pipeline.run.store import ResultCache

    keyed = _with_needs(jobs, all_jobs or jobs)
    kernels = _locked_kernels(matrix, keyed)
    catalog = ImageCatalog(matrix.root / "images")
    client = client or docker_client()
    images = ImageBuilder(client, catalog, _image_base(matrix), log=lambda m: say(f"  {m}"))
    flavour_caches = {n: dict(catalog.spec[n].get("caches") or {}) for n in catalog.names()}

    def warn(message: str) -> None:
        say(f"pipeline: warning: {message}")

    def error(message: str) -> None:
        say(f"pipeline: error: {message}")

    cache = ResultCache(warn=warn)
    tags: dict[tuple[str, str | None], str] = {}

    def image_tag(job: Any) -> str:  # as runner.ensure() names it, without building
        kernel = kernels.get(job.kernel) if job.kernel else None
        memo = (job.spec.image, kernel.version if kernel else None)
        if memo not in tags:
            tags[memo] = images.plan(job.spec.image, kernel)[2]
        return tags[memo]

    keys = KeyComputer(keyed, matrix.root, kernels, image_tag, docker_image_id(client),
                       flavour_caches, runtime=vm.runtime_identity) if cache.enabled else None
    return RunContext(
        run_id=run_id, run_dir=run_dir, root=matrix.root,
        images=images, containers=ContainerRunner(client), kernels=kernels,
        flavour_caches=flavour_caches,
        log=(lambda job, line: say(f"  [{job}] {line}")) if verbose else
        (lambda _job, _line: None),
        needs_dir=needs_dir, cache=cache if cache.enabled else None, keys=keys,
        read_cache=read_cache, warn=warn, error=error,
    )


def cmd_job(args: argparse.Namespace) -> int:
    from pipeline.results.status import OK_STATUSES
    from pipeline.run.runner import run_job

    matrix, jobs = _load(args)
    by_id = {j.id: j for j in jobs}
    if args.job_id not in by_id:
        from pipeline.model.schema import did_you_mean

        raise InputError(f"no job {args.job_id!r} in {matrix.path.name}",
                         hint=did_you_mean(args.job_id, list(by_id))
                         or "see the ids with `pipeline list`")
    job = by_id[args.job_id]
    out = Path(args.dir).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--dir {args.dir}: cannot create it: {exc.strerror or exc}") from None

    def say(message: str) -> None:
        print(message, flush=True)

    ctx = _context(matrix, [job], out.name, out, say, args.verbose,
                   Path(args.needs_dir).resolve() if args.needs_dir else None,
                   all_jobs=jobs, read_cache=not args.no_cache)
    missing = [n for n in job.needs if not (ctx.needs_dir or out).joinpath(n, "artifacts")
               .is_dir()]
    if missing:
        print(f"pipeline: warning: artifacts of needs not found: {', '.join(missing)}",
              file=sys.stderr)
    interrupted = threading.Event()

    def interrupt(signum: int, _frame: Any) -> None:  # Buildbot stops a build with SIGTERM
        print(f"pipeline: {signal.Signals(signum).name}: stopping this job's containers "
              "and VM", flush=True)
        interrupted.set()
        ctx.cancel.set()
        threading.Thread(target=ctx.containers.stop_all, daemon=True).start()

    old = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = run_job(ctx, job)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    print(f"{result.status.upper()} {job.id} ({result.seconds:.1f} s): "
          f"{result.tests} tests, {result.failures} failures, {result.errors} errors"
          + (f"; {result.message}" if result.message else ""))
    if interrupted.is_set():
        return 130
    return EXIT_OK if result.status in OK_STATUSES else EXIT_FAILED


def cmd_cache(args: argparse.Namespace) -> int:
    from pipeline.run.store import ResultCache

    cache = ResultCache()
    removed = None
    if args.action == "prune":
        removed, _ = cache.prune()
    elif args.action == "clear":
        removed = cache.clear()
    stats = {**cache.stats(), **({"removed": removed} if removed is not None else {})}
    if args.json:
        print(json.dumps(stats, indent=2))
        return EXIT_OK
    if removed is not None:
        print(f"removed {removed} entries")
    print(f"{stats['root']}: {stats['entries']} entries, {stats['bytes'] / 2**20:.1f} MB "
          f"of {stats['limit'] / 2**20:.0f} MB"
          + (" (disabled: KMATRIX_RESULT_CACHE_MB=0)" if not cache.enabled else ""))
    return EXIT_OK


def _resolve_run(reports: Path, run: str) -> Path:
    candidate = Path(run)
    for path in (candidate, reports / run):
        if path.is_dir() and (path / "summary.json").is_file():
            return path.resolve()
    known = sorted(p.name for p in reports.glob("*") if (p / "summary.json").is_file())
    raise InputError(f"no run {run!r} in {reports}",
                     hint=f"known runs: {', '.join(known[-5:])}" if known
                     else "run `pipeline run` first")


def _html_and_regressions(reports: Path, run_dir: Path, matrix_path: Path,
                          baseline: str | None) -> tuple[Any, Path]:
    from pipeline.report.html_report import write_html
    from pipeline.report.regressions import compare_runs, regressions_for

    if baseline:
        regressions = compare_runs(run_dir, _resolve_run(reports, baseline))
    else:
        regressions = regressions_for(reports, run_dir, matrix_path)
    return regressions, write_html(run_dir, regressions)


def _reports_dir(args: argparse.Namespace) -> Path:
    if args.reports:
        return Path(args.reports)
    try:
        return find_matrix(explicit=args.matrix).parent / "reports"
    except InputError:
        return Path("reports")


def cmd_runs(args: argparse.Namespace) -> int:
    reports = _reports_dir(args)
    rows = []
    for path in sorted(reports.glob("*")):
        if path.is_symlink() or not (path / "summary.json").is_file():
            continue
        try:
            summary = json.loads((path / "summary.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        tests = summary.get("tests", {})
        rows.append({"run": path.name, "status": summary.get("status"),
                     "started": summary.get("started"), "jobs": summary.get("jobs", {}),
                     "tests": tests, "path": str(path)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print(f"no runs in {reports}")
    for row in rows:
        jobs = ", ".join(f"{n} {s}" for s, n in row["jobs"].items())
        failed = row["tests"].get("failures", 0) + row["tests"].get("errors", 0)
        print(f"{row['run']}  {row['status']:<7} {row['started']}  jobs: {jobs}; "
              f"tests: {row['tests'].get('total', 0)} ({failed} failed)")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from rich.console import Console

    from pipeline.report.summary import render_summary

    reports = _reports_dir(args)
    run_dir = _resolve_run(reports, args.run)
    summary = json.loads((run_dir / "summary.json").read_text())
    regressions, index = _html_and_regressions(reports, run_dir, Path(summary["matrix"]),
                                               args.baseline)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        render_summary(summary, Console(), run_dir, regressions, index)
    if args.open:
        import webbrowser

        webbrowser.open(index.as_uri())
    return EXIT_OK if summary.get("status") == "passed" else EXIT_FAILED


def cmd_convert(args: argparse.Namespace) -> int:
    from junitparser import JUnitXml

    if args.log == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(args.log).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise InputError(f"{args.log}: cannot read: {exc.strerror or exc}") from None
    name = args.name or (Path(args.log).stem if args.log != "-" else args.format)
    if args.format == "ktap":
        from pipeline.results.ktap import parse_ktap

        suite = parse_ktap(text, suite_name=name)
    else:
        from pipeline.results.libtest import parse_libtest

        suite = parse_libtest(text, suite_name=name)
    xml = JUnitXml(name=name)
    suite.update_statistics()
    xml.add_testsuite(suite)
    xml.update_statistics()
    if args.output:
        from pipeline.fsutil import atomic_path

        try:
            with atomic_path(Path(args.output)) as tmp:
                xml.write(str(tmp), pretty=True)
        except OSError as exc:
            raise InputError(f"-o {args.output}: cannot write: {exc.strerror or exc}"
                             ) from None
    else:
        sys.stdout.write(_xml_text(xml))
    return EXIT_OK


def _xml_text(xml: Any) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".xml") as tmp:
        xml.write(tmp.name, pretty=True)
        return Path(tmp.name).read_text()


def _buildbot_control() -> Any:
    """pipeline.buildbot.control, imported only when a Buildbot command runs."""
    import pipeline.buildbot.control as control

    return control


COMMANDS = {
    "validate": cmd_validate, "list": cmd_list, "schema": cmd_schema, "lock": cmd_lock,
    "run": cmd_run, "runs": cmd_runs, "report": cmd_report, "job": cmd_job,
    "images": cmd_images, "convert": cmd_convert, "cache": cmd_cache,
    "master": lambda args: _buildbot_control().cmd_master(args),
    "hook": lambda args: _buildbot_control().cmd_hook(args),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 all passed, 1 a job failed, 2 bad input or environment."""
    raw = sys.argv[1:] if argv is None else argv
    if any("\0" in arg for arg in raw):  # only in-process callers can pass one
        print("pipeline: error: an argument contains a NUL byte", file=sys.stderr)
        return EXIT_USAGE
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InputError as exc:
        for diagnostic in exc.diagnostics:
            print(f"pipeline: {diagnostic}", file=sys.stderr)
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
