"""Load and validate matrix.yml into a typed model whose parts remember their file:line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import Diagnostic, InputError
from pipeline.features import FeatureSet, build_feature_sets
from pipeline.lock import KernelSource
from pipeline.schema import MATRIX_SCHEMA, did_you_mean, validate
from pipeline.yamlmarks import Mark, key_mark_of, load_yaml_file, load_yaml_text, mark_of

AXES = ("kernel", "features")
DEFAULT_TIMEOUT = 1800
DEFAULT_LIMITS = {"cpus": 2.0, "memory": "4g", "pids": 4096}


@dataclass(frozen=True)
class Step:
    """One command of a job, run in its own container over the job's shared work dir."""

    name: str
    run: str
    network: bool = False
    results: str = "step"
    timeout: int | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Limits:
    """Container resource limits."""

    cpus: float = 2.0
    memory: str = "4g"
    pids: int = 4096


@dataclass(frozen=True)
class VmSpecDecl:
    """A job's `vm:` section: what to boot and run (paths still unexpanded)."""

    command: str
    modules: tuple[str, ...] = ()
    binaries: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    memory: int = 512
    boot_timeout: int = 60
    test_timeout: int | None = None
    append: str = ""
    results: str = "ktap"


@dataclass(frozen=True)
class JobSpec:
    """A job as declared under `jobs:` (before expansion over axes)."""

    name: str
    over: tuple[str, ...]
    image: str
    steps: tuple[Step, ...]
    needs: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    timeout: int = DEFAULT_TIMEOUT
    limits: Limits = field(default_factory=Limits)
    vm: VmSpecDecl | None = None
    mark: Mark | None = None
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)  # axis -> chosen values


@dataclass
class Matrix:
    """The validated matrix."""

    path: Path
    kernels: dict[str, KernelSource]
    features: dict[str, FeatureSet]
    jobs: dict[str, JobSpec]
    include: list[dict[str, Any]]
    exclude: list[dict[str, Any]]
    image_base: str = "mmdebstrap"
    registry_image: str = "debian"
    exclude_marks: list[Mark | None] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)

    @property
    def root(self) -> Path:
        """The project root: the directory holding matrix.yml."""
        return self.path.parent

    def axis_values(self, axis: str, spec: JobSpec | None = None) -> list[str]:
        """Values of an axis in declaration order (restricted by the job's `over` mapping)."""
        values = list(self.kernels) if axis == "kernel" else list(self.features)
        if spec is not None and spec.values.get(axis):
            wanted = spec.values[axis]
            return [v for v in values if v in wanted]
        return values


