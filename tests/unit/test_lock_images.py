"""Kernel lock resolution from package indexes, and image tags (pure parts)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline.debian.images import (
    ImageBase,
    ImageCatalog,
    image_tag,
    mmdebstrap_command,
    rootfs_tag,
)
from pipeline.debian.lock import check_lock, read_lock, resolve_kernel, write_lock
from pipeline.errors import InputError
from pipeline.model.kernels import KernelSource

ROOT = Path(__file__).resolve().parents[2]


def fake_sha(name: str, version: str) -> str:
    return hashlib.sha256(f"{name}={version}".encode()).hexdigest()


def index(*packages: tuple[str, str]) -> str:
    """A Packages file (every entry with the pool path and SHA256 a real index has)."""
    return "\n".join(f"Package: {n}\nArchitecture: amd64\nVersion: {v}\n"
                     f"Filename: pool/main/l/linux/{n}_{v}_amd64.deb\nSHA256: {fake_sha(n, v)}\n"
                     for n, v in packages)


BOOKWORM = index(
    ("linux-headers-6.1.0-47-amd64", "6.1.170-3"), ("linux-image-6.1.0-47-amd64-unsigned",
                                                     "6.1.170-3"),
    ("linux-headers-6.1.0-50-amd64", "6.1.176-1"), ("linux-image-6.1.0-50-amd64-unsigned",
                                                     "6.1.176-1"),
    ("linux-headers-6.1.0-50-rt-amd64", "6.1.176-1"),
    ("linux-headers-6.12.9+deb12-amd64", "6.12.9-1"),
    ("linux-image-6.12.9+deb12-amd64-unsigned", "6.12.9-1"),
)


def test_newest_abi_with_both_packages_wins_and_61_never_matches_612() -> None:
    locked = resolve_kernel(KernelSource("6.1", "bookworm", ("bookworm",)), [BOOKWORM])
    assert locked.abi == "6.1.0-50-amd64"
    assert locked.headers.package == "linux-headers-6.1.0-50-amd64"
    assert locked.image.version == "6.1.176-1"


def test_signed_image_is_the_fallback_and_backports_naming() -> None:
    text = index(("linux-headers-7.3.4+deb13-amd64", "7.3.4-1~bpo13+1"),
                 ("linux-image-7.3.4+deb13-amd64", "7.3.4-1~bpo13+1"))
    locked = resolve_kernel(KernelSource("7.3", "trixie-backports", ("trixie",
                                                                     "trixie-backports")),
                            [text])
    assert locked.image.package == "linux-image-7.3.4+deb13-amd64"


def test_ubuntu_style_patterns() -> None:
    text = index(("linux-headers-6.8.0-45-generic", "6.8.0-45.45"),
                 ("linux-image-unsigned-6.8.0-45-generic", "6.8.0-45.45"),
                 ("linux-headers-6.8.0-40-generic", "6.8.0-40.40"),
                 ("linux-image-unsigned-6.8.0-40-generic", "6.8.0-40.40"))
    source = KernelSource("6.8", "noble", ("noble",), mirror="http://archive.ubuntu.com/ubuntu",
                          abi=r"{version}\.0-[0-9]+-generic",
                          image="linux-image-unsigned-{abi}")
    assert resolve_kernel(source, [text]).abi == "6.8.0-45-generic"


def test_no_match_explains_what_was_searched() -> None:
    with pytest.raises(InputError, match=r"kernel 6\.8: no package pair"):
        resolve_kernel(KernelSource("6.8", "bookworm", ("bookworm",)), [BOOKWORM])


def test_lock_round_trip_and_staleness(tmp_path: Path) -> None:
    source = KernelSource("6.1", "bookworm", ("bookworm",))
    locked = resolve_kernel(source, [BOOKWORM])
    path = tmp_path / "matrix.lock"
    write_lock(path, {"6.1": locked})
    assert read_lock(path) == {"6.1": locked}
    assert check_lock([source], read_lock(path), path)["6.1"] == locked
    changed = KernelSource("6.1", "bookworm", ("bookworm", "bookworm-backports"))
    with pytest.raises(InputError, match=r"changed in matrix\.yml.*run `pipeline lock`"):
        check_lock([changed], read_lock(path), path)
    with pytest.raises(InputError, match=r"kernel 6\.12 is not in matrix\.lock"):
        check_lock([KernelSource("6.12", "trixie", ("trixie",))], {}, path)


def test_image_tags_follow_content(tmp_path: Path) -> None:
    locked = resolve_kernel(KernelSource("6.1", "bookworm", ("bookworm",)), [BOOKWORM])
    images = tmp_path / "images"
    images.mkdir()
    for name in ("flavours.yml", "Dockerfile.j2"):
        (images / name).write_text((ROOT / "pipeline" / "images" / name).read_text())
    base = ImageBase()
    catalog = ImageCatalog(images)
    flavour = catalog.render("kbuild", locked, base)
    assert "linux-headers-6.1.0-50-amd64=6.1.176-1" in flavour.packages
    assert flavour.env["KDIR"] == "/usr/src/linux-headers-6.1.0-50-amd64"
    dockerfile = catalog.dockerfile(flavour, base, rootfs_tag(flavour))
    tag = image_tag(flavour, dockerfile, locked)
    assert tag.startswith("kmatrix/kbuild-6.1:")
    assert tag == image_tag(flavour, catalog.dockerfile(flavour, base, rootfs_tag(flavour)),
                            locked)
    # an edited template gives a new tag; the registry base renders FROM debian:<suite>
    (images / "Dockerfile.j2").write_text((images / "Dockerfile.j2").read_text() + "\n# x\n")
    edited = ImageCatalog(images)
    assert image_tag(flavour, edited.dockerfile(flavour, base, rootfs_tag(flavour)),
                     locked) != tag
    registry = edited.dockerfile(flavour, ImageBase(mode="registry"), "unused")
    assert registry.startswith("FROM debian:bookworm")
    assert "apt-get install -y --no-install-recommends gcc make" in registry


def test_image_namespace_is_a_separate_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    """KMATRIX_IMAGE_NAMESPACE renames every image (bench (i) builds a fresh machine's
    images there); a name Docker would refuse is an InputError before any build."""
    locked = resolve_kernel(KernelSource("6.1", "bookworm", ("bookworm",)), [BOOKWORM])
    base = ImageBase()
    catalog = ImageCatalog(ROOT / "pipeline" / "images")
    flavour = catalog.render("kbuild", locked, base)
    usual = image_tag(flavour, catalog.dockerfile(flavour, base, rootfs_tag(flavour)), locked)
    monkeypatch.setenv("KMATRIX_IMAGE_NAMESPACE", "kmatrix-bench-i")
    assert rootfs_tag(flavour).startswith("kmatrix-bench-i/rootfs:")
    dockerfile = catalog.dockerfile(flavour, base, rootfs_tag(flavour))
    assert "FROM kmatrix-bench-i/rootfs:" in dockerfile
    tag = image_tag(flavour, dockerfile, locked)
    assert tag.startswith("kmatrix-bench-i/kbuild-6.1:")
    assert tag.split(":")[1] != usual.split(":")[1]
    monkeypatch.setenv("KMATRIX_IMAGE_NAMESPACE", "Bad/Name")
    with pytest.raises(InputError, match="KMATRIX_IMAGE_NAMESPACE='Bad/Name' is not"):
        rootfs_tag(flavour)


def test_mmdebstrap_command_shares_the_apt_cache(tmp_path: Path) -> None:
    catalog = ImageCatalog(ROOT / "pipeline" / "images")
    flavour = catalog.render("rust", None, ImageBase())
    cmd = mmdebstrap_command(flavour, tmp_path / "r.tar", tmp_path / "apt")
    assert cmd[0] == "mmdebstrap" and "--variant=apt" in cmd
    assert any(c.startswith("--setup-hook=cp -R") and str(tmp_path / "apt") in c
               for c in cmd)
    assert cmd[-1] == "deb http://deb.debian.org/debian trixie main"


TRIXIE_BPO = index(("linux-source-7.3", "7.3.2-1~bpo13+1"), ("linux-source-7.3", "7.3.4-1~bpo13+1"),
                   ("linux-source-7.2", "7.2.12-1~bpo13+1"),
                   ("linux-headers-7.3.4+deb13-amd64", "7.3.4-1~bpo13+1"))
RUST_SOURCE = KernelSource("7.3-rust", "trixie-backports", ("trixie", "trixie-backports"),
                           source="linux-source-7.3")


def test_source_kernel_pins_the_newest_source_package_and_its_upstream_abi() -> None:
    locked = resolve_kernel(RUST_SOURCE, [TRIXIE_BPO])
    assert locked.from_source and locked.abi == "7.3.4"
    assert locked.source is not None and locked.source.package == "linux-source-7.3"
    assert locked.source.version == "7.3.4-1~bpo13+1"
    # headers and image are the source package too: both come out of it
    assert locked.headers == locked.image == locked.source
    with pytest.raises(InputError, match=r"kernel 7\.3-rust: no package 'linux-source-7\.9'"):
        resolve_kernel(KernelSource("7.3-rust", "trixie", ("trixie",), source="linux-source-7.9"),
                       [TRIXIE_BPO])


def test_source_field_leaves_packaged_kernels_hash_and_lock_entry_alone(tmp_path: Path) -> None:
    # the declaration hash of a kernel without `source` is what it was before the field
    assert KernelSource("6.1", "bookworm", ("bookworm",)).declaration_hash() == "1a536ee2cd5bd7ef"
    packaged = resolve_kernel(KernelSource("6.1", "bookworm", ("bookworm",)), [BOOKWORM])
    assert not packaged.from_source and "source" not in packaged.to_yaml()
    path = tmp_path / "matrix.lock"
    write_lock(path, {"6.1": packaged, "7.3-rust": resolve_kernel(RUST_SOURCE, [TRIXIE_BPO])})
    assert "source:" in path.read_text()
    back = read_lock(path)
    assert back["6.1"] == packaged and back["7.3-rust"].from_source
    assert check_lock([RUST_SOURCE], back, path)["7.3-rust"].abi == "7.3.4"


def test_kbuild_rust_renders_the_kernel_config_into_its_dockerfile(tmp_path: Path) -> None:
    locked = resolve_kernel(RUST_SOURCE, [TRIXIE_BPO])
    base = ImageBase()
    catalog = ImageCatalog(ROOT / "pipeline" / "images")
    flavour = catalog.render("kbuild-rust", locked, base)
    assert "linux-source-7.3=7.3.4-1~bpo13+1" in flavour.packages
    assert {"rustc", "rust-src", "bindgen", "clang", "lld"} <= set(flavour.packages)
    assert flavour.env["KDIR"] == "/usr/src/linux-7.3.4" and flavour.env["LLVM"] == "1"
    dockerfile = catalog.dockerfile(flavour, base, rootfs_tag(flavour))
    assert "'CONFIG_RUST=y' \\" in dockerfile and "make rustavailable" in dockerfile
    assert dockerfile.index("make rustavailable") < dockerfile.index("USER 1000:1000")
    tag = image_tag(flavour, dockerfile, locked)
    assert tag.startswith("kmatrix/kbuild-rust-7.3-rust:")
    # the fragment is part of the content hash
    images = tmp_path / "images"  # a project's own copy of the fragment wins
    (images / "kconfig").mkdir(parents=True)
    builtin = ROOT / "pipeline" / "images" / "kconfig" / "qemu-rust.config"
    fragment = images / "kconfig" / "qemu-rust.config"
    fragment.write_text(builtin.read_text() + "CONFIG_PRINTK_TIME=y\n")
    edited = ImageCatalog(images)
    assert image_tag(flavour, edited.dockerfile(flavour, base, rootfs_tag(flavour)),
                     locked) != tag
    # flavours that do not build a kernel render no kernel build
    kbuild = catalog.render("kbuild", resolve_kernel(KernelSource("6.1", "bookworm",
                                                                  ("bookworm",)), [BOOKWORM]), base)
    assert "rustavailable" not in catalog.dockerfile(kbuild, base, rootfs_tag(kbuild))
