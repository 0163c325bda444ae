"""Affected-only selection: inputs globs, dependents, needs, and git's view of changes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import InputError
from pipeline.model.expand import expand
from pipeline.model.matrix import load_matrix, load_matrix_text
from pipeline.plan.changes import affected_jobs, changed_since, file_matches
from pipeline.plan.select import Filters, select

ROOT = Path(__file__).resolve().parents[2]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid",
       "-c", "init.defaultBranch=main"]


@pytest.fixture(scope="module")
def shipped():
    matrix = load_matrix(ROOT / "matrix.yml")
    return matrix, expand(matrix)


def test_file_matches_globs() -> None:
    assert file_matches("kernel/vexfs_main.c", ["kernel/**"])
    assert file_matches("kernel/include/uapi/vexfs.h", ["kernel/**"])
    assert file_matches("./kernel/Makefile", ["kernel/**"])
    assert not file_matches("kernelx/a.c", ["kernel/**"])
    assert file_matches("userspace/src/abi.rs", ["userspace/src/abi*"])
    assert not file_matches("README.md", ["kernel/**", "userspace/**"])


def test_kernel_change_selects_module_builds_and_their_dependents(shipped) -> None:
    _, jobs = shipped
    affected = affected_jobs(jobs, ["kernel/vexfs_main.c"])
    assert affected == {f"{name}/{k}" for name in ("kmod-build", "vm-test", "vm-bench")
                        for k in ("5.10", "6.1", "6.12", "7.3")} | {
        "kmod-build-rust/7.3", "vm-test-rust/7.3", "kmod-build/6.12/arm64",
        "vm-test/6.12/arm64"} | {"kmod-build/6.12/clang"}


def test_userspace_change_reaches_vm_tests_through_vexctl(shipped) -> None:
    _, jobs = shipped
    affected = affected_jobs(jobs, ["userspace/src/main.rs"])
    assert "vexctl-static" in affected and "vm-test/6.1" in affected
    assert "crate-test/default" in affected and "feature-guards" in affected
    assert not any(a.startswith("kmod-build/") for a in affected)
    # abi-check builds the whole crate (lib and bins), but never reads the module's source
    assert "abi-check" in affected
    assert "abi-check" not in affected_jobs(jobs, ["kernel/vexfs_main.c"])
    header = affected_jobs(jobs, ["kernel/include/uapi/vexfs.h"])
    assert "abi-check" in header and "crate-test/default" in header  # tests/abi_c.rs


def test_unrelated_or_no_change_selects_nothing(shipped) -> None:
    _, jobs = shipped
    assert affected_jobs(jobs, ["README.md", "docs/x.md"]) == set()
    assert affected_jobs(jobs, []) == set()


def test_job_without_inputs_is_affected_by_any_change() -> None:
    matrix = load_matrix_text(
        'kernels: {"6.1": {suite: bookworm}}\n'
        "jobs:\n"
        "  a: {image: x, run: y, inputs: [src/**]}\n"
        "  b: {image: x, run: y}\n"
        "  c: {image: x, run: y, needs: [b], inputs: [other/**]}\n")
    jobs = expand(matrix)
    assert affected_jobs(jobs, ["README.md"]) == {"b", "c"}
    assert affected_jobs(jobs, ["src/main.c"]) == {"a", "b", "c"}
    assert affected_jobs(jobs, []) == set()


def test_selection_pulls_in_needs_of_affected_jobs(shipped) -> None:
    matrix, jobs = shipped
    only = affected_jobs(jobs, ["kernel/tests/run-ktap.sh"])
    sel = select(matrix, jobs, Filters(kernels=("6.1",)), only)
    assert sel.chosen == {"kmod-build/6.1", "vm-test/6.1", "vm-bench/6.1"}
    assert [j.id for j in sel.jobs] == ["kmod-build/6.1", "vexctl-static", "vm-test/6.1",
                                        "vm-bench/6.1"]
    assert select(matrix, jobs, Filters(), set()).jobs == []


def _git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(repo), *args], check=True, text=True,
                          capture_output=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "kernel").mkdir(parents=True)
    (repo / "userspace").mkdir()
    (repo / "kernel" / "a.c").write_text("a\n")
    (repo / "kernel" / "old.c").write_text("old\n")
    (repo / "userspace" / "lib.rs").write_text("lib\n")
    (repo / ".gitignore").write_text("*.o\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one")
    return repo


def test_changed_since_sees_commits_edits_untracked_and_renames(repo: Path) -> None:
    assert changed_since(repo, "HEAD") == []
    (repo / "userspace" / "lib.rs").write_text("changed\n")
    _git(repo, "commit", "-qam", "two")
    assert changed_since(repo, "HEAD~1") == ["userspace/lib.rs"]
    (repo / "kernel" / "a.c").write_text("edited, not staged\n")
    (repo / "kernel" / "new.c").write_text("untracked\n")
    (repo / "kernel" / "x.o").write_text("ignored\n")
    _git(repo, "mv", "kernel/old.c", "docs.c")
    assert changed_since(repo, "HEAD") == ["docs.c", "kernel/a.c", "kernel/new.c",
                                           "kernel/old.c"]
    # a project in a subdirectory sees paths relative to itself
    assert changed_since(repo / "kernel", "HEAD") == ["a.c", "new.c", "old.c"]


def test_changed_since_errors_are_input_errors(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown git revision 'nope'"):
        changed_since(repo, "nope")
    outside = tmp_path / "plain"
    outside.mkdir()
    with pytest.raises(InputError, match="not in a git checkout"):
        changed_since(outside, "HEAD")


def test_cli_list_and_run_with_changed_since(project_copy: Path, capsys) -> None:
    _git(project_copy, "init", "-q")
    _git(project_copy, "add", "-A")
    _git(project_copy, "commit", "-qm", "base")
    matrix = str(project_copy / "matrix.yml")
    assert main(["--matrix", matrix, "run", "--changed-since", "HEAD"]) == 0
    out = capsys.readouterr().out
    assert "nothing to run: 0 file(s) changed since HEAD" in out
    (project_copy / "userspace" / "src" / "abi.rs").write_text("// changed\n")
    assert main(["--matrix", matrix, "list", "--json", "--changed-since", "HEAD"]) == 0
    rows = json.loads(capsys.readouterr().out)
    # abi.rs is also compiled into vexfs_rs.ko: kmod-build-rust is selected too
    assert {r["id"] for r in rows if r["selected"]} >= {"abi-check", "vexctl-static",
                                                        "vm-test/6.1", "kmod-build-rust/7.3"}
    assert {r["id"] for r in rows if not r["selected"]} == {
        f"kmod-build/{k}" for k in ("5.10", "6.1", "6.12", "7.3")} | {
        "kmod-build/6.12/arm64"}  # needed by vm-test/6.12/arm64
    assert main(["--matrix", matrix, "run", "--changed-since", "nope"]) == 2
    assert "unknown git revision" in capsys.readouterr().err
