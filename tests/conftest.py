"""Shared fixtures: the project root, a CLI runner, and a scratch copy of the project."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PARTS = ("matrix.yml", "matrix.lock", "kernel", "userspace")


@pytest.fixture(scope="session", autouse=True)
def _hermetic_result_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Job results cached by earlier runs must not answer this session's tests.

    Only the result cache is per session; images, apt and cargo caches stay shared so
    the suite does not rebuild toolchains.
    """
    import os

    os.environ["KMATRIX_RESULT_CACHE_DIR"] = str(tmp_path_factory.mktemp("result-cache"))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """Run `python -m pipeline ARGS` as a user would, capturing output."""
    import os

    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=cwd or ROOT, text=True,
        capture_output=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A scratch copy of the project (sources, matrix, lock, images) to break at will."""
    dest = tmp_path / "project"
    dest.mkdir()
    for part in PROJECT_PARTS:
        src = ROOT / part
        if src.is_dir():
            # fresh mtimes, as a checkout has: cargo's cached target dirs compare them
            shutil.copytree(src, dest / part, copy_function=shutil.copy,
                            ignore=shutil.ignore_patterns(
                                "target", "*.o", "*.ko", "*.mod*", ".*.cmd",
                                "Module.symvers", "modules.order"))
        else:
            shutil.copy(src, dest / part)
    return dest


def docker_available() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