def _env(data: Any) -> dict[str, str]:
    out = {}
    for key, value in (data or {}).items():
        out[str(key)] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def _words(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    return tuple(str(v) for v in value)


def _kernel(version: str, data: dict[str, Any]) -> KernelSource:
    suite = data["suite"]
    sources = _words(data.get("sources"))
    if not sources:
        base = suite.removesuffix("-backports")
        sources = (base, suite) if base != suite else (suite,)
    defaults = KernelSource(version=version, suite=suite, sources=sources)
    return KernelSource(
        version=version,
        suite=suite,
        sources=sources,
        mirror=data.get("mirror", defaults.mirror),
        components=_words(data.get("components")) or defaults.components,
        keyring=data.get("keyring", ""),
        abi=data.get("abi", defaults.abi),
        headers=data.get("headers", defaults.headers),
        image=data.get("image", defaults.image),
    )


def _steps(name: str, data: dict[str, Any], diags: list[Diagnostic]) -> tuple[Step, ...]:
    if "steps" in data and "run" in data:
        diags.append(Diagnostic(f"job {name!r} has both `run` and `steps`",
                                key_mark_of(data, "run"), "use one of them"))
    if "steps" in data:
        steps = []
        seen: set[str] = set()
        for index, raw in enumerate(data["steps"]):
            step_name = raw.get("name") or f"step{index + 1}"
            if step_name in seen:
                diags.append(Diagnostic(f"job {name!r}: duplicate step name {step_name!r}",
                                        mark_of(data["steps"], index), "name steps uniquely"))
            seen.add(step_name)
            steps.append(Step(
                name=step_name, run=raw["run"], network=bool(raw.get("network", False)),
                results=raw.get("results", "step"), timeout=raw.get("timeout"),
                env=_env(raw.get("env")),
            ))
        return tuple(steps)
    if "run" in data:
        return (Step(name="run", run=data["run"], results=data.get("results", "step")),)
    diags.append(Diagnostic(f"job {name!r} has nothing to run", mark_of(data),
                            "add `run:` or `steps:`"))
    return ()


def _over(name: str, job: dict[str, Any], kernels: dict[str, Any],
          features: dict[str, FeatureSet],
          diags: list[Diagnostic]) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    raw = job.get("over") or []
    if isinstance(raw, list):
        if len(set(raw)) != len(raw):
            diags.append(Diagnostic(f"job {name!r}: an axis is listed twice in `over`",
                                    mark_of(job, "over"), "list each axis once"))
        return tuple(dict.fromkeys(raw)), {}
    values: dict[str, tuple[str, ...]] = {}
    for axis, chosen in raw.items():
        if chosen == "*" or chosen == ["*"]:
            continue
        wanted = [str(v) for v in (chosen if isinstance(chosen, list) else [chosen])]
        known = list(kernels) if axis == "kernel" else list(features)
        for index, value in enumerate(wanted):
            # a generator's name selects all the sets it generated
            expanded = [k for k in known if k == value or k.startswith(value + ".")]
            if not expanded:
                hint = did_you_mean(value, known)
                diags.append(Diagnostic(
                    f"job {name!r}: over.{axis} names unknown value {value!r}",
                    mark_of(chosen, index) if isinstance(chosen, list) else mark_of(raw, axis),
                    hint or f"declared: {', '.join(known)}"))
            values[axis] = values.get(axis, ()) + tuple(expanded)
    return tuple(raw), values


def _vm(raw: dict[str, Any]) -> VmSpecDecl:
    return VmSpecDecl(
        command=raw["command"], modules=tuple(raw.get("modules") or ()),
        binaries=tuple(raw.get("binaries") or ()),
        files={str(k): str(v) for k, v in (raw.get("files") or {}).items()},
        memory=int(raw.get("memory", 512)), boot_timeout=int(raw.get("boot-timeout", 60)),
        test_timeout=raw.get("test-timeout"), append=raw.get("append", ""),
        results=raw.get("results", "ktap"))


def _limits(defaults: dict[str, Any], data: dict[str, Any] | None) -> Limits:
    merged = {**DEFAULT_LIMITS, **(defaults or {}), **(data or {})}
    return Limits(cpus=float(merged["cpus"]), memory=str(merged["memory"]),
                  pids=int(merged["pids"]))


def build_matrix(data: Any, path: Path) -> Matrix:
    """Validate loaded YAML and build the model; all problems are reported together."""
    diags = validate(data, MATRIX_SCHEMA)
    if isinstance(data, dict) and isinstance(data.get("kernels"), dict):
        for version in data["kernels"]:
            if not isinstance(version, str):
                diags.append(Diagnostic(
                    f"kernel version {version!r} is not a string",
                    key_mark_of(data["kernels"], version),
                    f'quote it ("{version}"): YAML reads 6.10 as the number 6.1'))
    if diags:
        raise InputError(diagnostics=diags)
    defaults = data.get("defaults") or {}
    kernels = {str(v): _kernel(str(v), k) for v, k in data["kernels"].items()}
    features = build_feature_sets(data.get("features"), path.parent, diags)
    jobs: dict[str, JobSpec] = {}
    for name, job in data["jobs"].items():
        name = str(name)
        if "/" in name:
            diags.append(Diagnostic(f"job name {name!r} contains '/'", key_mark_of(data["jobs"],
                                    name), "'/' separates a job's name from its axis values"))
        over, values = _over(name, job, kernels, features, diags)
        if "image" not in job and "vm" not in job:
            diags.append(Diagnostic(f"job {name!r} has no image", mark_of(job),
                                    "add `image:` naming a flavour from images/flavours.yml"))
        jobs[name] = JobSpec(
            name=name, over=over, image=job.get("image", ""),
            steps=() if "vm" in job and not ("run" in job or "steps" in job)
            else _steps(name, job, diags),
            needs=tuple(job.get("needs") or ()), inputs=tuple(job.get("inputs") or ()),
            env={**_env(defaults.get("env")), **_env(job.get("env"))},
            timeout=int(job.get("timeout", defaults.get("timeout", DEFAULT_TIMEOUT))),
            limits=_limits(defaults.get("limits"), job.get("limits")),
            vm=_vm(job["vm"]) if "vm" in job else None, mark=key_mark_of(data["jobs"], name),
            values=values,
        )
    for name, job in jobs.items():
        raw_needs = data["jobs"][name].get("needs") or []
        for index, need in enumerate(job.needs):
            need_name = need.split("/", 1)[0]
            if need_name not in jobs:
                hint = did_you_mean(need_name, list(jobs))
                diags.append(Diagnostic(
                    f"job {name!r} needs unknown job {need_name!r}", mark_of(raw_needs, index),
                    hint or f"known jobs: {', '.join(jobs)}"))
    exclude = list(data.get("exclude") or [])
    matrix = Matrix(
        path=path, kernels=kernels, features=features, jobs=jobs,
        include=list(data.get("include") or []), exclude=exclude,
        image_base=defaults.get("image-base", "mmdebstrap"),
        registry_image=defaults.get("registry-image", "debian"),
        exclude_marks=[mark_of(data.get("exclude"), i) for i in range(len(exclude))],
    )
    _check_cell_filters(matrix, data, diags)
    if any(d.severity == "error" for d in diags):
        raise InputError(diagnostics=diags)
    matrix.warnings.extend(diags)
    return matrix


def _check_cell_filters(matrix: Matrix, data: Any, diags: list[Diagnostic]) -> None:
    for section in ("include", "exclude"):
        entries = data.get(section) or []
        for index, entry in enumerate(entries):
            for axis, known in (("job", list(matrix.jobs)), ("kernel", list(matrix.kernels)),
                                ("features", list(matrix.features))):
                if axis in entry and str(entry[axis]) not in known:
                    hint = did_you_mean(str(entry[axis]), known)
                    diags.append(Diagnostic(
                        f"{section}[{index}]: unknown {axis} {str(entry[axis])!r}",
                        mark_of(entry, axis), hint or f"known: {', '.join(known)}"))


def load_matrix(path: Path) -> Matrix:
    """Load, validate and model a matrix file."""
    return build_matrix(load_yaml_file(path), path)


def load_matrix_text(text: str, path: str = "matrix.yml") -> Matrix:
    """Same as load_matrix, from text (tests, fuzzing)."""
    return build_matrix(load_yaml_text(text, path), Path(path))
