"""Run one job: ensure what it runs on, run it on its runtime, write its results.

This is the one execution path: `pipeline run` and Buildbot's steps both call run_job().
Each job leaves, in its directory: log.txt, junit.xml, metadata.json, reproduce.sh and
artifacts/ (what the job wrote to $OUT); a job with `bench:` also bench.json. The job's
runtime (pipeline.run.runtimes: containers, or a VM for a `vm:` job) is picked by
runtime_for(); the runner does not know the kinds. With a result cache
(pipeline.run.cached), a job whose key has a stored passed result gets that result's files
instead ("cached") and no container or VM is started; a passed job's files are stored
under its key.

Failures of the machine are the job's, never the run's: a file that cannot be written
(disk full) makes the job an "error" with the reason, and secret values (pipeline.run.masking)
are masked in everything written or shown.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from junitparser import TestCase, TestSuite

from pipeline.debian.images import ImageBuilder
from pipeline.debian.lock import LockedKernel
from pipeline.errors import PipelineError
from pipeline.fsutil import atomic_write_text
from pipeline.model.expand import Job
from pipeline.plan.keys import KeyComputer
from pipeline.results.merge import suite_counts, write_suite
from pipeline.results.repo_paths import RepoPaths, map_suite
from pipeline.results.status import ERROR, FAILED, PASSED, JobResult
from pipeline.run.cached import CACHED_FILES, cache_key, from_cache, store_result
from pipeline.run.executor import ContainerRunner, prepare_writable
from pipeline.run.frame import JobFrame, job_dir
from pipeline.run.inputs import InputTrees
from pipeline.run.masking import Masker
from pipeline.run.runtimes import runtime_for
from pipeline.run.runtimes.container import network_extras
from pipeline.run.store import ResultCache

__all__ = ["CACHED_FILES", "RunContext", "job_dir", "run_job"]


@dataclass
class RunContext:
    """What every job of one run shares."""

    run_id: str
    run_dir: Path
    root: Path
    images: ImageBuilder
    containers: ContainerRunner
    kernels: dict[str, LockedKernel]
    flavour_caches: dict[str, dict[str, str]]
    log: Callable[[str, str], None] = lambda _job, _line: None
    needs_dir: Path | None = None  # where needs' results are (default: run_dir)
    cache: ResultCache | None = None  # stored results (None: no caching at all)
    keys: KeyComputer | None = None
    read_cache: bool = True  # False (--no-cache): always run, still store passed results
    warn: Callable[[str], None] = lambda _message: None
    error: Callable[[str], None] = lambda _message: None  # shown at once (image failures)
    cancel: threading.Event = field(default_factory=threading.Event)  # set on Ctrl-C/TERM
    reported: set[str] = field(default_factory=set)  # errors already shown by error()
    inputs: InputTrees | None = None  # the jobs' /src trees (made on first use)

    def report_once(self, message: str) -> None:
        """Show an error once per run (jobs sharing a failed image report it once)."""
        if message not in self.reported:
            self.reported.add(message)
            self.error(message)


def run_job(ctx: RunContext, job: Job) -> JobResult:
    """Run a job to completion and write its directory (or restore its cached result).
    Never raises for job failures."""
    key = cache_key(ctx, job)
    if key is not None and ctx.read_cache:
        cached = from_cache(ctx, job, key)
        if cached is not None:
            return cached
    result = _run(ctx, job, key)
    if result.status == PASSED and ctx.cache is not None and ctx.cache.enabled:
        store_result(ctx, job, key, result)
    return result


def _run(ctx: RunContext, job: Job, key: str | None) -> JobResult:
    directory = job_dir(ctx, job)
    started = time.monotonic()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        prepare_writable(directory / "artifacts")
        log = open(directory / "log.txt", "w", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        message = f"cannot write the job's results in {directory}: {exc.strerror or exc}"
        ctx.report_once(f"{job.id}: {message}")
        return JobResult(id=job.id, status=ERROR, seconds=round(time.monotonic() - started, 3),
                         message=message, errors=1)
    frame = JobFrame(ctx, job, directory, log, started,
                     datetime.now(UTC).isoformat(timespec="seconds"), TestSuite(job.id))
    frame.masker = _job_masker(job)
    try:
        runtime_for(job)(frame).execute()
    except PipelineError as exc:  # environment problems become this job's error
        frame.emit(f"== error: {exc}")
        frame.fail(ERROR, str(exc).splitlines()[0])
        frame.error_case("setup", str(exc), "environment")
    except OSError as exc:  # e.g. the disk filled up under the job's artifacts
        problem = f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}"
        frame.emit(f"== error: {problem}")
        frame.fail(ERROR, problem)
        frame.error_case("setup", problem, "io")
    finally:
        try:
            log.close()
        except OSError as exc:
            frame.write_error = frame.write_error or exc
    if key is not None:
        frame.extra["cache"] = {"hit": False, "key": key}
    return _finish(frame)


def _job_masker(job: Job) -> Masker:
    """What must not appear in this job's output: secret-looking env values (job, steps,
    the network steps' proxy settings) and the values of its `secrets`."""
    masker = Masker()
    masker.add_env(job.job_env())
    for step in job.spec.steps:
        masker.add_env(step.env)
    masker.add_env(network_extras()[1])
    masker.add_env({n: os.environ[n] for n in job.spec.secrets if os.environ.get(n)},
                   job.spec.secrets)
    return masker


