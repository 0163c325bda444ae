"""The container runtime: a job's steps, one Docker container each, on its toolchain image."""

from __future__ import annotations

import os
import shlex
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from junitparser import TestCase

from pipeline.debian.images import ImageRef
from pipeline.errors import PipelineError
from pipeline.model.expand import Job
from pipeline.model.matrix import Step
from pipeline.paths import cache_dir
from pipeline.results.build_log import step_case
from pipeline.results.status import ERROR, FAILED, INTERRUPTED
from pipeline.run.executor import (
    JOB_LABEL,
    RUN_LABEL,
    STEP_LABEL,
    ContainerSpec,
    Mount,
    StepOutcome,
    container_user,
    prepare_writable,
    reclaim,
)
from pipeline.run.frame import JobFrame
from pipeline.run.inputs import InputTree, job_tree
from pipeline.run.masking import Masker
from pipeline.run.runtimes.base import Runtime, register

if TYPE_CHECKING:
    from pipeline.run.runner import RunContext

SRC, OUT, WORK, NEEDS = "/src", "/out", "/work", "/needs"
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


def secret_env(frame: JobFrame) -> dict[str, str] | None:
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


def parse_results(step: Step, classname: str, outcome: StepOutcome) -> list[TestCase]:
    """A step's test cases: its libtest/KTAP tests, or the step itself as one case."""
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


def inputs_lines(root: Path, tree: InputTree) -> list[str]:
    """reproduce.sh lines that make $SRC_TREE: a copy of the job's inputs, as /src was."""
    names = [f for f in tree.files if "\n" not in f and f != "KMATRIX_INPUTS"]
    what = ", ".join(tree.globs) if tree.globs else "every project file but reports/"
    return [
        f"# /src holds only the job's inputs ({what}): these {len(names)} files of",
        "# PROJECT, copied into SRC_TREE (a fresh directory unless set)",
        f"PROJECT={shlex.quote(str(root))}",
        'SRC_TREE="${SRC_TREE:-$(mktemp -d)}"; chmod 0755 "$SRC_TREE"',
        """(cd "$PROJECT" && xargs -r -d '\\n' cp -a --parents -t "$SRC_TREE" --) """
        "<<'KMATRIX_INPUTS'",
        *names, "KMATRIX_INPUTS",
    ]


def docker_reproducer(directory: Path, specs: list[tuple[Step, ContainerSpec]],
                      masker: Masker | None = None,
                      inputs: tuple[Path, InputTree] | None = None) -> list[str]:
    """reproduce.sh lines: the steps as `docker run` commands; secrets passed by name;
    with `inputs` (the project root and the job's tree), /src is a copy of its inputs."""
    masker = masker or Masker()
    hidden = sorted({k for _, spec in specs for k, v in spec.env.items() if masker.hides(v)})
    lines = [
        "# OUT and WORK default to fresh directories; set them to keep the results.",
        'OUT="${OUT:-$(mktemp -d)}"; WORK="${WORK:-$(mktemp -d)}"',
        'chmod 0777 "$OUT" "$WORK"',
    ]
    tree_arg = f"{inputs[1].path}:{SRC}:ro" if inputs else None
    if inputs:
        lines += inputs_lines(*inputs)
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
            elif arg == tree_arg:
                rendered.append(f'"$SRC_TREE:{SRC}:ro"')
            else:
                rendered.append(shlex.quote(arg))
        lines += ["", f"echo '== step {step.name}'", " ".join(rendered)]
    lines += ["", 'echo "artifacts in $OUT"']
    return lines


