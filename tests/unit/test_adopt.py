"""`pipeline init` and `pipeline doctor`: detection, the written matrix, the host checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.adopt.detect import crate_of, detect, module_names
from pipeline.adopt.doctor import tool_checks
from pipeline.adopt.init import init
from pipeline.errors import InputError
from pipeline.model.expand import expand
from pipeline.model.matrix import load_matrix

HELLO = "obj-m += hello.o\nPWD := $(CURDIR)\nall:\n\t$(MAKE) -C /lib/modules/x M=$(PWD)\n"
CARGO = '[package]\nname = "tiny"\nversion = "0.1.0"\n[features]\ndefault = ["fast"]\n' \
        'fast = []\nextra = []\n'


@pytest.mark.parametrize("text, names", [
    ("obj-m += hello.o\n", ["hello"]),
    ("obj-m := a.o b.o  # two\nobj-m += c.o\n", ["a", "b", "c"]),
    ("obj-$(CONFIG_VEXFS) = vexfs.o\nvexfs-y := main.o\n", ["vexfs"]),
    ("obj-y += builtin.o\nall:\n\tmake\n", []),
])
def test_module_names(text: str, names: list[str]) -> None:
    assert module_names(text) == names


def test_crate_features_and_bins() -> None:
    crate = crate_of("crate", CARGO + '[[bin]]\nname = "tool"\n')
    assert crate is not None and crate.name == "tiny"
    assert crate.features == ("extra", "fast") and crate.default == ("fast",)
    assert crate.bins == ("tool",)
    assert crate_of(".", "[workspace]\nmembers = []\n") is None
    assert crate_of(".", "not = [toml") is None


def test_detect_skips_build_output() -> None:
    files = {"hello/Makefile": HELLO, "target/x/Makefile": HELLO, "crate/Cargo.toml": CARGO,
             "docs/Makefile": "html:\n\tsphinx\n"}
    found = detect(files, files.__getitem__)
    assert [(m.path, m.modules) for m in found.modules] == [("hello", ("hello",))]
    assert [c.path for c in found.crates] == ["crate"]


def _project(root: Path) -> Path:
    (root / "hello").mkdir(parents=True)
    (root / "hello" / "Makefile").write_text(HELLO)
    (root / "crate").mkdir()
    (root / "crate" / "Cargo.toml").write_text(CARGO)
    return root


def test_init_writes_a_matrix_that_loads_and_a_ktap_script(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    said: list[str] = []
    written = init(root, force=False, lock=False, say=said.append)
    assert [p.name for p in written] == ["run-ktap.sh", "matrix.yml"]
    assert "module directory hello/: hello.ko" in said
    jobs = {j.id: j for j in expand(load_matrix(root / "matrix.yml"))}
    assert set(jobs) == {"kmod-build/6.1", "kmod-build/6.12", "vm-test/6.1", "vm-test/6.12",
                         "crate-test/default", "crate-test/each.extra",
                         "crate-test/each.fast"}
    assert jobs["kmod-build/6.1"].job_env()["MODULE_DIR"] == "hello"
    assert jobs["vm-test/6.12"].needs == ("kmod-build/6.12",)
    assert jobs["vm-test/6.12"].spec.vm.modules == ("$NEEDS/$BUILD_JOB/$KERNEL/*.ko",)
    script = root / "tests" / "run-ktap.sh"
    assert 'MODULES="hello"' in script.read_text() and script.stat().st_mode & 0o111
    check = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    with pytest.raises(InputError, match="already exists"):
        init(root, force=False, lock=False, say=said.append)


def test_init_on_a_repository_without_modules_says_what_it_looked_for(tmp_path) -> None:
    (tmp_path / "README").write_text("hi\n")
    proc = subprocess.run([sys.executable, "-m", "pipeline", "init", "--no-lock", "--dir",
                           str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "found no kernel module and no Cargo crate in 1 files" in proc.stderr
    assert "obj-m" in proc.stderr and "Cargo.toml with a [package]" in proc.stderr
    assert not (tmp_path / "matrix.yml").exists()


def test_doctor_reports_missing_tools_with_their_package() -> None:
    entries = [{"name": "mmdebstrap", "command": "mmdebstrap", "package": "mmdebstrap",
                "needed-for": "images"},
               {"name": "keyring", "file": "/k.gpg", "package": "debian-archive-keyring",
                "needed-for": "lock"}]
    checks = tool_checks(entries, which=lambda _c: None, exists=lambda _f: True)
    assert [(c.name, c.ok, c.package) for c in checks] == [
        ("mmdebstrap", False, "mmdebstrap"), ("keyring", True, None)]
    assert checks[0].detail == "missing: needed for images"
