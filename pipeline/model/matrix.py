"""Load and validate matrix.yml into a typed model whose parts remember their file:line."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.errors import Diagnostic, InputError
from pipeline.model.axes import Axis, build_axes
from pipeline.model.bench import BenchSpec, bench_spec
from pipeline.model.features import FeatureSet, build_feature_sets
from pipeline.model.kernels import NATIVE_ARCH, KernelSource, snapshot_problem
from pipeline.model.recipes import apply_kinds
from pipeline.model.schema import did_you_mean, matrix_schema, validate
from pipeline.model.yamlmarks import (
    Mark,
    MarkedDict,
    key_mark_of,
    load_yaml_file,
    load_yaml_text,
    mark_of,
    source_text,
)

AXES = ("kernel", "features")  # the built-in axes; user axes: Matrix.axes
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
    kernel: str | None = None  # an explicit kernel image (e.g. built from source)


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
    needs_marks: tuple[Mark | None, ...] = ()  # where each of `needs` is written
    secrets: tuple[str, ...] = ()  # variables passed from pipeline's environment, masked
    bench: BenchSpec | None = None  # `bench:`: its output's bench lines are metrics


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
    include_marks: list[Mark | None] = field(default_factory=list)
    snapshot: str = ""  # the top-level snapshot.debian.org timestamp, if any
    axes: dict[str, Axis] = field(default_factory=dict)  # user-defined, in declaration order

    @property
    def root(self) -> Path:
        """The project root: the directory holding matrix.yml."""
        return self.path.parent

    def kernel_sources(self, jobs: Iterable[Any]) -> list[KernelSource]:
        """What `pipeline lock` resolves: every declared kernel, each followed by its
        variants for the other architectures that the cells `jobs` use (`6.12:arm64`)."""
        arches: dict[str, dict[str, None]] = {}
        for job in jobs:
            if job.kernel is not None and job.arch != NATIVE_ARCH:
                arches.setdefault(job.kernel, {})[job.arch] = None
        return [variant for version, source in self.kernels.items() for variant in (
            source, *(replace(source, arch=arch) for arch in arches.get(version, ())))]

    def axis_names(self) -> tuple[str, ...]:
        """Every axis in job-id order: kernel, features, then the user axes as declared."""
        return (*AXES, *self.axes)

    def axis_values(self, axis: str, spec: JobSpec | None = None) -> list[str]:
        """Values of an axis in declaration order (restricted by the job's `over` mapping)."""
        values = list(self.kernels if axis == "kernel" else self.features if axis == "features"
                      else self.axes[axis].values)
        if spec is not None and spec.values.get(axis):
            wanted = spec.values[axis]
            return [v for v in values if v in wanted]
        return values


def env_strings(data: Any) -> dict[str, str]:
    """Environment values as strings (booleans as true/false), keys as strings."""
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


def _kernel(version: str, data: dict[str, Any], snapshot: str = "") -> KernelSource:
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
        # only when declared: kernels without it hash (matrix.lock) as they always did
        **({"source": data["source"]} if "source" in data else {}),
        # its own, else the matrix's (which is for kernels on Debian's own archive)
        snapshot=str(data.get("snapshot") or ("" if "mirror" in data else snapshot)),
    )


def _check_kernel(kernel: KernelSource, raw: dict[str, Any], diags: list[Diagnostic]) -> None:
    try:
        kernel.headers_regex()
    except re.error as exc:
        diags.append(Diagnostic(
            f"kernels.{kernel.version}.abi is not a valid regular expression ({exc.msg})",
            mark_of(raw, "abi"), "fix the regex; {version} stands for the kernel version "
            "and the regex must not define a group named 'abi'"))
    if not kernel.suite.strip():
        diags.append(Diagnostic(f"kernels.{kernel.version}.suite is empty", mark_of(raw, "suite"),
                                "name an apt suite, e.g. bookworm"))
    if raw.get("snapshot") and "mirror" in raw:
        diags.append(Diagnostic(
            f"kernels.{kernel.version} has both `mirror` and `snapshot`",
            key_mark_of(raw, "mirror"), "a snapshot is of Debian's archive "
            "(snapshot.debian.org): remove `mirror:` or `snapshot:`"))


def _check_snapshot(where: str, container: Any, diags: list[Diagnostic]) -> None:
    """A located error when container's `snapshot` is not a real, past timestamp."""
    value = container.get("snapshot") if isinstance(container, dict) else None
    problem = snapshot_problem(value) if isinstance(value, str) else None
    if problem:
        diags.append(Diagnostic(f"{where}snapshot: {value!r} {problem}",
                                mark_of(container, "snapshot"),
                                "write a past UTC time as YYYYMMDDThhmmssZ, e.g. "
                                "20260115T000000Z (see docs/MATRIX.md)"))


