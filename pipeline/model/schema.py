"""The matrix.yml schema (as JSON Schema, also printed by `pipeline schema`) and a
validator for the subset of JSON Schema it uses, with located, actionable messages.
The key reference tables of docs/MATRIX.md are generated from it by pipeline.model.reference."""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

from pipeline.errors import Diagnostic
from pipeline.model.yamlmarks import (
    Mark,
    describe,
    key_mark_of,
    mark_of,
    source_text,
)

NAME = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._+-]*$",
        "description": "letters, digits, '.', '_', '+', '-'; no spaces or '/'"}
# names that become parts of job ids (`kmod-build/6.12/default`): no '/', no spaces
ID_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$",
           "description": "letters, digits, '.', '_', '+', '-' (it becomes part of job ids)"}
ENV_NAME = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$",
            "description": "an environment variable name: letters, digits, '_'"}
STRINGS = {"type": "array", "items": {"type": "string"}}
STRING_OR_STRINGS = {"type": ["string", "array"], "items": {"type": "string"}}
ENV = {"type": "object", "propertyNames": ENV_NAME,
       "additionalProperties": {"type": ["string", "integer", "number", "boolean"]},
       "description": "environment variables (booleans become true/false)"}
LIMITS = {
    "type": "object",
    "description": "Container resource limits.",
    "properties": {
        "cpus": {"type": "number", "minimum": 0.1, "default": 2, "description": "CPU cores"},
        "memory": {"type": "string", "pattern": r"^[0-9]+[kmgKMG]?$", "default": "4g",
                   "description": "a size such as 4g or 512m"},
        "pids": {"type": "integer", "minimum": 16, "default": 4096,
                 "description": "most processes at once"},
    },
    "additionalProperties": False,
}
STEP = {
    "type": "object",
    "description": "One command, run in its own container over the job's shared $WORK.",
    "required": ["run"],
    "properties": {
        "name": {**NAME, "description": "unique in the job (default: step1, step2, ...); "
                                        "letters, digits, '.', '_', '+', '-'"},
        "run": {"type": "string", "description": "bash script run in the job's container"},
        "network": {"type": "boolean", "default": False,
                    "description": "give this step the network (dependency fetching); all "
                                   "other steps run with --network none"},
        "results": {"type": "string", "enum": ["step", "build", "libtest", "ktap"],
                    "default": "step",
                    "description": "how the step's output becomes JUnit test cases"},
        "timeout": {"type": "integer", "minimum": 1,
                    "description": "seconds (default: what is left of the job's timeout)"},
        "env": {**ENV, "description": "added to the job's environment for this step"},
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
        "mirror": {"type": "string", "pattern": r"^(https?|file)://",
                   "default": "http://deb.debian.org/debian",
                   "description": "an http://, https:// or file:// URL of the archive"},
        "components": {**STRING_OR_STRINGS, "default": ["main"],
                       "description": "archive components"},
        "keyring": {"type": "string", "default": "",
                    "description": "keyring file for a non-Debian archive"},
        "abi": {"type": "string", "default": r"{version}(?:\.[0-9]+)*(?:-[0-9]+|\+deb[0-9]+)-amd64",
                "description": "regex of the ABI; {version} is the key"},
        "headers": {"type": "string", "pattern": r"\{abi\}", "default": "linux-headers-{abi}",
                    "description": "a headers package name containing {abi}, e.g. "
                                   "linux-headers-{abi}"},
        "image": {"type": "string", "pattern": r"\{abi\}",
                  "default": "linux-image-{abi}-unsigned|linux-binary-{abi}|linux-image-{abi}",
                  "description": "kernel image package names containing {abi}, e.g. "
                                 "linux-image-{abi}-unsigned (alternatives: a|b, first found "
                                 "wins)"},
        "source": {"type": "string", "pattern": r"^linux-source-[0-9]",
                   "description": "a Debian linux-source package (e.g. linux-source-7.3) to "
                                  "build the kernel from instead of installing headers and "
                                  "image packages"},
    },
    "additionalProperties": False,
}
FEATURE_SET = {
    "type": "object",
    "description": "A named cargo feature set, or a generator of sets (cargo-hack style).",
    "properties": {
        "features": {**STRINGS, "description": "features of the set; for a generator: the "
                     "candidate features (default: all of the manifest's, except default)"},
        "no-default-features": {"type": "boolean", "default": False,
                                "description": "pass --no-default-features"},
        "all-features": {"type": "boolean", "default": False,
                         "description": "pass --all-features (not for generators)"},
        "generate": {"type": "string", "enum": ["each-feature", "powerset"],
                     "description": "expand into one set per feature, or per combination"},
        "manifest": {"type": "string", "description": "generators: Cargo.toml the features "
                     "are checked against (default: userspace/Cargo.toml, else Cargo.toml)"},
        "depth": {"type": "integer", "minimum": 1,
                  "description": "powerset: largest combination size (default: all)"},
        "exclude": {**STRINGS, "description": "generators: features never used"},
        "always": {**STRINGS, "description": "generators: features added to every set"},
        "mutually-exclusive": {"type": "array", "items": STRINGS,
                               "description": "generators: groups of features never combined"},
        "at-least-one-of": {"type": "array", "items": {**STRINGS, "minItems": 1},
                            "description": "generators: groups of which every set has at "
                                           "least one"},
        "requires": {"type": "object", "additionalProperties": STRINGS,
                     "description": "generators: feature -> features it needs in the same set"},
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
                  "description": "absolute VM path -> host path (e.g. $SRC/kernel/tests/x.sh)"},
        "memory": {"type": "integer", "minimum": 64, "maximum": 1048576, "default": 512,
                   "description": "MiB"},
        "boot-timeout": {"type": "integer", "minimum": 1, "default": 60,
                         "description": "seconds until the init reports it started"},
        "test-timeout": {"type": "integer", "minimum": 1,
                         "description": "longest wait for the next KTAP result (default: none)"},
        "append": {"type": "string", "default": "", "description": "extra kernel command line"},
        "kernel": {"type": "string", "description": "boot this kernel image (e.g. a need's "
                   "artifact: $NEEDS/kmod-build/$KERNEL/bzImage) instead of the locked "
                   "Debian image package"},
        "results": {"type": "string", "enum": ["step", "ktap"], "default": "ktap",
                    "description": "ktap: the console's KTAP lines become test cases"},
    },
    "additionalProperties": False,
}


