"""Built-in job kinds (pipeline/model/recipes/*.yml): merging, overriding, errors."""

from __future__ import annotations

import textwrap

import pytest

from pipeline.errors import InputError
from pipeline.model.expand import expand
from pipeline.model.matrix import load_matrix_text
from pipeline.model.recipes import recipe_names

HEAD = """\
kernels: {"6.1": {suite: bookworm}}
features: {default: {}, userspace: {no-default-features: true, features: [userspace]}}
jobs:
"""


def load(jobs: str):
    return load_matrix_text(HEAD + textwrap.indent(textwrap.dedent(jobs), "  "))


def test_shipped_kinds() -> None:
    assert recipe_names() == ["cargo-build", "cargo-test", "kmod-build"]


def test_kind_provides_axes_image_inputs_and_steps() -> None:
    matrix = load("modules: {kind: kmod-build}\n")
    spec = matrix.jobs["modules"]
    assert spec.over == ("kernel",) and spec.image == "kbuild"
    assert spec.inputs == ("kernel/**",)
    assert [s.name for s in spec.steps] == ["build"] and spec.steps[0].results == "build"
    assert "KCFLAGS=-Werror" in spec.steps[0].run
    assert [j.id for j in expand(matrix)] == ["modules/6.1"]


def test_job_keys_override_and_env_merges() -> None:
    matrix = load("""\
        tests:
          kind: cargo-test
          over: {features: [userspace]}
          inputs: ["crates/x/**"]
          env: {CRATE_DIR: crates/x, RUST_LOG: debug}
          timeout: 60
        """)
    spec = matrix.jobs["tests"]
    assert spec.inputs == ("crates/x/**",) and spec.timeout == 60
    assert spec.env == {"CRATE_DIR": "crates/x", "RUST_LOG": "debug"}
    assert [s.name for s in spec.steps] == ["fetch", "build", "test"]
    assert spec.steps[0].network and not spec.steps[2].network
    assert [j.id for j in expand(matrix)] == ["tests/userspace"]


def test_own_commands_replace_the_recipes() -> None:
    spec = load("b: {kind: cargo-build, run: cargo check}\n").jobs["b"]
    assert [(s.name, s.run) for s in spec.steps] == [("run", "cargo check")]
    assert spec.image == "rust"


def test_unknown_kind_is_located_with_suggestion() -> None:
    with pytest.raises(InputError) as info:
        load("b: {kind: cargo-tset}\n")
    (diag,) = info.value.diagnostics
    assert diag.mark.line == 4 and "'cargo-tset' is not allowed" in diag.message
    assert "did you mean 'cargo-test'?" in diag.hint
