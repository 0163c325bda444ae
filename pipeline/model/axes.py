"""User-defined axes (`axes:` in matrix.yml): their values and the settings a value carries.

`axes: {cc: [gcc, clang]}` declares an axis `cc` with two values; the mapping form gives
values settings: `{cc: {gcc: {}, clang: {env: {LLVM: "1"}, images: {kbuild: kbuild-clang}}}}`.
A cell with a value gets `$AXIS_<NAME>` (`$AXIS_CC=clang`), the value's `env`, and uses
the flavours its `images` map to instead of its job's image.

The axis named `arch` is the Debian architecture of the cell's kernel: its values must be
architectures kmatrix can lock, build for and boot (ARCHITECTURES); a cell with
`arch: arm64` uses the kernel's arm64 packages (matrix.lock entry `6.12:arm64`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import Diagnostic
from pipeline.model.schema import did_you_mean
from pipeline.model.yamlmarks import Mark, key_mark_of, mark_of

BUILTIN_AXES = ("kernel", "features")
# include/exclude keys besides the axes: an axis may not be named like them
RESERVED = ("job", *BUILTIN_AXES, "env", "timeout")
ARCH_AXIS = "arch"
ARCHITECTURES = ("amd64", "arm64")  # Debian architectures with a QEMU machine (run/vm.py)
NATIVE_ARCH = "amd64"
KERNEL_NAMES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}  # uname -m -> Debian


def axis_variable(name: str) -> str:
    """The environment variable holding a user axis's value: `cc` -> AXIS_CC."""
    return "AXIS_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


@dataclass(frozen=True)
class AxisValue:
    """One value of a user axis and what it sets in its cells."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)  # job image -> flavour used instead


@dataclass(frozen=True)
class Axis:
    """A user-defined axis: its values in declaration order."""

    name: str
    values: dict[str, AxisValue]
    mark: Mark | None = None

    @property
    def variable(self) -> str:
        """Its environment variable (AXIS_<NAME>)."""
        return axis_variable(self.name)


def _strings(data: Any) -> dict[str, str]:
    out = {}
    for key, value in (data or {}).items():
        out[str(key)] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def _check_name(name: str, raw: Any, diags: list[Diagnostic]) -> bool:
    if name in RESERVED:
        diags.append(Diagnostic(
            f"axes.{name}: {name!r} cannot name a user axis", key_mark_of(raw, name),
            "kernel and features are built in; job, env and timeout are keys of include "
            "and exclude entries: choose another name"))
        return False
    return True


def _values(name: str, raw: Any, diags: list[Diagnostic]) -> dict[str, AxisValue]:
    """The values of one axis (a list of names, or name -> settings)."""
    values: dict[str, AxisValue] = {}
    if isinstance(raw, list):
        for index, value in enumerate(raw):
            if str(value) in values:
                diags.append(Diagnostic(f"axes.{name}: value {str(value)!r} is listed twice",
                                        mark_of(raw, index), "list each value once"))
            values[str(value)] = AxisValue(str(value))
        return values
    for value, settings in raw.items():
        settings = settings or {}
        values[str(value)] = AxisValue(str(value), env=_strings(settings.get("env")),
                                       images=_strings(settings.get("images")))
    return values


def _check_arch(axis: Axis, raw: Any, diags: list[Diagnostic]) -> None:
    for index, value in enumerate(axis.values):
        if value not in ARCHITECTURES:
            where = mark_of(raw, index) if isinstance(raw, list) else key_mark_of(raw, value)
            hint = (f"Debian calls it {KERNEL_NAMES[value]!r};" if value in KERNEL_NAMES
                    else did_you_mean(value, list(ARCHITECTURES)))
            diags.append(Diagnostic(
                f"axes.arch: {value!r} is not an architecture kmatrix can build for and boot",
                where, (hint + " " if hint else "") + f"known: {', '.join(ARCHITECTURES)} "
                "(the `arch` axis selects the kernel's Debian architecture; name other "
                "axes differently)"))


def build_axes(data: Any, diags: list[Diagnostic]) -> dict[str, Axis]:
    """The `axes:` section (already schema-checked) as Axis records; problems go to
    `diags` with their file:line:col."""
    axes: dict[str, Axis] = {}
    variables: dict[str, str] = {}
    for name, raw in (data or {}).items():
        name = str(name)
        if not _check_name(name, data, diags):
            continue
        axis = Axis(name, _values(name, raw, diags), key_mark_of(data, name))
        if axis.variable in variables:
            diags.append(Diagnostic(
                f"axes.{name} and axes.{variables[axis.variable]} both set ${axis.variable}",
                axis.mark, "rename one of them"))
        variables[axis.variable] = name
        if name == ARCH_AXIS:
            _check_arch(axis, raw, diags)
        axes[name] = axis
    return axes
