"""The matrix.yml schema (as JSON Schema, also printed by `pipeline schema`) and a
validator for the subset of JSON Schema it uses, with located, actionable messages."""

from __future__ import annotations

import difflib
from typing import Any

from pipeline.errors import Diagnostic
from pipeline.yamlmarks import MarkedDict, MarkedList, key_mark_of, mark_of

NAME = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"}
STRINGS = {"type": "array", "items": {"type": "string"}}
STRING_OR_STRINGS = {"type": ["string", "array"], "items": {"type": "string"}}
ENV = {"type": "object", "additionalProperties": {"type": ["string", "integer", "number",
                                                           "boolean"]}}
LIMITS = {
    "type": "object",
    "description": "Container resource limits.",
    "properties": {
        "cpus": {"type": "number", "minimum": 0.1, "description": "CPU cores"},
        "memory": {"type": "string", "pattern": r"^[0-9]+[kmgKMG]?$",
                   "description": "e.g. 4g, 512m"},
        "pids": {"type": "integer", "minimum": 16},
    },
    "additionalProperties": False,
}
STEP = {
    "type": "object",
    "required": ["run"],
    "properties": {
        "name": NAME,
        "run": {"type": "string", "description": "bash script run in the job's container"},
        "network": {"type": "boolean", "description": "give this step the network "
                    "(dependency fetching); all other steps run with --network none"},
        "results": {"type": "string", "pattern": r"^(step|build|libtest|ktap)$",
                    "description": "how the step's output becomes JUnit test cases"},
        "timeout": {"type": "integer", "minimum": 1},
        "env": ENV,
    },
    "additionalProperties": False,
}
KERNEL = {
    "type": "object",
    "description": "Where a kernel's headers and image packages come from.",
    "required": ["suite"],
    "properties": {
        "suite": {"type": "string", "description": "apt suite, e.g. bookworm, trixie-backports"},
        "sources": {**STRING_OR_STRINGS, "description": "suites enabled for apt "
                    "(default: the suite, plus its base for *-backports)"},
        "mirror": {"type": "string", "pattern": r"^(https?|file)://"},
        "components": STRING_OR_STRINGS,
        "keyring": {"type": "string", "description": "keyring file for a non-Debian archive"},
        "abi": {"type": "string", "description": "regex of the ABI; {version} is the key"},
        "headers": {"type": "string", "pattern": r"\{abi\}",
                    "description": "headers package name pattern with {abi}"},
        "image": {"type": "string", "pattern": r"\{abi\}",
                  "description": "kernel image package name pattern with {abi}"},
    },
    "additionalProperties": False,
}
FEATURE_SET = {
    "type": "object",
    "description": "A named cargo feature set, or a generator of sets (cargo-hack style).",
    "properties": {
        "features": {**STRINGS, "description": "features of the set; for a generator: the "
                     "candidate features (default: all of the manifest's, except default)"},
        "no-default-features": {"type": "boolean"},
        "all-features": {"type": "boolean"},
        "generate": {"type": "string", "enum": ["each-feature", "powerset"],
                     "description": "expand into one set per feature, or per combination"},
        "manifest": {"type": "string", "description": "Cargo.toml the features are checked "
                     "against (default: userspace/Cargo.toml, else Cargo.toml)"},
        "depth": {"type": "integer", "minimum": 1,
                  "description": "powerset: largest combination size"},
        "exclude": {**STRINGS, "description": "features never used by the generator"},
        "always": {**STRINGS, "description": "features added to every generated set"},
        "mutually-exclusive": {"type": "array", "items": STRINGS,
                               "description": "groups of features never combined"},
        "at-least-one-of": {"type": "array", "items": STRINGS,
                            "description": "groups of which every set has at least one"},
        "requires": {"type": "object", "additionalProperties": STRINGS,
                     "description": "feature -> features it needs in the same set"},
    },
    "additionalProperties": False,
}
VM = {
    "type": "object",
    "description": "Boot the cell's kernel (the locked image package) in QEMU with a busybox "
                   "initramfs and run `command`; paths may use $SRC, $NEEDS and the job's env.",
    "required": ["command"],
    "properties": {
        "command": {"type": "string", "description": "shell command run by the VM's init"},
        "modules": {**STRINGS, "description": "kernel modules copied to /lib/modules-test/"},
        "binaries": {**STRINGS, "description": "static executables copied to /usr/bin/"},
        "files": {"type": "object", "additionalProperties": {"type": "string"},
                  "description": "VM path -> host path (e.g. $SRC/kernel/tests/x.sh)"},
        "memory": {"type": "integer", "minimum": 64, "description": "MiB"},
        "boot-timeout": {"type": "integer", "minimum": 1},
        "test-timeout": {"type": "integer", "minimum": 1,
                         "description": "longest wait for the next KTAP result"},
        "append": {"type": "string", "description": "extra kernel command line"},
        "results": {"type": "string", "pattern": r"^(step|ktap)$"},
    },
    "additionalProperties": False,
}
JOB = {
    "type": "object",
    "properties": {
        "over": {"type": ["array", "object"],
                 "items": {"type": "string", "enum": ["kernel", "features"]},
                 "properties": {"kernel": STRING_OR_STRINGS, "features": STRING_OR_STRINGS},
                 "additionalProperties": False,
                 "description": "axes this job iterates over: [kernel, features], or a "
                                "mapping axis -> the values to use (a list, or '*')"},
        "image": {"type": "string", "description": "image flavour from images/flavours.yml"},
        "needs": {**STRINGS, "description": "jobs (name or exact id) that must pass first"},
        "inputs": {**STRINGS, "description": "path globs whose changes affect this job"},
        "env": ENV,
        "timeout": {"type": "integer", "minimum": 1, "description": "seconds"},
        "limits": LIMITS,
        "run": {"type": "string", "description": "shorthand for a single step"},
        "results": STEP["properties"]["results"],
        "steps": {"type": "array", "items": STEP, "minItems": 1},
        "vm": VM,
    },
    "additionalProperties": False,
}
CELL_FILTER = {
    "type": "object",
    "properties": {"job": {"type": "string"}, "kernel": {"type": ["string", "number"]},
                   "features": {"type": "string"}},
    "additionalProperties": False,
}
MATRIX_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "kmatrix matrix.yml",
    "type": "object",
    "required": ["kernels", "jobs"],
    "properties": {
        "version": {"type": "integer", "enum": [1]},
        "defaults": {
            "type": "object",
            "properties": {
                "timeout": {"type": "integer", "minimum": 1},
                "limits": LIMITS,
                "env": ENV,
                "image-base": {"type": "string", "enum": ["mmdebstrap", "registry"]},
                "registry-image": {"type": "string"},
            },
            "additionalProperties": False,
        },
        "kernels": {"type": "object", "additionalProperties": KERNEL, "minProperties": 1},
        "features": {"type": "object", "additionalProperties": FEATURE_SET},
        "jobs": {"type": "object", "additionalProperties": JOB, "minProperties": 1},
        "include": {"type": "array", "items": {**CELL_FILTER, "additionalProperties": True}},
        "exclude": {"type": "array", "items": CELL_FILTER},
    },
    "additionalProperties": False,
}

