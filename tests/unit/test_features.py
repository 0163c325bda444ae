"""Feature-set generators (cargo-hack style), table-driven."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import Diagnostic
from pipeline.model.features import build_feature_sets, manifest_features

CARGO = """
[package]
name = "x"
[features]
default = ["userspace"]
userspace = ["dep:libc"]
kernel = []
serde = ["dep:serde"]
fast = []
[dependencies]
libc = { version = "0.2", optional = true }
serde = { version = "1", optional = true }
rand = { version = "0.8", optional = true }
"""


@pytest.fixture
def crate(tmp_path: Path) -> Path:
    (tmp_path / "Cargo.toml").write_text(CARGO)
    return tmp_path


def names(data: dict, root: Path) -> list[str]:
    diags: list[Diagnostic] = []
    sets = build_feature_sets(data, root, diags)
    assert not diags, diags
    return list(sets)


def test_manifest_features_hide_dep_colon_deps(crate: Path) -> None:
    # libc/serde are only reachable through dep: features; rand is an implicit feature
    assert manifest_features(crate / "Cargo.toml") == [
        "default", "fast", "kernel", "rand", "serde", "userspace"]


@pytest.mark.parametrize(("spec", "expected"), [
    ({"generate": "each-feature"},
     ["g.fast", "g.kernel", "g.rand", "g.serde", "g.userspace"]),
    ({"generate": "each-feature", "exclude": ["rand", "kernel"], "always": ["userspace"]},
     ["g.fast", "g.serde"]),
    ({"generate": "powerset", "features": ["kernel", "serde", "fast"], "depth": 2},
     ["g.none", "g.kernel", "g.serde", "g.fast", "g.kernel+serde", "g.kernel+fast",
      "g.serde+fast"]),
    ({"generate": "powerset", "features": ["kernel", "serde", "fast"],
      "mutually-exclusive": [["kernel", "serde"]]},
     ["g.none", "g.kernel", "g.serde", "g.fast", "g.kernel+fast", "g.serde+fast"]),
    ({"generate": "powerset", "features": ["userspace", "kernel", "serde"],
      "at-least-one-of": [["userspace", "kernel"]], "requires": {"serde": ["userspace"]}},
     ["g.userspace", "g.kernel", "g.userspace+kernel", "g.userspace+serde",
      "g.userspace+kernel+serde"]),
    ({"generate": "powerset", "features": ["kernel", "serde"], "always": ["userspace"],
      "mutually-exclusive": [["userspace", "kernel"]]},
     ["g.none", "g.serde"]),
])
def test_generators(crate: Path, spec: dict, expected: list[str]) -> None:
    assert names({"g": spec}, crate) == expected


def test_generated_sets_carry_always_and_flags(crate: Path) -> None:
    sets = build_feature_sets({"g": {"generate": "each-feature", "features": ["fast"],
                                     "always": ["userspace"], "no-default-features": True}},
                              crate, [])
    assert sets["g.fast"].cargo_args() == "--no-default-features --features=userspace,fast"


def test_unknown_feature_gets_did_you_mean(crate: Path) -> None:
    diags: list[Diagnostic] = []
    build_feature_sets({"s": {"features": ["serd"]}}, crate, diags)
    assert len(diags) == 1
    assert "feature 'serd' is not declared" in diags[0].message
    assert diags[0].hint == "did you mean 'serde'?"


def test_generator_options_on_plain_set_are_errors(crate: Path) -> None:
    diags: list[Diagnostic] = []
    build_feature_sets({"s": {"features": ["fast"], "depth": 2}}, crate, diags)
    assert "'depth' only applies to generators" in diags[0].message
