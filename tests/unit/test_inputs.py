"""Hermetic inputs: the /src trees (hard links of exactly the inputs) and the message that
names the `inputs:` line a job lacks."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from pathlib import Path

import pytest

from pipeline.model.expand import expand
from pipeline.model.matrix import load_matrix
from pipeline.plan.keys import SourceTree
from pipeline.run import inputs as inputs_module
from pipeline.run.inputs import InputTrees
from pipeline.run.undeclared import inputs_hint, missing_inputs, undeclared_message

ROOT = Path(__file__).resolve().parents[2]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid",
       "-c", "init.defaultBranch=main"]


def files_in(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*")
                  if p.is_file() or p.is_symlink())


def test_tree_holds_exactly_the_inputs_as_read_only_hard_links(project_copy: Path,
                                                               tmp_path: Path) -> None:
    trees = InputTrees(SourceTree(project_copy), base=tmp_path / "trees")
    globs = ("kernel/include/**", "kernel/tests/abi_dump.c")
    tree = trees.tree(globs)
    assert files_in(tree.path) == list(tree.files) == [
        "kernel/include/uapi/vexfs.h", "kernel/tests/abi_dump.c"]
    assert tree.linked and tree.seconds > 0
    for rel in tree.files:  # the same inode: nothing is copied
        assert (tree.path / rel).stat().st_ino == (project_copy / rel).stat().st_ino
    for directory in [tree.path, *(p for p in tree.path.rglob("*") if p.is_dir())]:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755  # the job's user reads it
    again = trees.tree(globs)  # once per distinct input set
    assert again.path == tree.path and again.seconds == 0
    whole = trees.tree(())
    assert "matrix.yml" in whole.files and "kernel/vexfs_main.c" in whole.files
    assert whole.path != tree.path
    trees.close()
    assert not (tmp_path / "trees").exists()


def test_tree_of_a_checkout_leaves_out_ignored_files_and_reports(project_copy: Path,
                                                                 tmp_path: Path) -> None:
    (project_copy / ".gitignore").write_text("*.o\n/reports/*\n!/reports/.gitkeep\n")
    (project_copy / "reports").mkdir()
    (project_copy / "reports" / ".gitkeep").write_text("")
    subprocess.run([*GIT, "init", "-q"], cwd=project_copy, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=project_copy, check=True)
    subprocess.run([*GIT, "commit", "-qm", "c"], cwd=project_copy, check=True)
    (project_copy / "kernel" / "vexfs_main.o").write_text("a build product")
    (project_copy / "reports" / "run1").mkdir()
    (project_copy / "reports" / "run1" / "summary.json").write_text("{}")
    (project_copy / "kernel" / "new.c").write_text("/* untracked, not ignored */\n")
    (project_copy / "kernel" / "compat.h").unlink()  # tracked, deleted in the work tree
    (project_copy / "kernel" / "link.h").symlink_to("include/uapi/vexfs.h")
    trees = InputTrees(SourceTree(project_copy), base=tmp_path / "trees")
    whole = trees.tree(())
    assert "kernel/new.c" in whole.files and "kernel/link.h" in whole.files
    assert not [f for f in whole.files if f.startswith("reports/") or f.endswith(".o")]
    assert "kernel/compat.h" not in whole.files and ".gitignore" in whole.files
    assert files_in(whole.path) == list(whole.files)
    assert os.readlink(whole.path / "kernel" / "link.h") == "include/uapi/vexfs.h"
    trees.close()


def test_tree_is_copied_across_file_systems(project_copy: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(_a: object, _b: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(inputs_module.os, "link", no_link)
    trees = InputTrees(SourceTree(project_copy), base=tmp_path / "trees")
    tree = trees.tree(("kernel/**",))
    assert not tree.linked and "copies" in tree.describe()
    main = tree.path / "kernel" / "vexfs_main.c"
    assert main.read_bytes() == (project_copy / "kernel" / "vexfs_main.c").read_bytes()
    assert main.stat().st_ino != (project_copy / "kernel" / "vexfs_main.c").stat().st_ino
    trees.close()


def test_trees_of_a_dead_process_are_removed_a_day_later(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMATRIX_CACHE_DIR", str(tmp_path / "cache"))
    parent = tmp_path / "cache" / "inputs"
    dead, fresh = parent / "999999999-aa", parent / "999999998-bb"
    alive = parent / f"{os.getpid()}-cc"
    for old in (dead, fresh, alive):
        (old / "x").mkdir(parents=True)
    for old in (dead, alive):
        os.utime(old, (1, 1))
    trees = InputTrees(SourceTree(tmp_path))
    base = trees.base()
    assert not dead.exists() and fresh.exists() and alive.exists()
    assert base.parent == parent
    trees.close()
    assert not base.exists()


# --------------------------------------------------------------------------- the message

PROJECT = ["kernel/Makefile", "kernel/include/uapi/vexfs.h", "kernel/tests/abi_dump.c",
           "kernel/vexfs_main.c", "userspace/Cargo.toml", "userspace/src/lib.rs"]


@pytest.mark.parametrize(("line", "have", "expected"), [
    ("cat: /src/kernel/vexfs_main.c: No such file or directory", ["kernel/Makefile"],
     ["kernel/vexfs_main.c"]),
    ("cp: cannot stat '/src/kernel/.': No such file or directory", [], ["kernel/"]),
    ("make: *** /src/kernel/include: No such file or directory.  Stop.",
     ["kernel/Makefile"], ["kernel/include/"]),
    ("vexfs_main.c:34:10: fatal error: include/uapi/vexfs.h: No such file or directory",
     ["kernel/vexfs_main.c"], ["kernel/include/uapi/vexfs.h"]),
    ("abi_dump.c:19:10: fatal error: 'vexfs.h' file not found", [],
     ["kernel/include/uapi/vexfs.h"]),
    ("error: couldn't read `/src/userspace/src/lib.rs`: No such file or directory (os error 2)",
     ["userspace/Cargo.toml"], ["userspace/src/lib.rs"]),
    ('{"type":"test","name":"c_dump_compiled_here","event":"failed","stdout":"thread '
     "'c_dump_compiled_here' panicked at tests/abi_c.rs:37:9:\\nC ABI comparison required "
     "(VEXFS_REQUIRE_C_ABI=1) but skipped: /src/userspace/../kernel/tests/abi_dump.c not "
     'found\\n"}', ["userspace/Cargo.toml"], ["kernel/tests/abi_dump.c"]),
    # not below /src, not a project file, present after all, or nothing said to be missing
    ("make: *** /usr/src/linux-headers-6.1.0-50-amd64/x: No such file or directory", [], []),
    ("cat: /src/no/such/thing: No such file or directory", [], []),
    ("cat: /src/kernel/Makefile: No such file or directory", ["kernel/Makefile"], []),
    ("   Compiling vexfs v0.1.0 (/src/userspace)", [], []),
])
def test_missing_inputs_are_found_in_the_output(line: str, have: list[str],
                                                expected: list[str]) -> None:
    assert missing_inputs(f"before\n{line}\nafter\n", PROJECT, have) == expected


def test_the_hint_names_the_glob_the_job_and_its_line_in_matrix_yml() -> None:
    matrix = load_matrix(ROOT / "matrix.yml")
    job = {j.id: j for j in expand(matrix)}["feature-guards"]
    line = next(n for n, text in enumerate((ROOT / "matrix.yml").read_text().splitlines(), 1)
                if text.startswith("  feature-guards:"))
    hint = inputs_hint(job, ["kernel/include/uapi/vexfs.h", "kernel/tests/"])
    assert hint == (f'add "kernel/include/uapi/vexfs.h", "kernel/tests/**" to inputs: of job '
                    f'feature-guards (matrix.yml:{line}); its inputs now: ["userspace/**"]')
    message = undeclared_message(job, ["kernel/tests/"])
    assert message.startswith("it read kernel/tests, not in its inputs")
    assert message.endswith(f'add "kernel/tests/**" to inputs: of job feature-guards '
                            f'(matrix.yml:{line}); its inputs now: ["userspace/**"]')


def test_reproducer_copies_the_inputs_and_follows_a_moved_checkout(project_copy: Path,
                                                                   tmp_path: Path) -> None:
    """reproduce.sh makes /src as the run did (its own copy: the run's tree is gone), and
    a result restored from the cache in another checkout copies from that checkout."""
    from pipeline.model.matrix import Step
    from pipeline.run.cached import _relocate_reproducer
    from pipeline.run.executor import ContainerSpec, Mount
    from pipeline.run.runtimes.container import docker_reproducer

    trees = InputTrees(SourceTree(project_copy), base=tmp_path / "trees")
    tree = trees.tree(("kernel/include/**",))
    spec = ContainerSpec(image="img", script="ls -R /src", env={"SRC": "/src"},
                         mounts=[Mount(tree.path, "/src", read_only=True)])
    lines = docker_reproducer(tmp_path / "job", [(Step(name="s", run="ls"), spec)],
                              inputs=(project_copy, tree))
    text = "\n".join(lines) + "\n"
    assert f"PROJECT={project_copy}\n" in text
    assert "\nkernel/include/uapi/vexfs.h\nKMATRIX_INPUTS\n" in text
    assert '-v "$SRC_TREE:/src:ro"' in text and str(tree.path) not in text
    setup = text.split("docker image inspect")[0]
    made = subprocess.run(["bash", "-euc", setup + 'echo "$SRC_TREE"'], capture_output=True,
                          text=True, check=True, cwd=tmp_path,
                          env={**os.environ, "TMPDIR": str(tmp_path)}).stdout.split()[-1]
    assert files_in(Path(made)) == ["kernel/include/uapi/vexfs.h"]
    script = tmp_path / "reproduce.sh"
    script.write_text(text)
    _relocate_reproducer(script, {"paths": {"root": str(project_copy)}},
                         {"root": "/elsewhere/checkout", "needs": "/n"})
    assert "\nPROJECT=/elsewhere/checkout\n" in script.read_text()
    trees.close()


def test_a_vm_job_takes_only_its_inputs_from_src(project_copy: Path, tmp_path: Path) -> None:
    """$SRC of a `vm:` job is its inputs' tree: a file outside them is the job's error,
    with the `inputs:` line to add (before any kernel is fetched or QEMU started)."""
    import io
    import time
    from dataclasses import replace

    from junitparser import TestSuite

    from pipeline.debian.lock import read_lock
    from pipeline.results.status import ERROR
    from pipeline.run.frame import JobFrame
    from pipeline.run.runner import RunContext
    from pipeline.run.runtimes.vm import VmRuntime

    job = {j.id: j for j in expand(load_matrix(project_copy / "matrix.yml"))}["vm-test/6.1"]
    job = replace(job, spec=replace(job.spec, inputs=("kernel/Makefile",)))
    needs = tmp_path / "needs"
    for rel in ("kmod-build/6.1/artifacts/vexfs.ko", "kmod-build/6.1/artifacts/ioctl_smoke",
                "vexctl-static/artifacts/vexctl"):
        (needs / rel).parent.mkdir(parents=True, exist_ok=True)
        (needs / rel).write_bytes(b"x")
    trees = InputTrees(SourceTree(project_copy), base=tmp_path / "trees")
    ctx = RunContext(run_id="r", run_dir=tmp_path / "run", root=project_copy, images=None,
                     containers=None, kernels=read_lock(project_copy / "matrix.lock"),
                     flavour_caches={}, needs_dir=needs, inputs=trees)
    frame = JobFrame(ctx, job, tmp_path / "job", io.StringIO(), time.monotonic(), "now",
                     TestSuite(job.id))
    assert VmRuntime(frame).prepare() is False
    assert frame.status == ERROR
    assert frame.message.startswith("missing VM input(s): $SRC/kernel/tests/run-ktap.sh; "
                                    "it read kernel/tests/run-ktap.sh, not in its inputs")
    assert 'add "kernel/tests/run-ktap.sh" to inputs: of job vm-test (matrix.yml:' \
        in frame.message
    assert frame.extra["undeclared_inputs"] == ["kernel/tests/run-ktap.sh"]
    trees.close()
