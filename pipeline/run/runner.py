"""Run one job: ensure its image, run its steps in containers, write its results.

This is the one execution path: `pipeline run` and Buildbot's steps both call run_job().
Each job leaves, in its directory: log.txt, junit.xml, metadata.json, reproduce.sh and
artifacts/ (what the steps wrote to $OUT). With a result cache (pipeline/cache.py), a job
whose key has a stored passed result gets that result's files instead ("cached") and no
container or VM is started; a passed job's files are stored under its key.

Failures of the machine are the job's, never the run's: a file that cannot be written
(disk full) makes the job an "error" with the reason, and secret values (pipeline.run.masking)
are masked in everything written or shown.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shlex
import shutil
import string
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from junitparser import Error, Failure, TestCase, TestSuite

from pipeline.debian.images import ImageBuilder, ImageRef
from pipeline.debian.lock import LockedKernel
from pipeline.errors import InputError, PipelineError
from pipeline.fsutil import atomic_write_text
from pipeline.model.expand import Job
from pipeline.model.matrix import Step
from pipeline.paths import cache_dir
from pipeline.plan.keys import KeyComputer
from pipeline.results.build_log import step_case
from pipeline.results.merge import suite_counts, write_suite
from pipeline.results.status import (
    CACHED,
    ERROR,
    FAILED,
    INTERRUPTED,
    PASSED,
    JobResult,
)
from pipeline.run.executor import (
    JOB_LABEL,
    RUN_LABEL,
    STEP_LABEL,
    ContainerRunner,
    ContainerSpec,
    Mount,
    StepOutcome,
    container_user,
    prepare_writable,
    reclaim,
)
from pipeline.run.masking import Masker
from pipeline.run.store import ResultCache

CACHED_FILES = ("junit.xml", "log.txt", "metadata.json", "reproduce.sh", "artifacts")
SRC, OUT, WORK, NEEDS = "/src", "/out", "/work", "/needs"


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

    def report_once(self, message: str) -> None:
        """Show an error once per run (jobs sharing a failed image report it once)."""
        if message not in self.reported:
            self.reported.add(message)
            self.error(message)


def job_dir(ctx: RunContext, job: Job) -> Path:
    """Where a job's results go: reports/<run>/<job id>/."""
    return ctx.run_dir / job.id


def _cache_mounts(ctx: RunContext, job: Job, image: ImageRef) -> list[Mount]:
    mounts = []
    image_key = image.tag.replace("/", "_").replace(":", "_")
    for container_path, scope in ctx.flavour_caches.get(job.spec.image, {}).items():
        if scope == "image":
            host = cache_dir() / "caches" / image_key / container_path.strip("/")
        else:  # per image and job: e.g. a cargo target dir per feature set
            host = (cache_dir() / "caches" / image_key / container_path.strip("/")
                    / job.id.replace("/", "_"))
        prepare_writable(host)
        mounts.append(Mount(host, container_path))
    return mounts


def _need_mounts(ctx: RunContext, job: Job) -> list[Mount]:
    base = ctx.needs_dir or ctx.run_dir
    return [
        Mount(base / need / "artifacts", f"{NEEDS}/{need}", read_only=True)
        for need in job.needs
        if (base / need / "artifacts").is_dir()
    ]


PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
CA_IN_CONTAINER = "/etc/ssl/certs/ca-certificates.crt"


