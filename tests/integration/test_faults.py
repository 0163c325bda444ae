"""Faults injected into real runs: Docker, QEMU, a tiny tmpfs, a real Buildbot master.

Every test here backs a row of docs/RELIABILITY.md. Containers and QEMU processes are found
by the run's label (`org.kmatrix.run=<id>`, QEMU `-name kmatrix:<id>:<job>`), never by
process name. Each test works in a scratch copy of the project with its own small matrix
(cheap `kbuild` 6.1 jobs: the image is built once and shared with the other tests).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml

from pipeline.run import vm
from tests.conftest import ROOT, docker_available, run_cli

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not docker_available(), reason="Docker Engine not reachable"),
]

KERNEL = 'kernels: {"6.1": {suite: bookworm}}\n'
NO_CACHE = {"KMATRIX_RESULT_CACHE_MB": "0", "COLUMNS": "400"}  # wide: no folded messages


def _write_matrix(project: Path, jobs: str) -> None:
    (project / "matrix.yml").write_text(KERNEL + "jobs:\n" + jobs)


def _containers(label: str, value: str) -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}={value}"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def _inspect(container: str) -> dict:
    out = subprocess.run(["docker", "inspect", container], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)[0]


def _cases(junit: Path) -> dict[str, object]:
    xml = JUnitXml.fromfile(str(junit))
    return {f"{c.classname}::{c.name}": c for suite in xml for c in suite}


def _problem(case: object) -> Failure | Error:
    (problem,) = [r for r in case.result if isinstance(r, Failure | Error)]
    return problem


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text and "internal error" not in text, text


def _run_one_failing_job(
    project: Path,
) -> tuple[subprocess.CompletedProcess[str], dict, dict, Path, float]:
    """Run a one-job matrix that must fail: (process, summary, its result, latest, seconds)."""
    t0 = time.monotonic()
    proc = run_cli("run", cwd=project, env=NO_CACHE, timeout=600)
    took = time.monotonic() - t0
    _no_traceback(proc)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    latest = project / "reports" / "latest"
    summary = _summary(latest)
    (result,) = summary["results"]
    assert result["status"] == "failed"
    return proc, summary, result, latest, took


def _qemu_with_label(text: str) -> list[str]:
    """QEMU processes whose command line contains `text` (the run's -name label)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        cmdline = b" ".join(argv).decode(errors="replace")
        if "qemu" in os.path.basename(argv[0].decode(errors="replace")) and text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def _wait(predicate, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# --------------------------------------------------------------------------- timeouts, OOM


def test_job_timeout_kills_and_removes_the_container(project_copy: Path) -> None:
    _write_matrix(project_copy, """\
  hang:
    over: [kernel]
    image: kbuild
    timeout: 8
    run: echo started-hang; sleep 600
""")
    proc, summary, result, latest, took = _run_one_failing_job(project_copy)
    assert "timed out after 8 s; container killed and removed (job timeout 8 s)" \
        in result["message"]
    problem = _problem(_cases(latest / "junit.xml")["hang/6.1::run"])
    assert isinstance(problem, Error) and "timed out after 8 s" in problem.message
    assert "started-hang" in problem.text  # the output up to the kill comes along
    assert _containers("org.kmatrix.run", summary["run"]) == []
    assert "timed out" in proc.stdout
    assert took < 120, took  # far from the 600 s sleep


def test_memory_limit_is_an_out_of_memory_failure(project_copy: Path) -> None:
    _write_matrix(project_copy, """\
  hog:
    over: [kernel]
    image: kbuild
    limits: {memory: 64m}
    run: |
      echo allocating
      x=$(head -c 400m /dev/zero | tr '\\0' a)
      echo "survived ${#x}"
""")
    proc, summary, result, latest, _ = _run_one_failing_job(project_copy)
    assert result["message"] == "killed: out of memory (limit 64m)"
    problem = _problem(_cases(latest / "junit.xml")["hog/6.1::run"])
    assert "out of memory (limit 64m)" in problem.message
    log = (latest / "hog" / "6.1" / "log.txt").read_text()
    assert "allocating" in log and "survived" not in log
    meta = json.loads((latest / "hog" / "6.1" / "metadata.json").read_text())
    assert meta["steps"][0]["exit_code"] == 137 and meta["status"] == "failed"
    assert "out of memory" in proc.stdout
    assert _containers("org.kmatrix.run", summary["run"]) == []


# --------------------------------------------------------------------------- images


def test_image_that_fails_to_build_is_the_jobs_error_with_the_log_tail(
        project_copy: Path) -> None:
    dockerfile = project_copy / "images" / "Dockerfile.j2"  # the project's override
    dockerfile.parent.mkdir(exist_ok=True)
    text = (ROOT / "pipeline" / "images" / "Dockerfile.j2").read_text()
    anchor = "# An unprivileged user"
    assert anchor in text
    dockerfile.write_text(text.replace(
        anchor, "RUN echo 'kmatrix-test: deliberately broken image step' && exit 3\n" + anchor,
        1))
    _write_matrix(project_copy, """\
  first:
    over: [kernel]
    image: kbuild
    run: echo never-runs
  second:
    over: [kernel]
    image: kbuild
    run: echo never-runs
""")
    proc = run_cli("run", "-j", "2", cwd=project_copy, env=NO_CACHE, timeout=900)
    _no_traceback(proc)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    latest = project_copy / "reports" / "latest"
    results = {r["id"]: r for r in _summary(latest)["results"]}
    assert {r["status"] for r in results.values()} == {"error"}
    for job in ("first/6.1", "second/6.1"):
        message = results[job]["message"]
        assert message.startswith("image 'kbuild' failed to build: the RUN at Dockerfile line ")
        assert " exited 3 while bootstrapping kmatrix/kbuild-6.1:" in message
        problem = _problem(_cases(latest / "junit.xml")[f"{job}::image"])
        assert " exited 3 while bootstrapping" in problem.message
        assert "deliberately broken image step" in problem.text  # the build log's tail
        log = (latest / job / "log.txt").read_text()
        assert "deliberately broken image step" in log
    out = proc.stdout + proc.stderr
    # the terminal shows the tail once (the second job is not rebuilt, not re-reported)
    assert out.count("pipeline: error: image 'kbuild' failed to build") == 1, out
    assert "deliberately broken image step" in out
    assert out.count("bootstrapping image kmatrix/kbuild-6.1:") == 1, out
    assert "never-runs" not in out

    images = run_cli("images", "build", cwd=project_copy, timeout=900)
    _no_traceback(images)
    assert images.returncode == 2, images.stdout + images.stderr
    assert "pipeline: error: the RUN at Dockerfile line " in images.stderr
    assert " exited 3 while bootstrapping kmatrix/kbuild-6.1:" in images.stderr
    assert "deliberately broken image step" in images.stderr


# --------------------------------------------------------------------------- two runs


def test_two_runs_at_once_in_one_checkout(project_copy: Path, tmp_path: Path) -> None:
    _write_matrix(project_copy, """\
  alpha:
    over: [kernel]
    image: kbuild
    inputs: ["kernel/**"]
    run: echo alpha > "$OUT/alpha.txt"; sleep 2
  beta:
    over: [kernel]
    image: kbuild
    inputs: ["kernel/**"]
    run: echo beta > "$OUT/beta.txt"; sleep 2
  gamma:
    over: [kernel]
    image: kbuild
    needs: [alpha]
    inputs: ["kernel/**"]
    run: cat "$NEEDS/alpha/6.1/alpha.txt" > "$OUT/gamma.txt"
""")
    env = {**os.environ, "KMATRIX_RESULT_CACHE_DIR": str(tmp_path / "results")}
    procs = [subprocess.Popen([sys.executable, "-m", "pipeline", "run", "-j", "2"],
                              cwd=project_copy, env=env, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out + err
        assert "Traceback" not in out + err and "warning" not in out + err
    run_ids = [next(line.split()[1].rstrip(":") for line in out.splitlines()
                    if line.startswith("run ")) for out, _ in outputs]
    assert len(set(run_ids)) == 2
    reports = project_copy / "reports"
    for run_id in run_ids:
        summary = _summary(reports / run_id)
        assert summary["run"] == run_id
        assert {r["id"]: r["status"] in ("passed", "cached") for r in summary["results"]} == {
            "alpha/6.1": True, "beta/6.1": True, "gamma/6.1": True}
        assert len(_cases(reports / run_id / "junit.xml")) == 3
        assert (reports / run_id / "index.html").is_file()
        assert (reports / run_id / "gamma" / "6.1" / "artifacts" / "gamma.txt"
                ).read_text() == "alpha\n"
    assert os.readlink(reports / "latest") in run_ids
    assert not [p.name for p in reports.rglob("*") if p.name.endswith(".tmp")
                or p.name.startswith(".latest-")]
    # the cache came out intact: a third run restores every job, with no warning
    third = subprocess.run([sys.executable, "-m", "pipeline", "run", "--json"],
                           cwd=project_copy, env=env, text=True, capture_output=True,
                           timeout=600)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "warning" not in third.stderr
    statuses = {r["id"]: r["status"] for r in json.loads(third.stdout)["results"]}
    assert statuses == {"alpha/6.1": "cached", "beta/6.1": "cached", "gamma/6.1": "cached"}


# --------------------------------------------------------------------------- out of disk


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    """A 1 MiB tmpfs (root only): the reports directory that runs out of space."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    path = tmp_path / "tiny"
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs",
                           str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_out_of_disk_while_writing_a_report_keeps_the_previous_one(
        project_copy: Path, tiny_tmpfs: Path) -> None:
    _write_matrix(project_copy, """\
  small:
    over: [kernel]
    image: kbuild
    run: echo hello > "$OUT/hello.txt"; echo small-done
  filler:
    over: [kernel]
    image: kbuild
    run: head -c 8m /dev/zero > "$OUT/fill" || true; echo filled
""")
    reports = tiny_tmpfs / "reports"
    first = run_cli("run", "--job", "small", "--reports", str(reports), cwd=project_copy,
                    env=NO_CACHE)
    assert first.returncode == 0, first.stdout + first.stderr
    previous = os.readlink(reports / "latest")
    before = {p.relative_to(reports): p.read_bytes() for p in (reports / previous).rglob("*")
              if p.is_file()}
    assert Path("summary.json") in {p.relative_to(previous) for p in before}

    second = run_cli("run", "--reports", str(reports), cwd=project_copy, env=NO_CACHE)
    _no_traceback(second)
    assert second.returncode == 2, second.stdout + second.stderr
    assert "No space left on device" in second.stderr
    assert f"still points at the previous report ({previous}), which is intact" \
        in second.stderr
    assert os.readlink(reports / "latest") == previous
    after = {p.relative_to(reports): p.read_bytes() for p in (reports / previous).rglob("*")
             if p.is_file()}
    assert after == before  # byte for byte, no temporary file added
    assert not list(reports.glob(".latest-*"))


# --------------------------------------------------------------------------- signals + VM


def _vm_ready() -> str | None:
    if shutil.which(vm.QEMU) is None:
        return "qemu-system-x86_64 missing"
    busybox = Path("/bin/busybox")
    if not (busybox.is_file() and vm.is_static_elf(busybox)):
        return "static /bin/busybox missing"
    return None


@pytest.mark.qemu
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_a_vm_job_stops_qemu_and_containers(project_copy: Path,
                                                          signum: int) -> None:
    if reason := _vm_ready():
        pytest.skip(reason)
    _write_matrix(project_copy, """\
  slow:
    over: [kernel]
    image: kbuild
    run: echo started-slow; sleep 300
  vm-hang:
    over: [kernel]
    timeout: 900
    vm:
      command: echo started-vm; sleep 1000
      boot-timeout: 600
""")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "-j", "2", "-v"],
                            cwd=project_copy, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, **NO_CACHE, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("run "), first
        run_id = first.split()[1].rstrip(":")
        label = f"kmatrix:{run_id}:"
        # the kernel may be downloaded first (once, then cached)
        qemu = _wait(lambda: _qemu_with_label(label), 600, "QEMU of the VM job")
        _wait(lambda: _containers("org.kmatrix.run", run_id), 300, "the job's container")
        time.sleep(1)
        stopped = time.monotonic()
        proc.send_signal(signum)
        rest, _ = proc.communicate(timeout=60)
        took = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = first + rest
    assert proc.returncode == 130, output
    assert took < 30, took
    assert "Traceback" not in output
    assert _qemu_with_label(label) == [], qemu
    assert _containers("org.kmatrix.run", run_id) == []
    run_dir = project_copy / "reports" / run_id
    statuses = {r["id"]: r["status"] for r in _summary(run_dir)["results"]}
    assert statuses == {"slow/6.1": "interrupted", "vm-hang/6.1": "interrupted"}
    problem = _problem(_cases(run_dir / "junit.xml")["vm-hang/6.1::vm"])
    assert problem.message.startswith("interrupted:")
    meta = json.loads((run_dir / "vm-hang" / "6.1" / "metadata.json").read_text())
    assert meta["vm"]["status"] == "interrupted"


def test_sigterm_to_a_buildbot_job_step_stops_its_container(project_copy: Path,
                                                           tmp_path: Path) -> None:
    """`pipeline job` is what a Buildbot step runs; stopping the build sends SIGTERM."""
    _write_matrix(project_copy, """\
  slow:
    over: [kernel]
    image: kbuild
    run: echo started-slow; sleep 300
""")
    out = tmp_path / "rev-0123abcd"  # the run label of `pipeline job` is its --dir name
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "job", "slow/6.1", "--dir",
                             str(out), "-v"], cwd=project_copy, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **NO_CACHE, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "started-slow" in line:
                break
        assert _containers("org.kmatrix.run", out.name)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(seen) + rest
    assert proc.returncode == 130, output
    assert "Traceback" not in output and "INTERRUPTED slow/6.1" in output
    assert _containers("org.kmatrix.run", out.name) == []
    meta = json.loads((out / "slow" / "6.1" / "metadata.json").read_text())
    assert meta["status"] == "interrupted"
    assert "started-slow" in (out / "slow" / "6.1" / "log.txt").read_text()


@pytest.mark.qemu
@pytest.mark.parametrize(("command", "status", "reason"), [
    ("echo c > /proc/sysrq-trigger", "panic",
     "kernel panic: Kernel panic - not syncing: sysrq triggered crash"),
    ("echo started-hang; sleep 1000", "timeout", "timed out after"),
], ids=["panic", "hang"])
def test_vm_job_that_panics_or_hangs_fails_with_the_reason(
        project_copy: Path, command: str, status: str, reason: str) -> None:
    if why := _vm_ready():
        pytest.skip(why)
    _write_matrix(project_copy, f"""\
  vm-fault:
    over: [kernel]
    timeout: 30
    vm:
      command: {command}
      boot-timeout: 30
""")
    _, summary, result, run_dir, took = _run_one_failing_job(project_copy)
    if status == "panic":  # the kernel's finding names the failure
        assert result["message"].startswith("kernel panic: ") and reason[14:] in \
            result["message"], result
    else:
        assert result["message"].startswith("VM timeout: timed out after 30 s"), result
    cases = _cases(run_dir / "junit.xml")
    problem = _problem(cases["vm-fault/6.1::vm"])
    assert problem.message.startswith(f"{status}: {reason}")
    assert "last 30 console lines" in problem.text
    if status == "panic":
        assert any(k.startswith("vm-fault/6.1::dmesg.panic@") for k in cases)
    else:
        assert "started-hang" in problem.text and took < 120
    meta = json.loads((run_dir / "vm-fault" / "6.1" / "metadata.json").read_text())
    assert meta["vm"]["status"] == status
    assert _qemu_with_label(f"kmatrix:{summary['run']}:") == []


# --------------------------------------------------------------------------- isolation


def test_job_containers_are_isolated(project_copy: Path) -> None:
    wait_for_go = ('for i in $(seq 1 1200); do [ -e "$WORK/go-$STEP_NAME" ] && exit 0; '
                   'sleep 0.1; done; echo "no go"; exit 1')
    _write_matrix(project_copy, f"""\
  probe:
    over: [kernel]
    image: kbuild
    timeout: 300
    limits: {{cpus: 1, memory: 256m, pids: 128}}
    steps:
      - name: online
        network: true
        env: {{STEP_NAME: online}}
        run: |
          echo "online uid=$(id -u)"
          {wait_for_go}
      - name: offline
        env: {{STEP_NAME: offline}}
        run: |
          echo "offline uid=$(id -u) gid=$(id -g)"
          echo "interfaces: $(ls /sys/class/net | tr '\\n' ' ')"
          if touch "$SRC/kmatrix-write-probe" 2>/dev/null; then echo src-writable
          else echo src-read-only; fi
          grep -E '^(CapEff|NoNewPrivs)' /proc/self/status
          {wait_for_go}
""")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "-v"], cwd=project_copy,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **NO_CACHE, "PYTHONUNBUFFERED": "1"})
    seen: dict[str, dict] = {}
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        run_id = first.split()[1].rstrip(":")
        for step in ("online", "offline"):
            def running(step: str = step) -> list[str]:
                out = subprocess.run(
                    ["docker", "ps", "-q", "--filter", f"label=org.kmatrix.run={run_id}",
                     "--filter", f"label=org.kmatrix.step={step}"],
                    capture_output=True, text=True, check=True).stdout
                return out.split()

            (container,) = _wait(running, 300, f"the {step} step's container")
            info = seen[step] = _inspect(container)
            work = next(m["Source"] for m in info["Mounts"] if m["Destination"] == "/work")
            Path(work, f"go-{step}").touch()
        rest, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, first + rest
    for step, info in seen.items():
        config, host = info["Config"], info["HostConfig"]
        assert config["User"] not in ("", "0", "root") and not config["User"].startswith("0:")
        assert config["Labels"]["org.kmatrix.job"] == "probe/6.1"
        assert host["Privileged"] is False
        assert host["NetworkMode"] == ("bridge" if step == "online" else "none")
        mounts = {m["Destination"]: m for m in info["Mounts"]}
        # read-only, and not the checkout: the tree of the job's inputs (every project
        # file but reports/ here, the job declares none), removed when the run ends
        assert mounts["/src"]["RW"] is False and mounts["/src"]["Source"] != str(project_copy)
        assert not Path(mounts["/src"]["Source"]).exists()
        assert host["NanoCpus"] == 1_000_000_000
        assert host["Memory"] == 256 * 2**20 and host["MemorySwap"] == host["Memory"]
        assert host["PidsLimit"] == 128
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    log = (project_copy / "reports" / "latest" / "probe" / "6.1" / "log.txt").read_text()
    assert "online uid=1000" in log and "offline uid=1000 gid=1000" in log
    assert "interfaces: lo \n" in log  # no network interface but loopback
    assert "src-read-only" in log and "src-writable" not in log
    assert "CapEff:\t0000000000000000" in log and "NoNewPrivs:\t1" in log
    assert not (project_copy / "kmatrix-write-probe").exists()
    repro = (project_copy / "reports" / "latest" / "probe" / "6.1" / "reproduce.sh").read_text()
    assert "--network none" in repro and "--cap-drop ALL" in repro and ":/src:ro" in repro


# --------------------------------------------------------------------------- secrets


def test_secrets_never_reach_logs_reports_or_the_terminal(project_copy: Path,
                                                          tmp_path: Path) -> None:
    token, deploy = "tok-4f9a1c2e-matrix-secret", "dk-93b1e7d0-passed-from-env"
    _write_matrix(project_copy, f"""\
  leak:
    over: [kernel]
    image: kbuild
    env: {{API_TOKEN: "{token}", PLAIN: visible-value}}
    secrets: [KMATRIX_TEST_DEPLOY_KEY]
    run: |
      echo "token=$API_TOKEN"
      echo "deploy=$KMATRIX_TEST_DEPLOY_KEY"
      echo "plain=$PLAIN"
      echo "error: $KMATRIX_TEST_DEPLOY_KEY rejected" >&2
      exit 3
  keep:
    over: [kernel]
    image: kbuild
    secrets: [KMATRIX_TEST_DEPLOY_KEY]
    run: echo "stored deploy=$KMATRIX_TEST_DEPLOY_KEY"
""")
    cache = tmp_path / "results"
    env = {"KMATRIX_TEST_DEPLOY_KEY": deploy, "KMATRIX_RESULT_CACHE_DIR": str(cache),
           "COLUMNS": "400"}
    proc = run_cli("run", "-v", cwd=project_copy, env=env)
    _no_traceback(proc)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    terminal = proc.stdout + proc.stderr
    assert "deploy=***" in terminal and "plain=visible-value" in terminal
    leaks = []
    for root in (project_copy / "reports", cache):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                leaks += [f"{path}: {s}" for s in (token, deploy) if s.encode() in data]
    assert not leaks and token not in terminal and deploy not in terminal, leaks
    job = project_copy / "reports" / "latest" / "leak" / "6.1"
    log = (job / "log.txt").read_text()
    assert "token=***" in log and "deploy=***" in log and "plain=visible-value" in log
    problem = _problem(_cases(job / "junit.xml")["leak/6.1::run"])
    assert "error: *** rejected" in problem.message + (problem.text or "")
    repro = (job / "reproduce.sh").read_text()
    assert " -e API_TOKEN " in repro and " -e KMATRIX_TEST_DEPLOY_KEY " in repro
    assert "-e PLAIN=visible-value" in repro
    # the reproducer really passes them by name: whoever runs it supplies the values
    again = subprocess.run(["bash", str(job / "reproduce.sh")], capture_output=True, text=True,
                           timeout=300, env={**os.environ, "API_TOKEN": token,
                                             "KMATRIX_TEST_DEPLOY_KEY": deploy})
    assert again.returncode == 3 and f"deploy={deploy}" in again.stdout, again.stderr
    # a declared secret that is not set is the job's error, before any container starts
    unset = run_cli("run", "--job", "keep", cwd=project_copy, env={**NO_CACHE})
    _no_traceback(unset)
    assert unset.returncode == 1
    (result,) = _summary(project_copy / "reports" / "latest")["results"]
    assert result["status"] == "error"
    assert "secret KMATRIX_TEST_DEPLOY_KEY is not set in the environment" in result["message"]
    assert "secret KMATRIX_TEST_DEPLOY_KEY is not set" in unset.stdout


# --------------------------------------------------------------------------- Buildbot


BB_MATRIX = KERNEL + """\
jobs:
  hello:
    over: [kernel]
    image: kbuild
    inputs: ["kernel/**"]
    run: echo hello from a forced build
"""


def _post(url: str, data: bytes = b"", headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.slow
def test_exposed_master_needs_the_hook_secret_and_a_login_to_force(tmp_path: Path) -> None:
    pytest.importorskip("buildbot", reason="pip install -e '.[buildbot]'")
    pytest.importorskip("buildbot_worker", reason="pip install -e '.[buildbot]'")
    from http.cookiejar import CookieJar

    from tests.buildbot_harness import MasterHarness

    harness = MasterHarness(tmp_path / "bb", ROOT, BB_MATRIX)
    # bound to loopback for the test, but with the exposed master's protections forced on
    with open(harness.basedir / "kmatrix.yml", "a") as handle:
        handle.write("require_auth: true\n")
    try:
        harness.start()
        secret = (harness.basedir / "hook.secret").read_text().strip()
        user, password = (harness.basedir / "www-users").read_text().strip().split(":", 1)
        hook = harness.url + "change_hook/poller?poller=kmatrix"
        assert _post(hook) == 401
        assert _post(hook, headers=_basic("kmatrix-hook", "wrong-secret-0123456789")) == 401
        assert _post(hook, headers=_basic("kmatrix-hook", secret)) == 200
        # the installed post-receive hook reads the secret file and is let in (the change
        # matches no job's inputs: no build starts)
        _, _, pushed = harness.commit_and_push({"notes.txt": "x\n"}, "touch")
        assert "master notified" in pushed, pushed

        builders = harness.builders()
        params = {"builderid": builders["hello/6.1"]["builderid"], "kernel": "6.1",
                  "features": "all", "job": "hello", "reason": "test", "branch": "main",
                  "revision": "", "repository": "", "project": ""}
        with pytest.raises(urllib.error.HTTPError) as refused:
            harness.rpc("forceschedulers/kmatrix-force", "force", **params)
        assert refused.value.code == 403
        assert harness.api("builders")["builders"]  # reading stays open

        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with pytest.raises(urllib.error.HTTPError) as bad_login:
            opener.open(urllib.request.Request(harness.url + "auth/login",
                                               headers=_basic(user, "not-the-password")))
        assert bad_login.value.code == 401
        opener.open(urllib.request.Request(harness.url + "auth/login",
                                           headers=_basic(user, password)), timeout=30).read()
        body = json.dumps({"jsonrpc": "2.0", "method": "force", "id": 1,
                           "params": params}).encode()
        with opener.open(urllib.request.Request(
                harness.url + "api/v2/forceschedulers/kmatrix-force", data=body,
                headers={"Content-Type": "application/json"}), timeout=30) as reply:
            answer = json.load(reply)
        assert "error" not in answer, answer
        bsid = answer["result"][0]

        def done():
            reqs = harness.api(f"buildrequests?buildsetid={bsid}")["buildrequests"]
            return reqs if reqs and all(r["complete"] for r in reqs) else None

        reqs = harness.wait_for(done, 600, "the forced build", every=1.0)
        assert [r["results"] for r in reqs] == [0]
    finally:
        harness.stop()
