"""A rendered flavour Dockerfile as a bootstrap plan, for the mmdebstrap image base (pure).

With `image-base: mmdebstrap` the image is not built by `docker build` on top of an imported
rootfs: every instruction of a container build is a container plus a layer commit, which
costs 10-15 s each on Docker's fuse-overlayfs driver (a naive diff of the whole tree), and a
kernel compiled in a RUN step reads and writes through FUSE. Instead the Dockerfile is
carried out while mmdebstrap bootstraps the rootfs: each RUN becomes a customize hook that
runs the command in the chroot (with the ENV, WORKDIR and USER in force at that point), and
ENV, LABEL, WORKDIR and USER become `docker import --change` lines. The image's content and
settings are what `docker build` would give; the Dockerfile stays the one recipe (and its
text is in the image tag).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from pipeline.errors import ImageBuildError

SETTINGS = ("ENV", "LABEL", "WORKDIR", "USER")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: keyword (upper case), its arguments, its first line."""

    keyword: str
    args: str
    line: int


@dataclass(frozen=True)
class Run:
    """A RUN step: the shell command and what it runs with."""

    command: str
    env: dict[str, str]
    workdir: str
    user: str
    line: int  # in the rendered Dockerfile


@dataclass
class BootstrapPlan:
    """RUN steps for the chroot, then the import's --change lines."""

    runs: list[Run] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)


def parse(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile: comment lines dropped, `\\` continuations joined."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    first = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if raw.lstrip().startswith("#") or (not pending and not raw.strip()):
            continue
        if not pending:
            first = number
        stripped = raw.rstrip()
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        keyword, _, args = " ".join(part.strip() for part in pending).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), first))
        pending = []
    if pending:
        raise ImageBuildError(f"Dockerfile line {first}: the last instruction ends with `\\`")
    return instructions


def pairs(args: str, line: int) -> dict[str, str]:
    """`NAME=value NAME2="quoted value"` (ENV, LABEL) as a mapping."""
    found: dict[str, str] = {}
    for word in shlex.split(args):
        name, sep, value = word.partition("=")
        if not sep or not name:
            raise ImageBuildError(f"Dockerfile line {line}: expected NAME=value, got {word!r}")
        found[name] = value
    return found


def bootstrap_plan(text: str) -> BootstrapPlan:
    """What to do in the chroot and at import for this Dockerfile; an instruction the
    mmdebstrap base cannot carry out (COPY, ADD, a second FROM, ...) is an ImageBuildError."""
    plan = BootstrapPlan(changes=[f"ENV PATH={DEFAULT_PATH}"])  # as `docker build` sets it
    env = {"PATH": DEFAULT_PATH, "HOME": "/root"}
    workdir, user = "/", "0:0"
    for index, step in enumerate(parse(text)):
        if step.keyword == "FROM" and index == 0:
            continue
        if step.keyword == "RUN":
            plan.runs.append(Run(step.args, dict(env), workdir, user, step.line))
        elif step.keyword in SETTINGS:
            if step.keyword == "ENV":
                env.update(pairs(step.args, step.line))
            elif step.keyword == "WORKDIR":
                workdir = step.args
            elif step.keyword == "USER":
                user = step.args
            plan.changes.append(f"{step.keyword} {step.args}")
        else:
            raise ImageBuildError(
                f"Dockerfile line {step.line}: {step.keyword} is not supported with "
                "image-base mmdebstrap (FROM first, then RUN, ENV, LABEL, WORKDIR, USER)",
                hint="use those instructions in images/Dockerfile.j2, or image-base registry")
    return plan
