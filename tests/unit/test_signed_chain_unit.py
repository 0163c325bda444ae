"""The signed chain's pure parts: index parsing, hash checks, gpgv status, snapshot pins,
lock hashes, drift. (gpg itself, HTTP and the CLI: tests/integration/test_signed_chain.py.)"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import re
from pathlib import Path

import pytest
from debian.deb822 import Release

from pipeline.cli import main
from pipeline.debian import indexes
from pipeline.debian.archive import (
    DEBIAN_KEYRING,
    ChainError,
    PinnedPackage,
    _gpgv_reason,
    fetch_packages,
    is_snapshot,
    parse_packages,
    snapshot_mirror,
    verify_inrelease,
)
from pipeline.debian.images import ImageBase, ImageCatalog, mmdebstrap_command
from pipeline.debian.kernels import kernel_image
from pipeline.debian.lock import read_lock, resolve_kernel, write_lock
from pipeline.debian.offered import Drift, check_offered, compare
from pipeline.errors import EnvironmentProblem, InputError
from pipeline.model.kernels import KernelSource
from pipeline.model.matrix import load_matrix_text
from tests.unit.test_lock_images import BOOKWORM, fake_sha, index

ROOT = Path(__file__).resolve().parents[2]
SIXONE = KernelSource("6.1", "bookworm", ("bookworm",))
PACKAGES = (
    "Package: linux-headers-6.1.0-50-amd64\nVersion: 6.1.176-1\nFilename: pool/h.deb\n"
    "SHA256: " + "a" * 64 + "\nDescription: headers\n long description\n .\n more\n\n"
    "Package: libfoo\nVersion: 1\nSHA256: " + "b" * 64 + "\n\n"
    "Architecture: amd64\nPackage: linux-image-6.1.0-50-amd64-unsigned\nVersion: 6.1.176-1\n"
    "Filename: pool/i.deb\nSHA256: " + "c" * 64 + "\n"
)


def test_packages_are_parsed_with_python_debian_keeping_only_kernel_packages() -> None:
    found = parse_packages(PACKAGES)
    assert set(found) == {"linux-headers-6.1.0-50-amd64", "linux-image-6.1.0-50-amd64-unsigned"}
    assert found["linux-headers-6.1.0-50-amd64"] == [
        PinnedPackage("linux-headers-6.1.0-50-amd64", "6.1.176-1", "pool/h.deb", "a" * 64)]
    assert found["linux-image-6.1.0-50-amd64-unsigned"][0].sha256 == "c" * 64


def _release(files: dict[str, bytes]) -> Release:
    lines = "".join(f" {hashlib.sha256(d).hexdigest()} {len(d)} main/binary-amd64/{n}\n"
                    for n, d in files.items())
    return Release(f"Suite: bookworm\nCodename: bookworm\nSHA256:\n{lines}")


def _fetcher(served: dict[str, bytes]):  # type: ignore[no-untyped-def]
    def fetch(url: str) -> bytes:
        name = url.rsplit("/", 1)[1]
        if name not in served:
            raise FileNotFoundError(url)
        return served[name]
    return fetch


def test_packages_file_must_have_the_hash_the_signed_release_lists() -> None:
    text = PACKAGES.encode()
    signed = {"Packages.xz": lzma.compress(text), "Packages.gz": gzip.compress(text)}
    release = _release(signed)
    assert fetch_packages("http://m", "bookworm", "main", release, _fetcher(signed)) == PACKAGES
    # .xz missing on the mirror: the listed .gz is used
    only_gz = {"Packages.gz": signed["Packages.gz"]}
    assert fetch_packages("http://m", "bookworm", "main", release, _fetcher(only_gz)) == PACKAGES
    tampered = {"Packages.xz": lzma.compress(text.replace(b"a" * 64, b"d" * 64))}
    with pytest.raises(ChainError, match=r"^http://m/dists/bookworm/main/binary-amd64/"
                       r"Packages\.xz does not match the signed InRelease of bookworm \(SHA256"):
        fetch_packages("http://m", "bookworm", "main", release, _fetcher(tampered))
    truncated = {"Packages.xz": signed["Packages.xz"][:-3]}
    with pytest.raises(ChainError, match="does not match the signed InRelease"):
        fetch_packages("http://m", "bookworm", "main", release, _fetcher(truncated))
    with pytest.raises(InputError, match="lists no main/binary-amd64/Packages"):
        fetch_packages("http://m", "bookworm", "main", _release({}), _fetcher(signed))


def test_gpgv_status_becomes_one_reason() -> None:
    assert _gpgv_reason("[GNUPG:] BADSIG 0E98404D386FA1D9 Debian\n", "k").startswith(
        "BAD signature by key 0E98404D386FA1D9")
    assert _gpgv_reason("[GNUPG:] ERRSIG A 1 8 01 1 9 F\n[GNUPG:] NO_PUBKEY AB12\n"
                        "[GNUPG:] NO_PUBKEY CD34\n", "/k.gpg") == \
        "signed by AB12, CD34, none of which is in /k.gpg"
    assert "expired key (X)" in _gpgv_reason("[GNUPG:] EXPKEYSIG X Someone\n", "k")
    assert "not a valid signed file" in _gpgv_reason("[GNUPG:] NODATA 1\n", "k")


def test_a_missing_keyring_is_named(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match=r"keyring .*/nope\.gpg not found.*`keyring:`"):
        verify_inrelease(b"x", str(tmp_path / "nope.gpg"), "the InRelease of x")
    assert Path(DEBIAN_KEYRING).is_file(), "debian-archive-keyring is not installed"


def test_snapshot_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KMATRIX_SNAPSHOT_URL", raising=False)
    url = snapshot_mirror("20260115T000000Z")
    assert url == "https://snapshot.debian.org/archive/debian/20260115T000000Z"
    assert is_snapshot(url) and is_snapshot(url + "/")
    assert not is_snapshot("http://deb.debian.org/debian")
    monkeypatch.setenv("KMATRIX_SNAPSHOT_URL", "http://127.0.0.1:8000/snap/")
    assert snapshot_mirror("20260115T000000Z") == "http://127.0.0.1:8000/snap/20260115T000000Z"


SNAP_MATRIX = """\
snapshot: 20260115T000000Z
kernels:
  "6.1": {suite: bookworm}
  "6.12": {suite: trixie, snapshot: 20251001T120000Z}
  "6.8": {suite: noble, mirror: "http://archive.ubuntu.com/ubuntu"}
