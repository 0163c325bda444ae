"""Bad command lines: a usage message or a one-line `pipeline:` error, exit 2, never a
traceback (in-process through pipeline.cli.main, with Docker made unreachable so that
nothing a generated command line asks for can start containers).

Two parts: a table of known-bad invocations of every subcommand, and 300 generated command
lines (hypothesis) mixing subcommands, options, good and bad values.
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project() -> Iterator[Path]:
    """A copy of the project's matrix, lock and Cargo.toml (no sources needed)."""
    with tempfile.TemporaryDirectory(prefix="kmatrix-cli-fuzz-") as tmp:
        root = Path(tmp)
        for name in ("matrix.yml", "matrix.lock"):
            shutil.copy(ROOT / name, root / name)
        (root / "userspace").mkdir()
        shutil.copy(ROOT / "userspace" / "Cargo.toml", root / "userspace" / "Cargo.toml")
        (root / "ktap.log").write_text("KTAP version 1\n1..2\nok 1 a\nnot ok 2 b\n")
        (root / "garbage.log").write_bytes(b"\xff\xfe\x00garbage\nnot ok\n1..\x00")
        (root / "bad-matrix.yml").write_text("kernels: [\n")
        (root / "a-directory").mkdir()
        (root / "reports").mkdir()
        yield root


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, project: Path) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{project}/no-docker.sock")
    monkeypatch.setenv("KMATRIX_RESULT_CACHE_DIR", str(project / "result-cache"))
    monkeypatch.setenv("KMATRIX_CACHE_DIR", str(project / "cache"))
    monkeypatch.setenv("KMATRIX_BUILDBOT_DIR", str(project / "bb"))
    monkeypatch.setattr(sys, "stdin", io.StringIO("not ktap\n"))


