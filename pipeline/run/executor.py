"""Run one step in a container (pipeline.run.engine, or the Docker SDK): mounts, limits, timeout,
streamed log."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONTAINER_UID = 1000
RUN_LABEL = "org.kmatrix.run"
JOB_LABEL = "org.kmatrix.job"
STEP_LABEL = "org.kmatrix.step"


@dataclass(frozen=True)
class Mount:
    """A bind mount: host path -> container path."""

    host: Path
    container: str
    read_only: bool = False


@dataclass
class ContainerSpec:
    """Everything `docker run` needs for one step (also rendered into reproduce.sh)."""

    image: str
    script: str
    env: dict[str, str]
    mounts: list[Mount]
    network: bool = False
    cpus: float = 2.0
    memory: str = "4g"
    pids: int = 4096
    user: str = f"{CONTAINER_UID}:{CONTAINER_UID}"
    workdir: str = "/work"
    labels: dict[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        """The container's command: the step script under bash with strict flags.

        stderr is joined to stdout inside the container so the log keeps the order in
        which lines were written (Docker does not order two streams against each other;
        cargo prints `Running <target>` on stderr and the test events on stdout).
        """
        return ["bash", "-e", "-o", "pipefail", "-c", "exec 2>&1\n" + self.script]

    def docker_run_args(self, by_name: Collection[str] = ()) -> list[str]:
        """Equivalent `docker run` arguments (for reproduce.sh and the benchmark). Variables
        in `by_name` (secrets) are passed as `-e NAME`: docker takes their values from the
        caller's environment, so the values are never written down."""
        args = ["docker", "run", "--rm", "--user", self.user, "--workdir", self.workdir,
                "--network", "bridge" if self.network else "none",
                "--cpus", str(self.cpus), "--memory", self.memory,
                "--memory-swap", self.memory, "--pids-limit", str(self.pids),
                "--security-opt", "no-new-privileges", "--cap-drop", "ALL"]
        for mount in self.mounts:
            suffix = ":ro" if mount.read_only else ""
            args += ["-v", f"{mount.host}:{mount.container}{suffix}"]
        for key, value in sorted(self.env.items()):
            args += ["-e", key if key in by_name else f"{key}={value}"]
        return [*args, self.image, *self.command()]


@dataclass
class StepOutcome:
    """What happened to one container run."""

    exit_code: int | None
    output: str
    seconds: float
    timed_out: bool = False
    error: str | None = None


