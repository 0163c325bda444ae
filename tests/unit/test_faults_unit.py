"""Faults and secrets without Docker or QEMU: injected disk-full and file-size errors, fake
Docker engines that vanish or time out, a failing mmdebstrap, a cancelled VM, masking, and
the Buildbot master's protections when exposed. docs/RELIABILITY.md names these tests."""

from __future__ import annotations

import base64
import errno
import http.server
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from pipeline.debian.images import ImageBase, ImageBuilder, ImageCatalog, ImageRef
from pipeline.errors import ImageBuildError, InputError, ReportError
from pipeline.fsutil import atomic_path, atomic_write_text
from pipeline.model.expand import expand
from pipeline.model.matrix import load_matrix_text
from pipeline.results.status import ERROR, FAILED, PASSED
from pipeline.run import vm
from pipeline.run.executor import ContainerRunner, ContainerSpec, Mount, StepOutcome
from pipeline.run.masking import MASK, Masker, is_secret_name, url_password
from pipeline.run.runner import RunContext, run_job

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-0123456789-abcdef"
DEPLOY = "dk-from-the-environment-42"


# --------------------------------------------------------------------------- masking


def test_secret_names() -> None:
    for name in ("API_TOKEN", "GITHUB_TOKEN", "token", "DB_PASSWORD", "MY_SECRET_X",
                 "SSH_KEY", "AWS_SECRET_ACCESS_KEY", "KEY", "api_key", "PRIVATE_KEY_PEM",
                 "REGISTRY_PASSWD", "GCP_CREDENTIALS"):
        assert is_secret_name(name), name
    for name in ("KERNEL", "KDIR", "FEATURES", "PATH", "KEYRING", "MONKEY_BUSINESS", "HOME"):
        assert not is_secret_name(name), name


def test_masker_masks_values_and_their_escaped_forms() -> None:
    masker = Masker()
    masker.add_env({"API_TOKEN": 'a<b>&"c\'d-secret', "PLAIN": "visible", "PIN": "12",
                    "SSH_KEY": "line-one-of-key\nline-two-of-key"})
    text = ('raw a<b>&"c\'d-secret json a<b>&\\"c\'d-secret xml a&lt;b&gt;&amp;&quot;c&apos;'
            'd-secret ml line-two-of-key visible 12')
    masked = masker.mask(text)
    assert masked == f"raw {MASK} json {MASK} xml {MASK} ml {MASK} visible 12"
    assert Masker().mask(text) == text  # nothing known, nothing changed


def test_proxy_passwords_are_secrets() -> None:
    assert url_password("http://bob:hunter2-pw@proxy:3128") == "hunter2-pw"
    assert url_password("http://proxy:3128") is None and url_password("not a url") is None
    masker = Masker()
    masker.add_env({"HTTPS_PROXY": "http://bob:p%40ss-word@proxy:3128"})
    assert masker.mask("via http://bob:p%40ss-word@proxy") == f"via http://bob:{MASK}@proxy"
    assert masker.mask("typed p@ss-word") == f"typed {MASK}"


def test_reproducer_passes_secrets_by_name(tmp_path: Path) -> None:
    from pipeline.run.runtimes.container import docker_reproducer as _docker_reproducer

    masker = Masker()
    masker.add_env({"API_TOKEN": TOKEN})
    spec = ContainerSpec(image="img:1", script="echo $API_TOKEN",
                         env={"API_TOKEN": TOKEN, "PLAIN": "x"}, mounts=[])
    lines = _docker_reproducer(tmp_path, [(SimpleNamespace(name="s"), spec)], masker)
    text = "\n".join(lines)
    assert TOKEN not in text
    assert " -e API_TOKEN " in text and "-e PLAIN=x" in text
    assert "export API_TOKEN before running this" in text
    assert ": \"${API_TOKEN:?set API_TOKEN (a secret of this job)}\"" in text


# --------------------------------------------------------------------------- runner


MATRIX = f"""\
kernels: {{"6.1": {{suite: bookworm}}}}
jobs:
  leak:
    image: rust
    env: {{API_TOKEN: "{TOKEN}", PLAIN: visible}}
    secrets: [KMATRIX_UNIT_DEPLOY_KEY]
    steps:
      - {{name: one, run: "echo $API_TOKEN"}}
"""


class FakeImages:
    def ensure(self, flavour: str, kernel: Any) -> ImageRef:
        return ImageRef(flavour, "kmatrix/rust:fake", "sha256:fake", False, 0.0)