def call(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean(code: int, out: str, err: str) -> None:
    text = out + err
    assert "Traceback" not in text, text
    assert "internal error" not in text, text


BAD = [
    # (argv, what stderr must contain)
    ([], "the following arguments are required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["--matrix"], "expected one argument"),
    (["--matrix", "nowhere.yml", "validate"], "nowhere.yml: no such matrix file"),
    (["--matrix", "a-directory", "validate"], "no such matrix file"),
    (["--matrix", "bad-matrix.yml", "validate"], "bad-matrix.yml:"),
    (["--matrix", "garbage.log", "list"], "garbage.log:"),
    (["validate", "--bogus"], "unrecognized arguments: --bogus"),
    (["list", "--kernel"], "expected one argument"),
    (["list", "--kernel", "9.9"], "kernel '9.9' is not declared"),
    (["list", "--features", "nope"], "nope"),
    (["list", "--changed-since", "HEAD"], "not in a git checkout"),
    (["run", "-j", "many"], "invalid int value: 'many'"),
    (["run", "-j", "0"], "must be at least 1, not 0"),
    (["run", "-j", "-3"], "must be at least 1, not -3"),
    (["run", "--kernel", "6.8"], "kernel '6.8' is not declared"),
    (["run", "--job", "no-such-job/*"], "no-such-job"),
    (["run", "--baseline", "no-such-run", "--kernel", "6.1"], "no run 'no-such-run'"),
    (["run", "--kernel", "6.1"], "Docker is not reachable"),
    (["run", "--kernel", "6.1", "--fail-fast", "--fail-fast=yes"], "ignored explicit argument"),
    (["job"], "the following arguments are required: JOB_ID, --dir"),
    (["job", "kmod-build/6.1"], "the following arguments are required: --dir"),
    (["job", "kmod-build/9.9", "--dir", "out"], "no job 'kmod-build/9.9'"),
    (["job", "kmod-build/6.1", "--dir", "ktap.log/x"], "--dir ktap.log/x: cannot create it"),
    (["job", "kmod-build/6.1", "--dir", "out"], "Docker is not reachable"),
    (["images"], "the following arguments are required: action"),
    (["images", "push"], "invalid choice: 'push'"),
    (["images", "build"], "Docker is not reachable"),
    (["convert"], "the following arguments are required: format, log"),
    (["convert", "xml", "ktap.log"], "invalid choice: 'xml'"),
    (["convert", "ktap", "missing.log"], "missing.log: cannot read"),
    (["convert", "ktap", "a-directory"], "a-directory: cannot read"),
    (["convert", "ktap", "ktap.log", "-o", "no/such/dir/out.xml"], "cannot write"),
    (["convert", "ktap", "ktap.log", "-o", "a-directory"], "cannot write"),
    (["report", "no-such-run"], "no run 'no-such-run'"),
    (["report", "--reports", "nowhere"], "no run 'latest'"),
    (["report", "--baseline"], "expected one argument"),
    (["runs", "--json", "extra"], "unrecognized arguments: extra"),
    (["cache"], "the following arguments are required: action"),
    (["cache", "explode"], "invalid choice: 'explode'"),
    (["master"], "the following arguments are required: action"),
    (["master", "restart"], "invalid choice: 'restart'"),
    (["hook", "install"], "the following arguments are required: REPO"),
    (["hook", "install", "a-directory"], "not a git repository"),
    (["hook", "remove", "x"], "invalid choice: 'remove'"),
    (["schema", "extra"], "unrecognized arguments: extra"),
    (["worker"], "the following arguments are required: action"),
    (["worker", "create"], "`pipeline worker create` needs the worker's name"),
    (["worker", "create", "bad name!"], "worker name 'bad name!' is not valid"),
    (["worker", "create", "w1"], "needs --master HOST:PORT"),
    (["worker", "create", "w1", "--master", "host"], "--master 'host' is not HOST:PORT"),
    (["worker", "create", "w1", "--master", "host:99999"], "is not HOST:PORT"),
    (["worker", "create", "w1", "--master", "h:9989", "--password-file", "missing.pass"],
     "--password-file missing.pass: cannot read it"),
    (["worker", "create", "w1", "--master", "h:9989"], "$KMATRIX_WORKER_PASSWORD is empty"),
    (["worker", "start", "--basedir", "a-directory"], "a-directory holds no worker"),
    (["lock", "--update=yes"], "ignored explicit argument"),
]


@pytest.mark.parametrize(("argv", "expected"), BAD, ids=[" ".join(a) or "(none)" for a, _ in BAD])
def test_bad_command_line(capsys: pytest.CaptureFixture[str], argv: list[str],
                          expected: str) -> None:
    code, out, err = call(capsys, argv)
    assert_clean(code, out, err)
    assert code == 2, (out, err)
    assert expected in err, err
    assert err.startswith(("usage: pipeline", "pipeline: ")), err
    assert out == ""


def test_usage_errors_show_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, ["run", "-j", "0"])
    assert code == 2 and err.startswith("usage: pipeline run [-h]") and "-j N" in err


# --------------------------------------------------------------------------- generated

COMMANDS = ["validate", "list", "schema", "run", "runs", "report", "job", "images",
            "convert", "cache", "nonsense", ""]
OPTIONS = {
    "list": ["--kernel", "--features", "--job", "--json", "--changed-since"],
    "run": ["--kernel", "--features", "--job", "--no-cache", "-j", "--jobs", "--fail-fast",
            "--reports", "--json", "--baseline", "-v", "--changed-since"],
    "runs": ["--reports", "--json"],
    "report": ["--reports", "--baseline", "--json"],
    "job": ["--dir", "--needs-dir", "--no-cache", "-v"],
    "images": ["--kernel", "--features", "--job"],
    "convert": ["-o", "--output", "--name"],
    "cache": ["--json"],
}
POSITIONAL = {
    "report": ["latest", "no-such-run", "reports", "."],
    "job": ["kmod-build/6.1", "crate-test/default", "vm-test/6.12", "nope", "kmod-build/*"],
    "images": ["list", "build", "push"],
    "convert": ["ktap", "libtest", "tap"],
    "cache": ["info", "prune", "explode"],
}
VALUES = ["6.1", "6.12", "6.8", "", "0", "2", "99999999999999999999", "many", "*",
          "kmod-build/*", "[", "default", "pairs", "HEAD", "no-such-rev", "latest",
          "reports", "out", "nowhere/x", "a-directory", "ktap.log", "garbage.log",
          "missing.log", "ü\u202e\x00", "\\", "' or 1=1"]
DASHED = ["-1", "-", "--", "-x"]  # values argparse may take for options
GLOBAL = [[], [], ["--matrix", "matrix.yml"], ["--matrix", "bad-matrix.yml"],
          ["--matrix", "nowhere.yml"], ["--matrix", "a-directory"]]


FLAGS = {"--json", "--no-cache", "--fail-fast", "-v"}


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """Mostly well-formed command lines with bad (or good) values, some malformed ones."""
    argv = list(draw(st.sampled_from(GLOBAL)))
    command = draw(st.sampled_from(COMMANDS))
    if command:
        argv.append(command)
    if command in POSITIONAL and draw(st.integers(0, 9)):
        argv.append(draw(st.sampled_from(POSITIONAL[command])))
    if command == "convert" and draw(st.integers(0, 9)):
        argv.append(draw(st.sampled_from([*VALUES, "-"])))
    if command == "job" and draw(st.integers(0, 4)):
        argv += ["--dir", draw(st.sampled_from(["out", "ktap.log", "a-directory"]))]
    for _ in range(draw(st.integers(0, 4 if command in OPTIONS else 1))):
        option = draw(st.sampled_from(OPTIONS.get(command, ["--bogus"])))
        if draw(st.integers(0, 15)) == 7:
            option = draw(st.sampled_from(["--bogus", "-q", "--json=1"]))
        argv.append(option)
        if (option not in FLAGS) == bool(draw(st.integers(0, 9))):  # 1 in 10: the wrong way
            argv.append(draw(st.sampled_from(VALUES if draw(st.integers(0, 9)) else DASHED)))
    if draw(st.integers(0, 19)) == 7:  # now and then pure noise
        argv += draw(st.lists(st.text(max_size=6), max_size=3))
    if draw(st.integers(0, 29)) == 7:
        argv.insert(0, "--matrix")  # an option without its value
    return argv


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=command_lines())
def test_generated_command_lines(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = call(capsys, argv)
    assert_clean(code, out, err)
    assert code in (0, 1, 2), (argv, code, err)
    if code == 2:
        assert err.startswith(("usage: pipeline", "pipeline: ")), (argv, err)
        assert err.strip(), argv
