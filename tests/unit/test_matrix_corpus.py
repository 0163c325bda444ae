"""The bad-matrix corpus: every file in tests/fixtures/bad-matrices/ through the real CLI.

For each NAME.yml, `python -m pipeline --matrix NAME.yml validate` runs as a subprocess and
must exit 2 (0 when NAME.expected starts with `# exit 0`: warnings only), print exactly the
stderr lines of NAME.expected (`{path}` stands for the file's absolute path; a line starting
with `~ ` only has to be contained in the actual line), locate every error and warning as
file:line:col, and never print a traceback.

After a deliberate message change, regenerate and review the diff:
    KMATRIX_REGEN_CORPUS=1 .venv/bin/pytest tests/unit/test_matrix_corpus.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fixtures" / "bad-matrices"
CASES = sorted(p.stem for p in CORPUS.glob("*.yml"))
REGEN = os.environ.get("KMATRIX_REGEN_CORPUS") == "1"
Result = subprocess.CompletedProcess[str]
LOCATED = re.compile(r"^pipeline: \{path\}:(\d+):(\d+): (error|warning): \S")


def _run(name: str, cache: Path) -> subprocess.CompletedProcess[str]:
    path = CORPUS / f"{name}.yml"
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "--matrix", str(path), "validate"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "KMATRIX_CACHE_DIR": str(cache)},
    )


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """All cases at once, two at a time (the CLI's start-up dominates)."""
    cache = tmp_path_factory.mktemp("kmatrix-cache")
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(CASES, pool.map(lambda n: _run(n, cache), CASES), strict=True))


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert all((CORPUS / f"{name}.expected").is_file() or REGEN for name in CASES)


@pytest.mark.parametrize("name", CASES)
def test_bad_matrix(name: str, results: dict[str, Result]) -> None:
    proc = results[name]
    path = str((CORPUS / f"{name}.yml").resolve())
    stderr = proc.stderr.replace(path, "{path}")
    actual = stderr.splitlines()
    expected_file = CORPUS / f"{name}.expected"
    if REGEN:
        header = ["# exit 0"] if proc.returncode == 0 else []
        expected_file.write_text("\n".join(header + actual) + "\n")
    lines = expected_file.read_text().splitlines()
    exit_code = 0 if lines and lines[0] == "# exit 0" else 2
    expected = [line for line in lines if not line.startswith("#")]

    assert "Traceback" not in proc.stderr + proc.stdout
    assert "internal error" not in proc.stderr
    assert proc.returncode == exit_code, proc.stderr
    if exit_code == 2:
        assert proc.stdout == ""
    else:
        assert proc.stdout.endswith(f"{path}: ok") or ": ok (" in proc.stdout
    assert len(actual) == len(expected), "\n".join(actual)
    for got, want in zip(actual, expected, strict=True):
        if want.startswith("~ "):
            assert want[2:] in got
        else:
            assert got == want
        assert LOCATED.match(got), f"not located as file:line:col: {got}"
    assert any(" error: " in line for line in actual) == (exit_code == 2)