_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool,
    "integer": int, "number": (int, float),
}


def _type_ok(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    kinds = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
             int: "an integer", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def did_you_mean(word: str, choices: list[str]) -> str | None:
    """A ' did you mean X?' suggestion for a near-miss name."""
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def validate(value: Any, schema: dict[str, Any], path: str = "") -> list[Diagnostic]:
    """Check `value` (from the marked YAML loader) against `schema`."""
    return list(_validate(value, schema, path, None, None))


def _validate(value, schema, path, parent, key):
    mark = mark_of(parent, key) if parent is not None else mark_of(value)
    where = path or "the file"
    types = schema.get("type")
    if types:
        names = types if isinstance(types, list) else [types]
        if not any(_type_ok(value, t) for t in names):
            expected = " or ".join(
                {"object": "a mapping", "array": "a list"}.get(t, f"a {t}") for t in names
            )
            yield Diagnostic(f"{where} is {_describe(value)}", mark, f"expected {expected}")
            return
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(repr(c) for c in schema["enum"])
        hint = did_you_mean(str(value), [str(c) for c in schema["enum"]])
        yield Diagnostic(f"{where}: {value!r} is not allowed", mark,
                         f"expected one of {choices}" + (f"; {hint}" if hint else ""))
        return
    if isinstance(value, str) and "pattern" in schema:
        import re

        if not re.search(schema["pattern"], value):
            yield Diagnostic(f"{where}: {value!r} does not match {schema['pattern']!r}", mark,
                             schema.get("description", "see `pipeline schema`"))
    if isinstance(value, int | float) and not isinstance(value, bool) and "minimum" in schema \
            and value < schema["minimum"]:
        yield Diagnostic(f"{where}: {value} is too small", mark,
                         f"expected at least {schema['minimum']}")
    if isinstance(value, dict):
        yield from _validate_object(value, schema, path)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            yield Diagnostic(f"{where} is empty", mark,
                             f"expected at least {schema['minItems']} item(s)")
        items = schema.get("items")
        if items:
            for index, item in enumerate(value):
                yield from _validate(item, items, f"{path}[{index}]", value, index)


def _validate_object(value, schema, path):
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for required in schema.get("required", []):
        if required not in value:
            yield Diagnostic(f"{path or 'the file'}: missing key {required!r}", mark_of(value),
                             f"add `{required}:`")
    if len(value) < schema.get("minProperties", 0):
        yield Diagnostic(f"{path or 'the file'} is empty", mark_of(value),
                         "declare at least one entry")
    for key, item in value.items():
        sub = f"{path}.{key}" if path else str(key)
        if key in props:
            yield from _validate(item, props[key], sub, value, key)
        elif extra is False:
            hint = did_you_mean(str(key), list(props))
            allowed = "allowed keys: " + ", ".join(props)
            yield Diagnostic(f"unknown key {key!r} in {path or 'the top level'}",
                             key_mark_of(value, key), f"{hint} {allowed}" if hint else allowed)
        elif isinstance(extra, dict):
            yield from _validate(item, extra, sub, value, key)


def marked(value: Any) -> bool:
    """Whether a value came from the marked loader."""
    return isinstance(value, MarkedDict | MarkedList)