def _kinds() -> list[str]:
    """The built-in job kinds: the values `kind:` allows."""
    from pipeline.model.recipes import recipe_names

    return recipe_names()


JOB = {
    "type": "object",
    "description": "A job: expanded into one cell per combination of the axes in `over`.",
    "properties": {
        "kind": {"type": "string", "enum": _kinds(),
                 "description": "a built-in recipe (pipeline/model/recipes/<kind>.yml) whose keys "
                                "the job's own keys override; env is merged"},
        "over": {"type": ["array", "object"],
                 "items": {"type": "string", "enum": ["kernel", "features"]},
                 "properties": {"kernel": STRING_OR_STRINGS, "features": STRING_OR_STRINGS},
                 "additionalProperties": False, "default": [],
                 "description": "axes this job iterates over: [kernel, features], or a "
                                "mapping axis -> the values to use (a list, or '*')"},
        "image": {"type": "string", "description": "image flavour from images/flavours.yml "
                                                   "(required unless `vm`)"},
        "needs": {**STRINGS, "description": "jobs (name or exact id) that must pass first"},
        "inputs": {**STRINGS, "description": "path globs whose changes affect this job"},
        "env": {**ENV, "description": "environment of every step (after defaults.env)"},
        "secrets": {"type": "array", "items": ENV_NAME,
                    "description": "names of variables passed from the environment of "
                                   "`pipeline` to every step; their values are masked in "
                                   "logs and reports"},
        "timeout": {"type": "integer", "minimum": 1,
                    "description": "seconds for the whole job (default: defaults.timeout)"},
        "limits": {**LIMITS, "description": "container limits (default: defaults.limits)"},
        "run": {"type": "string", "description": "shorthand for a single step named run"},
        "results": {**STEP["properties"]["results"], "description": "with `run`: how its "
                    "output becomes JUnit test cases"},
        "steps": {"type": "array", "items": STEP, "minItems": 1,
                  "description": "the commands, in order; the job fails at the first failure"},
        "vm": VM,
    },
    "additionalProperties": False,
}
CELL_FILTER = {
    "type": "object",
    "description": "Removes every cell whose values match all the given keys.",
    "properties": {"job": {"type": "string", "description": "a job name"},
                   "kernel": {"type": ["string", "number"],
                              "description": "a kernel version; a number is taken as "
                                             "written (6.10 means \"6.10\")"},
                   "features": {"type": "string", "description": "a feature set name"}},
    "additionalProperties": False,
}
INCLUDE = {
    "type": "object",
    "description": "Extends every cell it matches (GitHub Actions semantics), or adds a cell.",
    "properties": {**CELL_FILTER["properties"],
                   "env": {**ENV, "description": "added to the cells' environment"},
                   "timeout": {"type": "integer", "minimum": 1,
                               "description": "replaces the cells' timeout (seconds)"}},
    "additionalProperties": False,
}
MATRIX_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "kmatrix matrix.yml",
    "type": "object",
    "required": ["kernels", "jobs"],
    "properties": {
        "version": {"type": "integer", "enum": [1], "default": 1,
                    "description": "the file format version"},
        "defaults": {
            "type": "object",
            "description": "Values every job starts from.",
            "properties": {
                "timeout": {"type": "integer", "minimum": 1, "default": 1800,
                            "description": "seconds per job"},
                "limits": LIMITS,
                "env": {**ENV, "description": "environment of every job"},
                "image-base": {"type": "string", "enum": ["mmdebstrap", "registry"],
                               "default": "mmdebstrap",
                               "description": "how image roots are made: bootstrapped "
                                              "locally, or FROM <registry-image>:<suite>"},
                "registry-image": {"type": "string", "default": "debian",
                                   "description": "base image name for image-base: registry"},
            },
            "additionalProperties": False,
        },
        "kernels": {"type": "object", "propertyNames": ID_NAME, "additionalProperties": KERNEL,
                    "minProperties": 1,
                    "description": "version (a quoted string) -> where its packages come from"},
        "features": {"type": "object", "propertyNames": ID_NAME,
                     "additionalProperties": FEATURE_SET,
                     "description": "name -> cargo feature set or generator (default: one "
                                    "set named default)"},
        "jobs": {"type": "object", "propertyNames": ID_NAME, "additionalProperties": JOB,
                 "minProperties": 1, "description": "name -> job"},
        "include": {"type": "array", "items": INCLUDE,
                    "description": "extend matching cells, or add cells (after exclude)"},
        "exclude": {"type": "array", "items": CELL_FILTER,
                    "description": "remove matching cells"},
    },
    "additionalProperties": False,
}

