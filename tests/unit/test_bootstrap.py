"""The mmdebstrap image base carries out a flavour's Dockerfile itself (pure parts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.debian import bootstrap
from pipeline.debian.bootstrap import (
    apt_cache_hook,
    bootstrap_tmpdir,
    mmdebstrap_command,
    run_hooks,
)
from pipeline.debian.dockerfile import DEFAULT_PATH, bootstrap_plan, parse
from pipeline.debian.images import ImageBase, ImageCatalog, rootfs_tag
from pipeline.debian.lock import KernelSource, resolve_kernel
from pipeline.errors import ImageBuildError
from tests.unit.test_lock_images import TRIXIE_BPO

ROOT = Path(__file__).resolve().parents[2]
RUST = KernelSource("7.3-rust", "trixie-backports", ("trixie", "trixie-backports"),
                    source="linux-source-7.3")


def test_parse_joins_continuations_and_drops_comments() -> None:
    steps = parse("FROM x\n# a comment\nRUN a \\\n  # inside\n  && b\n\nENV A=1 B=\"two words\"\n")
    assert [(s.keyword, s.args, s.line) for s in steps] == [
        ("FROM", "x", 1), ("RUN", "a && b", 3), ("ENV", 'A=1 B="two words"', 7)]
    with pytest.raises(ImageBuildError, match="line 2: the last instruction ends with"):
        parse("FROM x\nRUN a \\\n")


def test_the_kbuild_rust_dockerfile_as_a_bootstrap_plan() -> None:
    catalog = ImageCatalog(ROOT / "pipeline" / "images")
    flavour = catalog.render("kbuild-rust", resolve_kernel(RUST, [TRIXIE_BPO]), ImageBase())
    plan = bootstrap_plan(catalog.dockerfile(flavour, ImageBase(), rootfs_tag(flavour)))
    # the builder user, the config fragment, the kernel build: as root in /, with the ENV
    # set before each of them
    assert len(plan.runs) == 3 and "builder:x:1000" in plan.runs[0].command
    assert "KDIR" not in plan.runs[0].env and plan.runs[0].env["PATH"] == DEFAULT_PATH
    kernel = plan.runs[2]
    assert "make rustavailable" in kernel.command and "\\\n" not in kernel.command
    assert kernel.env["KDIR"] == "/usr/src/linux-7.3.4" and kernel.env["LLVM"] == "1"
    assert (kernel.user, kernel.workdir) == ("0:0", "/")
    assert plan.changes[0] == f"ENV PATH={DEFAULT_PATH}"
    assert 'ENV KDIR="/usr/src/linux-7.3.4"' in plan.changes
    assert plan.changes[-2:] == ["WORKDIR /work", "USER 1000:1000"]


def test_what_the_bootstrap_cannot_do_is_an_error_with_the_line() -> None:
    with pytest.raises(ImageBuildError, match="line 3: COPY is not supported"):
        bootstrap_plan("FROM x\nRUN true\nCOPY a /b\n")
    with pytest.raises(ImageBuildError, match="line 1: expected NAME=value"):
        bootstrap_plan("ENV lonely\n")


def test_run_hooks_run_each_step_in_the_chroot(tmp_path: Path) -> None:
    plan = bootstrap_plan("FROM x\nENV A='x y'\nRUN echo \"$A\" > /a\nWORKDIR /w\n"
                          "USER 1000:1000\nRUN touch b\n")
    hooks = run_hooks(plan, tmp_path)
    assert (tmp_path / "run-0.sh").read_text() == 'echo "$A" > /a\n'
    assert len(hooks) == 4 and hooks[0].startswith("--customize-hook=cp ")
    assert 'chroot "$1" /usr/bin/env -i' in hooks[1] and "'A=x y'" in hooks[1]
    assert 'chroot --userspec=1000:1000 "$1"' in hooks[3] and "cd /w &&" in hooks[3]
    assert 'rm -f "$1"/tmp/kmatrix-run-1.sh;' in hooks[3] and hooks[3].endswith(
        '|| echo "kmatrix: the RUN at Dockerfile line 6 exited $status" >&2; exit $status')


def test_apt_cache_is_linked_on_the_same_filesystem(tmp_path: Path) -> None:
    cache = tmp_path / "apt"
    cache.mkdir()
    assert apt_cache_hook(cache, tmp_path).startswith(f"--setup-hook=cp -Rl {cache}/. ")
    shm = Path("/dev/shm")
    if shm.is_dir() and shm.stat().st_dev != tmp_path.stat().st_dev:
        assert apt_cache_hook(cache, shm).startswith(f"--setup-hook=cp -R {cache}/. ")


def test_mmdebstrap_command_runs_the_dockerfile_last(tmp_path: Path) -> None:
    catalog = ImageCatalog(ROOT / "pipeline" / "images")
    flavour = catalog.render("rust", None, ImageBase())
    cmd = mmdebstrap_command(flavour, tmp_path / "r.tar", tmp_path / "apt",
                             ["--customize-hook=echo last"], tmp_path)
    assert cmd.index("--customize-hook=echo last") > max(
        i for i, c in enumerate(cmd) if c.startswith("--customize-hook=flock"))
    assert cmd[-3:-1] == ["trixie", str(tmp_path / "r.tar")]


def test_bootstrap_tmpdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KMATRIX_BOOTSTRAP_TMPDIR", str(tmp_path / "x"))
    assert bootstrap_tmpdir() == tmp_path / "x"
    monkeypatch.delenv("KMATRIX_BOOTSTRAP_TMPDIR")
    monkeypatch.setattr(bootstrap, "SHM", tmp_path)
    monkeypatch.setattr(bootstrap, "MIN_SHM_BYTES", 1)
    assert bootstrap_tmpdir() == tmp_path
    monkeypatch.setattr(bootstrap, "MIN_SHM_BYTES", 1 << 62)  # more than any machine has
    assert bootstrap_tmpdir() is None
    monkeypatch.setattr(bootstrap, "SHM", tmp_path / "missing")
    assert bootstrap_tmpdir() is None
