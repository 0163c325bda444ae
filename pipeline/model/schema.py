"""The matrix.yml schema (as JSON Schema, also printed by `pipeline schema`); validate() (in
pipeline.model.validator) checks a document against it with located, actionable messages.
matrix_schema() is the strict form for a document's own user-defined axes. The key
reference tables of docs/MATRIX.md are generated from it by pipeline.model.reference."""

from __future__ import annotations

import functools
from typing import Any

from pipeline.model.bench import BENCH
from pipeline.model.validator import did_you_mean, validate

__all__ = ["MATRIX_SCHEMA", "did_you_mean", "matrix_schema", "validate"]

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
SNAPSHOT_FORMAT = "a snapshot.debian.org timestamp in UTC, YYYYMMDDThhmmssZ"
SNAPSHOT = {"type": "string", "pattern": r"^[0-9]{8}T[0-9]{6}Z$",
            "description": f"{SNAPSHOT_FORMAT} (e.g. 20260115T000000Z): this kernel's packages "
                           "come from Debian's archive as it was then"}
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
                "description": "regex of the ABI; {version} is the key, {arch} the cells' "
                               "architecture (the default's -amd64 is -arm64 for arm64 cells)"},
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
        "snapshot": SNAPSHOT,
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
AXIS_NAME = {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9_-]*$",
             "description": "letters, digits, '_', '-', starting with a letter (its value is "
                            "in $AXIS_<NAME>)"}
AXIS_VALUE = {
    "type": "object",
    "description": "What cells with this value get besides $AXIS_<NAME>.",
    "properties": {
        "env": {**ENV, "description": "added to the cells' environment (after the job's)"},
        "images": {"type": "object", "propertyNames": NAME,
                   "additionalProperties": {"type": "string"},
                   "description": "job image -> the flavour these cells use instead, e.g. "
                                  "{kbuild: kbuild-arm64}"},
    },
    "additionalProperties": False,
}
AXIS = {"type": ["array", "object"], "items": ID_NAME, "minItems": 1,
        "propertyNames": ID_NAME, "additionalProperties": AXIS_VALUE, "minProperties": 1,
        "description": "the values, in order: a list of names, or name -> settings"}
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
                 "items": {"type": "string", "description": "kernel, features or a name "
                                                            "from `axes`"},
                 "properties": {"kernel": STRING_OR_STRINGS, "features": STRING_OR_STRINGS},
                 "additionalProperties": STRING_OR_STRINGS, "default": [],
                 "description": "axes this job iterates over: [kernel, features, <axis>...], "
                                "or a mapping axis -> the values to use (a list, or '*')"},
        "image": {"type": "string",
                  "description": "image flavour: built-in (pipeline/images/flavours.yml) or "
                                 "the project's images/flavours.yml (required unless `vm`)"},
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
        "bench": BENCH,
    },
    "additionalProperties": False,
}
AXIS_FILTER = {"type": ["string", "number"],
               "description": "a value of the user-defined axis of that name (see `axes`)"}
CELL_FILTER = {
    "type": "object",
    "description": "Removes every cell whose values match all the given keys.",
    "properties": {"job": {"type": "string", "description": "a job name"},
                   "kernel": {"type": ["string", "number"],
                              "description": "a kernel version; a number is taken as "
                                             "written (6.10 means \"6.10\")"},
                   "features": {"type": "string", "description": "a feature set name"}},
    "additionalProperties": AXIS_FILTER,
}
INCLUDE = {
    "type": "object",
    "description": "Extends every cell it matches (GitHub Actions semantics), or adds a cell.",
    "properties": {**CELL_FILTER["properties"],
                   "env": {**ENV, "description": "added to the cells' environment"},
                   "timeout": {"type": "integer", "minimum": 1,
                               "description": "replaces the cells' timeout (seconds)"}},
    "additionalProperties": AXIS_FILTER,
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
        "snapshot": {**SNAPSHOT, "description": f"{SNAPSHOT_FORMAT}: the snapshot of every "
                     "kernel without its own, and of images on Debian's default mirror"},
        "kernels": {"type": "object", "propertyNames": ID_NAME, "additionalProperties": KERNEL,
                    "minProperties": 1,
                    "description": "version (a quoted string) -> where its packages come from"},
        "features": {"type": "object", "propertyNames": ID_NAME,
                     "additionalProperties": FEATURE_SET,
                     "description": "name -> cargo feature set or generator (default: one "
                                    "set named default)"},
        "axes": {"type": "object", "propertyNames": AXIS_NAME, "additionalProperties": AXIS,
                 "description": "user-defined axes: name -> its values, for `over`, include "
                                "and exclude like kernel and features (see docs/MATRIX.md)"},
        "jobs": {"type": "object", "propertyNames": ID_NAME, "additionalProperties": JOB,
                 "minProperties": 1, "description": "name -> job"},
        "include": {"type": "array", "items": INCLUDE,
                    "description": "extend matching cells, or add cells (after exclude)"},
        "exclude": {"type": "array", "items": CELL_FILTER,
                    "description": "remove matching cells"},
    },
    "additionalProperties": False,
}

BUILTIN_AXES = ("kernel", "features")


@functools.lru_cache(maxsize=16)
def matrix_schema(axes: tuple[str, ...] = ()) -> dict[str, Any]:
    """MATRIX_SCHEMA for a document that declares these user axes: `over`, include and
    exclude accept exactly the built-in axes and these (MATRIX_SCHEMA itself, for editors,
    accepts any axis name there)."""
    names = [*BUILTIN_AXES, *axes]
    over = {**JOB["properties"]["over"], "items": {"type": "string", "enum": names},
            "properties": {a: STRING_OR_STRINGS for a in names}, "additionalProperties": False}
    job = {**JOB, "properties": {**JOB["properties"], "over": over}}
    values = {a: AXIS_FILTER for a in axes}
    cell = {**CELL_FILTER, "properties": {**CELL_FILTER["properties"], **values},
            "additionalProperties": False}
    settings = {k: v for k, v in INCLUDE["properties"].items() if k not in cell["properties"]}
    include = {**INCLUDE, "properties": {**cell["properties"], **settings},
               "additionalProperties": False}
    props = MATRIX_SCHEMA["properties"]
    return {**MATRIX_SCHEMA, "properties": {
        **props, "jobs": {**props["jobs"], "additionalProperties": job},
        "include": {**props["include"], "items": include},
        "exclude": {**props["exclude"], "items": cell}}}
