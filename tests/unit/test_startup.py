"""What each command loads and does before its work: lazy imports, the light Docker client,
compiled templates and remembered digests (issue 19: the tool's fixed cost)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socketserver
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli.parser import named_command
from pipeline.errors import EnvironmentProblem
from pipeline.run import engine

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("docker", "requests", "jinja2", "rich", "junitparser", "debian", "urllib.request")


def loaded_modules(*args: str, cwd: Path = ROOT) -> set[str]:
    """The modules `pipeline ARGS` has imported when it exits (run in a fresh process)."""
    code = ("import atexit, json, sys, runpy\n"
            "atexit.register(lambda: print('MODULES=' + json.dumps(sorted(sys.modules)),"
            " file=sys.__stderr__))\n"
            f"sys.argv = ['pipeline', *{list(args)!r}]\n"
            "runpy.run_module('pipeline', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    line = next(x for x in proc.stderr.splitlines() if x.startswith("MODULES="))
    return set(json.loads(line[len("MODULES="):]))


@pytest.mark.parametrize("args", [["--help"], ["list"], ["validate"], ["list", "--json"]])
def test_plain_commands_load_no_heavy_library(args: list[str]) -> None:
    modules = loaded_modules(*args)
    assert not {m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY}, args
    if args != ["--help"]:  # the Buildbot and adoption commands are not even parsed
        assert "pipeline.buildbot.control" not in modules
        assert "pipeline.adopt.commands" not in modules


@pytest.mark.parametrize("argv, command", [
    (["run", "--job", "x"], "run"),
    (["--matrix", "m.yml", "list"], "list"),
    (["--matrix=m.yml", "list"], "list"),
    (["--mat", "run", "list"], "list"),  # an abbreviated option takes its value
    (["master", "start"], "master"),
    (["--help"], None),
    (["-h", "run"], None),
    (["--", "run"], None),
    ([], None),
])
def test_named_command(argv: list[str], command: str | None) -> None:
    assert named_command(argv) == command


def test_the_whole_parser_answers_what_the_short_one_does_not(capsys) -> None:
    from pipeline.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["bogus"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'bogus'" in err and "'master'" in err and "'doctor'" in err


# --------------------------------------------------------------------------- Docker


class _Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up waiting (a step's timeout) closed its end


def _serve(path: Path, images: dict[str, str], status: dict[str, int]) -> _Engine:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/_ping":
                code, body = status.get("ping", 200), b"OK"
            elif self.path.startswith("/images/") and self.path.endswith("/json"):
                from urllib.parse import unquote

                tag = unquote(self.path[len("/images/"):-len("/json")])
                code = status.get("image", 200 if tag in images else 404)
                body = json.dumps({"Id": images[tag]} if tag in images else
                                  {"message": f"No such image: {tag}"}).encode()
            else:
                code, body = 404, b"{}"
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = _Engine(str(path), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_the_light_client_pings_and_finds_image_ids_without_the_sdk(tmp_path: Path) -> None:
    sock = tmp_path / "docker.sock"
    server = _serve(sock, {"kmatrix/kbuild-6.1:abc": "sha256:123"}, {})
    try:
        client = engine.Engine(str(sock))
        client.ping()
        assert client.image_id("kmatrix/kbuild-6.1:abc") == "sha256:123"
        assert client.image_id("kmatrix/kbuild-6.1:nope") is None
    finally:
        server.shutdown()
        server.server_close()


def test_the_light_client_reports_an_engine_that_does_not_answer(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match=r"Docker is not reachable \(FileNotFound"):
        engine.Engine(str(tmp_path / "absent.sock")).ping()
    sock = tmp_path / "docker.sock"
    server = _serve(sock, {}, {"ping": 500, "image": 500})
    try:
        with pytest.raises(EnvironmentProblem, match="Docker is not reachable"):
            engine.Engine(str(sock)).ping()
        with pytest.raises(EnvironmentProblem, match="could not inspect image x:1 \\(500"):
            engine.Engine(str(sock)).image_id("x:1")
    finally:
        server.shutdown()
        server.server_close()


class _FakeDocker(http.server.BaseHTTPRequestHandler):
    """The container endpoints a step uses; `self.server.script` says how they answer."""

    protocol_version = "HTTP/1.0"

    def _answer(self, code: int, body: Any = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        script, calls = self.server.script, self.server.calls  # type: ignore[attr-defined]
        calls.append(("POST", self.path.split("?")[0], body))
        if self.path == "/containers/create":
            if "create" in script:
                return self._answer(*script["create"])
            return self._answer(201, {"Id": "c1"})
        if self.path.endswith("/wait"):
            import time

            time.sleep(script.get("wait_sleep", 0))
            return self._answer(200, {"StatusCode": script.get("exit", 0)})
        return self._answer(204)

    def do_GET(self) -> None:
        self.server.calls.append(("GET", self.path.split("?")[0], None))  # type: ignore
        if self.path.startswith("/containers/c1/logs"):
            frames = b"".join(bytes([1, 0, 0, 0]) + len(p).to_bytes(4, "big") + p
                              for p in (b"one\n", b"two\nthr", b"ee\n"))
            return self._answer(200, raw=frames)
        return self._answer(200, {"State": {"OOMKilled": self.server.script.get("oom", False)}})

    def do_DELETE(self) -> None:
        self.server.calls.append(("DELETE", self.path, None))  # type: ignore
        self._answer(204)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def fake_docker(tmp_path: Path) -> Any:
    server = _Engine(str(tmp_path / "docker.sock"), _FakeDocker)
    server.script, server.calls = {}, []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_step_runs_through_the_light_client_as_through_the_sdk(fake_docker) -> None:
    from pipeline.run.executor import ContainerRunner, ContainerSpec, Mount

    spec = ContainerSpec(image="img:1", script="true", env={"A": "1"}, memory="64m",
                         mounts=[Mount(Path("/h"), "/src", True)], labels={"l": "v"})
    fake_docker.script.update(exit=3)
    lines: list[str] = []
    outcome = ContainerRunner(engine.Engine(fake_docker.server_address)).run(
        spec, timeout=60, on_line=lines.append)
    assert (outcome.exit_code, outcome.error) == (3, None)
    assert outcome.output == "one\ntwo\nthree\n" and lines == ["one", "two", "three"]
    create = fake_docker.calls[0][2]  # the body the SDK sends (docker.models.containers)
    assert create["Image"] == "img:1" and create["Env"] == ["A=1"]
    assert create["HostConfig"] == {
        "NetworkMode": "none", "NanoCpus": 2_000_000_000, "Memory": 64 << 20,
        "MemorySwap": 64 << 20, "PidsLimit": 4096, "SecurityOpt": ["no-new-privileges"],
        "CapDrop": ["ALL"], "Binds": ["/h:/src:ro"]}
    assert create["Volumes"] == {"/src": {}} and create["Labels"] == {"l": "v"}
    assert [c[:2] for c in fake_docker.calls][-1] == (
        "DELETE", "/containers/c1?v=0&link=0&force=1")  # force-removed, as the SDK does


def test_light_client_timeouts_and_errors_read_as_the_sdks(fake_docker) -> None:
    from pipeline.run.executor import ContainerRunner, ContainerSpec

    spec = ContainerSpec(image="img:1", script="true", env={}, mounts=[])
    client = engine.Engine(fake_docker.server_address)
    fake_docker.script.update(wait_sleep=3)
    outcome = ContainerRunner(client).run(spec, timeout=1)
    assert outcome.timed_out and outcome.error == (
        "timed out after 1 s; container killed and removed")
    assert ("POST", "/containers/c1/kill", None) in fake_docker.calls
    fake_docker.script.update(create=(404, {"message": "No such image: img:1"}))
    outcome = ContainerRunner(client).run(spec, timeout=1)
    assert outcome.error == "cannot create container: No such image: img:1"
    del fake_docker.script["create"]
    fake_docker.script.update(oom=True, wait_sleep=0, exit=137)
    outcome = ContainerRunner(client).run(spec, timeout=60)
    assert outcome.error == "killed: out of memory (limit 4g)"
    gone = engine.Engine(fake_docker.server_address + ".gone")
    outcome = ContainerRunner(gone).run(spec, timeout=60)
    assert outcome.error.startswith("Docker is not reachable: ")


@pytest.mark.parametrize("env, expected", [
    ({}, engine.DEFAULT_SOCKET),
    ({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}, "/run/user/1000/docker.sock"),
    ({"DOCKER_HOST": "tcp://10.0.0.1:2375"}, None),
    ({"DOCKER_HOST": "ssh://me@host"}, None),
    ({"DOCKER_TLS_VERIFY": "1"}, None),
    ({"DOCKER_CERT_PATH": "/certs"}, None),
    ({"DOCKER_CONTEXT": "remote"}, None),
    ({"DOCKER_CONTEXT": "default"}, engine.DEFAULT_SOCKET),
])
def test_only_the_plain_local_socket_is_spoken_to_directly(env: dict[str, str], tmp_path: Path,
                                                            expected: str | None) -> None:
    assert engine.local_socket({"DOCKER_CONFIG": str(tmp_path), **env}) == expected


def test_a_cli_context_in_docker_config_leaves_it_to_the_sdk(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "desktop-linux"}))
    assert engine.local_socket({"DOCKER_CONFIG": str(tmp_path)}) is None
    (tmp_path / "config.json").write_text(json.dumps({"auths": {}}))
    assert engine.local_socket({"DOCKER_CONFIG": str(tmp_path)}) == engine.DEFAULT_SOCKET
    (tmp_path / "config.json").write_text("{broken")
    assert engine.local_socket({"DOCKER_CONFIG": str(tmp_path)}) is None


def test_image_lookups_take_the_light_path_or_the_sdks() -> None:
    from types import SimpleNamespace

    from pipeline.plan.keys import docker_image_id

    light = SimpleNamespace(image_id=lambda tag: f"id-of-{tag}")
    assert docker_image_id(light)("a:1") == "id-of-a:1"
    sdk = SimpleNamespace(images=SimpleNamespace(get=lambda tag: SimpleNamespace(id="sdk")))
    assert docker_image_id(sdk)("a:1") == "sdk"
    assert docker_image_id(None)("a:1") is None


# --------------------------------------------------------------------------- templates


def test_templates_are_compiled_once_and_recompiled_when_changed(tmp_path: Path,
                                                                 monkeypatch) -> None:
    import jinja2

    from pipeline.paths import template_cache

    monkeypatch.setenv("KMATRIX_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "t.j2").write_text("{{ x }} one\n")

    def render() -> str:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(tmp_path)),
                                 bytecode_cache=template_cache("probe"))
        return env.get_template("t.j2").render(x=1)

    assert render() == "1 one"
    stored = list((tmp_path / "cache" / "templates").rglob("*.cache"))
    assert len(stored) == 1
    (tmp_path / "t.j2").write_text("{{ x }} two\n")  # same name, new content
    assert render() == "1 two"
    stored[0].write_bytes(b"garbage")  # a broken cache file is only a recompilation
    assert render() == "1 two"


def test_an_unwritable_cache_directory_does_not_stop_a_template(tmp_path: Path,
                                                                monkeypatch) -> None:
    from pipeline.paths import template_cache

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("KMATRIX_CACHE_DIR", str(blocker / "cache"))
    assert template_cache("probe") is None


def test_flavour_values_render_as_before(tmp_path: Path, monkeypatch) -> None:
    """Values without Jinja syntax skip Jinja; the others are loaded by a content name
    (compiled once, then from the bytecode cache); errors read as before."""
    from pipeline.debian.images import ImageBase, ImageCatalog
    from pipeline.errors import InputError

    monkeypatch.setenv("KMATRIX_CACHE_DIR", str(tmp_path / "cache"))
    images = tmp_path / "images"
    images.mkdir()
    (images / "flavours.yml").write_text(
        "f:\n  suite: '  bookworm '\n  packages: [gcc, 'x-{{ base.mode }}']\n"
        "  env: {A: '{{ base.registry_image }}:1'}\n"
        "bad:\n  suite: '{{ oops'\n")
    for _ in range(2):  # the second catalog finds the values compiled already
        flavour = ImageCatalog(images).render("f", None, ImageBase())
        assert flavour.suite == "bookworm"
        assert flavour.packages == ("gcc", "x-mmdebstrap")
        assert flavour.env == {"A": "debian:1"}
    with pytest.raises(InputError) as bad:
        ImageCatalog(images).render("bad", None, ImageBase())
    assert str(bad.value) == ("error: images/flavours.yml: flavour 'bad': unexpected end of "
                              "template, expected 'end of print statement'.")


# --------------------------------------------------------------------------- code digest


def test_the_code_digest_is_remembered_until_a_file_changes(tmp_path: Path,
                                                            monkeypatch) -> None:
    import pipeline
    from pipeline.plan import keys

    monkeypatch.setenv("KMATRIX_CACHE_DIR", str(tmp_path / "cache"))
    package = tmp_path / "pipeline"
    shutil.copytree(Path(pipeline.__file__).resolve().parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    digest = keys.package_digest(package)
    assert keys._remembered_digest(package) == digest
    reads: list[Path] = []
    monkeypatch.setattr(keys, "file_sha256", lambda p: reads.append(p) or "x")
    assert keys._remembered_digest(package) == digest and reads == []  # from the memo
    monkeypatch.undo()
    monkeypatch.setenv("KMATRIX_CACHE_DIR", str(tmp_path / "cache"))
    target = package / "report" / "summary.py"
    before = target.stat()
    target.write_bytes(target.read_bytes() + b"\n")
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # even with its mtime
    assert keys._remembered_digest(package) == keys.package_digest(package) != digest


def test_the_light_client_leaves_the_sdks_names_to_the_sdk() -> None:
    """Image builds use client.api, doctor client.version(): the SDK's, made on first use."""
    import docker

    own = {n for n in vars(engine.Engine("/nowhere")) if not n.startswith("_")}
    own |= {n for n in vars(engine.Engine) if not n.startswith("_")}
    sdk = {n for n in vars(docker.DockerClient) if not n.startswith("_")} | {"api"}
    assert own & sdk == {"ping", "containers"}  # same meaning: True; create() as the SDK's


def test_the_cheap_character_classes_match_what_they_replace() -> None:
    """The complement classes compile ten times faster and test the same code points."""
    import re

    from pipeline.model.yamlmarks import _NON_PRINTABLE
    from pipeline.results.prettyxml import _INVALID

    pairs = [(_NON_PRINTABLE, "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd"
                              "\U00010000-\U0010ffff]"),
             (_INVALID, "[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")]
    text = "".join(map(chr, range(0x110000)))
    for cheap, reference in pairs:
        assert [m.start() for m in cheap.finditer(text)] == [
            m.start() for m in re.finditer(reference, text)]
