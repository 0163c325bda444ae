"""matrix.yml loading, validation messages, expansion and filters (pure, fast)."""

from __future__ import annotations

import textwrap

import pytest

from pipeline.errors import InputError
from pipeline.model.expand import expand
from pipeline.model.matrix import load_matrix_text
from pipeline.plan.select import Filters, select

BASE = """
kernels:
  "6.1": {suite: bookworm}
  "6.12": {suite: trixie}
  "7.3": {suite: trixie-backports}
features:
  default: {}
  userspace: {no-default-features: true, features: [userspace]}
jobs:
  kmod-build: {over: [kernel], image: kbuild, run: make}
  crate-test: {over: [features], image: rust, run: cargo test $CARGO_FEATURE_ARGS}
  vm-test: {over: [kernel], image: kbuild, needs: [kmod-build, crate-test/userspace], run: x}
  abi-check: {image: rust, run: ./check}
"""


def load(text: str = BASE, extra: str = ""):
    return load_matrix_text(textwrap.dedent(text) + textwrap.dedent(extra))


def errors_of(text: str) -> list[str]:
    with pytest.raises(InputError) as info:
        matrix = load_matrix_text(textwrap.dedent(text))
        expand(matrix)
    return [str(d) for d in info.value.diagnostics]


def test_expansion_ids_and_needs():
    jobs = expand(load())
    ids = [j.id for j in jobs]
    assert ids == [
        "kmod-build/6.1", "kmod-build/6.12", "kmod-build/7.3",
        "crate-test/default", "crate-test/userspace",
        "vm-test/6.1", "vm-test/6.12", "vm-test/7.3", "abi-check",
    ]
    vm = next(j for j in jobs if j.id == "vm-test/6.12")
    assert vm.needs == ("kmod-build/6.12", "crate-test/userspace")


def test_feature_args_and_env():
    jobs = {j.id: j for j in expand(load())}
    env = jobs["crate-test/userspace"].job_env()
    assert env["CARGO_FEATURE_ARGS"] == "--no-default-features --features=userspace"
    assert env["FEATURES"] == "userspace"
    assert jobs["crate-test/default"].job_env()["CARGO_FEATURE_ARGS"] == ""
    assert jobs["kmod-build/6.1"].job_env()["KERNEL"] == "6.1"


def test_backports_suite_enables_its_base():
    matrix = load()
    assert matrix.kernels["7.3"].sources == ("trixie", "trixie-backports")
    assert matrix.kernels["6.1"].sources == ("bookworm",)


def test_exclude_partial_match_and_unused_warning():
    matrix = load(extra="""
    exclude:
      - {job: vm-test, kernel: "7.3"}
      - {kernel: "6.1", features: userspace}
    """)
    ids = [j.id for j in expand(matrix)]
    assert "vm-test/7.3" not in ids and "kmod-build/7.3" in ids
    assert [w.message for w in matrix.warnings] == ["exclude[1] matches no job"]
    assert matrix.warnings[0].mark.line > 1


def test_include_extends_matching_cells_and_adds_new_ones():
    matrix = load(extra="""
    include:
      - {job: kmod-build, kernel: "6.12", env: {W: "1"}}
      - {job: crate-test, features: userspace, timeout: 60}
    """)
    jobs = {j.id: j for j in expand(matrix)}
    assert jobs["kmod-build/6.12"].env == {"W": "1"}
    assert jobs["crate-test/userspace"].timeout == 60
    assert jobs["kmod-build/6.1"].env == {}


def test_kernel_filter_never_matches_longer_versions():
    matrix = load()
    jobs = expand(matrix)
    chosen = select(matrix, jobs, Filters(kernels=("6.1",))).chosen
    assert chosen == {"kmod-build/6.1", "vm-test/6.1"}


def test_filter_pulls_in_needs():
    matrix = load()
    selection = select(matrix, expand(matrix), Filters(jobs=("vm-test/6.12",)))
    assert [j.id for j in selection.jobs] == [
        "kmod-build/6.12", "crate-test/userspace", "vm-test/6.12"]


def test_unknown_kernel_lists_declared_ones():
    matrix = load()
    with pytest.raises(InputError) as info:
        select(matrix, expand(matrix), Filters(kernels=("6.8",)))
    text = str(info.value)
    assert "'6.8' is not declared" in text and "6.1, 6.12, 7.3" in text


def test_unknown_key_is_located_with_suggestion():
    msgs = errors_of("""
    kernels:
      "6.1": {suite: bookworm}
    jobs:
      kmod-build: {over: [kernel], image: kbuild, run: make, tiemout: 5}
    """)
    assert len(msgs) == 1
    assert msgs[0].startswith("matrix.yml:5:")
    assert "unknown key 'tiemout'" in msgs[0] and "did you mean 'timeout'?" in msgs[0]


def test_wrong_type_and_unquoted_version():
    msgs = errors_of("""
    kernels:
      6.1: {suite: bookworm}
    jobs:
      k: {over: kernel, image: kbuild, run: make}
    """)
    joined = "\n".join(msgs)
    assert "jobs.k.over is a string; expected a list" in joined
    assert "kernel version 6.1 is not a string" in joined and 'quote it ("6.1")' in joined


def test_unknown_needs_and_cycles():
    msgs = errors_of("""
    kernels: {"6.1": {suite: bookworm}}
    jobs:
      a: {image: x, run: x, needs: [kmod-bild]}
      kmod-build: {image: x, run: x}
    """)
    assert "needs unknown job 'kmod-bild'" in msgs[0] and "did you mean 'kmod-build'" in msgs[0]
    msgs = errors_of("""
    kernels: {"6.1": {suite: bookworm}}
    jobs:
      a: {image: x, run: x, needs: [b]}
      b: {image: x, run: x, needs: [a]}
    """)
    assert "cyclic needs: a -> b -> a" in msgs[0]


def test_empty_expansion_and_duplicate_ids():
    msgs = errors_of("""
    kernels: {"6.1": {suite: bookworm}}
    jobs:
      k: {over: [kernel], image: x, run: x}
    exclude:
      - {job: k}
    """)
    assert "job 'k' expands to no cells" in msgs[0]


def test_yaml_syntax_error_is_located():
    with pytest.raises(InputError) as info:
        load_matrix_text("kernels:\n  - a\n b: [\n")
    assert str(info.value).startswith("matrix.yml:")
    assert "YAML syntax error" in str(info.value)


def test_duplicate_keys_are_errors():
    msgs = errors_of("""
    kernels: {"6.1": {suite: bookworm}}
    jobs:
      k: {image: x, run: x}
      k: {image: y, run: y}
    """)
    assert "duplicate key 'k'" in msgs[0] and "matrix.yml:5:" in msgs[0]