def _failing(cases: list[TestCase]) -> list[dict[str, str]]:
    out = []
    for case in cases:
        for result in case.result:
            kind = type(result).__name__
            if kind in ("Failure", "Error"):
                out.append({"name": f"{case.classname}.{case.name}", "kind": kind.lower(),
                            "message": (result.message or "")[:500]})
    return out


def _finish(frame: JobFrame) -> JobResult:
    job = frame.job
    if frame.write_error is not None:  # the record is incomplete: that wins over the rest
        problem = (f"cannot write {frame.directory / 'log.txt'}: "
                   f"{frame.write_error.strerror or frame.write_error}")
        frame.status, frame.message = ERROR, problem + (
            f" (and: {frame.message})" if frame.message else "")
        frame.error_case("results", problem, "io")
    map_suite(frame.suite, _repo_paths(frame))  # JUnit, terminal and HTML: repo paths
    bench = _read_bench(frame)  # after: its `log.txt:N` is the job's log, not a repo file
    counts = suite_counts(frame.suite)
    failing = _failing(list(frame.suite))
    if frame.status == PASSED and (counts["failures"] or counts["errors"]):
        frame.fail(FAILED, f"{counts['failures'] + counts['errors']} failing test(s)")
    result = JobResult(
        id=job.id, status=frame.status, seconds=round(time.monotonic() - frame.started, 3),
        message=frame.message, tests=counts["tests"], failures=counts["failures"],
        errors=counts["errors"], skipped=counts["skipped"], failing=failing,
        image=frame.image.tag if frame.image else None,
        directory=str(frame.directory.relative_to(frame.ctx.run_dir)),
    )
    try:
        write_suite(frame.suite, frame.directory / "junit.xml", frame.masker.mask)
        if bench is not None:
            atomic_write_text(frame.directory / "bench.json",
                              frame.masker.mask(json.dumps(bench, indent=2)) + "\n")
        _write_metadata(frame, result)
        _write_reproducer(frame)
    except OSError as exc:  # disk full, ...: the job's record is incomplete, so it errs
        result.status = ERROR
        result.message = (f"cannot write the job's results in {frame.directory}: "
                          f"{exc.strerror or exc}")
        result.errors += 1
        frame.ctx.report_once(f"{job.id}: {result.message}")
        with contextlib.suppress(OSError):  # what could be written must not say "passed"
            _write_metadata(frame, result)
    return result


def _read_bench(frame: JobFrame) -> dict[str, Any] | None:
    """A bench job's `# bench:` lines, read from its log.txt: JUnit properties and cases
    now, bench.json's body for _finish to write; bad lines fail the job."""
    from pipeline.results.bench import add_to_suite, bench_json, parse_bench, problems_message

    if frame.job.spec.bench is None:
        return None
    try:
        text = (frame.directory / "log.txt").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    output = parse_bench(text)
    add_to_suite(frame.suite, output, frame.job.id)
    if output.problems:
        frame.fail(FAILED, problems_message(output))
    return bench_json(frame.job.id, output)


def _repo_paths(frame: JobFrame) -> RepoPaths:
    """Messages' container paths as repository paths: among the files the job saw."""
    inputs = frame.ctx.inputs
    files = inputs.source.matched(frame.job.spec.inputs) if inputs is not None else []
    return RepoPaths(files)


def _write_metadata(frame: JobFrame, result: JobResult) -> None:
    job, image = frame.job, frame.image
    kernel = frame.ctx.kernels.get(job.kernel_key) if job.kernel else None
    meta = {
        "job": job.id, "name": job.name, "axes": job.axes(), "status": result.status,
        "message": result.message, "started": frame.started_at,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": result.seconds, "steps": frame.steps,
        "image": {"flavour": job.spec.image, "tag": image.tag, "id": image.id,
                  "built": image.built, "seconds": round(image.seconds, 3)} if image else None,
        "kernel": kernel.to_yaml() if kernel else None,
        "features": ({"name": job.features.name, "cargo_args": job.features.cargo_args()}
                     if job.features else None),
        "needs": list(job.needs), "timeout": job.timeout,
        "limits": asdict(job.spec.limits), "host": platform.node(),
        "tests": {"total": result.tests, "failures": result.failures,
                  "errors": result.errors, "skipped": result.skipped},
        **frame.extra,
    }
    atomic_write_text(frame.directory / "metadata.json",
                      frame.masker.mask(json.dumps(meta, indent=2)) + "\n")


def _write_reproducer(frame: JobFrame) -> None:
    lines = ["#!/usr/bin/env bash",
             f"# Re-runs job {frame.job.id} by hand, exactly as `pipeline run` did.",
             "set -euo pipefail"]
    if frame.reproducer:
        lines += frame.reproducer
    else:
        lines += ["echo 'this job never reached its steps (see log.txt)' >&2", "exit 2"]
    atomic_write_text(frame.directory / "reproduce.sh",
                      frame.masker.mask("\n".join(lines)) + "\n", mode=0o755)
