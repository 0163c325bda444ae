"""Built-in job kinds (pipeline/model/recipes/*.yml): merging, overriding, errors."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

import pipeline.model.recipes as recipe_module
from pipeline.errors import InputError
from pipeline.model.expand import expand
from pipeline.model.matrix import load_matrix, load_matrix_text
from pipeline.model.recipes import RECIPES, load_recipe, recipe_names

HEAD = """\
kernels: {"6.1": {suite: bookworm}}
features: {default: {}, userspace: {no-default-features: true, features: [userspace]}}
jobs:
"""


def load(jobs: str):
    return load_matrix_text(HEAD + textwrap.indent(textwrap.dedent(jobs), "  "))


def test_shipped_kinds() -> None:
    assert recipe_names() == ["cargo-build", "cargo-test", "kmod-build", "static-binary",
                              "vm-bench", "vm-test"]


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


# -- the shipped matrix builds its modules with the kmod-build recipe ----------------------

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_recipes():
    """Recipes read from their files again (load_recipe is cached), before and after."""
    recipe_module.load_recipe.cache_clear()
    yield
    recipe_module.load_recipe.cache_clear()


def shipped_kmod_build() -> list:
    """The shipped matrix's kmod-build cells, read with the current recipes."""
    recipe_module.load_recipe.cache_clear()
    return [j for j in expand(load_matrix(ROOT / "matrix.yml")) if j.name == "kmod-build"]


def test_shipped_kmod_build_job_is_the_recipe(fresh_recipes) -> None:
    recipe = load_recipe("kmod-build")
    jobs = shipped_kmod_build()
    kernels = ("5.10", "6.1", "6.12", "7.3")
    assert [j.id for j in jobs] == [f"kmod-build/{k}" for k in kernels] + [
        "kmod-build/6.12/clang", "kmod-build/6.12/arm64"]
    # the cells of the user axes run the same recipe in the image their axis value maps to
    images = {"kmod-build/6.12/clang": "kbuild-clang"}
    images["kmod-build/6.12/arm64"] = "kbuild-arm64"
    for job in jobs:
        assert [(s.name, s.results, s.run) for s in job.spec.steps] == [
            (s["name"], s["results"], s["run"]) for s in recipe["steps"]]
        assert job.spec.image == images.get(job.id, recipe["image"])
        assert job.spec.over == tuple(recipe["over"])
        assert job.spec.inputs == tuple(recipe["inputs"])


def test_editing_the_recipe_changes_the_shipped_kmod_build_job(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_recipes) -> None:
    for path in RECIPES.glob("*.yml"):
        shutil.copy(path, tmp_path / path.name)
    edited = tmp_path / "kmod-build.yml"
    text = edited.read_text()
    assert "KCFLAGS=-Werror" in text
    edited.write_text(text.replace("KCFLAGS=-Werror", "KCFLAGS=-Wextra").replace(
        'inputs: ["kernel/**"]', 'inputs: ["kernel/**", "Kbuild.extra"]'))
    before = shipped_kmod_build()
    monkeypatch.setattr(recipe_module, "RECIPES", tmp_path)
    after = shipped_kmod_build()
    assert len(after) == len(before) == 6  # 4 kernels, 1 clang cell, 1 arm64 cell
    for old, new in zip(before, after, strict=True):
        assert "KCFLAGS=-Werror" in old.spec.steps[0].run
        assert new.spec.steps[0].run == old.spec.steps[0].run.replace("-Werror", "-Wextra")
        assert new.spec.inputs == ("kernel/**", "Kbuild.extra")


def test_problems_a_recipe_brings_are_located_at_the_kind_line() -> None:
    """A recipe's keys that do not fit the job are the user's `kind:` line's, not the
    package's recipe file's (found by the shipped-matrix fuzzer)."""
    matrix = load("""\
        boot:
          over: [kernel]
          kind: cargo-build
          vm: {command: "true"}
        """)
    (warning,) = [w for w in matrix.warnings if "`image` is not used" in w.message]
    assert warning.mark.path == "matrix.yml" and warning.mark.line == 6