_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool,
    "integer": int, "number": (int, float),
}
_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string",
               "boolean": "a boolean (true/false)", "integer": "an integer",
               "number": "a number"}
# what the names of a mapping's keys are called in messages
_KEY_LABELS = {"kernels": "kernel version", "features": "feature set name", "jobs": "job name",
               "env": "variable name"}


def _type_ok(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def did_you_mean(word: str, choices: list[str]) -> str | None:
    """A ' did you mean X?' suggestion for a near-miss name."""
    word = str(word)
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if not close and len(word) >= 3:  # `each` for `each-feature`
        close = [c for c in names if c.startswith(word) or (word.startswith(c) and len(c) >= 3)]
    return f"did you mean {close[0]!r}?" if close else None


def validate(value: Any, schema: dict[str, Any], path: str = "",
             root_mark: Mark | None = None) -> list[Diagnostic]:
    """Check `value` (from the marked YAML loader) against `schema`.

    `root_mark` locates problems of the document itself when it is not a mapping or list
    (an empty file, a lone scalar).
    """
    return list(_validate(value, schema, path, None, None, root_mark))


def _quote_hint(parent: Any, key: Any, value: Any) -> str:
    if parent is None or isinstance(value, dict | list) or value is None:
        return ""
    text = source_text(parent, key)
    hint = f'; quote it ("{text}")'
    if isinstance(value, float) and text != str(value):
        hint += f": YAML reads {text} as the number {value}"
    elif isinstance(value, bool):
        hint += f": YAML reads {text} as {'true' if value else 'false'}"
    return hint


def _type_hint(value: Any, names: list[str], parent: Any, key: Any) -> str:
    words = [_TYPE_WORDS[t] for t in names if not (t == "integer" and "number" in names)]
    expected = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    hint = f"expected {expected}"
    if value is None:
        if "object" in names:
            hint += "; write {} for an empty mapping"
        elif "array" in names:
            hint += "; write [] for an empty list"
        elif "string" in names:
            hint += '; write "" for an empty string'
    elif "string" in names and not isinstance(value, dict | list):
        hint += _quote_hint(parent, key, value)
    elif "array" in names and not isinstance(value, dict):
        hint += f" such as [{source_text(parent, key) if parent is not None else value}]"
    return hint


def _validate(value, schema, path, parent, key, root_mark):
    mark = (mark_of(parent, key) if parent is not None else mark_of(value)) or root_mark
    where = path or "the file"
    types = schema.get("type")
    if types:
        names = types if isinstance(types, list) else [types]
        if not any(_type_ok(value, t) for t in names):
            if path:
                yield Diagnostic(f"{where} is {describe(value)}", mark,
                                 _type_hint(value, names, parent, key))
            else:
                yield Diagnostic("the file is " + ("empty (no YAML document)" if value is None
                                                   else describe(value)), mark,
                                 "expected a mapping with `kernels:` and `jobs:` at the top "
                                 "level (see `pipeline schema`)")
            return
    if isinstance(value, float) and not math.isfinite(value):
        yield Diagnostic(f"{where} is {value}", mark, "expected a finite number")
        return
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(repr(c) for c in schema["enum"])
        hint = did_you_mean(str(value), [str(c) for c in schema["enum"]])
        yield Diagnostic(f"{where}: {_short(value)} is not allowed", mark,
                         f"expected one of {choices}" + (f"; {hint}" if hint else ""))
        return
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"],
                                                                         value):
        yield Diagnostic(f"{where}: {_short(value)} is not valid", mark,
                         "expected " + schema.get("description", f"a match of "
                                                  f"{schema['pattern']!r}"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            yield Diagnostic(f"{where}: {value} is too small", mark,
                             f"expected at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            yield Diagnostic(f"{where}: {_short(value)} is too large", mark,
                             f"expected at most {schema['maximum']}")
    if isinstance(value, dict):
        yield from _validate_object(value, schema, path, mark)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            yield Diagnostic(f"{where} is empty", mark,
                             f"expected at least {schema['minItems']} item(s)")
        items = schema.get("items")
        if items:
            for index, item in enumerate(value):
                yield from _validate(item, items, f"{path}[{index}]", value, index, mark)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit - 4] + "...'"


def _validate_object(value, schema, path, mark):
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    names = schema.get("propertyNames")
    place = path or "the top level"
    for required in schema.get("required", []):
        if required not in value:
            yield Diagnostic(f"{place}: missing key {required!r}", mark_of(value) or mark,
                             f"add `{required}:`")
    if len(value) < schema.get("minProperties", 0):
        yield Diagnostic(f"{path or 'the file'} is empty", mark_of(value) or mark,
                         "declare at least one entry")
    for key, item in value.items():
        sub = f"{path}.{key}" if path else str(key)
        if names is not None:
            problem = _key_problem(value, key, names, path)
            if problem:
                yield problem
                continue
        if key in props:
            yield from _validate(item, props[key], sub, value, key, mark)
        elif extra is False:
            hint = did_you_mean(str(key), list(props))
            allowed = "allowed keys: " + ", ".join(props)
            yield Diagnostic(f"unknown key {source_text(value, key, of_key=True)!r} in {place}"
                             if isinstance(key, str) else
                             f"unknown key {source_text(value, key, of_key=True)} in {place}",
                             key_mark_of(value, key), f"{hint} {allowed}" if hint else allowed)
        elif isinstance(extra, dict):
            yield from _validate(item, extra, sub, value, key, mark)


def _key_problem(mapping: Any, key: Any, names: dict[str, Any], path: str) -> Diagnostic | None:
    label = _KEY_LABELS.get(path.rsplit(".", 1)[-1], "key")
    written = source_text(mapping, key, of_key=True)
    if not isinstance(key, str):
        hint = f'quote it ("{written}")'
        if isinstance(key, float) and written != str(key):
            hint += f": YAML reads {written} as the number {key}"
        elif isinstance(key, bool):
            hint += f": YAML reads {written} as {'true' if key else 'false'}"
        return Diagnostic(f"{path}: {label} {written} is not a string",
                          key_mark_of(mapping, key), hint)
    if not re.search(names["pattern"], key):
        return Diagnostic(f"{path}: {label} {_short(key)} is not valid",
                          key_mark_of(mapping, key),
                          "use " + names.get("description", f"a match of {names['pattern']!r}"))
    return None
