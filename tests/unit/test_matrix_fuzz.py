"""Property-based fuzzing of the matrix.yml loader (hypothesis).

Two properties of `load_matrix_text` + `expand`, 250 cases each:
  * random documents that mix valid matrix fragments with wrong types, unknown and
    near-miss keys, unquoted versions and random scalars;
  * random mutations of the shipped matrix.yml (truncation, deleted/duplicated/re-indented
    lines, random characters and bytes, including invalid UTF-8).
Either the matrix loads and expands, or an InputError comes out whose every diagnostic
points into the file (file:line:col) and reads as prose (no Python reprs). Nothing else may
escape.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import InputError
from pipeline.model.expand import expand
from pipeline.model.matrix import load_matrix, load_matrix_text

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = (ROOT / "matrix.yml").read_bytes()
FUZZ = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# what must never show up in a message: reprs of our objects, Python internals
INTERNAL = re.compile(r"Marked(Dict|List)|object at 0x|<class |Traceback|Diagnostic\(|Mark\("
                      r"|FeatureSet\(|JobSpec\(|KernelSource\(|yaml\.|\bNoneType\b")


@pytest.fixture(scope="module")
def project() -> Iterator[Path]:
    """A directory with the crate's Cargo.toml, as next to the real matrix.yml."""
    with tempfile.TemporaryDirectory(prefix="kmatrix-fuzz-") as tmp:
        root = Path(tmp)
        (root / "userspace").mkdir()
        shutil.copy(ROOT / "userspace" / "Cargo.toml", root / "userspace" / "Cargo.toml")
        yield root


def check(text: str, path: str) -> None:
    """The property: success, or an InputError located in the file with readable text."""
    lines = text.count("\n") + 2
    try:
        expand(load_matrix_text(text, path))
    except InputError as exc:
        check_error(exc, path, lines)


def check_error(exc: InputError, path: str, lines: int) -> None:
    assert exc.diagnostics
    for diagnostic in exc.diagnostics:
        text = str(diagnostic)
        assert not INTERNAL.search(text), text
        if diagnostic.severity == "warning" and "Cargo.toml" in text:
            continue  # a problem of the manifest, not of matrix.yml
        assert diagnostic.mark is not None, text
        assert diagnostic.mark.path == path, text
        assert 1 <= diagnostic.mark.line <= lines and diagnostic.mark.col >= 1, text


# -- generated documents ---------------------------------------------------------------

NEAR_MISS = ["kernal", "kernels ", "job", "feature", "jobs_", "timeout", "tiemout", "imgae",
             "over", "ovr", "need", "needs", "steps", "step", "run", "vm", "vms", "include",
             "exclude", "excludes", "env", "limits", "limit", "suite", "suit", "generate",
             "depth", "always", "features", "memory", "command", "results", "7", ""]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 10**6), st.sampled_from([6.1, 6.10, 0.5, 1e300]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["*", "6.1", "6.12", "kernel", "features", "default", "each", "a/b",
                     "each-feature", "powerset", "bookworm", "$SRC/x", "x: y", "{abi}", "(("]),
)
junk = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(st.sampled_from(NEAR_MISS), st.text(max_size=6)), inner,
                    max_size=3)), max_leaves=8)
VERSIONS = ["5.10", "6.1", "6.12", "7.3", "6.10"]
FEATURES = ["userspace", "kernel", "serde", "fast-search"]
JOB_NAMES = ["a", "b", "c", "d"]


