"""A new user's first minutes on their own module: kmatrix installed with pip (not
editable, from this checkout), `pipeline doctor`, `pipeline init` in a repository that
knows nothing of kmatrix, then `pipeline run` passes (real Docker and QEMU)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, docker_available
from tests.support.workers import worker_venv

FOREIGN = ROOT / "tests" / "fixtures" / "foreign"
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]


def _run(venv: Path, cwd: Path, *args: str, timeout: float = 1800
         ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{venv}/bin:{os.environ['PATH']}"}
    return subprocess.run(list(args), cwd=cwd, env=env, text=True, capture_output=True,
                          timeout=timeout)


@pytest.mark.docker
@pytest.mark.slow
def test_pip_install_init_and_run_on_a_foreign_module(tmp_path: Path) -> None:
    if not docker_available():
        pytest.skip("Docker is not available")
    venv = worker_venv()  # `pip install <this checkout>`: the package data must be in it
    repo = tmp_path / "hello-module"
    shutil.copytree(FOREIGN, repo)
    subprocess.run([*GIT, "init", "-q", str(repo)], check=True)
    subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", "a module"], check=True)

    doctor = _run(venv, repo, "kmatrix", "doctor")  # the alias
    assert "ok   Docker Engine: reachable" in doctor.stdout, doctor.stdout + doctor.stderr
    init = _run(venv, repo, "pipeline", "init")
    assert init.returncode == 0, init.stdout + init.stderr
    assert "module directory hello/: hello.ko" in init.stderr
    assert "crate tiny in crate/: features extra, fast" in init.stderr
    assert (repo / "matrix.lock").is_file() and (repo / "tests" / "run-ktap.sh").is_file()
    assert not (repo / "images").exists()  # the built-in flavours come with the package

    run = _run(venv, repo, "pipeline", "run", "--json")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert '"status": "passed"' in run.stdout
    junit = next((repo / "reports").glob("*/junit.xml")).read_text()
    for case in ("insmod_hello", "hello_loaded", "rmmod_hello", "dmesg_clean", "adds"):
        assert f'name="{case}"' in junit or f'::{case}"' in junit, case
