"""Run one job: ensure its image, run its steps in containers, write its results.

This is the one execution path: `pipeline run` and Buildbot's steps both call run_job().
Each job leaves, in its directory: log.txt, junit.xml, metadata.json, reproduce.sh and
artifacts/ (what the steps wrote to $OUT).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from junitparser import Error, TestCase, TestSuite

from pipeline.errors import PipelineError
from pipeline.executor import (
    JOB_LABEL,
    RUN_LABEL,
    ContainerRunner,
    ContainerSpec,
    Mount,
    StepOutcome,
    container_user,
    prepare_writable,
    reclaim,
)
from pipeline.expand import Job
from pipeline.images import ImageBuilder, ImageRef
from pipeline.lock import LockedKernel
from pipeline.matrix import Step
from pipeline.paths import cache_dir
from pipeline.results.build_log import step_case, tail
from pipeline.results.merge import suite_counts, write_suite

PASSED, FAILED, ERROR, SKIPPED, CANCELLED, INTERRUPTED = (
    "passed", "failed", "error", "skipped", "cancelled", "interrupted",
)
SRC, OUT, WORK, NEEDS = "/src", "/out", "/work", "/needs"


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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


def run_job(ctx: RunContext, job: Job) -> JobResult:
    """Run a job to completion and write its directory. Never raises for job failures."""
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    directory = job_dir(ctx, job)
    artifacts = directory / "artifacts"
    directory.mkdir(parents=True, exist_ok=True)
    prepare_writable(artifacts)
    log_path = directory / "log.txt"
    suite = TestSuite(job.id)
    step_records: list[dict[str, Any]] = []
    kernel = ctx.kernels.get(job.kernel) if job.kernel else None
    image: ImageRef | None = None
    status, message = PASSED, ""
    work = Path(cache_dir() / "work" / ctx.run_id / job.id.replace("/", "_"))
    specs: list[tuple[Step, ContainerSpec]] = []

    with open(log_path, "w", encoding="utf-8") as log:
        def emit(line: str) -> None:
            log.write(line + "\n")
            log.flush()
            ctx.log(job.id, line)

        try:
            image = ctx.images.ensure(job.spec.image, kernel)
            emit(f"== image {image.tag} ({'built' if image.built else 'reused'} "
                 f"in {image.seconds:.1f} s)")
        except PipelineError as exc:
            status, message = ERROR, f"image {job.spec.image!r}: {exc}"
            emit(f"== image failed: {exc}")
            case = TestCase("image", classname=job.id)
            err = Error(str(exc).splitlines()[0][:500], "image")
            err.text = str(exc)
            case.result = [err]
            suite.add_testcase(case)

        if image is not None:
            prepare_writable(work)
            mounts = [Mount(ctx.root, SRC, read_only=True), Mount(artifacts, OUT),
                      Mount(work, WORK), *_cache_mounts(ctx, job, image),
                      *_need_mounts(ctx, job)]
            env = {**job.job_env(), "SRC": SRC, "OUT": OUT, "WORK": WORK, "NEEDS": NEEDS,
                   "KMATRIX_JOB": job.id}
            deadline = started + job.timeout
            net_mounts, net_env = network_extras()
            for step in job.spec.steps:
                spec = ContainerSpec(
                    image=image.tag, script=step.run,
                    env={**env, **(net_env if step.network else {}), **step.env},
                    mounts=mounts + (net_mounts if step.network else []),
                    network=step.network, cpus=job.spec.limits.cpus,
                    memory=job.spec.limits.memory, pids=job.spec.limits.pids,
                    user=container_user(),
                    labels={RUN_LABEL: ctx.run_id, JOB_LABEL: job.id},
                )
                specs.append((step, spec))
                remaining = deadline - time.monotonic()
                limit = min(step.timeout or remaining, remaining)
                emit(f"== step {step.name} ({'network' if step.network else 'no network'}, "
                     f"timeout {limit:.0f} s)")
                outcome = (ctx.containers.run(spec, timeout=limit, on_line=emit)
                           if limit > 0 else
                           StepOutcome(None, "", 0.0, timed_out=True,
                                       error=f"job timeout ({job.timeout} s) reached"))
                emit(f"== step {step.name}: exit {outcome.exit_code} in {outcome.seconds:.1f} s"
                     + (f" ({outcome.error})" if outcome.error else ""))
                for case in _parse_results(step, job.id, outcome):
                    suite.add_testcase(case)
                step_records.append({"name": step.name, "exit_code": outcome.exit_code,
                                     "seconds": round(outcome.seconds, 3),
                                     "network": step.network, "error": outcome.error})
                if ctx.containers.stopping:
                    status, message = INTERRUPTED, "run interrupted"
                    break
                if outcome.exit_code != 0 or outcome.error:
                    status = FAILED
                    message = outcome.error or f"step {step.name!r} exited {outcome.exit_code}"
                    break
            shutil.rmtree(work, ignore_errors=True)
            reclaim(artifacts)

    counts = suite_counts(suite)
    failing = _failing(list(suite))
    if status == PASSED and (counts["failures"] or counts["errors"]):
        status, message = FAILED, f"{counts['failures'] + counts['errors']} failing test(s)"
    write_suite(suite, directory / "junit.xml")
    seconds = time.monotonic() - started
    result = JobResult(
        id=job.id, status=status, seconds=round(seconds, 3), message=message,
        tests=counts["tests"], failures=counts["failures"], errors=counts["errors"],
        skipped=counts["skipped"], failing=failing, image=image.tag if image else None,
        directory=str(directory.relative_to(ctx.run_dir)),
    )
    _write_metadata(directory, job, result, image, kernel, step_records, started_at)
    _write_reproducer(directory, job, specs, ctx)
    return result


def _write_metadata(directory: Path, job: Job, result: JobResult, image: ImageRef | None,
                    kernel: LockedKernel | None, steps: list[dict[str, Any]],
                    started_at: str) -> None:
    meta = {
        "job": job.id, "name": job.name, "axes": job.axes(), "status": result.status,
        "message": result.message, "started": started_at,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": result.seconds, "steps": steps,
        "image": {"flavour": job.spec.image, "tag": image.tag, "id": image.id,
                  "built": image.built, "seconds": round(image.seconds, 3)} if image else None,
        "kernel": kernel.to_yaml() if kernel else None,
        "features": ({"name": job.features.name, "cargo_args": job.features.cargo_args()}
                     if job.features else None),
        "needs": list(job.needs), "timeout": job.timeout,
        "limits": asdict(job.spec.limits), "host": platform.node(),
        "tests": {"total": result.tests, "failures": result.failures,
                  "errors": result.errors, "skipped": result.skipped},
    }
    (directory / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")


def _write_reproducer(directory: Path, job: Job, specs: list[tuple[Step, ContainerSpec]],
                      ctx: RunContext) -> None:
    lines = [
        "#!/usr/bin/env bash",
        f"# Re-runs job {job.id} by hand with plain docker, exactly as `pipeline run` did.",
        "# OUT and WORK default to fresh directories; set them to keep the results.",
        "set -euo pipefail",
        'OUT="${OUT:-$(mktemp -d)}"; WORK="${WORK:-$(mktemp -d)}"',
        'chmod 0777 "$OUT" "$WORK"',
    ]
    if specs:
        tag = specs[0][1].image
        lines.append(f"docker image inspect {shlex.quote(tag)} >/dev/null 2>&1 || "
                     f"{{ echo 'image {tag} is missing: run `pipeline images build` first' >&2;"
                     " exit 2; }")
    for step, spec in specs:
        args = spec.docker_run_args()
        rendered = []
        for arg in args:
            if arg.startswith(f"{directory / 'artifacts'}:"):
                arg = "$OUT:" + arg.split(":", 1)[1]
            quoted = shlex.quote(arg)
            if arg.startswith("$OUT:"):
                quoted = f'"{arg}"'
            rendered.append(quoted)
        cmd = " ".join(rendered)
        for mount in spec.mounts:
            if mount.container == WORK:
                cmd = cmd.replace(shlex.quote(f"{mount.host}:{WORK}"), f'"$WORK:{WORK}"')
        lines += ["", f"echo '== step {step.name}'", cmd]
    if not specs:
        lines += ["echo 'this job never reached its steps (see log.txt)' >&2", "exit 2"]
    lines += ["", 'echo "artifacts in $OUT"']
    path = directory / "reproduce.sh"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)


def tail_of(text: str, lines: int = 20) -> str:
    """Re-exported for callers that show log tails."""
    return tail(text, lines)
