"""The `init` and `doctor` subcommands (wired into pipeline.cli)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parsers(sub: Any) -> None:
    """Add `init` and `doctor` to the `pipeline` parser."""
    p = sub.add_parser("init", help="write a matrix.yml for the kernel modules and crate here")
    p.add_argument("--dir", default=".", help="the repository's root (default: here)")
    p.add_argument("--force", action="store_true", help="replace an existing matrix.yml")
    p.add_argument("--no-lock", action="store_true",
                   help="do not resolve the kernels into matrix.lock (needs the network)")
    p = sub.add_parser("doctor", help="check the host (Docker, mmdebstrap, QEMU, KVM, ...)")
    p.add_argument("--install", action="store_true",
                   help="install the missing Debian packages with apt-get")


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def cmd_init(args: argparse.Namespace) -> int:
    from pipeline.adopt.init import init

    written = init(Path(args.dir), force=args.force, lock=not args.no_lock, say=_say)
    for path in written:
        print(f"wrote {path}")
    print("next: `pipeline run` (the first run builds the toolchain images: minutes)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from pipeline.adopt.doctor import doctor

    return doctor(args.install, print)


COMMANDS = {"init": cmd_init, "doctor": cmd_doctor}