def _steps(name: str, data: dict[str, Any], diags: list[Diagnostic]) -> tuple[Step, ...]:
    if "steps" in data and "run" in data:
        diags.append(Diagnostic(f"job {name!r} has both `run` and `steps`",
                                key_mark_of(data, "run"), "use one of them"))
    if "steps" in data:
        if "results" in data:
            diags.append(Diagnostic(f"job {name!r}: `results` applies only to `run`",
                                    key_mark_of(data, "results"),
                                    "set `results:` on the step that produces the output"))
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
                env=env_strings(raw.get("env")),
            ))
        return tuple(steps)
    if "run" in data:
        return (Step(name="run", run=data["run"], results=data.get("results", "step")),)
    diags.append(Diagnostic(f"job {name!r} has nothing to run", mark_of(data),
                            "add `run:` or `steps:` (or `vm:`)"))
    return ()


def _what(axis: str) -> str:
    """How messages call a value of an axis."""
    return {"kernel": "kernel", "features": "feature set"}.get(axis, f"{axis} value")


def _over(name: str, job: dict[str, Any], known_values: dict[str, list[str]],
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
        if not wanted:
            diags.append(Diagnostic(f"job {name!r}: over.{axis} is an empty list",
                                    mark_of(raw, axis), f"list the {axis} values to use, "
                                    "or '*' for all of them"))
            continue
        known = known_values.get(axis, [])
        for index, value in enumerate(wanted):
            where = mark_of(chosen, index) if isinstance(chosen, list) else mark_of(raw, axis)
            if value == "*":
                diags.append(Diagnostic(f"job {name!r}: over.{axis} mixes '*' with values",
                                        where, "use '*' alone (all values) or list values"))
                continue
            # a generator's name selects all the sets it generated; 6.1 selects 6.1.x
            expanded = [k for k in known if k == value or (
                axis in AXES and k.startswith(value + "."))]
            if not expanded:
                generators = [k.split(".", 1)[0] for k in known if axis == "features"]
                hint = did_you_mean(value, list(dict.fromkeys(known + generators)))
                diags.append(Diagnostic(
                    f"job {name!r}: over.{axis} names unknown {_what(axis)} {value!r}", where,
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
        results=raw.get("results", "ktap"), kernel=raw.get("kernel"))


def _check_job(name: str, job: dict[str, Any], over: tuple[str, ...],
               diags: list[Diagnostic]) -> None:
    if "vm" not in job:
        if "image" not in job:
            diags.append(Diagnostic(f"job {name!r} has no image", mark_of(job),
                                    "add `image:` naming a flavour (built-in ones: "
                                    "pipeline/images/flavours.yml)"))
        return
    for key in ("run", "steps"):
        if key in job:
            diags.append(Diagnostic(
                f"job {name!r} has both `vm` and `{key}`", key_mark_of(job, key),
                "a vm job runs only `vm.command`: move the steps to another job and list "
                "it in `needs`"))
    if "results" in job:
        diags.append(Diagnostic(f"job {name!r}: `results` does not apply to a vm job",
                                key_mark_of(job, "results"), "use `vm.results`"))
    if "kernel" not in over:
        diags.append(Diagnostic(f"job {name!r} has `vm:` but does not run over kernels",
                                key_mark_of(job, "vm"), "add `over: [kernel]`"))
    if "image" in job:
        diags.append(Diagnostic(f"job {name!r}: `image` is not used by a vm job",
                                key_mark_of(job, "image"), "remove it (the VM boots the "
                                "cell's kernel with a busybox initramfs)", severity="warning"))
    files = job["vm"].get("files") or {}
    for dest in files:
        if not str(dest).startswith("/") or ".." in str(dest).split("/"):
            diags.append(Diagnostic(f"job {name!r}: vm.files path {str(dest)!r} is not an "
                                    "absolute path inside the VM", key_mark_of(files, dest),
                                    "write it like /tests/run.sh"))


def _limits(defaults: dict[str, Any], data: dict[str, Any] | None) -> Limits:
    merged = {**DEFAULT_LIMITS, **(defaults or {}), **(data or {})}
    return Limits(cpus=float(merged["cpus"]), memory=str(merged["memory"]),
                  pids=int(merged["pids"]))


def _cell_filter(entry: dict[str, Any]) -> MarkedDict:
    """An include/exclude entry with axis values as written (`kernel: 6.10` -> "6.10")."""
    out = MarkedDict()
    for attr in ("mark", "key_marks", "value_marks", "key_texts", "value_texts"):
        setattr(out, attr, getattr(entry, attr, None if attr == "mark" else {}))
    for key, value in entry.items():
        out[key] = value if key in ("env", "timeout") else source_text(entry, key)
    return out


def _check_needs(jobs: dict[str, JobSpec], diags: list[Diagnostic]) -> None:
    for name, job in jobs.items():
        seen: set[str] = set()
        for need, mark in zip(job.needs, job.needs_marks, strict=True):
            need_name = need.split("/", 1)[0]
            if need_name not in jobs:
                hint = did_you_mean(need_name, list(jobs))
                diags.append(Diagnostic(f"job {name!r} needs unknown job {need_name!r}", mark,
                                        hint or f"known jobs: {', '.join(jobs)}"))
            elif need == name:
                diags.append(Diagnostic(f"job {name!r} needs itself", mark,
                                        "remove it from its own `needs`"))
            elif need in seen:
                diags.append(Diagnostic(f"job {name!r} lists {need!r} twice in `needs`", mark,
                                        "remove the repetition", severity="warning"))
            seen.add(need)


def build_matrix(data: Any, path: Path) -> Matrix:
    """Validate loaded YAML and build the model; all problems are reported together."""
    data = apply_kinds(data)
    raw_axes = data.get("axes") if isinstance(data, dict) else None
    names = tuple(str(a) for a in raw_axes) if isinstance(raw_axes, dict) else ()
    diags = validate(data, matrix_schema(names), root_mark=Mark(str(path), 1, 1))
    if diags:
        raise InputError(diagnostics=diags)
    defaults = data.get("defaults") or {}
    axes = build_axes(raw_axes, diags)
    kernels = {}
    _check_snapshot("", data, diags)
    for version, raw in data["kernels"].items():
        kernels[version] = _kernel(version, raw, str(data.get("snapshot") or ""))
        _check_snapshot(f"kernels.{version}.", raw, diags)
        _check_kernel(kernels[version], raw, diags)
    features = build_feature_sets(data.get("features"), path.parent, diags)
    known = {"kernel": list(kernels), "features": list(features),
             **{a: list(axis.values) for a, axis in axes.items()}}
    jobs: dict[str, JobSpec] = {}
    for name, job in data["jobs"].items():
        over, values = _over(name, job, known, diags)
        _check_job(name, job, over, diags)
        raw_needs = job.get("needs") or []
        jobs[name] = JobSpec(
            name=name, over=over, image=job.get("image", ""),
            steps=() if "vm" in job else _steps(name, job, diags),
            needs=tuple(raw_needs), inputs=tuple(job.get("inputs") or ()),
            env={**env_strings(defaults.get("env")), **env_strings(job.get("env"))},
            secrets=tuple(dict.fromkeys(job.get("secrets") or ())),
            timeout=int(job.get("timeout", defaults.get("timeout", DEFAULT_TIMEOUT))),
            limits=_limits(defaults.get("limits"), job.get("limits")),
            vm=_vm(job["vm"]) if "vm" in job else None, mark=key_mark_of(data["jobs"], name),
            values=values,
            needs_marks=tuple(mark_of(raw_needs, i) for i in range(len(raw_needs))),
            bench=bench_spec(name, job, diags),
        )
    _check_needs(jobs, diags)
    raw_include = data.get("include") or []
    raw_exclude = data.get("exclude") or []
    matrix = Matrix(
        path=path, kernels=kernels, features=features, jobs=jobs,
        include=[_cell_filter(e) for e in raw_include],
        exclude=[_cell_filter(e) for e in raw_exclude],
        image_base=defaults.get("image-base", "mmdebstrap"),
        registry_image=defaults.get("registry-image", "debian"),
        snapshot=str(data.get("snapshot") or ""), axes=axes,
        exclude_marks=[mark_of(raw_exclude, i) for i in range(len(raw_exclude))],
        include_marks=[mark_of(raw_include, i) for i in range(len(raw_include))],
    )
    _check_cell_filters(matrix, diags)
    if any(d.severity == "error" for d in diags):
        raise InputError(diagnostics=diags)
    matrix.warnings.extend(diags)
    return matrix


def _check_cell_filters(matrix: Matrix, diags: list[Diagnostic]) -> None:
    known = {"job": list(matrix.jobs), **{a: matrix.axis_values(a) for a in matrix.axis_names()}}
    for section, entries, marks in (("include", matrix.include, matrix.include_marks),
                                    ("exclude", matrix.exclude, matrix.exclude_marks)):
        for index, entry in enumerate(entries):
            if not any(k in entry for k in known):
                if section == "exclude":
                    diags.append(Diagnostic(
                        f"exclude[{index}] names no job, kernel or features: it would "
                        "remove every job", marks[index],
                        "add `job:`, `kernel:` or `features:` to say what to remove"
                        + (" (or an axis value)" if matrix.axes else "")))
                elif not entry:
                    diags.append(Diagnostic(f"include[{index}] is empty", marks[index],
                                            "remove it", severity="warning"))
            for axis, values in known.items():
                if axis in entry and entry[axis] not in values:
                    hint = did_you_mean(entry[axis], values)
                    diags.append(Diagnostic(
                        f"{section}[{index}]: unknown {'job' if axis == 'job' else _what(axis)} "
                        f"{entry[axis]!r}", mark_of(entry, axis),
                        hint or f"known: {', '.join(values)}"))


def load_matrix(path: Path) -> Matrix:
    """Load, validate and model a matrix file."""
    return build_matrix(load_yaml_file(path), path)


def load_matrix_text(text: str, path: str = "matrix.yml") -> Matrix:
    """Same as load_matrix, from text (tests, fuzzing)."""
    return build_matrix(load_yaml_text(text, path), Path(path))