@register
class ContainerRuntime(Runtime):
    """Every step in a fresh container of the job's image: the source read-only at /src,
    artifacts at /out, scratch space at /work, the needs' artifacts under /needs."""

    name = "container"

    def __init__(self, frame: JobFrame) -> None:
        super().__init__(frame)
        self.work: Path | None = None  # the job's scratch directory, once created
        self.prepared = False
        self.secrets: dict[str, str] = {}
        self.mounts: list[Mount] = []
        self.env: dict[str, str] = {}
        self.network: tuple[list[Mount], dict[str, str]] = ([], {})
        self.specs: list[tuple[Step, ContainerSpec]] = []
        self.tree: InputTree | None = None  # what the job sees at /src

    @classmethod
    def handles(cls, job: Job) -> bool:
        return job.spec.vm is None

    def prepare(self) -> bool:
        """Secrets, the image (built or reused), the work directory, mounts and env."""
        frame, ctx, job = self.frame, self.frame.ctx, self.frame.job
        secrets = secret_env(frame)
        if secrets is None:
            return False
        self.secrets = secrets
        if not self._ensure_image():
            return False
        image = frame.image
        assert image is not None
        frame.emit(f"== image {image.tag} ({'built' if image.built else 'reused'} "
                   f"in {image.seconds:.1f} s)")
        self.tree = tree = job_tree(ctx, job)
        frame.emit(f"== inputs at {SRC} (read-only): {tree.describe()}")
        frame.extra["inputs"] = {"globs": list(tree.globs), "files": len(tree.files),
                                 "seconds": round(tree.seconds, 4)}
        work = Path(cache_dir() / "work" / ctx.run_id / job.id.replace("/", "_"))
        prepare_writable(work)
        self.work = work
        self.mounts = [Mount(tree.path, SRC, read_only=True), Mount(frame.artifacts, OUT),
                       Mount(work, WORK), *_cache_mounts(ctx, job, image),
                       *_need_mounts(ctx, job)]
        self.env = {**job.job_env(), "SRC": SRC, "OUT": OUT, "WORK": WORK, "NEEDS": NEEDS,
                    "KMATRIX_JOB": job.id}
        self.network = network_extras()
        self.prepared = True
        return True

    def _ensure_image(self) -> bool:
        frame, ctx, job = self.frame, self.frame.ctx, self.frame.job
        kernel = ctx.kernels.get(job.kernel_key) if job.kernel else None
        try:
            frame.image = ctx.images.ensure(job.spec.image, kernel)
        except PipelineError as exc:
            frame.emit(f"== image failed: {exc}")
            first = str(exc).splitlines()[0].removesuffix("; last lines:")
            frame.fail(ERROR, f"image {job.spec.image!r} failed to build: {first} "
                              "(log tail in log.txt)")
            frame.error_case("image", str(exc), "image")
            # once per image: the jobs sharing it get the same error without a rebuild
            ctx.report_once(frame.masker.mask(
                f"image {job.spec.image!r} failed to build: {exc}"))
            return False
        return True

    def run(self) -> None:
        """The steps in order, until one fails, the job times out or the run stops."""
        frame, job = self.frame, self.frame.job
        deadline = frame.started + job.timeout
        for step in job.spec.steps:
            outcome = self._step(step, deadline)
            frame.suite.add_testcases(parse_results(step, job.id, outcome))
            frame.steps.append({"name": step.name, "exit_code": outcome.exit_code,
                                "seconds": round(outcome.seconds, 3),
                                "network": step.network, "error": outcome.error})
            if frame.ctx.containers.stopping:
                frame.fail(INTERRUPTED, "run interrupted")
                break
            if outcome.exit_code != 0 or outcome.error:
                frame.fail(FAILED, outcome.error
                           or f"step {step.name!r} exited {outcome.exit_code}")
                self._explain_missing(outcome.output)
                break

    def _explain_missing(self, output: str) -> None:
        """A failure that comes from reading a project file outside the job's inputs gets
        the `inputs:` line to add, in its message and log."""
        from pipeline.run.undeclared import missing_inputs, undeclared_message

        frame, tree = self.frame, self.tree
        if tree is None or frame.ctx.inputs is None:
            return
        project = frame.ctx.inputs.source.matched(())
        paths = missing_inputs(output, project, tree.files)
        if not paths:
            return
        sentence = undeclared_message(frame.job, paths)
        frame.emit(f"== undeclared input: {sentence}")
        frame.message = frame.masker.mask(
            f"{frame.message}; {sentence}" if frame.message else sentence)
        frame.extra["undeclared_inputs"] = paths

    def _spec(self, step: Step) -> ContainerSpec:
        ctx, job, image = self.frame.ctx, self.frame.job, self.frame.image
        assert image is not None
        net_mounts, net_env = self.network
        return ContainerSpec(
            image=image.tag, script=step.run,
            env={**self.env, **(net_env if step.network else {}), **step.env, **self.secrets},
            mounts=self.mounts + (net_mounts if step.network else []),
            network=step.network, cpus=job.spec.limits.cpus,
            memory=job.spec.limits.memory, pids=job.spec.limits.pids,
            user=container_user(),
            labels={RUN_LABEL: ctx.run_id, JOB_LABEL: job.id, STEP_LABEL: step.name},
        )

    def _step(self, step: Step, deadline: float) -> StepOutcome:
        """Run one step in its container within the step's and the job's timeout."""
        frame, job = self.frame, self.frame.job
        spec = self._spec(step)
        self.specs.append((step, spec))
        remaining = deadline - time.monotonic()
        limit = min(step.timeout or remaining, remaining)
        frame.emit(f"== step {step.name} ({'network' if step.network else 'no network'}, "
                   f"timeout {limit:.0f} s)")
        outcome = (frame.ctx.containers.run(spec, timeout=limit, on_line=frame.emit)
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
        return outcome

    def collect(self) -> None:
        """Remove the work directory; give the artifacts back to the caller (as root)."""
        if self.work is None:
            return
        shutil.rmtree(self.work, ignore_errors=True)
        reclaim(self.frame.artifacts)

    def reproduce_lines(self) -> list[str]:
        if not self.prepared:
            return []
        inputs = (self.frame.ctx.root, self.tree) if self.tree is not None else None
        return docker_reproducer(self.frame.directory, self.specs, self.frame.masker, inputs)