class FakeContainers:
    """Prints every env value (as a leaky job would) and exits 3."""

    stopping = False

    def __init__(self) -> None:
        self.specs: list[ContainerSpec] = []

    def run(self, spec: ContainerSpec, timeout: float, on_line: Any = None) -> StepOutcome:
        self.specs.append(spec)
        lines = [f"{k}={v}" for k, v in sorted(spec.env.items())] + [
            f"error: {spec.env.get('KMATRIX_UNIT_DEPLOY_KEY')} rejected"]
        for line in lines:
            on_line(line)
        return StepOutcome(3, "\n".join(lines) + "\n", 0.1)


def _ctx(tmp_path: Path, **kw: Any) -> tuple[RunContext, Any]:
    matrix = load_matrix_text(MATRIX, str(tmp_path / "matrix.yml"))
    (job,) = expand(matrix)
    shown: list[str] = []
    ctx = RunContext(run_id="r1", run_dir=tmp_path / "run", root=tmp_path,
                     images=FakeImages(), containers=FakeContainers(), kernels={},
                     flavour_caches={}, log=lambda _j, line: shown.append(line),
                     error=shown.append, **kw)
    ctx.shown = shown  # type: ignore[attr-defined]
    return ctx, job


def test_secrets_are_masked_in_every_file_and_line(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMATRIX_UNIT_DEPLOY_KEY", DEPLOY)
    ctx, job = _ctx(tmp_path)
    result = run_job(ctx, job)
    assert result.status == FAILED
    (spec,) = ctx.containers.specs
    assert spec.env["KMATRIX_UNIT_DEPLOY_KEY"] == DEPLOY  # the container gets the value
    files = {p.name: p.read_text() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert set(files) >= {"log.txt", "junit.xml", "metadata.json", "reproduce.sh"}
    for name, text in files.items():
        assert TOKEN not in text and DEPLOY not in text, name
    assert f"API_TOKEN={MASK}" in files["log.txt"] and "PLAIN=visible" in files["log.txt"]
    assert f"error: {MASK} rejected" in files["junit.xml"]
    assert not any(TOKEN in s or DEPLOY in s for s in ctx.shown)
    assert json.dumps(result.to_json()).count(DEPLOY) == 0


def test_unset_secret_is_the_jobs_error_before_any_container(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KMATRIX_UNIT_DEPLOY_KEY", raising=False)
    ctx, job = _ctx(tmp_path)
    result = run_job(ctx, job)
    assert result.status == ERROR and ctx.containers.specs == []
    assert "secret KMATRIX_UNIT_DEPLOY_KEY is not set" in result.message


def _enospc(*_a: Any, **_k: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_writing_job_results_is_the_jobs_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMATRIX_UNIT_DEPLOY_KEY", DEPLOY)
    monkeypatch.setattr("pipeline.run.runner.write_suite", _enospc)
    ctx, job = _ctx(tmp_path)
    result = run_job(ctx, job)
    assert result.status == ERROR
    assert result.message.endswith("No space left on device")
    assert any("cannot write the job's results" in s for s in ctx.shown)
    meta = json.loads((tmp_path / "run" / "leak" / "metadata.json").read_text())
    assert meta["status"] == ERROR  # never "passed" for a job whose record is incomplete


class _FullLog:
    def write(self, _text: str) -> None:
        _enospc()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_disk_full_while_writing_the_log_is_the_jobs_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMATRIX_UNIT_DEPLOY_KEY", DEPLOY)
    monkeypatch.setattr("pipeline.run.runner.open", lambda *_a, **_k: _FullLog(), raising=False)
    ctx, job = _ctx(tmp_path)
    result = run_job(ctx, job)  # the job's output still reaches the caller's log
    assert result.status == ERROR and "log.txt: No space left on device" in result.message
    assert result.message.endswith("(and: step 'one' exited 3)")
    assert any(line.startswith("API_TOKEN=") for line in ctx.shown)


TRUNCATED = {
    "ktap": "KTAP version 1\n1..3\nok 1 a\nnot ok 2 b\n[  3.1] Kernel panic - not syn",
    "libtest": ('{"type":"suite","event":"started","test_count":2}\n'
                '{"type":"test","event":"started","name":"a"}\n{"type":"test","na'),
}


@pytest.mark.parametrize("kind", ["ktap", "libtest"])
def test_truncated_test_output_in_a_job_is_an_error_case(tmp_path: Path, kind: str) -> None:
    text = ('kernels: {"6.1": {suite: a}}\njobs:\n  t:\n    image: rust\n    steps:\n'
            f"      - {{name: test, results: {kind}, run: x}}\n")
    matrix = load_matrix_text(text, str(tmp_path / "matrix.yml"))
    (job,) = expand(matrix)

    class Truncated(FakeContainers):
        def run(self, spec: ContainerSpec, timeout: float, on_line: Any = None
                ) -> StepOutcome:
            return StepOutcome(137, TRUNCATED[kind], 0.1, error="killed")

    ctx = RunContext(run_id="r", run_dir=tmp_path / "run", root=tmp_path, images=FakeImages(),
                     containers=Truncated(), kernels={}, flavour_caches={})
    result = run_job(ctx, job)
    assert result.status == FAILED and result.errors >= 1
    from junitparser import JUnitXml

    errors = [r.message for suite in JUnitXml.fromfile(str(tmp_path / "run/t/junit.xml"))
              for case in suite for r in case.result if type(r).__name__ == "Error"]
    expected = "missing 1 results" if kind == "ktap" else "never reported a result"
    assert any(expected in (m or "") for m in errors), errors


# --------------------------------------------------------------------------- reports


def _summary_args(tmp_path: Path) -> tuple[Path, list[Any], dict[str, Any]]:
    from pipeline.results.status import JobResult

    run_dir = tmp_path / "reports" / "r2"
    run_dir.mkdir(parents=True)
    jobs = [SimpleNamespace(id="j", name="j", axes=dict)]
    results = {"j": JobResult("j", PASSED, message="x" * 5000)}
    return run_dir, jobs, results


def test_disk_full_while_writing_summary_keeps_the_previous_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from pipeline.report import summary as report
    from pipeline.report.run_output import write_run_report

    reports = tmp_path / "reports"
    previous = reports / "r1"
    previous.mkdir(parents=True)
    (previous / "summary.json").write_text('{"run": "r1"}\n')
    report.point_latest(reports, previous)
    run_dir, jobs, results = _summary_args(tmp_path)
    monkeypatch.setattr("pipeline.report.summary.atomic_write_text", _enospc)
    with pytest.raises(ReportError) as raised:
        write_run_report(reports, run_dir, "r2", tmp_path / "m.yml", jobs, results,
                         datetime.now(UTC), None)
    message = str(raised.value)
    assert "summary.json: No space left on device" in message
    assert "still points at the previous report (r1), which is intact" in message
    assert os.readlink(reports / "latest") == "r1"
    assert (previous / "summary.json").read_text() == '{"run": "r1"}\n'
    assert not list(reports.rglob("*.tmp"))


_WRITE_SUMMARY = """\
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from pipeline.errors import ReportError
from pipeline.report.summary import write_summary
from pipeline.results.status import JobResult
run_dir = Path(sys.argv[1])
jobs = [SimpleNamespace(id="j", name="j", axes=dict)]
try:
    write_summary(run_dir, "r", Path("m.yml"), jobs,
                  {"j": JobResult("j", "passed", message="x" * 20000)}, datetime.now(UTC))
except ReportError as exc:
    print(exc)
    sys.exit(2)
"""


def test_file_size_limit_at_the_os_level_leaves_the_old_summary(tmp_path: Path) -> None:
    """The kernel refuses the write (RLIMIT_FSIZE, EFBIG): a real failed write(2)."""
    import resource

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text('{"old": true}\n')

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    proc = subprocess.run([sys.executable, "-c", _WRITE_SUMMARY, str(run_dir)], cwd=ROOT,
                          capture_output=True, text=True, preexec_fn=limit, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "summary.json: File too large" in proc.stdout
    assert (run_dir / "summary.json").read_text() == '{"old": true}\n'
    assert sorted(p.name for p in run_dir.iterdir()) == ["junit.xml", "summary.json"]


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    target.write_text("old")
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        _enospc()
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.json"]
    atomic_write_text(target, "new", mode=0o640)
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o640


def test_run_ids_never_collide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.report import summary as report

    ids = iter(["20260101-000000-aaaa", "20260101-000000-aaaa", "20260101-000000-bbbb"])
    monkeypatch.setattr(report, "new_run_id", lambda: next(ids))
    first = report.new_run_dir(tmp_path / "reports")
    second = report.new_run_dir(tmp_path / "reports")
    assert first[0] == "20260101-000000-aaaa" and second[0] == "20260101-000000-bbbb"
    (tmp_path / "file").write_text("")
    with pytest.raises(ReportError, match="cannot create a run directory"):
        report.new_run_dir(tmp_path / "file" / "reports")


# --------------------------------------------------------------------------- Docker faults


class FakeContainer:
    def __init__(self, wait: Any, oom: bool = False) -> None:
        self.id = "c1"
        self._wait = wait
        self.attrs = {"State": {"OOMKilled": oom}}
        self.calls: list[str] = []

    def start(self) -> None:
        self.calls.append("start")

    def logs(self, **_kw: Any) -> list[bytes]:
        return [b"some output\n"]

    def wait(self, timeout: float) -> dict[str, int]:
        if isinstance(self._wait, Exception):
            raise self._wait
        return {"StatusCode": self._wait}

    def reload(self) -> None:
        pass

    def kill(self) -> None:
        self.calls.append("kill")

    def remove(self, force: bool = False) -> None:
        self.calls.append("remove")


def _runner(create: Any) -> ContainerRunner:
    def make(*_a: Any, **_k: Any) -> Any:
        if isinstance(create, Exception):
            raise create
        return create

    return ContainerRunner(SimpleNamespace(containers=SimpleNamespace(create=make)))


SPEC = ContainerSpec(image="i", script="true", env={}, mounts=[Mount(Path("/x"), "/src", True)],
                     memory="64m")


def test_docker_gone_before_a_step_is_the_steps_error() -> None:
    outcome = _runner(requests.exceptions.ConnectionError("refused")).run(SPEC, timeout=5)
    assert outcome.exit_code is None and outcome.error == "Docker is not reachable: refused"


def test_step_timeout_kills_and_removes_the_container() -> None:
    container = FakeContainer(requests.exceptions.ReadTimeout("read timed out"))
    outcome = _runner(container).run(SPEC, timeout=1)
    assert outcome.timed_out and outcome.error == (
        "timed out after 1 s; container killed and removed")
    assert container.calls == ["start", "kill", "remove"]


def test_docker_lost_during_a_step_is_not_a_timeout() -> None:
    container = FakeContainer(requests.exceptions.ConnectionError("Connection aborted"))
    outcome = _runner(container).run(SPEC, timeout=600)
    assert not outcome.timed_out
    assert outcome.error == "lost the connection to Docker: Connection aborted"
    assert container.calls[-1] == "remove"


def test_oom_killed_step_says_out_of_memory() -> None:
    outcome = _runner(FakeContainer(137, oom=True)).run(SPEC, timeout=60)
    assert outcome.exit_code == 137 and outcome.error == "killed: out of memory (limit 64m)"


def test_container_isolation_flags() -> None:
    seen: dict[str, Any] = {}

    def create(*_a: Any, **kw: Any) -> Any:
        seen.update(kw)
        return FakeContainer(0)

    runner = ContainerRunner(SimpleNamespace(containers=SimpleNamespace(create=create)))
    runner.run(SPEC, timeout=60)
    assert seen["user"] == "1000:1000" and seen["network_mode"] == "none"
    assert seen["privileged"] is False and seen["cap_drop"] == ["ALL"]
    assert seen["security_opt"] == ["no-new-privileges"]
    assert seen["mem_limit"] == seen["memswap_limit"] == 64 * 2**20
    assert seen["volumes"] == {"/x": {"bind": "/src", "mode": "ro"}}
    args = SPEC.docker_run_args()
    assert "--privileged" not in args and args[args.index("--network") + 1] == "none"


# --------------------------------------------------------------------------- images


def test_failing_mmdebstrap_is_an_image_error_with_the_log_tail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import docker.errors

    bindir = tmp_path / "bin"
    bindir.mkdir()
    counter = tmp_path / "calls"
    fake = bindir / "mmdebstrap"
    fake.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo call >> {counter}
        echo "I: downloading packages" >&2
        echo "E: Unable to locate package nosuchpkg-kmatrix" >&2
        exit 100
        """))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("KMATRIX_CACHE_DIR", str(tmp_path / "cache"))
    images = tmp_path / "images"
    images.mkdir()
    (images / "flavours.yml").write_text(
        "broken:\n  suite: bookworm\n  packages: [gcc, nosuchpkg-kmatrix]\n")
    (images / "Dockerfile.j2").write_text("FROM {{ rootfs_image }}\n")

    def missing(_tag: str) -> None:
        raise docker.errors.ImageNotFound("no such image")

    client = SimpleNamespace(images=SimpleNamespace(get=missing))
    builder = ImageBuilder(client, ImageCatalog(images), ImageBase())
    with pytest.raises(ImageBuildError) as first:
        builder.ensure("broken", None)
    text = str(first.value)
    assert "mmdebstrap failed for image flavour 'broken' (suite bookworm, exit 100)" in text
    assert "E: Unable to locate package nosuchpkg-kmatrix" in text  # the log's tail
    assert "full log: " in text
    with pytest.raises(ImageBuildError) as second:  # not retried within the run
        builder.ensure("broken", None)
    assert str(second.value) == text and counter.read_text() == "call\n"


# --------------------------------------------------------------------------- VM


def test_cancelled_vm_stops_qemu_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    started = tmp_path / "pid"
    monkeypatch.setattr(vm, "qemu_command", lambda *_a: [
        "sh", "-c", f"echo $$ > {started}; echo {vm.START_MARKER}; exec sleep 600"])
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    t0 = time.monotonic()
    spec = vm.VmSpec(kernel=tmp_path / "k", timeout=600, boot_timeout=600)
    result = vm._boot(spec, tmp_path, tmp_path / "initrd", "tcg", None, cancel)
    assert result.status == "interrupted" and result.exit_code is None
    assert time.monotonic() - t0 < 10
    assert not Path(f"/proc/{started.read_text().strip()}").exists()


def test_vm_label_names_the_qemu_process(tmp_path: Path) -> None:
    spec = vm.VmSpec(kernel=tmp_path / "k", label="kmatrix:run-1:vm-test/6.1")
    cmd = vm.qemu_command(spec, tmp_path / "i", "tcg")
    assert cmd[cmd.index("-name") + 1] == "kmatrix:run-1:vm-test/6.1"
    assert "-name" not in vm.qemu_command(vm.VmSpec(kernel=tmp_path / "k"), tmp_path, "tcg")


# --------------------------------------------------------------------------- Buildbot


def _settings(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Any:
    from pipeline.buildbot.settings import load_settings

    (tmp_path / "kmatrix.yml").write_text(text)
    return load_settings(tmp_path, env=env or {})


def test_loopback_master_stays_open(tmp_path: Path) -> None:
    pytest.importorskip("buildbot")
    from pipeline.buildbot.config import www_security

    for bind in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        settings = _settings(tmp_path, f"bind: '{bind}'\n")
        assert not settings.auth_required and www_security(settings) == {}
    assert not (tmp_path / "www-users").exists() and not (tmp_path / "hook.secret").exists()


def test_exposed_master_requires_logins_and_the_hook_secret(tmp_path: Path) -> None:
    pytest.importorskip("buildbot")
    from buildbot.www.auth import UserPasswordAuth
    from buildbot.www.authz.authz import Authz
    from twisted.cred.credentials import UsernamePassword

    from pipeline.buildbot.config import SharedSecretChecker, www_security

    settings = _settings(tmp_path, "bind: 0.0.0.0\n")
    assert settings.auth_required and settings.connect_host == "127.0.0.1"
    for name in ("www-users", "hook.secret"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    user, password = (tmp_path / "www-users").read_text().strip().split(":", 1)
    assert user == "admin" and len(password) >= 16 and settings.users == {user: password}
    www = www_security(settings)
    assert isinstance(www["auth"], UserPasswordAuth) and isinstance(www["authz"], Authz)
    rule = www["authz"].allowRules[0]
    assert type(rule).__name__ == "AnyControlEndpointMatcher" and rule.role == "users"
    (checker,) = www["change_hook_auth"]
    assert isinstance(checker, SharedSecretChecker)
    good = checker.requestAvatarId(UsernamePassword(b"any", settings.hook_secret.encode()))
    bad = checker.requestAvatarId(UsernamePassword(b"any", b"wrong"))
    outcomes: list[str] = []
    good.addCallbacks(lambda _u: outcomes.append("ok"), lambda _f: outcomes.append("no"))
    bad.addCallbacks(lambda _u: outcomes.append("ok"), lambda _f: outcomes.append("no"))
    assert outcomes == ["ok", "no"]
    # the same for an explicit interface; the worker on this machine connects to it
    assert _settings(tmp_path, "bind: 10.1.2.3\n").connect_host == "10.1.2.3"


def test_exposed_config_and_stopping_a_build_sends_sigterm_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("buildbot")
    from pipeline.buildbot.config import build_config

    for var in ("KMATRIX_BB_BIND", "KMATRIX_BB_REQUIRE_AUTH", "KMATRIX_BB_HOOK_SECRET"):
        monkeypatch.delenv(var, raising=False)
    project = tmp_path / "project"
    (project / ".buildbot").mkdir(parents=True)
    (project / "matrix.yml").write_text(
        'kernels: {"6.1": {suite: bookworm}}\njobs: {k: {over: [kernel], image: x, run: y}}\n')
    (project / ".buildbot" / "kmatrix.yml").write_text("bind: 0.0.0.0\n")
    config = build_config(basedir=project / ".buildbot", matrix=project / "matrix.yml")
    assert {"auth", "authz", "change_hook_auth"} <= set(config["www"])
    assert config["www"]["port"].endswith("interface=0.0.0.0")
    (builder,) = config["builders"]
    (job_step,) = [s for s in builder.factory.steps if s.kwargs.get("name") == "job"]
    assert job_step.kwargs["sigtermTime"] == 30  # `pipeline job` cleans up on SIGTERM


def test_exposed_master_settings_rules(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="require_auth cannot be false"):
        _settings(tmp_path, "bind: 0.0.0.0\nrequire_auth: false\n")
    forced = _settings(tmp_path, "require_auth: true\n",
                       env={"KMATRIX_BB_HOOK_SECRET": "from-the-environment-123"})
    assert forced.auth_required and forced.hook_secret == "from-the-environment-123"
    with pytest.raises(InputError, match="at least 16 characters"):
        _settings(tmp_path, "require_auth: true\n", env={"KMATRIX_BB_HOOK_SECRET": "short"})
    with pytest.raises(InputError, match="is not true, false or auto"):
        _settings(tmp_path, "require_auth: sometimes\n")
    (tmp_path / "www-users").write_text("no colon here\n")
    with pytest.raises(InputError, match="www-users:1: expected `name:password`"):
        _settings(tmp_path, "require_auth: true\n")


def test_post_receive_hook_sends_the_secret_it_never_contains(tmp_path: Path) -> None:
    from pipeline.buildbot.control import hook_script

    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's name
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_a: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        secret_file = tmp_path / "hook.secret"
        secret_file.write_text("s3cret-from-the-file-0123\n")
        hook = tmp_path / "post-receive"
        hook.write_text(hook_script(f"http://127.0.0.1:{server.server_port}/change_hook/poller",
                                    secret_file))
        hook.chmod(0o755)
        assert "s3cret" not in hook.read_text()
        env = {k: v for k, v in os.environ.items() if k != "KMATRIX_BB_HOOK_SECRET"}
        out = subprocess.run([str(hook)], capture_output=True, text=True, env=env, timeout=60)
        assert "master notified" in out.stdout, out.stdout + out.stderr
        secret_file.unlink()  # loopback master: no secret, no header, still notified
        out = subprocess.run([str(hook)], capture_output=True, text=True, env=env, timeout=60)
        assert "master notified" in out.stdout
    finally:
        server.shutdown()
    expected = base64.b64encode(b"kmatrix-hook:s3cret-from-the-file-0123").decode()
    assert seen == [f"Basic {expected}", None]


# --------------------------------------------------------------------------- the table


def test_reliability_table_names_real_tests() -> None:
    """Every test docs/RELIABILITY.md cites exists: `file::test`, `F::`/`U::` short forms,
    and `::test` continuing the file cited just before it."""
    import re

    text = (ROOT / "docs" / "RELIABILITY.md").read_text()
    short = {"F": "integration/test_faults.py", "U": "unit/test_faults_unit.py"}
    cited: list[tuple[str, str]] = []
    last = ""
    spans = [span for line in text.splitlines() for span in line.split("`")[1::2]]
    for cell in [span for span in spans if "::" in span]:
        match = re.match(r"^(?:(F|U)|([\w/]+\.py))?::(\w+)", cell)
        assert match, cell
        last = short[match[1]] if match[1] else (match[2] or last).removeprefix("tests/")
        assert last, cell
        cited.append((last, match[3]))
    assert len(cited) >= 50
    for path, name in cited:
        source = (ROOT / "tests" / path).read_text()
        assert f"def {name}(" in source, f"{path}::{name} is cited but does not exist"
