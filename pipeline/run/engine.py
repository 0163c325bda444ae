"""The Docker Engine, spoken to directly for what runs and their steps need.

A run asks the engine whether it answers (`/_ping`), which image id a tag has (the cache
keys, the lock check) and, for each step, creates, starts, follows, waits for, inspects and
removes one container. Over the local unix socket these are a few plain HTTP/1.0 requests
here (the same requests, bodies and timeouts as the Docker SDK's: docker.models.containers);
the SDK, whose import alone takes about a tenth of a second and whose client asks for the
server's version on connecting, is imported only for the rest: building and importing
images, `pipeline doctor`. So neither an all-cached run nor a run of containers loads it.

Only the plain local case is handled here (DOCKER_HOST unset or `unix://...`, no TLS, no
other Docker CLI context); anything else is the SDK's client from the start, and
pipeline.run.executor catches the errors of whichever client it has.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pipeline.errors import EnvironmentProblem

DEFAULT_SOCKET = "/var/run/docker.sock"
UNREACHABLE_HINT = "start the Docker Engine (systemctl start docker) or set DOCKER_HOST"
SDK_TIMEOUT = 600  # seconds per API call of the SDK's client (a step's wait has its own)
PING_TIMEOUT = 60


def unreachable(exc: BaseException) -> EnvironmentProblem:
    """The one-line error for an engine that does not answer."""
    if isinstance(exc, EngineUnreachable) and exc.__cause__ is not None:
        exc = exc.__cause__  # what the socket said
    text = str(exc).splitlines()[0] if str(exc) else "no details"
    return EnvironmentProblem(f"Docker is not reachable ({exc.__class__.__name__}: {text})",
                              hint=UNREACHABLE_HINT)


def _context_name(env: dict[str, str] | os._Environ[str]) -> str | None:
    """The Docker CLI context in use ($DOCKER_CONTEXT, else config.json's currentContext);
    None when a config file exists but cannot be read (then the SDK decides)."""
    if env.get("DOCKER_CONTEXT"):
        return env["DOCKER_CONTEXT"]
    folder = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else \
        Path.home() / ".docker"
    config = folder / "config.json"
    if not config.exists():
        return "default"
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return None
    return str(data.get("currentContext") or "default") if isinstance(data, dict) else None


def local_socket(env: dict[str, str] | os._Environ[str] | None = None) -> str | None:
    """The unix socket of the engine when the SDK would talk plain HTTP to one; None when
    it would use TLS, TCP, SSH or another context (the SDK is then used for everything)."""
    env = os.environ if env is None else env
    if env.get("DOCKER_TLS_VERIFY") or env.get("DOCKER_CERT_PATH"):
        return None
    host = env.get("DOCKER_HOST")
    if host:
        return host[len("unix://"):] if host.startswith("unix://") else None
    return DEFAULT_SOCKET if _context_name(env) == "default" else None


class EngineError(Exception):
    """The engine answered with an error (HTTP 4xx/5xx); `explanation` is its message (as
    the SDK's APIError has it)."""

    def __init__(self, status: int, explanation: str) -> None:
        super().__init__(f"{status}: {explanation}")
        self.status = status
        self.explanation = explanation


class EngineUnreachable(OSError):
    """No answer: the engine is not there or the connection broke (the SDK: requests'
    ConnectionError)."""


class EngineTimeout(EngineUnreachable):
    """No answer in the time allowed (the SDK: requests' ReadTimeout)."""


class Engine:
    """A Docker client: ping(), image_id() and the containers of the steps (create, start,
    logs, wait, inspect, kill, remove) over the unix socket; anything else (building
    images, ...) from the SDK's client, made on first use."""

    def __init__(self, path: str) -> None:
        self.socket_path = path
        self._sdk: Any = None
        self._sdk_lock = threading.Lock()
        self.containers = Containers(self)

    def http_open(self, method: str, path: str, body: Any = None,
             timeout: float | None = SDK_TIMEOUT) -> tuple[socket.socket, Any, int]:
        """Send one request (HTTP/1.0: the engine closes the connection after its answer);
        (socket, its reader past the headers, status). EngineUnreachable when it fails."""
        data = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.0\r\nHost: docker\r\n"
        if method != "GET":
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(self.socket_path)
            sock.sendall(head.encode() + b"\r\n" + data)
            reader = sock.makefile("rb")
            status = reader.readline().split(b" ", 2)[1:2]
            while reader.readline() not in (b"\r\n", b"\n", b""):
                pass
        except TimeoutError as exc:
            sock.close()
            raise EngineTimeout(f"read timed out ({exc})") from exc
        except OSError as exc:
            sock.close()
            raise EngineUnreachable(str(exc) or exc.__class__.__name__) from exc
        if not status or not status[0].isdigit():
            sock.close()
            raise EngineUnreachable(f"not an HTTP answer from {self.socket_path}")
        return sock, reader, int(status[0])

    def http_call(self, method: str, path: str, body: Any = None,
             timeout: float | None = SDK_TIMEOUT) -> tuple[int, bytes]:
        """(status, body) of one request."""
        sock, reader, status = self.http_open(method, path, body, timeout)
        try:
            return status, reader.read()
        except TimeoutError as exc:
            raise EngineTimeout(f"read timed out ({exc})") from exc
        except OSError as exc:
            raise EngineUnreachable(str(exc) or exc.__class__.__name__) from exc
        finally:
            reader.close()
            sock.close()

    def http_json(self, method: str, path: str, body: Any = None,
            timeout: float | None = SDK_TIMEOUT) -> Any:
        """The JSON answer of one request (None when empty); EngineError for an error."""
        status, data = self.http_call(method, path, body, timeout)
        if status >= 400:
            try:
                message = str(json.loads(data).get("message") or "")
            except (ValueError, AttributeError):
                message = data.decode(errors="replace").strip()
            raise EngineError(status, message or f"HTTP {status}")
        return json.loads(data) if data.strip() else None

    def ping(self) -> bool:
        """True, or EnvironmentProblem when the engine does not answer."""
        try:
            status, body = self.http_call("GET", "/_ping", timeout=PING_TIMEOUT)
        except OSError as exc:
            raise unreachable(exc) from None
        if status != 200:
            raise unreachable(ConnectionError(f"/_ping answered {status}: {body[:200]!r}"))
        return True

    def image_id(self, tag: str) -> str | None:
        """The local image id of `tag` (None when there is no such image)."""
        try:
            status, body = self.http_call("GET", f"/images/{quote(tag, safe='/:@')}/json")
        except OSError as exc:
            raise unreachable(exc) from None
        if status == 404:
            return None
        if status != 200:
            raise EnvironmentProblem(f"Docker could not inspect image {tag} ({status}: "
                                     f"{body[:200].decode(errors='replace').strip()})")
        return str(json.loads(body)["Id"])

    @property
    def sdk(self) -> Any:
        """The Docker SDK's client (imported and connected on first use)."""
        with self._sdk_lock:
            if self._sdk is None:
                self._sdk = sdk_client()
            return self._sdk

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.sdk, name)


class Containers:
    """`client.containers.create()` as ContainerRunner calls it, with the request the SDK
    sends (docker.models.containers); other methods are the SDK's."""

    CREATE_ARGS = {"command", "environment", "user", "working_dir", "network_mode",
                   "nano_cpus", "mem_limit", "memswap_limit", "pids_limit", "security_opt",
                   "cap_drop", "privileged", "labels", "volumes"}

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, image: str, **kw: Any) -> Container:
        unknown = set(kw) - self.CREATE_ARGS
        if unknown:
            raise TypeError(f"create() of pipeline.run.engine takes no {sorted(unknown)}")
        volumes = kw.get("volumes") or {}
        host = {"NetworkMode": kw.get("network_mode"), "NanoCpus": kw.get("nano_cpus"),
                "Memory": kw.get("mem_limit"), "MemorySwap": kw.get("memswap_limit"),
                "PidsLimit": kw.get("pids_limit"), "SecurityOpt": kw.get("security_opt"),
                "CapDrop": kw.get("cap_drop"), "Privileged": kw.get("privileged") or None,
                "Binds": [f"{h}:{v['bind']}:{v.get('mode', 'rw')}"
                          for h, v in volumes.items()] or None}
        config = {"Image": image, "Cmd": kw.get("command"), "User": kw.get("user"),
                  "Env": [k if v is None else f"{k}={v}"
                          for k, v in (kw.get("environment") or {}).items()],
                  "WorkingDir": kw.get("working_dir"), "Labels": kw.get("labels"),
                  "Volumes": {v["bind"]: {} for v in volumes.values()} or None,
                  "AttachStdin": False, "AttachStdout": True, "AttachStderr": True,
                  "OpenStdin": False, "StdinOnce": False, "Tty": False,
                  "NetworkDisabled": False,
                  "HostConfig": {k: v for k, v in host.items() if v is not None}}
        answer = self.engine.http_json("POST", "/containers/create",
                                 {k: v for k, v in config.items() if v is not None})
        return Container(self.engine, str(answer["Id"]))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine.sdk.containers, name)


