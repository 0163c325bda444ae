"""Cargo feature sets: explicit ones and cargo-hack style generators (pure apart from
reading the crate's Cargo.toml to check feature names)."""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import Diagnostic
from pipeline.model.schema import did_you_mean
from pipeline.model.yamlmarks import Mark, key_mark_of, mark_of

DEFAULT_MANIFESTS = ("userspace/Cargo.toml", "Cargo.toml")
MAX_GENERATED = 4096  # feature sets one generator may produce (before constraints)
GENERATOR_ONLY = ("depth", "exclude", "always", "mutually-exclusive", "at-least-one-of",
                  "requires", "manifest")
# generated set names are `<generator>.<f1>+<f2>` and become part of job ids
_GENERATED_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


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


def _read_manifest(path: Path) -> tuple[list[str] | None, str | None]:
    """Feature names of a Cargo.toml, or None and why it could not be read."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "file not found"
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except OSError as exc:
        return None, f"cannot read it ({exc.strerror})"
    except tomllib.TOMLDecodeError as exc:
        return None, f"not valid TOML ({exc})"
    declared = data.get("features")
    declared = declared if isinstance(declared, dict) else {}
    features = set(declared)
    hidden = {v[4:] for values in declared.values() if isinstance(values, list)
              for v in values if isinstance(v, str) and v.startswith("dep:")}
    deps = data.get("dependencies")
    for name, dep in (deps if isinstance(deps, dict) else {}).items():
        if isinstance(dep, dict) and dep.get("optional") and name not in hidden:
            features.add(name)  # implicit feature of an optional dependency (no `dep:` use)
    return sorted(features), None


def _shown(path: Path | None) -> str:
    """A manifest path as the user wrote it: relative to the working directory if inside."""
    if path is None:
        return "Cargo.toml"
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def manifest_features(path: Path) -> list[str] | None:
    """Feature names declared by a Cargo.toml (None when it cannot be read)."""
    return _read_manifest(path)[0]


class _Manifests:
    """Cargo.toml files read once per matrix; problems reported once per file."""

    def __init__(self, root: Path, diags: list[Diagnostic]) -> None:
        self.root = root
        self.diags = diags
        self.cache: dict[Path, tuple[list[str] | None, str | None]] = {}
        self.default: tuple[Path | None, list[str] | None] | None = None

    def read(self, path: Path) -> tuple[list[str] | None, str | None]:
        if path not in self.cache:
            self.cache[path] = _read_manifest(path)
        return self.cache[path]

    def for_set(self, name: str, raw: dict[str, Any]) -> tuple[Path | None, list[str] | None]:
        if raw.get("manifest"):
            path = self.root / raw["manifest"]
            known, problem = self.read(path)
            if problem:
                self.diags.append(Diagnostic(
                    f"features.{name}.manifest: {raw['manifest']}: {problem}",
                    mark_of(raw, "manifest"), "point `manifest:` at the crate's Cargo.toml "
                    "(relative to matrix.yml)"))
            return path, known
        if self.default is None:
            self.default = (None, None)
            for candidate in DEFAULT_MANIFESTS:
                path = self.root / candidate
                if path.is_file():
                    known, problem = self.read(path)
                    if problem:
                        at = re.search(r"at line (\d+), column (\d+)", problem)
                        self.diags.append(Diagnostic(
                            f"cannot check feature names: {problem}",
                            Mark(str(path), int(at[1]), int(at[2])) if at else
                            Mark(str(path), 1, 1), "fix the Cargo.toml", severity="warning"))
                    self.default = (path, known)
                    break
        return self.default


def _check_names(names: list[tuple[str, Mark | None]], known: list[str] | None, where: str,
                 manifest: Path | None, diags: list[Diagnostic]) -> None:
    if known is None:
        return
    for name, mark in names:
        if name not in known:
            hint = did_you_mean(name, known)
            diags.append(Diagnostic(
                f"{where}: feature {name!r} is not declared in {_shown(manifest)}", mark,
                hint or f"declared features: {', '.join(known)}"))


def _items(raw: dict[str, Any], key: str) -> list[tuple[str, Mark | None]]:
    """(feature, mark) for a list of features under `key`."""
    values = raw.get(key) or []
    return [(str(v), mark_of(values, i)) for i, v in enumerate(values)]


def _group_items(raw: dict[str, Any], key: str) -> list[tuple[str, Mark | None]]:
    out = []
    for group in raw.get(key) or []:
        out += [(str(v), mark_of(group, i)) for i, v in enumerate(group)]
    return out


def _unique(items: list[tuple[str, Mark | None]], where: str,
            diags: list[Diagnostic]) -> list[str]:
    seen: dict[str, None] = {}
    for name, mark in items:
        if name in seen:
            diags.append(Diagnostic(f"{where}: feature {name!r} is listed twice", mark,
                                    "remove the repetition", severity="warning"))
        seen[name] = None
    return list(seen)


def _count(generate: str, candidates: int, depth: int) -> int:
    if generate == "each-feature":
        return candidates
    return sum(math.comb(candidates, k) for k in range(min(depth, candidates) + 1))


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
    origin: dict[str, str] = {}  # set name -> the declaration that made it
    manifests = _Manifests(root, diags)

    def add(feature_set: FeatureSet, source: str, mark: Mark | None) -> None:
        if feature_set.name in sets:
            diags.append(Diagnostic(
                f"feature set {feature_set.name!r} is made twice: by "
                f"{origin[feature_set.name]} and by {source}", mark,
                "rename the explicit set or the generator"))
            return
        sets[feature_set.name] = feature_set
        origin[feature_set.name] = source

    for name, raw in (data or {"default": {}}).items():
        name = str(name)
        mark = mark_of(data, name) if data else None
        where = f"features.{name}"
        manifest, known = manifests.for_set(name, raw)
        listed = _unique(_items(raw, "features"), where, diags)
        if "generate" not in raw:
            for key in GENERATOR_ONLY:
                if key in raw:
                    diags.append(Diagnostic(f"{where}: {key!r} only applies to generators",
                                            key_mark_of(raw, key),
                                            "add `generate:` or remove it"))
            _check_names(_items(raw, "features"), known, where, manifest, diags)
            add(FeatureSet(name, tuple(listed), bool(raw.get("no-default-features", False)),
                           bool(raw.get("all-features", False))), f"{where}", mark)
            continue
        _generate(name, raw, mark, listed, manifest, known, diags, add)
    return sets


def _check_generator_keys(where: str, raw: dict[str, Any], listed: list[str],
                          diags: list[Diagnostic]) -> None:
    """Keys that make no sense for this generator."""
    if "depth" in raw and raw["generate"] != "powerset":
        diags.append(Diagnostic(f"{where}: 'depth' only applies to `generate: powerset`",
                                key_mark_of(raw, "depth"), "remove it"))
    if raw.get("all-features"):
        diags.append(Diagnostic(f"{where}: 'all-features' would make every generated set "
                                "the same", key_mark_of(raw, "all-features"), "remove it"))
    if "features" in raw and not listed:
        diags.append(Diagnostic(f"{where}.features is empty", mark_of(raw, "features"),
                                "list the candidate features, or remove `features:` to use "
                                "all of the manifest's"))


def _generator_names(raw: dict[str, Any]) -> list[tuple[str, Mark | None]]:
    """Every feature a generator names, with its mark (to check against the manifest)."""
    named = _items(raw, "features") + _items(raw, "always") + _items(raw, "exclude")
    named += _group_items(raw, "mutually-exclusive") + _group_items(raw, "at-least-one-of")
    requires = raw.get("requires") or {}
    named += [(str(k), key_mark_of(requires, k)) for k in requires]
    named += [(str(f), mark_of(v, i)) for v in requires.values() for i, f in enumerate(v)]
    return named


def _generate(name: str, raw: dict[str, Any], mark: Mark | None, listed: list[str],
              manifest: Path | None, known: list[str] | None, diags: list[Diagnostic],
              add: Any) -> None:
    """Check a generator's keys and add the feature sets it makes (unless it has errors)."""
    where = f"features.{name}"
    generate = raw["generate"]
    errors = len([d for d in diags if d.severity == "error"])
    _check_generator_keys(where, raw, listed, diags)
    always = _unique(_items(raw, "always"), where, diags)
    exclude = _unique(_items(raw, "exclude"), where, diags)
    _check_names(_generator_names(raw), known, where, manifest, diags)
    for feature, item_mark in _items(raw, "always"):
        if feature in exclude:
            diags.append(Diagnostic(f"{where}: feature {feature!r} is both in `always` and "
                                    "in `exclude`", item_mark, "keep it in one of them"))
    if not listed and known is None and "features" not in raw:
        diags.append(Diagnostic(f"{where}: no features to generate from", mark,
                                "list `features:` or point `manifest:` at a Cargo.toml"))
        return
    candidates = [f for f in (listed or known or []) if f != "default"
                  and f not in exclude and f not in always]
    for feature in candidates + always:
        if not _GENERATED_NAME.match(feature):
            diags.append(Diagnostic(f"{where}: feature {feature!r} cannot be part of a "
                                    "generated set name", mark,
                                    "generators take plain feature names (letters, digits, "
                                    "'_', '-', '.'); declare such a set explicitly"))
    depth = int(raw.get("depth", len(candidates)))
    count = _count(generate, len(candidates), depth)
    if count > MAX_GENERATED:
        diags.append(Diagnostic(
            f"{where}: {generate} of {len(candidates)} features"
            + (f" up to depth {depth}" if generate == "powerset" else "")
            + f" makes {count} combinations (at most {MAX_GENERATED})", mark,
            "lower `depth`, `exclude` features or list fewer `features`"))
    if len([d for d in diags if d.severity == "error"]) > errors:
        return
    if not candidates and generate == "each-feature":
        diags.append(Diagnostic(f"{where}: the generator has no candidate features left",
                                mark, "every feature is in `exclude` or `always`, or is "
                                "`default`: list other `features`"))
        return
    combos = _combinations(candidates, always, raw)
    if not combos:
        diags.append(Diagnostic(f"{where}: the generator produces no feature set", mark,
                                "no combination satisfies `at-least-one-of`, `requires` and "
                                "`mutually-exclusive`; check them with `features`, `exclude` "
                                "and `depth`"))
    for combo in combos:
        set_name = f"{name}.{'+'.join(combo) if combo else 'none'}"
        add(FeatureSet(set_name, tuple(always) + combo,
                       bool(raw.get("no-default-features", False)), False),
            f"generator {where}", mark)
