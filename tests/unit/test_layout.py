"""The package's layout rules: imports run one way, and modules and functions stay small."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pipeline"
BASE = {"pipeline", "pipeline.errors", "pipeline.paths", "pipeline.fsutil"}
# subpackage -> the subpackages it may import (besides itself and the base modules)
ALLOWED = {
    "model": set(),
    "results": set(),
    "debian": {"model"},
    "plan": {"model", "debian", "results"},
    "run": {"model", "debian", "results", "plan"},
    "report": {"model", "results"},
    "buildbot": {"model", "debian", "results", "plan", "run", "report"},
    "adopt": {"model", "debian", "results", "plan", "run"},
    "cli": {"model", "debian", "results", "plan", "run", "report", "buildbot", "adopt"},
    "__main__": {"cli"},
}
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def layer(module: str) -> str | None:
    """The layer of a dotted pipeline module name (None for the base modules)."""
    if module in BASE:
        return None
    return module.split(".")[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def pipeline_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every pipeline import in a file, also inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, node.module)]
            if node.module == "pipeline":
                found += [(node.lineno, f"pipeline.{a.name}") for a in node.names
                          if a.name != "__version__"]
    return [(line, name) for line, name in found if name.split(".")[0] == "pipeline"]


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def violations(path: Path) -> list[str]:
    own = layer(module_name(path))
    bad = []
    for line, name in pipeline_imports(path):
        target = layer(name)
        if target is None or target == own:
            continue
        if own is None or target not in ALLOWED.get(own, set()):
            bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {own or 'base'} "
                       f"imports {name}")
    return bad


def test_every_layer_is_known() -> None:
    layers = {layer(module_name(p)) for p in sources()} - {None}
    assert layers <= set(ALLOWED), f"add {layers - set(ALLOWED)} to ALLOWED"


def test_imports_run_one_way() -> None:
    bad = [v for p in sources() for v in violations(p)]
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


@pytest.mark.parametrize("source, expected", [
    ("from pipeline.run.runner import run_job\n", "model imports pipeline.run.runner"),
    ("def f():\n    import pipeline.cli\n", "model imports pipeline.cli"),
    ("from pipeline import report\n", "model imports pipeline.report"),
])
def test_the_checker_catches_a_wrong_way_import(tmp_path: Path, monkeypatch,
                                                 source: str, expected: str) -> None:
    fake = PACKAGE / "model" / "_layout_probe.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source)
    assert any(expected in v for v in violations(fake))


def test_the_base_modules_import_only_each_other() -> None:
    for name in ("errors", "paths", "fsutil"):
        assert violations(PACKAGE / f"{name}.py") == []


def test_modules_stay_small() -> None:
    big = [f"{p.relative_to(PACKAGE.parent)}: {n} lines" for p in sources()
           if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not big, f"modules over {MAX_MODULE_LINES} lines (split them):\n" + "\n".join(big)


def test_functions_stay_small() -> None:
    long = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: "
                                f"{node.name} has {length} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_no_test_harness_ships_in_the_package() -> None:
    assert not list(PACKAGE.rglob("testing.py")), "test helpers live under tests/"


def test_each_job_gets_exactly_one_registered_runtime() -> None:
    from pipeline.model.expand import expand
    from pipeline.model.matrix import load_matrix
    from pipeline.run.runtimes import RUNTIMES, runtime_for

    jobs = expand(load_matrix(PACKAGE.parent / "matrix.yml"))
    for job in jobs:
        handlers = [cls.name for cls in RUNTIMES if cls.handles(job)]
        assert handlers == [runtime_for(job).name], (job.id, handlers)
        assert runtime_for(job).name == ("vm" if job.spec.vm is not None else "container")


def test_the_readme_layout_names_files_that_exist() -> None:
    readme = (PACKAGE.parent / "README.md").read_text()
    section = readme[readme.index("## Layout"):]
    section = section[:section.index("\n## ", 4)] if "\n## " in section[4:] else section
    named = re.findall(r"`(pipeline/[\w/.-]+\.(?:py|yml|j2))`", section)
    questions = ("how a kmod-build job runs", "what the HTML matrix shows",
                 "how Buildbot runs a job")
    for question in questions:
        assert f"| {question} |" in section
    assert len(named) >= len(questions)
    missing = [n for n in named if not (PACKAGE.parent / n).is_file()]
    assert not missing, f"README's Layout names files that do not exist: {missing}"