jobs: {k: {over: [kernel], image: kbuild, run: "true"}}
"""


def test_snapshot_pins_in_the_matrix() -> None:
    matrix = load_matrix_text(SNAP_MATRIX)
    assert matrix.snapshot == "20260115T000000Z"
    assert matrix.kernels["6.1"].snapshot == "20260115T000000Z"
    assert matrix.kernels["6.12"].snapshot == "20251001T120000Z"  # its own wins
    assert matrix.kernels["6.8"].snapshot == ""  # another archive: not Debian's snapshot
    # a kernel without a snapshot hashes (matrix.lock) as before; one with it does not
    plain = KernelSource("6.1", "bookworm", ("bookworm",))
    assert plain.declaration_hash() == "1a536ee2cd5bd7ef"
    assert matrix.kernels["6.1"].declaration_hash() != plain.declaration_hash()


@pytest.mark.parametrize(("text", "message"), [
    ('snapshot: "2026-01-15"\n', r"matrix\.yml:1:11: error: snapshot: '2026-01-15' is not valid; "
                                 r"expected a snapshot\.debian\.org timestamp in UTC"),
    ("snapshot: 20261345T000000Z\n", r"matrix\.yml:1:11: error: snapshot: '20261345T000000Z' is "
                                     r"not a real date and time; write a past UTC time as "
                                     r"YYYYMMDDThhmmssZ"),
    ("snapshot: 29990101T000000Z\n", r"matrix\.yml:1:11: error: snapshot: '29990101T000000Z' is "
                                     r"in the future"),
    ("snapshot: 19990101T000000Z\n", r"before snapshot\.debian\.org's first snapshot"),
])
def test_bad_snapshot_is_a_located_error(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        load_matrix_text(text + 'kernels: {"6.1": {suite: bookworm}}\n'
                         'jobs: {k: {over: [kernel], image: kbuild, run: "true"}}\n')
    assert len(caught.value.diagnostics) == 1
    assert re.search(message, str(caught.value)), str(caught.value)


def test_kernel_snapshot_with_a_mirror_is_an_error() -> None:
    with pytest.raises(InputError, match=r"matrix\.yml:1:\d+: error: kernels\.6\.1 has both "
                                         r"`mirror` and `snapshot`"):
        load_matrix_text('kernels: {"6.1": {suite: bookworm, mirror: "http://m/debian", '
                         "snapshot: 20260115T000000Z}}\n"
                         'jobs: {k: {over: [kernel], image: kbuild, run: "true"}}\n')


def test_snapshot_kernel_locks_and_builds_from_the_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KMATRIX_SNAPSHOT_URL", raising=False)
    source = KernelSource("6.1", "bookworm", ("bookworm",), snapshot="20260115T000000Z")
    locked = resolve_kernel(source, [BOOKWORM])
    url = "https://snapshot.debian.org/archive/debian/20260115T000000Z"
    assert locked.mirror == url and locked.snapshot == "20260115T000000Z"
    assert locked.image.url(locked.mirror).startswith(url + "/pool/main/l/linux/")
    write_lock(tmp_path / "matrix.lock", {"6.1": locked})
    assert read_lock(tmp_path / "matrix.lock")["6.1"] == locked
    assert "snapshot" not in resolve_kernel(SIXONE, [BOOKWORM]).to_yaml()  # keys unchanged
    catalog = ImageCatalog(ROOT / "images")
    cmd = mmdebstrap_command(catalog.render("kbuild", locked, ImageBase()), tmp_path / "r.tar",
                             tmp_path / "apt")
    assert cmd[-1] == f"deb {url} bookworm main"
    assert '--aptopt=Acquire::Check-Valid-Until "false"' in cmd
    # the matrix's snapshot also moves images on Debian's default mirror (rust: trixie)
    rust = catalog.render("rust", None, ImageBase(snapshot="20260115T000000Z"))
    assert rust.mirror == url
    assert catalog.render("rust", None, ImageBase()).mirror == "http://deb.debian.org/debian"
    plain = mmdebstrap_command(catalog.render("rust", None, ImageBase()), tmp_path / "r.tar",
                               tmp_path / "apt")
    assert not any("Check-Valid-Until" in part for part in plain)


def test_a_pinned_package_without_sha256_is_a_located_error(tmp_path: Path, capsys) -> None:
    path = tmp_path / "matrix.lock"
    write_lock(path, {"6.1": resolve_kernel(SIXONE, [BOOKWORM])})
    text = path.read_text()
    image_sha = fake_sha("linux-image-6.1.0-50-amd64-unsigned", "6.1.176-1")
    path.write_text(text.replace(image_sha, "''"))
    line = next(n for n, t in enumerate(path.read_text().splitlines(), 1) if "sha256: ''" in t)
    with pytest.raises(InputError) as caught:
        read_lock(path)
    assert str(caught.value) == (
        f"{path}:{line}:15: error: kernels.6.1.image in matrix.lock has no sha256; every pinned "
        "package needs the SHA256 of the signed index; run `pipeline lock --update`")
    assert read_lock(path, strict=False) == {}  # `pipeline lock` resolves it again
    (tmp_path / "matrix.yml").write_text('kernels: {"6.1": {suite: bookworm}}\n'
                                         "jobs: {k: {over: [kernel], image: kbuild, run: y}}\n")
    for args in (["run"], ["lock", "--check"], ["images", "list"]):
        assert main(["--matrix", str(tmp_path / "matrix.yml"), *args]) == 2
        err = capsys.readouterr().err
        assert f"matrix.lock:{line}:15: error: kernels.6.1.image in matrix.lock has no sha256" \
            in err and "Traceback" not in err
    path.write_text(text.replace(image_sha, "")[: text.index("image:")] + "image: {}\n")
    with pytest.raises(InputError, match=r"kernels\.6\.1\.image in matrix\.lock has no sha256"):
        read_lock(path)


def test_the_kernel_download_needs_a_sha256() -> None:
    locked = resolve_kernel(SIXONE, [BOOKWORM])
    unhashed = type(locked)(**{**locked.__dict__, "image": PinnedPackage(
        locked.image.package, locked.image.version, locked.image.filename, "")})
    with pytest.raises(InputError, match=r"matrix\.lock has no SHA256 for linux-image-6\.1\.0-50"):
        kernel_image(unhashed)


def _entries(*packages: tuple[str, str]) -> dict[str, list[PinnedPackage]]:
    return parse_packages(index(*packages))


def test_drift_names_what_the_suite_offers_now() -> None:
    locked = resolve_kernel(SIXONE, [BOOKWORM])
    assert compare(SIXONE, locked, parse_packages(BOOKWORM)) == Drift(
        "6.1", False, "6.1.0-50-amd64 (6.1.176-1) is still offered by bookworm")
    moved = _entries(("linux-headers-6.1.0-51-amd64", "6.1.180-1"),
                     ("linux-image-6.1.0-51-amd64-unsigned", "6.1.180-1"))
    drift = compare(SIXONE, locked, moved)
    assert drift.stale and drift.message == (
        "matrix.lock pins linux-headers-6.1.0-50-amd64 6.1.176-1, but bookworm now offers "
        "6.1.0-51-amd64 (6.1.180-1); run `pipeline lock --update`, or pin a snapshot "
        "(see docs/MATRIX.md)")
    newer = parse_packages(BOOKWORM + "\n" + index(
        ("linux-headers-6.1.0-51-amd64", "6.1.180-1"),
        ("linux-image-6.1.0-51-amd64-unsigned", "6.1.180-1")))
    assert compare(SIXONE, locked, newer).newer == "6.1.0-51-amd64 (6.1.180-1)"
    image_gone = _entries(("linux-headers-6.1.0-50-amd64", "6.1.176-1"))
    assert compare(SIXONE, locked, image_gone).what == (
        "matrix.lock pins linux-image-6.1.0-50-amd64-unsigned 6.1.176-1, but bookworm no "
        "longer offers it")


def test_a_lock_hash_other_than_the_signed_index_fails_closed() -> None:
    locked = resolve_kernel(SIXONE, [BOOKWORM])
    rebuilt = BOOKWORM.replace(fake_sha("linux-headers-6.1.0-50-amd64", "6.1.176-1"), "e" * 64)
    with pytest.raises(ChainError, match=r"matrix\.lock pins linux-headers-6\.1\.0-50-amd64 "
                                         r"6\.1\.176-1 with SHA256 .*signed index of bookworm"):
        compare(SIXONE, locked, parse_packages(rebuilt))


def test_check_before_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    locked = resolve_kernel(SIXONE, [BOOKWORM])
    moved = _entries(("linux-headers-6.1.0-51-amd64", "6.1.180-1"),
                     ("linux-image-6.1.0-51-amd64-unsigned", "6.1.180-1"))
    answers: list[object] = [moved]

    def offered(*_a: object, **_k: object) -> object:
        answer = answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr("pipeline.debian.offered.offered_entries", offered)
    warnings: list[str] = []
    with pytest.raises(InputError, match=r"but bookworm now offers 6\.1\.0-51-amd64"):
        check_offered([(SIXONE, locked)], lambda _k: False, warnings.append)
    answers[0] = AssertionError("fetched the index of a kernel that is all here")
    check_offered([(SIXONE, locked)], lambda _k: True, warnings.append)  # all here: go on
    assert warnings == []
    answers[0] = EnvironmentProblem("cannot download http://m/InRelease: timed out")
    check_offered([(SIXONE, locked)], lambda _k: False, warnings.append)
    assert warnings[-1].startswith("cannot check that bookworm still offers kernel 6.1's "
                                   "packages (cannot download http://m/InRelease: timed out)")
    answers[0] = ChainError("http://m/dists/bookworm/InRelease failed verification: BAD")
    with pytest.raises(ChainError):
        check_offered([(SIXONE, locked)], lambda _k: False, warnings.append)
    pinned = type(locked)(**{**locked.__dict__, "snapshot": "20260115T000000Z"})
    # a snapshot never drifts: not fetched (the ChainError above would be raised)
    check_offered([(SIXONE, pinned)], lambda _k: False, warnings.append)


def test_verified_indexes_are_cached_for_a_while(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMATRIX_CACHE_DIR", str(tmp_path))
    calls: list[str] = []

    def suite_packages(mirror: str, suite: str, *_a: object) -> object:
        calls.append(suite)
        return parse_packages(BOOKWORM)

    monkeypatch.setattr(indexes, "suite_packages", suite_packages)
    first = indexes.kernel_packages("http://m", "bookworm", "main", "")
    assert indexes.kernel_packages("http://m", "bookworm", "main", "") == first
    assert calls == ["bookworm"]
    indexes.kernel_packages("http://m", "bookworm", "main", "", max_age=0)  # `pipeline lock`
    monkeypatch.setenv("KMATRIX_INDEX_TTL", "0")
    indexes.kernel_packages("http://m", "bookworm", "main", "")
    assert calls == ["bookworm"] * 3
    monkeypatch.delenv("KMATRIX_INDEX_TTL")
    for damaged in (tmp_path / "indexes").glob("*.json"):
        damaged.write_text("{not json")
    assert indexes.kernel_packages("http://m", "bookworm", "main", "") == first
    assert len(calls) == 4
