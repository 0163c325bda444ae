"""A synthetic signed Debian archive on 127.0.0.1, for the signed-chain and stale-lock tests.

`SigningKey` is a throwaway GPG key (made with gpg at test time, no passphrase, its own
GNUPGHOME) exported as a keyring file. `DebRepo` writes `dists/<suite>/InRelease`
(`gpg --clearsign`), `main/binary-amd64/Packages(.xz|.gz)` and real, tiny .deb files
(dpkg-deb) for linux-headers-*/linux-image-* packages; `serve()` serves a directory with
http.server in a thread. Tests break the files on purpose between calls.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import lzma
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from pathlib import Path
from typing import Any

COMPONENT_DIR = "main/binary-amd64"


def _run(cmd: list[str], **kw: Any) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kw)
    assert proc.returncode == 0, f"{cmd}: {proc.stderr}"
    return proc.stdout


class SigningKey:
    """A throwaway ed25519 signing key and its public keyring file."""

    def __init__(self, directory: Path, name: str = "kmatrix test archive") -> None:
        # a short GNUPGHOME: gpg-agent's socket path must stay under 108 characters
        self.home = Path(tempfile.mkdtemp(prefix="kmx-gpg-"))
        self.home.chmod(0o700)
        self.gpg = ["gpg", "--homedir", str(self.home), "--batch", "--yes",
                    "--pinentry-mode", "loopback", "--passphrase", ""]
        _run([*self.gpg, "--quick-gen-key", f"{name} <archive@kmatrix.invalid>", "ed25519",
              "sign", "never"])
        self.keyring = directory / f"{name.replace(' ', '-')}.gpg"
        self.keyring.write_bytes(subprocess.run(
            ["gpg", "--homedir", str(self.home), "--export"], capture_output=True,
            check=True).stdout)

    def clearsign(self, text: str) -> bytes:
        return subprocess.run([*self.gpg, "--clearsign"], input=text.encode(),
                              capture_output=True, check=True).stdout

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"],
                       capture_output=True, check=False)
        shutil.rmtree(self.home, ignore_errors=True)


def fake_deb(dest: Path, package: str, version: str, files: dict[str, bytes]) -> Path:
    """A real (tiny) .deb holding `files` (path -> content)."""
    with tempfile.TemporaryDirectory(prefix="kmx-deb-") as tmp:
        root = Path(tmp)
        (root / "DEBIAN").mkdir()
        (root / "DEBIAN" / "control").write_text(
            f"Package: {package}\nVersion: {version}\nArchitecture: amd64\n"
            "Maintainer: kmatrix tests <t@kmatrix.invalid>\nDescription: test package\n")
        for path, content in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(content)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(dest)])
    return dest


def kernel_debs(abi: str, version: str) -> list[tuple[str, str, dict[str, bytes]]]:
    """The headers and (unsigned) image packages of one kernel ABI."""
    return [
        (f"linux-headers-{abi}", version, {f"usr/src/linux-headers-{abi}/Makefile": b"all:\n"}),
        (f"linux-image-{abi}-unsigned", version,
         {f"boot/vmlinuz-{abi}": f"fake kernel {abi} {version}\n".encode()}),
    ]


class DebRepo:
    """One suite of a signed archive below `root` (the mirror URL's directory)."""

    def __init__(self, root: Path, suite: str, key: SigningKey) -> None:
        self.root, self.suite, self.key = root, suite, key
        self.dists = root / "dists" / suite
        self.valid_until: datetime | None = None

    def publish(self, packages: list[tuple[str, str, dict[str, bytes]]]) -> str:
        """Write the .debs, the Packages indexes and a signed InRelease; the Packages text."""
        paragraphs = []
        for name, version, files in packages:
            rel = f"pool/main/l/linux/{name}_{version}_amd64.deb"
            deb = fake_deb(self.root / rel, name, version, files)
            data = deb.read_bytes()
            paragraphs.append(
                f"Package: {name}\nSource: linux\nVersion: {version}\nArchitecture: amd64\n"
                f"Maintainer: kmatrix tests <t@kmatrix.invalid>\nFilename: {rel}\n"
                f"Size: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"
                "Description: a test package\n with a continuation line\n")
        paragraphs.append("Package: unrelated\nVersion: 1.0\nArchitecture: amd64\n"
                          "Filename: pool/main/u/unrelated_1.0_amd64.deb\nSHA256: "
                          + "0" * 64 + "\n")
        text = "\n".join(paragraphs)
        self.write_packages(text)
        self.sign()
        return text

    def write_packages(self, text: str) -> None:
        """The Packages files (plain, .xz, .gz) of main/binary-amd64, InRelease untouched."""
        folder = self.dists / COMPONENT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "Packages").write_text(text)
        (folder / "Packages.xz").write_bytes(lzma.compress(text.encode()))
        (folder / "Packages.gz").write_bytes(gzip.compress(text.encode(), mtime=0))

    def release_text(self) -> str:
        lines = [f"Origin: kmatrix-test\nSuite: {self.suite}\nCodename: {self.suite}\n"
                 f"Date: {format_datetime(datetime.now(UTC), usegmt=True)}\n"]
        if self.valid_until is not None:
            lines.append(f"Valid-Until: {format_datetime(self.valid_until, usegmt=True)}\n")
        lines.append("Architectures: amd64\nComponents: main\nSHA256:\n")
        for name in ("Packages", "Packages.xz", "Packages.gz"):
            data = (self.dists / COMPONENT_DIR / name).read_bytes()
            lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data):>8} "
                         f"{COMPONENT_DIR}/{name}\n")
        return "".join(lines)

    def sign(self, key: SigningKey | None = None) -> None:
        """(Re)write InRelease over the current Packages files."""
        self.dists.mkdir(parents=True, exist_ok=True)
        (self.dists / "InRelease").write_bytes((key or self.key).clearsign(self.release_text()))

    def expire(self, days_ago: int = 1) -> None:
        """Sign again with a Valid-Until in the past."""
        self.valid_until = datetime.now(UTC) - timedelta(days=days_ago)
        self.sign()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_args: Any) -> None:  # http.server's name
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1 in a thread; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             partial(_Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
