"""matrix.yml semantics, table-driven: include/exclude (GitHub Actions rules), generators,
`over` mappings, needs resolution, YAML corner cases (merge keys, unquoted versions)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.model.expand import Job, expand, topological_order
from pipeline.model.matrix import load_matrix_text

BASE = """\
kernels:
  "6.1": {suite: bookworm}
  "6.12": {suite: trixie}
features:
  default: {}
  u: {features: [userspace]}
jobs:
  k: {over: [kernel], image: x, run: make}
  c: {over: [features], image: x, run: cargo}
  kc: {over: [kernel, features], image: x, run: both}
  n: {image: x, run: plain}
"""
ALL = ["k/6.1", "k/6.12", "c/default", "c/u", "kc/6.1/default", "kc/6.1/u",
       "kc/6.12/default", "kc/6.12/u", "n"]


def jobs_of(extra: str = "", base: str = BASE, root: Path | None = None) -> dict[str, Job]:
    path = str((root or Path("/nonexistent")) / "matrix.yml")
    return {j.id: j for j in expand(load_matrix_text(base + textwrap.dedent(extra), path))}


def errors_of(extra: str, base: str = BASE, root: Path | None = None) -> list[str]:
    with pytest.raises(InputError) as info:
        jobs_of(extra, base, root)
    return [str(d) for d in info.value.diagnostics]


# -- include / exclude -------------------------------------------------------------------

@pytest.mark.parametrize(("extra", "ids", "env"), [
    pytest.param("", ALL, {}, id="nothing"),
    # an include that matches several cells extends all of them
    pytest.param('include: [{kernel: "6.1", env: {A: "1"}}]', ALL,
                 {"k/6.1": {"A": "1"}, "kc/6.1/default": {"A": "1"}, "kc/6.1/u": {"A": "1"}},
                 id="include-extends-all-matches"),
    # only job/kernel/features are compared; other keys are added (env, timeout)
    pytest.param('include: [{env: {A: "1"}}]', ALL, {i: {"A": "1"} for i in ALL},
                 id="include-without-axes-extends-every-cell"),
    # an include that would overwrite an original axis value adds a cell instead
    pytest.param('exclude: [{job: k, kernel: "6.12"}]\n'
                 'include: [{job: k, kernel: "6.12", env: {B: "2"}}]', ALL,
                 {"k/6.12": {"B": "2"}}, id="include-re-adds-an-excluded-cell"),
    pytest.param('include: [{job: n, kernel: "6.1"}]', [*ALL, "n/6.1"], {},
                 id="include-adds-a-cell-with-an-axis-the-job-lacks"),
    # later includes see earlier ones' cells and override their values per variable
    pytest.param('include:\n  - {job: n, kernel: "6.12", env: {A: "1", B: "1"}}\n'
                 '  - {kernel: "6.12", features: u, env: {A: "2"}}',
                 [*ALL, "n/6.12"], {"n/6.12": {"A": "1", "B": "1"},
                                    "kc/6.12/u": {"A": "2"}}, id="include-order"),
    pytest.param('include:\n  - {job: n, kernel: "6.12", env: {A: "1"}}\n'
                 '  - {job: n, kernel: "6.12", env: {A: "2"}}',
                 [*ALL, "n/6.12"], {"n/6.12": {"A": "2"}}, id="later-include-wins"),
    # exclude: partial match across jobs; a job only matches the axes it has
    pytest.param('exclude: [{kernel: "6.1"}]',
                 ["k/6.12", "c/default", "c/u", "kc/6.12/default", "kc/6.12/u", "n"], {},
                 id="exclude-partial-match-across-jobs"),
    pytest.param('exclude: [{kernel: "6.1", features: u}]',
                 [i for i in ALL if i != "kc/6.1/u"], {}, id="exclude-needs-every-key"),
    # an unquoted version in a filter means what was written: 6.10 is not 6.1
    pytest.param('exclude: [{kernel: 6.12}]',
                 ["k/6.1", "c/default", "c/u", "kc/6.1/default", "kc/6.1/u", "n"], {},
                 id="exclude-unquoted-version"),
])
def test_include_exclude(extra: str, ids: list[str], env: dict) -> None:
    jobs = jobs_of(extra)
    assert sorted(jobs) == sorted(ids)
    assert {i: j.env for i, j in jobs.items() if j.env} == env


def test_include_timeout_and_order_of_ids() -> None:
    jobs = jobs_of('include: [{job: c, timeout: 5}]')
    assert [j.timeout for j in jobs.values() if j.name == "c"] == [5, 5]
    assert jobs["k/6.1"].timeout == 1800
    assert list(jobs_of('include: [{job: n, kernel: "6.1"}]'))[-1] == "n/6.1"


def test_include_env_values_are_strings_like_job_env() -> None:
    jobs = jobs_of("include: [{job: n, env: {B: true, C: 1.5}}]")
    assert jobs["n"].env == {"B": "true", "C": "1.5"}


def test_unquoted_version_in_filters_is_what_was_written() -> None:
    base = BASE.replace('"6.12": {suite: trixie}', '"6.12": {suite: trixie}\n  "6.10": {suite: x}')
    jobs = jobs_of("exclude: [{job: k, kernel: 6.10}]", base)
    assert "k/6.10" not in jobs and "k/6.1" in jobs


@pytest.mark.parametrize(("extra", "expected"), [
    ('exclude: [{job: n, kernel: "6.1"}]', "warning: exclude[0] matches no job"),
    ('exclude: [{features: u, kernel: "6.1", job: k}]', "warning: exclude[0] matches no job"),
])
def test_exclude_matching_nothing_is_a_warning(extra: str, expected: str) -> None:
    matrix = load_matrix_text(BASE + extra)
    expand(matrix)
    expand(matrix)  # expanding twice does not repeat the warning
    assert [str(w).split(": ", 2)[-1] for w in matrix.warnings] == [
        expected.split(": ", 1)[1] + "; remove it or fix its values (a job only matches the "
        "axes in its `over`)"]
    assert matrix.warnings[0].mark.line == BASE.count("\n") + 1


@pytest.mark.parametrize(("extra", "message"), [
    ("exclude: [{}]", "exclude[0] names no job, kernel or features"),
    ("exclude: [{env: {A: 1}}]", "unknown key 'env' in exclude[0]"),
    ("exclude: [{job: n}]", "job 'n' expands to no cells; exclude[0] removed all of its cells"),
    ('include: [{kernel: "6.1", features: nope}]', "include[0]: unknown feature set 'nope'"),
    ('include: [{kernel: "6.1", timout: 3}]', "did you mean 'timeout'?"),
    ('include: [{features: u, kernel: "6.1", env: {A: 1}}, {kernel: "6.12", features: nope}]',
     "include[1]: unknown feature set 'nope'"),
])
def test_include_exclude_errors(extra: str, message: str) -> None:
    msgs = errors_of(extra)
    assert any(message in m for m in msgs), msgs
    assert all(m.startswith(f"/nonexistent/matrix.yml:{BASE.count(chr(10)) + 1}:")
               for m in msgs if "expands to no cells" not in m), msgs


def test_include_matching_nothing_needs_a_job() -> None:
    msgs = errors_of('include: [{kernel: "6.1", features: u}]\n'
                     'exclude: [{kernel: "6.1", features: u}]')
    assert msgs[0].startswith("/nonexistent/matrix.yml:")
    assert "include[0] matches no job and names no `job`; add `job:`" in msgs[0]


def test_duplicate_ids_from_a_kernel_and_a_feature_set_of_the_same_name() -> None:
    base = BASE.replace("u: {features: [userspace]}", '"6.1": {features: [userspace]}')
    msgs = errors_of('include: [{job: k, features: "6.1"}]', base)
    assert "two cells of job 'k' have the id 'k/6.1' (kernel 6.1 and features 6.1)" in msgs[0]
    assert msgs[0].startswith(f"/nonexistent/matrix.yml:{base.count(chr(10)) + 1}:")


# -- over --------------------------------------------------------------------------------

@pytest.mark.parametrize(("over", "ids"), [
    ("[kernel]", ["j/6.1", "j/6.12"]),
    ("{kernel: '*'}", ["j/6.1", "j/6.12"]),
    ("{kernel: ['*']}", ["j/6.1", "j/6.12"]),
    ("{kernel: ['6.12']}", ["j/6.12"]),
    ("{kernel: '6.12'}", ["j/6.12"]),
    ("{kernel: ['6.12', '6.1']}", ["j/6.1", "j/6.12"]),  # declaration order
    ("{features: [g]}", ["j/g.fast", "j/g.serde"]),  # a generator's name: all its sets
    ("{features: [g.serde, default]}", ["j/default", "j/g.serde"]),
    ("{kernel: '*', features: [default]}", ["j/6.1/default", "j/6.12/default"]),
    ("{features: '*', kernel: ['6.1']}", ["j/6.1/default", "j/6.1/g.fast", "j/6.1/g.serde"]),
    ("[features, kernel]", ["j/6.1/default", "j/6.1/g.fast", "j/6.1/g.serde",
                            "j/6.12/default", "j/6.12/g.fast", "j/6.12/g.serde"]),
    ("[]", ["j"]),
    ("{}", ["j"]),
])
def test_over(over: str, ids: list[str]) -> None:
    base = textwrap.dedent(f"""\
        kernels: {{"6.1": {{suite: a}}, "6.12": {{suite: b}}}}
        features:
          default: {{}}
          g: {{generate: each-feature, features: [fast, serde]}}
        jobs:
          j: {{over: {over}, image: x, run: y}}
        """)
    assert sorted(jobs_of(base=base)) == sorted(ids)


@pytest.mark.parametrize(("over", "message"), [
    ("{kernel: []}", "over.kernel is an empty list; list the kernel values to use, or '*'"),
    ("{kernel: ['*', '6.1']}", "over.kernel mixes '*' with values"),
    ("{kernel: ['6.2']}", "over.kernel names unknown kernel '6.2'; did you mean '6.12'?"),
    ("{kernel: [6.12]}", 'jobs.j.over.kernel[0] is a number; expected a string; quote it ("6.12")'),
    ("{features: [gg]}", "over.features names unknown feature set 'gg'; did you mean 'g'?"),
    ("{arch: '*'}", "unknown key 'arch' in jobs.j.over"),
    ("[kernel, kernel]", "an axis is listed twice in `over`"),
    ("[kernels]", "jobs.j.over[0]: 'kernels' is not allowed; expected one of 'kernel', "
                  "'features'; did you mean 'kernel'?"),
    ("kernel", "jobs.j.over is a string; expected a list or a mapping"),
])
def test_over_errors(over: str, message: str) -> None:
    base = textwrap.dedent(f"""\
        kernels: {{"6.1": {{suite: a}}, "6.12": {{suite: b}}}}
        features:
          g: {{generate: each-feature, features: [fast, serde]}}
        jobs:
          j: {{over: {over}, image: x, run: y}}
        """)
    msgs = errors_of("", base)
    assert any(message in m for m in msgs), msgs
    assert all(m.startswith("/nonexistent/matrix.yml:5:") for m in msgs), msgs


# -- generators ----------------------------------------------------------------------------

CARGO = """\
[package]
name = "x"
[features]
default = ["a"]
a = []
b = []
c = []
"""


@pytest.fixture
def crate(tmp_path: Path) -> Path:
    (tmp_path / "Cargo.toml").write_text(CARGO)
    return tmp_path


def _sets(spec: str, root: Path) -> list[str]:
    base = f'kernels: {{"6.1": {{suite: a}}}}\nfeatures:\n  g: {spec}\n' \
           'jobs: {j: {over: [features], image: x, run: y}}\n'
    return [j.features.name for j in jobs_of(base=base, root=root).values()]


@pytest.mark.parametrize(("spec", "sets"), [
    ("{generate: powerset, depth: 1}", ["g.none", "g.a", "g.b", "g.c"]),
    ("{generate: powerset, depth: 2, features: [a, b]}", ["g.none", "g.a", "g.b", "g.a+b"]),
    ("{generate: powerset, depth: 9, features: [a, b]}", ["g.none", "g.a", "g.b", "g.a+b"]),
    ("{generate: powerset}", ["g.none", "g.a", "g.b", "g.c", "g.a+b", "g.a+c", "g.b+c",
                              "g.a+b+c"]),
    ("{generate: each-feature}", ["g.a", "g.b", "g.c"]),  # the manifest's, minus default
    ("{generate: each-feature, exclude: [a, b]}", ["g.c"]),
    ("{generate: powerset, exclude: [a, b, c]}", ["g.none"]),  # powerset of nothing
    ("{generate: each-feature, always: [a]}", ["g.b", "g.c"]),
    ("{generate: powerset, always: [a], depth: 1}", ["g.none", "g.b", "g.c"]),
    ("{generate: powerset, features: [a, b, a]}", ["g.none", "g.a", "g.b", "g.a+b"]),
])
def test_generators(crate: Path, spec: str, sets: list[str]) -> None:
    assert _sets(spec, crate) == sets


def test_generated_sets_carry_always(crate: Path) -> None:
    base = 'kernels: {"6.1": {suite: a}}\nfeatures:\n  g: {generate: each-feature, ' \
           'always: [a], no-default-features: true}\njobs: {j: {over: [features], image: x, ' \
           'run: y}}\n'
    jobs = jobs_of(base=base, root=crate)
    assert jobs["j/g.b"].job_env()["CARGO_FEATURE_ARGS"] == "--no-default-features " \
                                                            "--features=a,b"


@pytest.mark.parametrize(("spec", "message"), [
    ("{generate: powerset, depth: 0}", "features.g.depth: 0 is too small; expected at least 1"),
    ("{generate: each-feature, depth: 2}", "'depth' only applies to `generate: powerset`"),
    ("{generate: each-feature, features: []}", "features.g.features is empty"),
    ("{generate: each-feature, exclude: [a, b, c]}", "no candidate features left"),
    ("{generate: each-feature, always: [a], exclude: [a]}",
     "feature 'a' is both in `always` and in `exclude`"),
    ("{generate: powerset, at-least-one-of: [[a]], mutually-exclusive: [[a, b]], "
     "requires: {a: [b]}}", "the generator produces no feature set"),
    ("{generate: powerset, at-least-one-of: [[]]}", "features.g.at-least-one-of[0] is empty"),
    ("{generate: each-feature, features: [a, d]}",
     "feature 'd' is not declared in"),
    ("{generate: each-feature, manifest: nope.toml}",
     "features.g.manifest: nope.toml: file not found"),
    ("{generate: each-feature, all-features: true}", "'all-features' would make every"),
    ("{generate: each}", "features.g.generate: 'each' is not allowed; expected one of "
                         "'each-feature', 'powerset'; did you mean 'each-feature'?"),
    ("{features: [a], depth: 2}", "features.g: 'depth' only applies to generators"),
])
def test_generator_errors(crate: Path, spec: str, message: str) -> None:
    base = f'kernels: {{"6.1": {{suite: a}}}}\nfeatures:\n  g: {spec}\n' \
           'jobs: {j: {over: [features], image: x, run: y}}\n'
    msgs = errors_of("", base, crate)
    assert any(message in m for m in msgs), msgs
    assert all(m.startswith(f"{crate}/matrix.yml:3:") for m in msgs), msgs


def test_powerset_is_bounded(crate: Path) -> None:
    many = ", ".join(f"f{i}" for i in range(30))
    base = f'kernels: {{"6.1": {{suite: a}}}}\nfeatures:\n  g: {{generate: powerset, ' \
           f'features: [{many}]}}\njobs: {{j: {{over: [features], image: x, run: y}}}}\n'
    msgs = errors_of("", base)  # no Cargo.toml: names are not checked
    assert "powerset of 30 features up to depth 30 makes 1073741824 combinations" in msgs[0]


def test_generated_name_colliding_with_an_explicit_set(crate: Path) -> None:
    base = 'kernels: {"6.1": {suite: a}}\nfeatures:\n  g: {generate: each-feature}\n' \
           '  g.a: {features: [a]}\njobs: {j: {over: [features], image: x, run: y}}\n'
    msgs = errors_of("", base, crate)
    assert "feature set 'g.a' is made twice: by generator features.g and by features.g.a" \
        in msgs[0]


# -- needs ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("jobs", "needs"), [
    # same axis: the matching cell; fewer axes: all cells of the need; more axes: by the shared
    ("a: {@J, over: [kernel], needs: [b]}\n  b: {@J, over: [kernel]}",
     {"a/6.1": ("b/6.1",), "a/6.12": ("b/6.12",)}),
    ("a: {@J, needs: [b]}\n  b: {@J, over: [kernel]}", {"a": ("b/6.1", "b/6.12")}),
    ("a: {@J, over: [kernel, features], needs: [b]}\n  b: {@J, over: [kernel]}",
     {"a/6.1/default": ("b/6.1",), "a/6.12/u": ("b/6.12",)}),
    ("a: {@J, over: [kernel], needs: [b]}\n  b: {@J, over: [features]}",
     {"a/6.1": ("b/default", "b/u")}),
    ("a: {@J, over: [kernel], needs: [b/u, b]}\n  b: {@J, over: [features]}",
     {"a/6.1": ("b/u", "b/default")}),
    ("a: {@J, over: [kernel], needs: [b, b/u]}\n  b: {@J, over: [features]}",
     {"a/6.1": ("b/default", "b/u")}),
])
def test_needs_resolution(jobs: str, needs: dict) -> None:
    base = 'kernels: {"6.1": {suite: a}, "6.12": {suite: b}}\n' \
           'features: {default: {}, u: {}}\n' \
           'jobs:\n  ' + jobs.replace("@J", "image: x, run: y") + "\n"
    resolved = jobs_of(base=base)
    for job_id, expected in needs.items():
        assert resolved[job_id].needs == expected


@pytest.mark.parametrize(("jobs", "message", "line"), [
    ("a: {@J, needs: [b]}\n  b: {@J, needs: [c]}\n  c: {@J, needs: [a]}",
     "cyclic needs: a -> b -> c -> a", 2),
    ("a: {@J, needs: [b]}\n  b: {@J, needs: [a]}", "cyclic needs: a -> b -> a", 2),
    ("a: {@J, over: [kernel], needs: [b/6.1]}\n  b: {@J, over: [kernel], needs: [a]}",
     "cyclic needs: a/6.1 -> b/6.1 -> a/6.1", 2),
    ("a: {@J, needs: [a]}", "job 'a' needs itself", 2),
    ("a: {@J, needs: [bb]}\n  b: {@J}", "needs unknown job 'bb'; did you mean 'b'?", 2),
    ("a: {@J, needs: [b/6.2]}\n  b: {@J, over: [kernel]}",
     "job 'a' needs 'b/6.2', which is not in the expanded matrix", 2),
    ("a: {@J, over: [kernel], needs: [b]}\n  b: {@J, over: [kernel]}\n"
     "exclude: [{job: b, kernel: '6.12'}]",
     "job 'a/6.12' needs 'b', but no 'b' cell has kernel 6.12", 2),
])
def test_needs_errors(jobs: str, message: str, line: int) -> None:
    base = 'kernels: {"6.1": {suite: a}, "6.12": {suite: b}}\njobs:\n  ' \
           + jobs.replace("@J", "image: x, run: y") + "\n"
    msgs = errors_of("", base)
    assert message in msgs[0], msgs
    assert msgs[0].startswith(f"/nonexistent/matrix.yml:{line + 1}:"), msgs


def test_long_needs_chains_do_not_recurse() -> None:
    chain = "".join(f"  j{i}: {{image: x, run: y, needs: [j{i + 1}]}}\n" for i in range(3000))
    base = 'kernels: {"6.1": {suite: a}}\njobs:\n' + chain + "  j3000: {image: x, run: y}\n"
    jobs = list(jobs_of(base=base).values())
    assert [j.id for j in topological_order(jobs)][:2] == ["j3000", "j2999"]


# -- YAML corner cases ---------------------------------------------------------------------

def test_merge_keys_override_without_duplicate_errors() -> None:
    base = textwrap.dedent("""\
        kernels: {"6.1": {suite: a}}
        jobs:
          a: &common {image: x, run: y, timeout: 5}
          b: {<<: *common, timeout: 9}
        """)
    jobs = jobs_of(base=base)
    assert jobs["a"].timeout == 5 and jobs["b"].timeout == 9


def test_duplicate_keys_in_one_mapping_are_errors() -> None:
    msgs = errors_of("", 'kernels: {"6.1": {suite: a}}\njobs: {a: {image: x, run: y, run: z}}\n')
    assert msgs == ["/nonexistent/matrix.yml:2:30: error: duplicate key 'run' (first defined "
                    "at line 2); remove or rename one of them"]


@pytest.mark.parametrize(("text", "message"), [
    ('kernels: {6.10: {suite: a}}\njobs: {a: {image: x, run: y}}\n',
     'kernels: kernel version 6.10 is not a string; quote it ("6.10"): YAML reads 6.10 as the '
     'number 6.1'),
    ('kernels: {"6.1": {suite: a}}\njobs: {a: {image: no, run: y}}\n',
     'jobs.a.image is a boolean; expected a string; quote it ("no"): YAML reads no as false'),
    ('kernels: {"6.1": {suite: a}}\njobs: {a: {image: x, run: y, timeout: 1.5}}\n',
     "jobs.a.timeout is a number; expected an integer"),
    ('kernels: {"6.1": {suite: a}}\njobs: {a: {image: x, run: y, inputs: src/**}}\n',
     "jobs.a.inputs is a string; expected a list such as [src/**]"),
    ('kernels: {"6.1": {suite: a}}\nfeatures: {default: }\njobs: {a: {image: x, run: y}}\n',
     "features.default is nothing (null); expected a mapping; write {} for an empty mapping"),
])
def test_scalar_mistakes_quote_what_was_written(text: str, message: str) -> None:
    msgs = errors_of("", text)
    assert any(message in m for m in msgs), msgs


def test_timestamps_stay_strings() -> None:
    jobs = jobs_of(base='kernels: {"6.1": {suite: a}}\njobs: {a: {image: 2024-02-30, run: y, '
                        'env: {D: 2024-01-01}}}\n')
    assert jobs["a"].spec.image == "2024-02-30" and jobs["a"].job_env()["D"] == "2024-01-01"


# -- docs/MATRIX.md matches the schema and the code ------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "MATRIX.md"


def test_reference_tables_are_generated_from_the_schema() -> None:
    from pipeline.model.reference import reference_markdown

    text = DOC.read_text()
    begin = "<!-- BEGIN GENERATED: pipeline.model.reference.reference_markdown() -->\n"
    block = text[text.index(begin) + len(begin):text.index("<!-- END GENERATED -->")]
    assert block == reference_markdown(), "regenerate the tables (see docs/MATRIX.md)"


def test_schema_defaults_are_the_code_defaults() -> None:
    from dataclasses import fields

    from pipeline.model.kernels import KernelSource
    from pipeline.model.matrix import DEFAULT_LIMITS, DEFAULT_TIMEOUT, Step, VmSpecDecl
    from pipeline.model.schema import KERNEL, LIMITS, MATRIX_SCHEMA, STEP, VM

    defaults = MATRIX_SCHEMA["properties"]["defaults"]["properties"]
    assert defaults["timeout"]["default"] == DEFAULT_TIMEOUT
    assert {k: v["default"] for k, v in LIMITS["properties"].items()} == DEFAULT_LIMITS
    matrix = load_matrix_text('kernels: {"6.1": {suite: a}}\njobs: {j: {image: x, run: y}}\n')
    assert matrix.image_base == defaults["image-base"]["default"]
    assert matrix.registry_image == defaults["registry-image"]["default"]
    source = {f.name: f.default for f in fields(KernelSource)}
    for key, prop in KERNEL["properties"].items():
        if "default" in prop:
            expected = prop["default"]
            assert source[key] == (tuple(expected) if isinstance(expected, list) else expected)
    vm = {f.name.replace("_", "-"): f.default for f in fields(VmSpecDecl)}
    assert all(vm[k] == p["default"] for k, p in VM["properties"].items() if "default" in p)
    step = {f.name: f.default for f in fields(Step)}
    assert all(step[k] == p["default"] for k, p in STEP["properties"].items() if "default" in p)


def test_complete_examples_in_the_docs_are_valid() -> None:
    import re

    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    complete = [b for b in blocks if "\nkernels:" in "\n" + b and "\njobs:" in "\n" + b]
    assert complete
    for block in complete:
        matrix = load_matrix_text(block, str(DOC.parents[1] / "matrix.yml"))
        jobs = {j.id: j for j in expand(matrix)}
        assert not matrix.warnings, matrix.warnings
        assert jobs["vm-test/6.12"].needs == ("kmod-build/6.12",)
        assert "vm-test/6.1" not in jobs and jobs["kmod-build/6.12"].env == {"W": "1"}
        assert "crate-test/pairs.userspace+serde" in jobs