class Container:
    """The methods of the SDK's Container that ContainerRunner uses."""

    def __init__(self, engine: Engine, container_id: str) -> None:
        self.engine = engine
        self.id = container_id
        self.attrs: dict[str, Any] = {}

    def start(self) -> None:
        self.engine.http_json("POST", f"/containers/{self.id}/start")

    def logs(self, stream: bool = True, follow: bool = True, stdout: bool = True,
             stderr: bool = True) -> Iterator[bytes]:
        """The output as it comes: the payload of each frame of the multiplexed stream."""
        query = f"stderr={int(stderr)}&stdout={int(stdout)}&timestamps=0&follow={int(follow)}"
        sock, reader, status = self.engine.http_open("GET", f"/containers/{self.id}/logs?{query}"
                                                "&tail=all")
        try:
            if status >= 400:
                raise EngineError(status, reader.read().decode(errors="replace").strip())
            while len(header := reader.read(8)) == 8:
                yield reader.read(int.from_bytes(header[4:], "big"))
        finally:
            reader.close()
            sock.close()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        return dict(self.engine.http_json("POST", f"/containers/{self.id}/wait", timeout=timeout))

    def reload(self) -> None:
        self.attrs = dict(self.engine.http_json("GET", f"/containers/{self.id}/json"))

    def kill(self) -> None:
        self.engine.http_json("POST", f"/containers/{self.id}/kill")

    def remove(self, force: bool = False) -> None:
        self.engine.http_json("DELETE", f"/containers/{self.id}?v=0&link=0&force={int(force)}")


def sdk_client() -> Any:
    """The Docker SDK's client, connected (EnvironmentProblem when it cannot be)."""
    try:
        import docker

        client = docker.from_env(timeout=SDK_TIMEOUT)
        client.ping()
        return client
    except Exception as exc:  # the SDK raises many types for "no daemon"
        raise unreachable(exc) from None


def connect() -> Any:
    """A connected client: an Engine for the local socket, else the SDK's."""
    path = local_socket()
    if path is None:
        return sdk_client()
    engine = Engine(path)
    engine.ping()
    return engine