def docker_client() -> Any:
    """A connected Docker client, or EnvironmentProblem explaining why not: over the local
    socket pipeline.run.engine's, which runs steps without importing the Docker SDK."""
    from pipeline.run.engine import connect

    return connect()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def _memory_bytes(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower()
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


@dataclass(frozen=True)
class ClientErrors:
    """The exception types of a Docker client's library: an error answer of the engine, any
    failed request, a read timeout, a broken connection."""

    api: type[BaseException]
    request: type[BaseException]
    timeout: type[BaseException]
    connection: type[BaseException]


def client_errors(client: Any) -> ClientErrors:
    """pipeline.run.engine's for its client, else the SDK's (docker, requests)."""
    from pipeline.run.engine import Engine, EngineError, EngineTimeout, EngineUnreachable

    if isinstance(client, Engine):
        return ClientErrors(EngineError, EngineUnreachable, EngineTimeout, EngineUnreachable)
    import docker.errors
    import requests.exceptions

    return ClientErrors(docker.errors.APIError, requests.exceptions.RequestException,
                        requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError)


class ContainerRunner:
    """Runs ContainerSpecs; tracks live containers so a run can stop exactly its own."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._live: dict[str, Any] = {}
        self._guard = threading.Lock()
        self._errors: ClientErrors | None = None
        self.stopping = False

    @property
    def errors(self) -> ClientErrors:
        """The client's exception types (its library is imported on first use)."""
        if self._errors is None:
            self._errors = client_errors(self.client)
        return self._errors

    def run(
        self, spec: ContainerSpec, timeout: float, on_line: Callable[[str], None] | None = None
    ) -> StepOutcome:
        """Run the spec to completion (or timeout); the container is always removed."""
        errors = self.errors
        started = time.monotonic()
        if self.stopping:
            return StepOutcome(None, "", 0.0, error="interrupted before start")
        container = self._create(spec, started)
        if isinstance(container, StepOutcome):
            return container
        with self._guard:
            self._live[container.id] = container
        chunks: list[str] = []
        try:
            try:
                container.start()
            except (errors.api, errors.request) as exc:
                return StepOutcome(None, "", time.monotonic() - started,
                                   error=f"cannot start container: {_first_line(exc)}")
            reader = threading.Thread(
                target=self._read_logs, args=(container, chunks, on_line), daemon=True
            )
            reader.start()
            exit_code, timed_out, lost = self._wait(container, timeout, started)
            reader.join(timeout=10)
            oom = self._oom_killed(container)
            error = None
            if timed_out:
                error = f"timed out after {timeout:.0f} s; container killed and removed"
            elif lost:
                error = lost
            elif oom:
                error = f"killed: out of memory (limit {spec.memory})"
            elif self.stopping:
                error = "interrupted"
            return StepOutcome(exit_code, "".join(chunks), time.monotonic() - started,
                               timed_out=timed_out, error=error)
        finally:
            self._remove(container)

    def _create(self, spec: ContainerSpec, started: float) -> Any:
        """The created (not started) container, or the StepOutcome saying why not."""
        errors = self.errors
        try:
            return self.client.containers.create(
                spec.image, command=spec.command(), environment=spec.env, user=spec.user,
                working_dir=spec.workdir, network_mode="bridge" if spec.network else "none",
                nano_cpus=int(spec.cpus * 1e9), mem_limit=_memory_bytes(spec.memory),
                memswap_limit=_memory_bytes(spec.memory), pids_limit=spec.pids,
                security_opt=["no-new-privileges"], cap_drop=["ALL"], privileged=False,
                labels=spec.labels,
                volumes={str(m.host): {"bind": m.container, "mode": "ro" if m.read_only
                                       else "rw"} for m in spec.mounts},
            )
        except errors.api as exc:
            return StepOutcome(None, "", time.monotonic() - started,
                               error=f"cannot create container: "
                                     f"{getattr(exc, 'explanation', None) or exc}")
        except errors.request as exc:
            return StepOutcome(None, "", time.monotonic() - started,
                               error=f"Docker is not reachable: {_first_line(exc)}")

    def _wait(self, container: Any, timeout: float,
              started: float) -> tuple[int | None, bool, str | None]:
        """(exit code, timed out, lost-connection message); kills the container on either."""
        errors = self.errors
        try:
            result = container.wait(timeout=timeout)
            return int(result.get("StatusCode", -1)), False, None
        except (errors.timeout, errors.connection) as exc:
            # over a unix socket a read timeout surfaces as a ConnectionError too
            timed_out, lost = False, None
            if (isinstance(exc, errors.timeout) or "timed out" in str(exc)
                    or time.monotonic() - started >= timeout - 1):
                timed_out = True
            else:
                lost = f"lost the connection to Docker: {_first_line(exc)}"
            self._kill(container)
            return None, timed_out, lost

    def _oom_killed(self, container: Any) -> bool:
        try:
            container.reload()
            return bool(container.attrs.get("State", {}).get("OOMKilled"))
        except (self.errors.api, self.errors.request):
            return False

    @staticmethod
    def _read_logs(container: Any, chunks: list[str], on_line: Callable[[str], None] | None):
        pending = ""
        try:
            for raw in container.logs(stream=True, follow=True, stdout=True, stderr=True):
                text = raw.decode("utf-8", "replace")
                chunks.append(text)
                if on_line:
                    pending += text
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        on_line(line)
        except Exception:  # the stream ends with the container; nothing to lose
            pass
        if on_line and pending:
            on_line(pending)

    def _kill(self, container: Any) -> None:
        with contextlib.suppress(self.errors.api, self.errors.request):
            container.kill()

    def _remove(self, container: Any) -> None:
        with contextlib.suppress(self.errors.api, self.errors.request):
            container.remove(force=True)
        with self._guard:
            self._live.pop(container.id, None)

    def stop_all(self) -> None:
        """Kill this runner's live containers (by id) and refuse new ones."""
        self.stopping = True
        with self._guard:
            live = list(self._live.values())
        for container in live:
            self._kill(container)


def container_user() -> str:
    """The uid:gid builds run as: the caller's, or 1000 when the caller is root."""
    uid = os.getuid()
    if uid == 0:
        return f"{CONTAINER_UID}:{CONTAINER_UID}"
    return f"{uid}:{os.getgid()}"


def prepare_writable(path: Path) -> None:
    """Create a directory the container user can write (chown when we are root)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.getuid() == 0:
        os.chown(path, CONTAINER_UID, CONTAINER_UID)


def reclaim(path: Path) -> None:
    """Give files the container wrote back to the calling user (when we are root)."""
    if os.getuid() != 0 or not path.exists():
        return
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                os.lchown(os.path.join(root, name), 0, 0)
    os.chown(path, 0, 0)
