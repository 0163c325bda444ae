"""The signed chain for kernels, stale locks and snapshot pins, against a synthetic signed
Debian archive served on 127.0.0.1 (tests/support/debrepo.py): real gpg, gpgv, dpkg-deb,
HTTP and `pipeline` processes; no other network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pipeline.debian.archive import ChainError
from pipeline.debian.images import ImageBase, ImageCatalog, mmdebstrap_command
from pipeline.debian.kernels import kernel_image
from pipeline.debian.lock import read_lock, write_lock
from pipeline.model.matrix import load_matrix
from tests.conftest import run_cli
from tests.support.debrepo import DebRepo, SigningKey, kernel_debs, serve

OLD = ("6.1.0-50-amd64", "6.1.176-1")
NEW = ("6.1.0-51-amd64", "6.1.180-1")
STAMP = "20260115T000000Z"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningKey]:
    signing = SigningKey(tmp_path_factory.mktemp("keys"))
    yield signing
    signing.close()


@pytest.fixture
def archive(tmp_path: Path, key: SigningKey) -> Iterator[tuple[DebRepo, str]]:
    """bookworm with the OLD kernel, served at <url>/debian."""
    repo = DebRepo(tmp_path / "www" / "debian", "bookworm", key)
    repo.publish(kernel_debs(*OLD))
    with serve(tmp_path / "www") as url:
        yield repo, f"{url}/debian"


def project(tmp_path: Path, kernel: dict[str, str], top: str = "") -> Path:
    """A project whose one kernel is `kernel` and whose one job builds on its image."""
    root = tmp_path / "project"
    root.mkdir(parents=True, exist_ok=True)
    (root / "matrix.yml").write_text(
        top + yaml.safe_dump({"kernels": {"6.1": {"suite": "bookworm", **kernel}}})
        + "jobs:\n  k: {over: [kernel], image: kbuild, inputs: [matrix.yml], run: 'true'}\n")
    return root


def pipeline(root: Path, *args: str, **env: str) -> tuple[int, str, str]:
    proc = run_cli("--matrix", str(root / "matrix.yml"), *args, cwd=root,
                   env={"KMATRIX_CACHE_DIR": str(root / "cache"), **env}, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def mmdebstrap_shim(tmp_path: Path) -> tuple[str, Path]:
    """A PATH whose `mmdebstrap` only records its calls (and fails), and that record."""
    shim = tmp_path / "bin"
    shim.mkdir()
    calls = tmp_path / "mmdebstrap-calls"
    (shim / "mmdebstrap").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\nexit 1\n")
    (shim / "mmdebstrap").chmod(0o755)
    return f"{shim}:{os.environ['PATH']}", calls


def one_line_error(err: str) -> str:
    """The one error line of stderr (progress lines like "pipeline: fetching ..." aside)."""
    errors = [line for line in err.splitlines() if not line.startswith("pipeline: fetching ")]
    assert len(errors) == 1 and errors[0].startswith("pipeline: error: "), err
    assert "Traceback" not in err
    return errors[0]


def test_lock_rejects_tampered_index(tmp_path: Path, key: SigningKey,
                                     archive: tuple[DebRepo, str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    repo, mirror = archive
    root = project(tmp_path, {"mirror": mirror, "keyring": str(key.keyring)})
    code, _, err = pipeline(root, "lock")
    assert code == 0, err
    locked = read_lock(root / "matrix.lock")["6.1"]
    deb = repo.root / locked.image.filename
    assert (locked.abi, locked.headers.version) == OLD
    assert locked.image.sha256 == hashlib.sha256(deb.read_bytes()).hexdigest()
    good_lock = (root / "matrix.lock").read_text()
    packages = (repo.dists / "main/binary-amd64/Packages").read_text()

    # (a) a Packages file changed after signing: another SHA256 for the image
    repo.write_packages(packages.replace(locked.image.sha256, "f" * 64))
    code, _, err = pipeline(root, "lock", "--update")
    line = one_line_error(err)
    assert code == 2 and "Packages.xz does not match the signed InRelease of bookworm" in line
    assert (root / "matrix.lock").read_text() == good_lock  # nothing written
    repo.write_packages(packages)

    # (b) an InRelease whose signed text was edited, one signed by a key not in the keyring,
    # and the test archive checked against Debian's keyring instead of its own
    inrelease = repo.dists / "InRelease"
    signed = inrelease.read_bytes()
    inrelease.write_bytes(signed.replace(b"Origin: kmatrix-test", b"Origin: kmatrix-evil"))
    code, _, err = pipeline(root, "lock", "--update")
    line = one_line_error(err)
    assert code == 2 and "InRelease failed verification: BAD signature" in line
    stranger = SigningKey(tmp_path, "a stranger")
    try:
        repo.sign(stranger)
    finally:
        stranger.close()
    code, _, err = pipeline(root, "lock", "--update")
    assert code == 2 and f"none of which is in {key.keyring}" in one_line_error(err)
    repo.sign()
    debian = project(tmp_path / "debian-keyring", {"mirror": mirror})
    code, _, err = pipeline(debian, "lock")
    line = one_line_error(err)
    assert code == 2 and "/usr/share/keyrings/debian-archive-keyring.gpg" in line
    assert not (debian / "matrix.lock").exists()
    assert (root / "matrix.lock").read_text() == good_lock

    # (c) the kernel .deb served with other bytes than the lock pins, then the right ones
    monkeypatch.setenv("KMATRIX_CACHE_DIR", str(tmp_path / "download-cache"))
    right = deb.read_bytes()
    deb.write_bytes(right[:-1] + bytes([right[-1] ^ 1]))
    with pytest.raises(ChainError) as caught:
        kernel_image(locked)
    assert "does not match matrix.lock" in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1
    assert not list((tmp_path / "download-cache").rglob("*.deb"))  # discarded
    deb.write_bytes(right)
    assert kernel_image(locked).read_text() == f"fake kernel {OLD[0]} {OLD[1]}\n"


def test_stale_lock_is_detected(tmp_path: Path, key: SigningKey,
                                archive: tuple[DebRepo, str]) -> None:
    repo, mirror = archive
    root = project(tmp_path, {"mirror": mirror, "keyring": str(key.keyring)})
    assert pipeline(root, "lock")[0] == 0
    path, calls = mmdebstrap_shim(tmp_path)

    # Debian moves on: bookworm now has the NEW kernel only; and the index `pipeline lock`
    # left in the cache is older than KMATRIX_INDEX_TTL (a run reuses it for 600 s)
    shutil.rmtree(repo.root / "pool")
    repo.publish(kernel_debs(*NEW))
    started = time.monotonic()
    code, _, err = pipeline(root, "run", PATH=path, KMATRIX_INDEX_TTL="0")
    seconds = time.monotonic() - started
    assert code == 2, err
    assert (f"matrix.lock pins linux-headers-{OLD[0]} {OLD[1]}, but bookworm now offers "
            f"{NEW[0]} ({NEW[1]}); run `pipeline lock --update`, or pin a snapshot "
            "(see docs/MATRIX.md)") in one_line_error(err)
    assert seconds < 10, seconds
    assert not calls.exists(), "mmdebstrap was started"
    assert not (root / "reports").exists()  # exit 2 before a run directory exists
    code, _, err = pipeline(root, "job", "k/6.1", "--dir", str(tmp_path / "out"), PATH=path,
                            KMATRIX_INDEX_TTL="0")  # as a Buildbot step runs it
    assert code == 2 and "but bookworm now offers" in one_line_error(err)
    assert not calls.exists(), "mmdebstrap was started"

    code, out, err = pipeline(root, "lock", "--check")
    assert code == 1, err
    assert out.split()[:2] == ["6.1", "stale"]
    assert f"pins linux-headers-{OLD[0]} {OLD[1]}, but bookworm now offers {NEW[0]}" in out

    # after `lock --update` the check passes and a run gets as far as building the image
    assert pipeline(root, "lock", "--update")[0] == 0
    code, out, err = pipeline(root, "lock", "--check")
    assert code == 0 and out.split()[:2] == ["6.1", "ok"], out + err
    code, out, err = pipeline(root, "run", PATH=path)
    assert calls.exists(), out + err  # the shim ran: it is what mmdebstrap would have been
    assert code == 1, out + err


def test_snapshot_pin_locks_and_builds_from_that_date(tmp_path: Path, key: SigningKey,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    www = tmp_path / "www"
    repo = DebRepo(www / "archive" / "debian" / STAMP, "bookworm", key)
    repo.publish(kernel_debs(*OLD))
    repo.expire()  # a snapshot's index is past its Valid-Until: fine for a snapshot only
    with serve(www) as url:
        snapshots = f"{url}/archive/debian"
        env = {"KMATRIX_SNAPSHOT_URL": snapshots}
        root = project(tmp_path, {"keyring": str(key.keyring)}, top=f"snapshot: {STAMP}\n")
        code, out, err = pipeline(root, "lock", **env)
        assert code == 0, err
        locked = read_lock(root / "matrix.lock")["6.1"]
        assert locked.mirror == f"{snapshots}/{STAMP}" and locked.snapshot == STAMP
        code, out, err = pipeline(root, "lock", "--check", **env)
        assert code == 0 and f"pinned to snapshot {STAMP}: it cannot drift" in out, err

        flavour = ImageCatalog(root / "images").render("kbuild", locked, ImageBase())
        cmd = mmdebstrap_command(flavour, tmp_path / "r.tar", tmp_path / "apt")
        assert cmd[-1] == f"deb {snapshots}/{STAMP} bookworm main"
        assert '--aptopt=Acquire::Check-Valid-Until "false"' in cmd
        monkeypatch.setenv("KMATRIX_CACHE_DIR", str(tmp_path / "download-cache"))
        assert kernel_image(locked).read_text().startswith("fake kernel")

        # the same expired index on a plain mirror fails closed
        shutil.copytree(repo.root, www / "plain")
        plain = project(tmp_path / "plain", {"mirror": f"{url}/plain",
                                             "keyring": str(key.keyring)})
        code, _, err = pipeline(plain, "lock")
        line = one_line_error(err)
        assert code == 2 and "InRelease expired on" in line


def test_unreachable_index_is_a_warning_before_a_run(tmp_path: Path, key: SigningKey,
                                                     archive: tuple[DebRepo, str]) -> None:
    _, mirror = archive
    root = project(tmp_path, {"mirror": mirror, "keyring": str(key.keyring)})
    assert pipeline(root, "lock")[0] == 0
    dead = "http://127.0.0.1:9/debian"  # nothing listens on the discard port
    (root / "matrix.yml").write_text((root / "matrix.yml").read_text().replace(mirror, dead))
    locked = read_lock(root / "matrix.lock")["6.1"]
    declaration = load_matrix(root / "matrix.yml").kernels["6.1"].declaration_hash()
    write_lock(root / "matrix.lock", {"6.1": type(locked)(**{
        **locked.__dict__, "mirror": dead, "declaration": declaration})})
    path, calls = mmdebstrap_shim(tmp_path)
    started = time.monotonic()
    code, out, err = pipeline(root, "run", PATH=path, KMATRIX_INDEX_TTL="0")
    assert time.monotonic() - started < 60
    assert ("pipeline: warning: cannot check that bookworm still offers kernel 6.1's packages "
            f"(cannot download {dead}/dists/bookworm/InRelease") in err, err
    assert "going on (its images may be cached)" in err
    assert calls.exists() and code == 1, out + err  # the run went on to the image build