@st.composite
def document(draw: st.DrawFn) -> object:
    """A matrix-shaped document; `noise` is the chance that any one value is junk or any one
    mapping gets an unknown key, so some documents are valid and reach `expand`."""
    noise = draw(st.sampled_from([0.0, 0.0, 0.0, 0.01, 0.05, 0.3]))

    def roll() -> bool:
        return noise > 0 and draw(st.floats(0, 1)) < noise

    def val(strategy: st.SearchStrategy) -> object:
        return draw(junk) if roll() else draw(strategy)

    def obj(d: dict) -> dict:
        if roll():
            d[draw(st.sampled_from(NEAR_MISS))] = draw(junk)
        return d

    def some(options: list) -> list:  # duplicates only in noisy documents
        return draw(st.lists(st.sampled_from(options), max_size=3, unique=not noise))

    kernels = {}
    for version in draw(st.lists(st.sampled_from(VERSIONS), min_size=1, max_size=4,
                                 unique=True)):
        key: object = float(version) if roll() else version  # the unquoted-6.10 mistake
        kernels[key] = obj({"suite": val(st.sampled_from(["bookworm", "trixie-backports"]))})
        if roll():
            kernels[key]["abi"] = val(st.sampled_from(["{version}-amd64", "((", "(?P<abi>x)"]))
    features: dict = {}
    set_pool = ["default", "u", "k", "g", "h"] + (["g.none"] if noise else [])
    for name in draw(st.lists(st.sampled_from(set_pool), max_size=4, unique=True)):
        if name in ("g", "h"):
            spec = {"generate": val(st.sampled_from(["each-feature", "powerset"]))}
            if draw(st.booleans()):
                spec["features"] = some([*FEATURES, "default"] + (["serd"] if noise else [])) \
                    or ([] if noise else ["kernel"])
            for key in ("always", "exclude"):
                if draw(st.booleans()):
                    spec[key] = some(FEATURES)
            if draw(st.booleans()) and (noise or spec["generate"] == "powerset"):
                spec["depth"] = val(st.integers(0 if noise else 1, 4))
            if draw(st.booleans()):
                spec["mutually-exclusive"] = [some(FEATURES)]
            if draw(st.booleans()):
                spec["at-least-one-of"] = [some(FEATURES) or ["kernel"]]
            if draw(st.booleans()):
                spec["requires"] = {draw(st.sampled_from(FEATURES)): some(FEATURES)}
            if roll():
                spec["manifest"] = val(st.sampled_from(["userspace/Cargo.toml", "no.toml"]))
        else:
            spec = {"features": some(FEATURES)} if draw(st.booleans()) else {}
            if draw(st.booleans()):
                spec["no-default-features"] = val(st.booleans())
        features[name] = obj(spec)
    set_names = list(features) or ["default"]
    jobs: dict = {}
    job_names = draw(st.lists(st.sampled_from(JOB_NAMES), min_size=1, max_size=4, unique=True))
    for name in job_names:
        job: dict = {}
        shape = draw(st.sampled_from(["none", "list", "map", "map*"]))
        if shape == "list":
            job["over"] = draw(st.lists(st.sampled_from(["kernel", "features"]), min_size=1,
                                        max_size=2, unique=True))
        elif shape == "map":
            job["over"] = ({"kernel": some(list(kernels) + (["6", "6.1"] if noise else []))}
                           if draw(st.booleans()) else
                           {"features": some(set_names + (["g", "nope"] if noise else []))})
        elif shape == "map*":
            job["over"] = {"kernel": "*", "features": "*"}
        if draw(st.integers(0, 5)) == 5:
            job["vm"] = obj({"command": "sh /t.sh", "files": {"/t.sh": "$SRC/t.sh"}})
            if not roll():
                job["over"] = ["kernel"]
        else:
            job["image"] = "x"
            if draw(st.booleans()):
                job["run"] = val(st.just("make"))
            else:
                job["steps"] = [obj({"name": val(st.just(f"s{i}")), "run": "x"})
                                for i in range(draw(st.integers(1, 2)))]
        if draw(st.booleans()):
            others = [n for n in job_names if n != name] or [name]
            job["needs"] = draw(st.lists(st.sampled_from(
                [*others, "a/6.1", "b/default", "x", name] if noise else others), max_size=2,
                unique=not noise))
        if roll():
            job["timeout"] = val(st.integers(-1, 100))
        jobs[name] = obj({k: val(st.just(v)) for k, v in job.items()})
    doc: dict = {"kernels": kernels, "jobs": jobs}
    if features:
        doc["features"] = features
    for section in ("include", "exclude"):
        entries = []
        for _ in range(draw(st.integers(0, 2))):
            entry: dict = {}
            if draw(st.booleans()):
                entry["job"] = draw(st.sampled_from(JOB_NAMES if noise else job_names))
            if draw(st.booleans()):
                entry["kernel"] = draw(st.sampled_from(VERSIONS if noise else
                                                       [str(k) for k in kernels]))
            if draw(st.booleans()):
                entry["features"] = draw(st.sampled_from(set_names))
            if section == "include" and draw(st.booleans()):
                entry["env"] = {"X": val(st.sampled_from(["1", 2]))}
            if section == "include" and draw(st.booleans()):
                entry["timeout"] = val(st.integers(0 if noise else 1, 9))
            entries.append(obj(entry))
        if entries:
            doc[section] = val(st.just(entries))
    if roll():
        doc["defaults"] = obj({"timeout": val(st.integers(1, 9))})
    return draw(junk) if noise and draw(st.integers(0, 20)) == 20 else obj(doc)


