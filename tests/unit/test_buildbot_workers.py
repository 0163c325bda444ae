"""Workers by capability, retention and transfer settings (no processes started)."""

from __future__ import annotations

import pytest

from pipeline.errors import InputError

MATRIX = """\
version: 1
kernels:
  "6.1": {suite: bookworm}
  "6.12": {suite: trixie}
jobs:
  kmod-build:
    over: [kernel]
    image: kbuild
    run: make
  vm-test:
    over: [kernel]
    needs: [kmod-build]
    vm:
      modules: [$NEEDS/kmod-build/$KERNEL/vexfs.ko]
      command: "true"
"""

pytest.importorskip("buildbot")


def settings_with(tmp_path, text: str, env: dict[str, str] | None = None):
    from pipeline.buildbot.settings import load_settings

    (tmp_path / "kmatrix.yml").write_text(text)
    return load_settings(tmp_path, env=env or {})


def config_with(tmp_path, monkeypatch, text: str, env: dict[str, str]):
    from pipeline.buildbot.config import build_config

    project = tmp_path / "project"
    (project / ".buildbot").mkdir(parents=True)
    (project / "matrix.yml").write_text(MATRIX)
    (project / ".buildbot" / "kmatrix.yml").write_text(text)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return build_config(basedir=project / ".buildbot", matrix=project / "matrix.yml")


def test_capabilities_default_and_declared(tmp_path) -> None:
    settings = settings_with(tmp_path, "workers:\n"
                             "  - {name: builds, capabilities: [docker]}\n"
                             "  - {name: vms, capabilities: [qemu, kvm]}\n",
                             {"KMATRIX_BB_WORKER_PASSWORD_BUILDS": "a",
                              "KMATRIX_BB_WORKER_PASSWORD_VMS": "b"})
    caps = {w.name: sorted(w.capabilities) for w in settings.workers}
    assert caps == {"local": ["docker", "qemu"], "builds": ["docker"], "vms": ["kvm", "qemu"]}


@pytest.mark.parametrize("text, message", [
    ("workers:\n  - {name: w, capabilities: [docker, gpu]}\n", "unknown capability gpu"),
    ("workers:\n  - {name: w, capabilities: {docker: 1}}\n", "must be a list"),
    ("transfer: local\n", "transfer: 'local' is no longer supported"),
    ("retention: {days: -1}\n", "must not be negative"),
    ("retention: {weeks: 2}\n", "expected a mapping of days, revisions"),
])
def test_bad_worker_settings_say_what_is_expected(tmp_path, text, message) -> None:
    with pytest.raises(InputError) as raised:
        settings_with(tmp_path, text, {"KMATRIX_BB_WORKER_PASSWORD_W": "x"})
    assert message in str(raised.value)


def test_jobs_go_only_to_workers_that_can_run_them(tmp_path, monkeypatch) -> None:
    config = config_with(tmp_path, monkeypatch,
                         "local_worker_capabilities: [docker]\nworkers:\n"
                         "  - {name: vm-1, capabilities: [qemu]}\n"
                         "  - {name: vm-kvm, capabilities: [qemu, kvm]}\n",
                         {"KMATRIX_BB_WORKER_PASSWORD_VM_1": "a",
                          "KMATRIX_BB_WORKER_PASSWORD_VM_KVM": "b"})
    builders = {b.name: b for b in config["builders"]}
    assert builders["kmod-build/6.1"].workernames == ["local"]
    assert builders["vm-test/6.1"].workernames == ["vm-1", "vm-kvm"]
    assert builders["kmod-build/6.1"].nextWorker is None

    class Wfb:
        def __init__(self, name: str) -> None:
            self.worker = type("W", (), {"workername": name})()

    pick = builders["vm-test/6.1"].nextWorker
    free = [Wfb("vm-1"), Wfb("vm-kvm")]
    assert all(pick(None, free, None).worker.workername == "vm-kvm" for _ in range(20))
    assert pick(None, [Wfb("vm-1")], None).worker.workername == "vm-1"
    assert pick(None, [], None) is None


def test_a_matrix_no_worker_can_run_is_a_configuration_error(tmp_path, monkeypatch) -> None:
    from buildbot.config.errors import ConfigErrors

    with pytest.raises(ConfigErrors) as raised:
        config_with(tmp_path, monkeypatch, "local_worker_capabilities: [docker]\n", {})
    message = str(raised.value.errors)
    assert "no worker can run vm-test/6.1, vm-test/6.12" in message
    assert "`qemu` in its capabilities" in message and "local [docker]" in message


def test_durations_the_database_cannot_hold_are_left_out() -> None:
    from pipeline.buildbot.steps import MAX_DURATION_NS, duration_ns

    assert duration_ns(1.5) == 1_500_000_000
    assert duration_ns(MAX_DURATION_NS / 1e9) == MAX_DURATION_NS
    assert duration_ns(3.594) is None  # a 3.6 s build step overflowed PostgreSQL's integer


def test_a_vm_job_needs_no_docker_on_its_worker(tmp_path) -> None:
    """A qemu-only worker has no Docker Engine: its VM jobs still get a (keyless) run."""
    from tests.conftest import run_cli

    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    vm = run_cli("job", "vm-test/6.1", "--dir", str(tmp_path / "out"), "--print-key",
                 env=env, timeout=120)
    assert vm.returncode == 0 and vm.stdout == "\n", vm.stdout + vm.stderr
    build = run_cli("job", "kmod-build/6.1", "--dir", str(tmp_path / "out"), "--print-key",
                    env=env, timeout=120)
    assert build.returncode == 2 and "Docker is not reachable" in build.stderr
