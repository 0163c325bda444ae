"""Cargo feature sets: explicit ones and cargo-hack style generators (pure apart from
reading the crate's Cargo.toml to check feature names)."""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import Diagnostic
from pipeline.schema import did_you_mean
from pipeline.yamlmarks import Mark, mark_of

DEFAULT_MANIFESTS = ("userspace/Cargo.toml", "Cargo.toml")


@dataclass(frozen=True)
class FeatureSet:
    """A named cargo feature selection."""

    name: str
    features: tuple[str, ...] = ()
    no_default_features: bool = False
    all_features: bool = False

    def cargo_args(self) -> str:
        """The cargo command-line flags that select this set."""
        import shlex

        args = []
        if self.no_default_features:
            args.append("--no-default-features")
        if self.all_features:
            args.append("--all-features")
        if self.features:
            args.append("--features=" + ",".join(self.features))
        return shlex.join(args)


def manifest_features(path: Path) -> list[str] | None:
    """Feature names declared by a Cargo.toml (None when it cannot be read)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    declared = data.get("features") or {}
    features = set(declared)
    hidden = {v[4:] for values in declared.values() for v in values if v.startswith("dep:")}
    for name, dep in (data.get("dependencies") or {}).items():
        if isinstance(dep, dict) and dep.get("optional") and name not in hidden:
            features.add(name)  # implicit feature of an optional dependency (no `dep:` use)
    return sorted(features)


def _manifest(root: Path, raw: dict[str, Any]) -> tuple[Path | None, list[str] | None]:
    if raw.get("manifest"):
        path = root / raw["manifest"]
        return path, manifest_features(path)
    for candidate in DEFAULT_MANIFESTS:
        path = root / candidate
        if path.is_file():
            return path, manifest_features(path)
    return None, None


def _check_names(names: list[str], known: list[str] | None, where: str, mark: Mark | None,
                 manifest: Path | None, diags: list[Diagnostic]) -> None:
    if known is None:
        return
    for name in names:
        if name not in known:
            hint = did_you_mean(name, known)
            diags.append(Diagnostic(
                f"{where}: feature {name!r} is not declared in {manifest}", mark,
                hint or f"declared features: {', '.join(known)}"))


def _combinations(candidates: list[str], always: list[str],
                  raw: dict[str, Any]) -> list[tuple[str, ...]]:
    groups = [set(g) for g in raw.get("mutually-exclusive") or []]
    at_least = [set(g) for g in raw.get("at-least-one-of") or []]
    requires = {str(k): set(v) for k, v in (raw.get("requires") or {}).items()}

    def allowed(combo: tuple[str, ...]) -> bool:
        chosen = set(combo) | set(always)
        return (all(len(group & chosen) <= 1 for group in groups)
                and all(group & chosen for group in at_least)
                and all(needed <= chosen for f, needed in requires.items() if f in chosen))

    if raw["generate"] == "each-feature":
        return [(f,) for f in candidates if allowed((f,))]
    depth = int(raw.get("depth", len(candidates)))
    return [
        combo
        for size in range(0, min(depth, len(candidates)) + 1)
        for combo in itertools.combinations(candidates, size)
        if allowed(combo)
    ]


def build_feature_sets(data: dict[str, Any] | None, root: Path,
                       diags: list[Diagnostic]) -> dict[str, FeatureSet]:
    """Explicit and generated feature sets, in declaration order."""
    sets: dict[str, FeatureSet] = {}
    for name, raw in (data or {"default": {}}).items():
        name = str(name)
        mark = mark_of(data, name) if data else None
        manifest, known = _manifest(root, raw)
        listed = [str(f) for f in raw.get("features") or []]
        where = f"features.{name}"
        if "generate" not in raw:
            for key in ("depth", "exclude", "always", "mutually-exclusive", "at-least-one-of",
                        "requires", "manifest"):
                if key in raw:
                    diags.append(Diagnostic(f"{where}: {key!r} only applies to generators",
                                            mark_of(raw, key), "add `generate:` or remove it"))
            _check_names(listed, known, where, mark, manifest, diags)
            sets[name] = FeatureSet(name, tuple(listed),
                                    bool(raw.get("no-default-features", False)),
                                    bool(raw.get("all-features", False)))
            continue
        always = [str(f) for f in raw.get("always") or []]
        exclude = [str(f) for f in raw.get("exclude") or []]
        named = [str(f) for key in ("mutually-exclusive", "at-least-one-of")
                 for g in raw.get(key) or [] for f in g]
        named += [str(f) for k, v in (raw.get("requires") or {}).items() for f in [k, *v]]
        _check_names(listed + always + exclude + named, known, where, mark, manifest, diags)
        if not listed and known is None:
            diags.append(Diagnostic(f"{where}: no features to generate from", mark,
                                    "list `features:` or point `manifest:` at a Cargo.toml"))
            continue
        candidates = [f for f in (listed or known or []) if f != "default"
                      and f not in exclude and f not in always]
        combos = _combinations(candidates, always, raw)
        if not combos:
            diags.append(Diagnostic(f"{where}: the generator produces no feature set", mark,
                                    "check `features`, `exclude` and `depth`"))
        for combo in combos:
            set_name = f"{name}.{'+'.join(combo) if combo else 'none'}"
            sets[set_name] = FeatureSet(set_name, tuple(always) + combo,
                                        bool(raw.get("no-default-features", False)), False)
    return sets