def _unquote_versions(text: str) -> str:
    # the classic mistake: 6.10 written without quotes (YAML reads the number 6.1)
    return re.sub(r"'(\d+\.\d+)'", r"\1", text)


@FUZZ
@given(doc=document(), flow=st.booleans(), unquote=st.sampled_from([False] * 7 + [True]))
def test_generated_documents(project: Path, doc: object, flow: bool, unquote: bool) -> None:
    try:
        text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=flow, allow_unicode=True)
    except yaml.YAMLError:
        return
    if unquote:
        text = _unquote_versions(text)
    check(text, str(project / "matrix.yml"))


# -- mutations of the shipped matrix.yml -------------------------------------------------

def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = SHIPPED
    for _ in range(draw(st.integers(1, 4))):
        lines = _lines(data)
        where = draw(st.integers(0, max(len(lines) - 1, 0)))
        kind = draw(st.sampled_from(["truncate", "delete", "duplicate", "indent", "dedent",
                                     "insert", "replace", "bytes", "swap", "tab"]))
        if kind == "truncate":
            data = data[:draw(st.integers(0, len(data)))]
            continue
        if kind == "delete":
            del lines[where]
        elif kind == "duplicate":
            lines.insert(where, lines[where])
        elif kind == "indent":
            lines[where] = b" " * draw(st.integers(1, 4)) + lines[where]
        elif kind == "dedent":
            lines[where] = lines[where].lstrip(b" ")
        elif kind == "tab":
            lines[where] = b"\t" + lines[where].lstrip(b" ")
        elif kind == "swap" and len(lines) > 1:
            other = draw(st.integers(0, len(lines) - 1))
            lines[where], lines[other] = lines[other], lines[where]
        else:
            line = lines[where]
            at = draw(st.integers(0, len(line)))
            if kind == "bytes":
                junk_bytes = draw(st.binary(min_size=1, max_size=3))
            else:
                junk_bytes = draw(st.sampled_from(list(":-[]{}&*!|>'\"#%@`,?~ 0.9\\"))).encode()
            cut = at + (1 if kind == "replace" else 0)
            lines[where] = line[:at] + junk_bytes + line[cut:]
        data = b"\n".join(lines)
    return data


@FUZZ
@given(data=mutated())
def test_mutated_shipped_matrix(project: Path, data: bytes) -> None:
    path = project / "matrix.yml"
    path.write_bytes(data)
    lines = data.count(b"\n") + 2
    try:
        expand(load_matrix(path))
    except InputError as exc:
        check_error(exc, str(path), lines)


def test_shipped_matrix_loads_in_the_fuzz_project(project: Path) -> None:
    (project / "matrix.yml").write_bytes(SHIPPED)
    assert expand(load_matrix(project / "matrix.yml"))
