"""The CLI as a user meets it: exit codes, located messages, no tracebacks (no Docker)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_and_list_the_shipped_matrix(capsys) -> None:
    code, out, _ = run(capsys, "--matrix", str(ROOT / "matrix.yml"), "validate")
    assert code == 0 and "ok (" in out
    code, out, _ = run(capsys, "--matrix", str(ROOT / "matrix.yml"), "list", "--json",
                       "--kernel", "6.12")
    rows = {r["id"]: r for r in json.loads(out)}
    assert {i for i, r in rows.items() if r["selected"]} == {
        "kmod-build/6.12", "vm-test/6.12", "kmod-build/6.12/clang", "kmod-build/6.12/arm64",
        "vm-test/6.12/arm64", "vm-bench/6.12"}  # the cells of the user axes too
    assert not rows["vexctl-static"]["selected"]  # pulled in as a need
    assert rows["kmod-build/6.12"]["axes"] == {"kernel": "6.12"}
    assert rows["kmod-build/6.12"]["inputs"] == ["kernel/**"]
    assert rows["vm-test/6.12"]["needs"] == ["kmod-build/6.12", "vexctl-static"]


def test_matrix_found_in_a_parent_directory(capsys, tmp_path, monkeypatch) -> None:
    (tmp_path / "matrix.yml").write_text(
        'kernels: {"6.1": {suite: bookworm}}\njobs: {k: {over: [kernel], image: x, run: y}}\n')
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    code, out, _ = run(capsys, "list")
    assert code == 0 and out.startswith("k/6.1")


def test_bad_matrix_is_exit_2_with_file_line_col(capsys, tmp_path) -> None:
    path = tmp_path / "matrix.yml"
    path.write_text(textwrap.dedent("""\
        kernels:
          "6.1": {suite: bookworm, mirorr: http://x}
        jobs:
          k: {over: [kernel], image: x, run: y, needs: [q]}
        """))
    code, out, err = run(capsys, "--matrix", str(path), "validate")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"pipeline: {path}:2:28: error: unknown key 'mirorr'")
    assert "did you mean 'mirror'?" in lines[0]
    assert "Traceback" not in err


def test_unknown_kernel_on_run_lists_kernels(capsys) -> None:
    code, _, err = run(capsys, "--matrix", str(ROOT / "matrix.yml"), "run", "--kernel", "6.8")
    assert code == 2
    assert "kernel '6.8' is not declared" in err and "5.10, 6.1, 6.12, 7.3" in err


def test_missing_matrix_and_bad_arguments(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "list")
    assert code == 2 and "no matrix.yml in" in err
    code, _, err = run(capsys, "run", "-j", "many")
    assert code == 2 and "invalid int value" in err
    code, _, err = run(capsys, "frobnicate")
    assert code == 2 and "invalid choice" in err


def test_schema_is_json_schema(capsys) -> None:
    code, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    assert code == 0 and schema["properties"]["jobs"]["type"] == "object"


def test_convert_writes_junit(capsys, tmp_path) -> None:
    log = tmp_path / "k.log"
    log.write_text("KTAP version 1\n1..2\nok 1 a\nnot ok 2 b # broken\n")
    out_file = tmp_path / "j.xml"
    code, _, _ = run(capsys, "convert", "ktap", str(log), "-o", str(out_file))
    text = out_file.read_text()
    assert code == 0 and 'tests="2"' in text and 'failures="1"' in text
    code, out, _ = run(capsys, "convert", "libtest", str(log))
    assert code == 0 and out.startswith("<?xml")


def test_stale_lock_is_reported_before_any_work(capsys, tmp_path) -> None:
    (tmp_path / "matrix.yml").write_text(
        'kernels: {"6.1": {suite: bookworm}}\njobs: {k: {over: [kernel], image: x, run: y}}\n')
    code, _, err = run(capsys, "--matrix", str(tmp_path / "matrix.yml"), "run")
    assert code == 2 and "kernel 6.1 is not in matrix.lock" in err
    assert "run `pipeline lock`" in err


def test_images_list_skips_vm_jobs_and_needs_no_docker(capsys) -> None:
    code, out, err = run(capsys, "--matrix", str(ROOT / "matrix.yml"), "images", "list",
                         "--kernel", "6.1")
    assert code == 0, err
    tags = out.split()
    assert len(tags) == 2
    assert tags[0].startswith("kmatrix/kbuild-6.1:") and tags[1].startswith("kmatrix/rust:")