def host_ca_bundle() -> Path | None:
    """The CA bundle the host trusts (a TLS-intercepting proxy's CA lives there)."""
    for candidate in (os.environ.get("KMATRIX_CA_BUNDLE"), os.environ.get("SSL_CERT_FILE"),
                      "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    return None


def network_extras() -> tuple[list[Mount], dict[str, str]]:
    """What a network step inherits from the host: its CA bundle and proxy settings."""
    env = {k: os.environ[k] for k in PROXY_VARS if os.environ.get(k)}
    bundle = host_ca_bundle()
    if bundle is None:
        return [], env
    env.update({"SSL_CERT_FILE": CA_IN_CONTAINER, "CARGO_HTTP_CAINFO": CA_IN_CONTAINER,
                "GIT_SSL_CAINFO": CA_IN_CONTAINER})
    return [Mount(bundle, CA_IN_CONTAINER, read_only=True)], env


def _parse_results(step: Step, classname: str, outcome: StepOutcome) -> list[TestCase]:
    if step.results in ("libtest", "ktap"):
        if step.results == "libtest":
            from pipeline.results.libtest import parse_libtest as parse
        else:
            from pipeline.results.ktap import parse_ktap as parse
        suite = parse(outcome.output, suite_name=f"{classname}.{step.name}")
        cases = list(suite)
        broken = any(
            type(r).__name__ in ("Failure", "Error") for case in cases for r in case.result
        )
        if (outcome.exit_code != 0 or outcome.error) and not broken:
            cases.append(step_case(classname, step.name, outcome.output,
                                   outcome.exit_code, outcome.seconds, outcome.error))
        return cases
    return [step_case(classname, step.name, outcome.output, outcome.exit_code,
                      outcome.seconds, outcome.error)]


def _failing(cases: list[TestCase]) -> list[dict[str, str]]:
    out = []
    for case in cases:
        for result in case.result:
            kind = type(result).__name__
            if kind in ("Failure", "Error"):
                out.append({"name": f"{case.classname}.{case.name}", "kind": kind.lower(),
                            "message": (result.message or "")[:500]})
    return out


@dataclass
class _Frame:
    """What one job accumulates while it runs; finish() writes the job directory."""

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
        if self.status == PASSED:
            self.status, self.message = status, self.masker.mask(message)

    def error_case(self, name: str, message: str, kind: str) -> None:
        message = self.masker.mask(message)
        case = TestCase(name, classname=self.job.id)
        err = Error(message.splitlines()[0][:500] if message else kind, kind)
        err.text = message
        case.result = [err]
        self.suite.add_testcase(case)


def _key(ctx: RunContext, job: Job) -> str | None:
    if ctx.cache is None or ctx.keys is None or not ctx.cache.enabled:
        return None
    try:
        return ctx.keys.key(job)
    except Exception as exc:  # the cache must never break a run
        ctx.warn(f"{job.id}: cannot compute its cache key ({exc.__class__.__name__}: "
                 f"{exc}); it is not cached")
        return None


def _from_cache(ctx: RunContext, job: Job, key: str) -> JobResult | None:
    assert ctx.cache is not None
    started = time.monotonic()
    entry = ctx.cache.lookup(key)
    if entry is None:
        return None
    directory = job_dir(ctx, job)
    if not ctx.cache.restore(entry, directory):
        shutil.rmtree(directory, ignore_errors=True)
        return None
    info = entry.info
    origin = (f"result {key[:16]} of run {info.get('run', '?')} ({entry.body.get('created')}), "
              f"which passed in {info.get('seconds', 0):.1f} s")
    log = directory / "log.txt"
    meta_path = directory / "metadata.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        meta = {"job": job.id, "status": PASSED}
    meta["cache"] = {"hit": True, "key": key, "run": info.get("run"),
                     "stored": entry.body.get("created"), "seconds": info.get("seconds")}
    try:
        atomic_write_text(log, f"== cached: {origin}; no container or VM was started\n"
                          + (log.read_text(errors="replace") if log.is_file() else ""))
        _relocate_reproducer(directory / "reproduce.sh", info, _paths(ctx))
        atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    except OSError as exc:
        ctx.warn(f"{job.id}: cannot restore its cached result ({exc.strerror or exc}); "
                 "it runs")
        shutil.rmtree(directory, ignore_errors=True)
        return None
    ctx.log(job.id, f"== cached: {origin}")
    tests = meta.get("tests") or {}
    return JobResult(
        id=job.id, status=CACHED, seconds=round(time.monotonic() - started, 3),
        message=f"cached: passed in {info.get('seconds', 0):.1f} s in run "
                f"{info.get('run', '?')}",
        tests=int(tests.get("total", 0)), failures=int(tests.get("failures", 0)),
        errors=int(tests.get("errors", 0)), skipped=int(tests.get("skipped", 0)),
        image=info.get("image"), directory=str(directory.relative_to(ctx.run_dir)))


def _paths(ctx: RunContext) -> dict[str, str]:
    """Host paths a reproduce.sh names that differ between checkouts and runs."""
    return {"root": str(ctx.root), "needs": str(ctx.needs_dir or ctx.run_dir)}


def _relocate_reproducer(script: Path, info: dict[str, Any], now: dict[str, str]) -> None:
    """Point a restored reproduce.sh at this checkout and run (a cached result may come from
    another checkout of the same content, e.g. a Buildbot worker's)."""
    then = info.get("paths") or {}
    if not script.is_file() or not then:
        return
    text = script.read_text()
    for name, suffix in (("root", f":{SRC}"), ("needs", "/")):
        if then.get(name) and then[name] != now[name]:
            text = text.replace(then[name] + suffix, now[name] + suffix)
    atomic_write_text(script, text, mode=0o755)


def _store(ctx: RunContext, job: Job, key: str | None, result: JobResult) -> None:
    assert ctx.cache is not None
    key = key or _key(ctx, job)  # its image exists now
    if key is None:
        return
    info = {"job": job.id, "run": ctx.run_id, "seconds": result.seconds,
            "image": result.image, "tests": result.tests, "paths": _paths(ctx)}
    try:
        ctx.cache.store(key, job_dir(ctx, job), CACHED_FILES, info)
    except OSError as exc:
        ctx.warn(f"{job.id}: cannot store its result in the cache: {exc}")


def run_job(ctx: RunContext, job: Job) -> JobResult:
    """Run a job to completion and write its directory (or restore its cached result).
    Never raises for job failures."""
    key = _key(ctx, job)
    if key is not None and ctx.read_cache:
        cached = _from_cache(ctx, job, key)
        if cached is not None:
            return cached
    result = _run(ctx, job, key)
    if result.status == PASSED and ctx.cache is not None and ctx.cache.enabled:
        _store(ctx, job, key, result)
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
    frame = _Frame(ctx, job, directory, log, started,
                   datetime.now(UTC).isoformat(timespec="seconds"), TestSuite(job.id))
    frame.masker = _job_masker(job)
    try:
        if job.spec.vm is not None:
            _run_vm(frame)
        else:
            _run_steps(frame)
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


def _secret_env(frame: _Frame) -> dict[str, str] | None:
    """The job's `secrets` from pipeline's environment; None (job error) if one is unset."""
    names = frame.job.spec.secrets
    missing = [n for n in names if n not in os.environ]
    if missing:
        message = (f"secret {', '.join(missing)} is not set in the environment of pipeline "
                   f"(the job declares `secrets: [{', '.join(names)}]`)")
        frame.emit(f"== error: {message}")
        frame.fail(ERROR, message)
        frame.error_case("secrets", message, "environment")
        return None
    return {n: os.environ[n] for n in names}


def _run_steps(frame: _Frame) -> None:
    ctx, job = frame.ctx, frame.job
    kernel = ctx.kernels.get(job.kernel) if job.kernel else None
    secret_env = _secret_env(frame)
    if secret_env is None:
        return
    try:
        frame.image = ctx.images.ensure(job.spec.image, kernel)
    except PipelineError as exc:
        frame.emit(f"== image failed: {exc}")
        first = str(exc).splitlines()[0].removesuffix("; last lines:")
        frame.fail(ERROR, f"image {job.spec.image!r} failed to build: {first} "
                          "(log tail in log.txt)")
        frame.error_case("image", str(exc), "image")
        # once per image: the jobs sharing it get the same error without a rebuild
        ctx.report_once(frame.masker.mask(f"image {job.spec.image!r} failed to build: {exc}"))
        return
    image = frame.image
    frame.emit(f"== image {image.tag} ({'built' if image.built else 'reused'} "
               f"in {image.seconds:.1f} s)")
    work = Path(cache_dir() / "work" / ctx.run_id / job.id.replace("/", "_"))
    prepare_writable(work)
    mounts = [Mount(ctx.root, SRC, read_only=True), Mount(frame.artifacts, OUT),
              Mount(work, WORK), *_cache_mounts(ctx, job, image), *_need_mounts(ctx, job)]
    env = {**job.job_env(), "SRC": SRC, "OUT": OUT, "WORK": WORK, "NEEDS": NEEDS,
           "KMATRIX_JOB": job.id}
    deadline = frame.started + job.timeout
    net_mounts, net_env = network_extras()
    specs: list[tuple[Step, ContainerSpec]] = []
    try:
        for step in job.spec.steps:
            spec = ContainerSpec(
                image=image.tag, script=step.run,
                env={**env, **(net_env if step.network else {}), **step.env, **secret_env},
                mounts=mounts + (net_mounts if step.network else []),
                network=step.network, cpus=job.spec.limits.cpus,
                memory=job.spec.limits.memory, pids=job.spec.limits.pids,
                user=container_user(),
                labels={RUN_LABEL: ctx.run_id, JOB_LABEL: job.id, STEP_LABEL: step.name},
            )
            specs.append((step, spec))
            remaining = deadline - time.monotonic()
            limit = min(step.timeout or remaining, remaining)
            frame.emit(f"== step {step.name} ({'network' if step.network else 'no network'}, "
                       f"timeout {limit:.0f} s)")
            outcome = (ctx.containers.run(spec, timeout=limit, on_line=frame.emit)
                       if limit > 0 else
                       StepOutcome(None, "", 0.0, timed_out=True,
                                   error=f"job timeout ({job.timeout} s) reached"))
            if outcome.timed_out and limit > 0:
                which = (f"step timeout {step.timeout} s" if step.timeout
                         and step.timeout <= limit + 1 else f"job timeout {job.timeout} s")
                outcome.error = f"{outcome.error} ({which})"
            outcome.output = frame.masker.mask(outcome.output)
            outcome.error = frame.masker.mask(outcome.error) if outcome.error else None
            frame.emit(f"== step {step.name}: exit {outcome.exit_code} in "
                       f"{outcome.seconds:.1f} s"
                       + (f" ({outcome.error})" if outcome.error else ""))
            frame.suite.add_testcases(_parse_results(step, job.id, outcome))
            frame.steps.append({"name": step.name, "exit_code": outcome.exit_code,
                                "seconds": round(outcome.seconds, 3),
                                "network": step.network, "error": outcome.error})
            if ctx.containers.stopping:
                frame.fail(INTERRUPTED, "run interrupted")
                break
            if outcome.exit_code != 0 or outcome.error:
                frame.fail(FAILED, outcome.error
                           or f"step {step.name!r} exited {outcome.exit_code}")
                break
    finally:
        shutil.rmtree(work, ignore_errors=True)
        reclaim(frame.artifacts)
        frame.reproducer = _docker_reproducer(frame.directory, specs, frame.masker)


def _vm_path(value: str, env: dict[str, str], needs: list[str]) -> Path:
    """Expand $SRC/$NEEDS/...; $NEEDS/<need id>/x means that need's artifacts/x."""
    path = string.Template(value).safe_substitute(env)
    for need in sorted(needs, key=len, reverse=True):
        prefix = f"{env['NEEDS']}/{need}/"
        if path.startswith(prefix):
            return Path(prefix, "artifacts", path[len(prefix):])
    return Path(path)


def _run_vm(frame: _Frame) -> None:
    from pipeline.debian.kernels import kernel_image
    from pipeline.results.ktap import parse_ktap
    from pipeline.run.vm import VmSpec, qemu_command, run_vm, scan_console

    ctx, job, decl = frame.ctx, frame.job, frame.job.spec.vm
    assert decl is not None
    kernel = ctx.kernels.get(job.kernel) if job.kernel else None
    if kernel is None:
        raise InputError(f"job {job.name!r} has `vm:` but does not run over kernels",
                         hint="add `over: [kernel]`")
    needs = ctx.needs_dir or ctx.run_dir
    env = {**job.job_env(), "SRC": str(ctx.root), "NEEDS": str(needs),
           "KERNEL_ABI": kernel.abi}
    needs_ids = list(job.needs)
    paths = {"modules": [_vm_path(m, env, needs_ids) for m in decl.modules],
             "binaries": [_vm_path(b, env, needs_ids) for b in decl.binaries],
             "files": {k: _vm_path(v, env, needs_ids) for k, v in decl.files.items()}}
    explicit_kernel = _vm_path(decl.kernel, env, needs_ids) if decl.kernel else None
    missing = [str(p) for p in [*paths["modules"], *paths["binaries"],
                                *paths["files"].values(), *filter(None, [explicit_kernel])]
               if not p.is_file()]
    if missing:
        frame.fail(ERROR, f"missing VM input(s): {', '.join(missing)}")
        frame.error_case("vm-inputs", "\n".join(missing), "missing-input")
        return
    if explicit_kernel is not None:
        frame.emit(f"== kernel {explicit_kernel}")
        vmlinuz = explicit_kernel
    else:
        frame.emit(f"== kernel {kernel.image.package} {kernel.image.version}")
        vmlinuz = kernel_image(kernel)
    spec = VmSpec(kernel=vmlinuz, modules=paths["modules"], binaries=paths["binaries"],
                  files=paths["files"],
                  command=string.Template(decl.command).safe_substitute(env),
                  memory_mb=decl.memory, boot_timeout=decl.boot_timeout,
                  timeout=max(math.ceil(job.timeout - (time.monotonic() - frame.started)),
                              1),
                  test_timeout=decl.test_timeout, append=decl.append,
                  label=f"kmatrix:{ctx.run_id}:{job.id}")
    workdir = frame.artifacts
    frame.emit(f"== boot (timeout {spec.timeout:.0f} s, boot {spec.boot_timeout} s"
               + (f", per test {spec.test_timeout} s)" if spec.test_timeout else ")"))
    result = run_vm(spec, workdir, kernel_cache=cache_dir() / "kernels" / "pvh",
                    cancel=ctx.cancel)
    for line in result.console.splitlines():
        frame.emit(line)
    (workdir / "ktap.txt").write_text(result.ktap)
    frame.emit(f"== vm: {result.status} (exit {result.exit_code}), boot "
               f"{result.boot_seconds:.2f} s, tests {result.test_seconds:.2f} s, {result.accel}")
    frame.extra["vm"] = {"status": result.status, "exit_code": result.exit_code,
                         "boot_seconds": result.boot_seconds,
                         "test_seconds": result.test_seconds, "accel": result.accel,
                         "kernel": str(vmlinuz)}
    frame.steps.append({"name": "vm", "exit_code": result.exit_code,
                        "seconds": round(result.boot_seconds + result.test_seconds, 3),
                        "network": False, "error": None if result.status == "ok"
                        else result.status})
    if decl.results == "ktap":
        frame.suite.add_testcases(list(parse_ktap(result.ktap, suite_name=f"{job.id}.ktap")))
    vm_case = TestCase("vm", classname=job.id, time=round(result.boot_seconds
                                                          + result.test_seconds, 3))
    # Kernel findings first: the job's message should name the BUG/Oops, not its effect.
    for finding in scan_console(result.console):
        case = TestCase(f"dmesg.{finding.kind}@{finding.line_no}", classname=job.id)
        fail = Failure(finding.excerpt.splitlines()[0][:400], f"kernel-{finding.kind}")
        fail.text = finding.excerpt
        case.result = [fail]
        frame.suite.add_testcase(case)
        frame.fail(FAILED, f"kernel {finding.kind}: {finding.excerpt.splitlines()[0][:200]}")
    if result.status != "ok":
        err = Error(f"{result.status}: {result.reason.splitlines()[0][:400]}", result.status)
        err.text = result.reason
        vm_case.result = [err]
        if result.status == "interrupted":
            frame.fail(INTERRUPTED, "run interrupted")
        frame.fail(FAILED, f"VM {result.status}: {result.reason.splitlines()[0][:200]}")
    elif result.exit_code != 0:
        fail = Failure(f"the VM command exited {result.exit_code}", "exit-status")
        fail.text = "\n".join(result.console.splitlines()[-40:])
        vm_case.result = [fail]
        frame.fail(FAILED, f"VM command exited {result.exit_code}")
    frame.suite.add_testcase(vm_case)
    cmd = qemu_command(spec, workdir / "initramfs.cpio.gz", result.accel)
    frame.reproducer = [
        f"# kernel: {kernel.image.package} {kernel.image.version} "
        f"({kernel.image.url(kernel.mirror)})",
        "# the initramfs (busybox, module, binaries, tests) is kept next to this script",
        'cd "$(dirname "$0")/artifacts"',
        " ".join(shlex.quote(c) for c in cmd).replace(
            shlex.quote(str(workdir / "initramfs.cpio.gz")), "initramfs.cpio.gz"),
    ]


def _finish(frame: _Frame) -> JobResult:
    job = frame.job
    if frame.write_error is not None:  # the record is incomplete: that wins over the rest
        problem = (f"cannot write {frame.directory / 'log.txt'}: "
                   f"{frame.write_error.strerror or frame.write_error}")
        frame.status, frame.message = ERROR, problem + (
            f" (and: {frame.message})" if frame.message else "")
        frame.error_case("results", problem, "io")
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


def _write_metadata(frame: _Frame, result: JobResult) -> None:
    job, image = frame.job, frame.image
    kernel = frame.ctx.kernels.get(job.kernel) if job.kernel else None
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


def _docker_reproducer(directory: Path, specs: list[tuple[Step, ContainerSpec]],
                       masker: Masker | None = None) -> list[str]:
    masker = masker or Masker()
    hidden = sorted({k for _, spec in specs for k, v in spec.env.items() if masker.hides(v)})
    lines = [
        "# OUT and WORK default to fresh directories; set them to keep the results.",
        'OUT="${OUT:-$(mktemp -d)}"; WORK="${WORK:-$(mktemp -d)}"',
        'chmod 0777 "$OUT" "$WORK"',
    ]
    if hidden:
        lines += [f"# secrets are not recorded: export {' '.join(hidden)} before running this",
                  *(f': "${{{name}:?set {name} (a secret of this job)}}"' for name in hidden)]
    if specs:
        tag = specs[0][1].image
        lines.append(f"docker image inspect {shlex.quote(tag)} >/dev/null 2>&1 || "
                     f"{{ echo 'image {tag} is missing: run `pipeline images build` first' >&2;"
                     " exit 2; }")
    for step, spec in specs:
        rendered = []
        for arg in spec.docker_run_args(by_name=hidden):
            if arg.startswith(f"{directory / 'artifacts'}:"):
                rendered.append(f'"$OUT:{arg.split(":", 1)[1]}"')
            elif any(arg == f"{m.host}:{WORK}" for m in spec.mounts if m.container == WORK):
                rendered.append(f'"$WORK:{WORK}"')
            else:
                rendered.append(shlex.quote(arg))
        lines += ["", f"echo '== step {step.name}'", " ".join(rendered)]
    lines += ["", 'echo "artifacts in $OUT"']
    return lines


def _write_reproducer(frame: _Frame) -> None:
    lines = ["#!/usr/bin/env bash",
             f"# Re-runs job {frame.job.id} by hand, exactly as `pipeline run` did.",
             "set -euo pipefail"]
    if frame.reproducer:
        lines += frame.reproducer
    else:
        lines += ["echo 'this job never reached its steps (see log.txt)' >&2", "exit 2"]
    atomic_write_text(frame.directory / "reproduce.sh",
                      frame.masker.mask("\n".join(lines)) + "\n", mode=0o755)
