"""User-defined axes (`axes:`), end to end through the pure parts: expansion with `over`,
include and exclude, job ids, environment, images, needs, validation and the schema, the
--axis filter, the HTML grid, Buildbot tags and forced builds; and what the `arch` axis
changes below the model: matrix.lock entries per architecture, image flavours, the QEMU
machine, the initramfs and the VM's paths to its needs."""

from __future__ import annotations

import hashlib
import json
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.buildbot import selection
from pipeline.buildbot.config import tags_of
from pipeline.debian.images import (
    ImageBase,
    ImageCatalog,
    image_tag,
    mmdebstrap_command,
    rootfs_tag,
)
from pipeline.debian.lock import LockedKernel, read_lock, resolve_kernel, write_lock
from pipeline.errors import InputError
from pipeline.model.expand import Job, expand
from pipeline.model.kernels import KernelSource
from pipeline.model.matrix import load_matrix_text
from pipeline.model.schema import MATRIX_SCHEMA, matrix_schema
from pipeline.model.validator import validate
from pipeline.plan.select import Filters, select
from pipeline.report.view import Cell, matrix
from pipeline.run import initramfs, vm
from pipeline.run.runtimes.vm import vm_path

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
kernels:
  "6.1": {suite: bookworm}
  "6.12": {suite: trixie}
features:
  default: {}
  u: {features: [userspace]}
axes:
  cc:
    gcc: {}
    clang: {env: {LLVM: "1", CC: clang}, images: {kbuild: kbuild-clang}}
  arch: [amd64, arm64]
"""


def load(jobs: str, extra: str = "") -> tuple[object, dict[str, Job]]:
    text = BASE + "jobs:\n" + textwrap.indent(textwrap.dedent(jobs), "  ") \
        + textwrap.dedent(extra)
    m = load_matrix_text(text, "/nonexistent/matrix.yml")
    return m, {j.id: j for j in expand(m)}


def errors(jobs: str, extra: str = "") -> list[str]:
    with pytest.raises(InputError) as info:
        load(jobs, extra)
    return [str(d) for d in info.value.diagnostics]


# -- expansion ------------------------------------------------------------------------------

def test_ids_put_axis_values_in_a_stable_order_whatever_the_order_of_over() -> None:
    _, jobs = load("""\
        b: {over: [cc, kernel], image: kbuild, run: make}
        f: {over: [arch, features, cc], image: rust, run: cargo}
        """)
    # cells come in the order of `over` (cc outermost); ids name the kernel first
    assert list(jobs)[:4] == ["b/6.1/gcc", "b/6.12/gcc", "b/6.1/clang", "b/6.12/clang"]
    # kernel, features, then the user axes as `axes:` declares them (cc before arch)
    assert "f/default/gcc/amd64" in jobs and "f/u/clang/arm64" in jobs
    assert jobs["f/u/clang/arm64"].axes() == {"features": "u", "cc": "clang", "arch": "arm64"}


def test_over_mapping_and_exclude_with_user_axes() -> None:
    _, jobs = load("""\
        b: {over: {kernel: "*", cc: [clang]}, image: kbuild, run: make}
        t: {over: [kernel, arch], image: kbuild, run: make}
        """, """\
        exclude:
          - {job: t, kernel: "6.1", arch: arm64}
          - {arch: amd64}
        """)
    assert sorted(jobs) == ["b/6.1/clang", "b/6.12/clang", "t/6.12/arm64"]


def test_include_extends_cells_with_the_axis_and_adds_cells_without_it() -> None:
    _, jobs = load("""\
        b: {over: [kernel, cc], image: kbuild, run: make}
        p: {over: [kernel], image: kbuild, run: make}
        """, """\
        include:
          - {cc: clang, env: {WARN: "1"}}       # extends every clang cell
          - {job: p, kernel: "6.12", cc: clang}  # p has no cc: a new cell p/6.12/clang
          - {job: p, cc: clang, timeout: 7}      # which later entries see
        """)
    assert jobs["b/6.1/clang"].job_env()["WARN"] == "1"
    assert "WARN" not in jobs["b/6.1/gcc"].job_env()
    assert "p/6.12" in jobs and jobs["p/6.12/clang"].axes() == {"kernel": "6.12", "cc": "clang"}
    assert "WARN" not in jobs["p/6.12/clang"].job_env() and jobs["p/6.12/clang"].timeout == 7


def test_each_value_reaches_the_job_as_a_variable_with_its_settings() -> None:
    _, jobs = load("""\
        b: {over: [kernel, cc], image: kbuild, env: {CC: gcc, LLVM: "0"}, run: make}
        v: {over: [kernel, cc], vm: {command: "true"}}
        """, """\
        include:
          - {job: b, cc: clang, env: {LLVM: "2"}}
        """)
    gcc, clang = jobs["b/6.12/gcc"], jobs["b/6.12/clang"]
    assert gcc.job_env()["AXIS_CC"] == "gcc" and gcc.job_env()["CC"] == "gcc"
    # layering: the job's env, the axis variable, the value's env, then include env
    assert clang.job_env() | {} == {"CC": "clang", "LLVM": "2", "KERNEL": "6.12",
                                    "AXIS_CC": "clang"}
    assert (gcc.spec.image, clang.spec.image) == ("kbuild", "kbuild-clang")
    assert clang.spec.steps == gcc.spec.steps
    assert jobs["v/6.12/clang"].spec.image == ""  # a vm job has no image to replace


def test_arch_picks_the_kernels_lock_entry() -> None:
    m, jobs = load("""\
        b: {over: [kernel, arch], image: kbuild, run: make}
        n: {over: [arch], image: rust, run: cargo}
        """)
    assert jobs["b/6.1/amd64"].kernel_key == "6.1" and jobs["b/6.1/amd64"].arch == "amd64"
    assert jobs["b/6.12/arm64"].kernel_key == "6.12:arm64"
    assert jobs["n/arm64"].kernel_key is None
    keys = [s.key for s in m.kernel_sources(jobs.values())]
    assert keys == ["6.1", "6.1:arm64", "6.12", "6.12:arm64"]


def test_needs_prefer_the_closest_cell_in_user_axes() -> None:
    _, jobs = load("""\
        build: {over: [kernel], image: kbuild, run: make}
        tool: {image: rust, run: cargo}
        test:
          over: [kernel]
          needs: [build, tool]
          vm: {command: "true"}
        report: {image: rust, needs: [build], run: x}
        b2: {over: [kernel, cc], image: kbuild, run: make}
        t2: {over: [kernel], needs: [b2], image: kbuild, run: make}
        """, """\
        include:
          - {job: build, kernel: "6.12", arch: arm64}
          - {job: tool, arch: arm64}
          - {job: test, kernel: "6.12", arch: arm64}
        """)
    assert jobs["test/6.12"].needs == ("build/6.12", "tool")
    assert jobs["test/6.12/arm64"].needs == ("build/6.12/arm64", "tool/arm64")
    # a job without axes gets the plain cells; a cell over [kernel] gets every cc of a
    # job over [kernel, cc] (nothing closer exists)
    assert jobs["report"].needs == ("build/6.1", "build/6.12")
    assert jobs["t2/6.12"].needs == ("b2/6.12/gcc", "b2/6.12/clang")


def test_expanded_jobs_equal_jobs_built_by_the_dataclass() -> None:
    """expand() fills Job instances without the dataclass __init__ (bench (e)): the result
    must be indistinguishable, hash included."""
    _, jobs = load("b: {over: [kernel, cc], image: kbuild, run: make}\n")
    job = jobs["b/6.12/clang"]
    built = Job(id=job.id, spec=job.spec, kernel=job.kernel, features=job.features,
                needs=job.needs, env=dict(job.env), timeout=job.timeout,
                axis_values=dict(job.axis_values))
    assert job == built and repr(job) == repr(built)
    assert vars(job).keys() == vars(built).keys()
    with pytest.raises(AttributeError):
        job.id = "x"  # still frozen


def test_a_matrix_without_axes_expands_as_before() -> None:
    m = load_matrix_text(
        'kernels: {"6.1": {suite: bookworm}}\n'
        "jobs: {k: {over: [kernel], image: x, run: y}, n: {image: x, needs: [k], run: z}}\n")
    jobs = {j.id: j for j in expand(m)}
    assert list(jobs) == ["k/6.1", "n"] and jobs["n"].needs == ("k/6.1",)
    assert jobs["k/6.1"].axes() == {"kernel": "6.1"} and jobs["k/6.1"].axis_values == {}
    assert not any(k.startswith("AXIS_") for k in jobs["k/6.1"].job_env())


def test_the_shipped_matrix_keeps_its_ids_and_adds_the_new_cells() -> None:
    from pipeline.model.matrix import load_matrix

    jobs = {j.id: j for j in expand(load_matrix(ROOT / "matrix.yml"))}
    for kernel in ("5.10", "6.1", "6.12", "7.3"):
        assert jobs[f"kmod-build/{kernel}"].axes() == {"kernel": kernel}
        assert jobs[f"vm-test/{kernel}"].needs == (f"kmod-build/{kernel}", "vexctl-static")
    assert jobs["kmod-build/6.12/clang"].spec.image == "kbuild-clang"
    assert jobs["kmod-build/6.12/clang"].job_env()["LLVM"] == "1"
    assert jobs["vm-test/6.12/arm64"].needs == ("kmod-build/6.12/arm64", "vexctl-static/arm64")
    assert jobs["vm-test/6.12/arm64"].kernel_key == "6.12:arm64"
    assert jobs["vexctl-static/arm64"].spec.image == "rust-arm64"
    assert jobs["kmod-build/6.12/arm64"].spec.image == "kbuild-arm64"


# -- validation and the schema ---------------------------------------------------------------

def test_unknown_axes_and_values_are_located_with_did_you_mean() -> None:
    found = errors("""\
        b: {over: [kernel, ccc], image: kbuild, run: make}
        """)
    assert found == ["/nonexistent/matrix.yml:13:22: error: jobs.b.over[1]: 'ccc' is not "
                     "allowed; expected one of 'kernel', 'features', 'cc', 'arch'; did you "
                     "mean 'cc'?"]
    found = errors("b: {over: {kernel: '*', cc: [clagn]}, image: kbuild, run: make}\n",
                   "include:\n  - {job: b, arch: arm46}\n")
    assert "over.cc names unknown cc value 'clagn'; did you mean 'clang'?" in found[0]
    assert found[1].endswith("include[0]: unknown arch value 'arm46'; did you mean 'arm64'?")


def test_the_schema_documents_axes_and_the_strict_form_knows_the_names() -> None:
    assert "axes" in MATRIX_SCHEMA["properties"]
    over = MATRIX_SCHEMA["properties"]["jobs"]["additionalProperties"]["properties"]["over"]
    assert "enum" not in over["items"]  # for editors: any axis name
    strict = matrix_schema(("cc",))
    job = strict["properties"]["jobs"]["additionalProperties"]
    assert job["properties"]["over"]["items"]["enum"] == ["kernel", "features", "cc"]
    include = strict["properties"]["include"]["items"]
    assert list(include["properties"]) == ["job", "kernel", "features", "cc", "env", "timeout"]
    assert matrix_schema(()) is matrix_schema(())  # cached: one per set of names
    bad = validate({"axes": {"cc": {"clang": {"envv": {}}}}}, MATRIX_SCHEMA)
    assert any("unknown key 'envv' in axes.cc.clang" in str(d) for d in bad)


def test_pipeline_schema_prints_the_axes(capsys) -> None:
    from pipeline.cli import main

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    axis = schema["properties"]["axes"]["additionalProperties"]
    assert axis["additionalProperties"]["properties"].keys() == {"env", "images"}


# -- selection, report, Buildbot ------------------------------------------------------------

def test_axis_filter_selects_cells_and_rejects_unknown_ones() -> None:
    m, jobs = load("""\
        b: {over: [kernel, cc], image: kbuild, run: make}
        t: {over: [kernel], needs: [b], image: kbuild, run: make}
        """)
    sel = select(m, list(jobs.values()), Filters(axes=("cc=clang",)))
    assert sel.chosen == {"b/6.1/clang", "b/6.12/clang"}
    sel = select(m, list(jobs.values()), Filters(axes=("cc=clang", "cc=gcc"), kernels=("6.1",)))
    assert sel.chosen == {"b/6.1/clang", "b/6.1/gcc"}
    for bad, message in (("cc=clagn", "did you mean 'clang'"), ("cx", "not NAME=VALUE"),
                         ("kernel=6.1", "use --kernel"), ("arhc=arm64", "did you mean 'arch'")):
        with pytest.raises(InputError) as info:
            select(m, list(jobs.values()), Filters(axes=(bad,)))
        assert message in str(info.value) + (info.value.hint or "")
    with pytest.raises(InputError, match="no job matches the filters"):
        select(m, list(jobs.values()), Filters(axes=("arch=arm64",)))


def _cell(job_id: str, **axes: str) -> Cell:
    return Cell(id=job_id, name=job_id.split("/")[0], axes=axes, status="passed")


def test_html_rows_are_the_kernel_crossed_with_the_user_axes() -> None:
    cells = [_cell("kmod-build/6.12", kernel="6.12"), _cell("vm-test/6.12", kernel="6.12"),
             _cell("kmod-build/6.1", kernel="6.1"),
             _cell("kmod-build/6.12/clang", kernel="6.12", cc="clang"),
             _cell("kmod-build/6.12/arm64", kernel="6.12", arch="arm64"),
             _cell("vm-test/6.12/arm64", kernel="6.12", arch="arm64"),
             _cell("crate/default/clang", features="default", cc="clang"),
             _cell("vexctl/arm64", arch="arm64")]
    view = matrix(cells)
    kernels = view.grids[0]
    assert kernels.columns == ["kmod-build", "vm-test"]
    assert [(row, [c.id if c else None for c in row_cells]) for row, row_cells in kernels.rows] \
        == [("6.1", ["kmod-build/6.1", None]),
            ("6.12", ["kmod-build/6.12", "vm-test/6.12"]),
            ("6.12 \u00b7 clang", ["kmod-build/6.12/clang", None]),
            ("6.12 \u00b7 arm64", ["kmod-build/6.12/arm64", "vm-test/6.12/arm64"])]
    assert kernels.label == "kernel \u00b7 cc \u00b7 arch"
    assert view.grids[1].rows[0][0] == "default \u00b7 clang"
    assert [c.id for c in view.others] == ["vexctl/arm64"]


def test_buildbot_tags_and_forced_builds_cover_every_axis() -> None:
    _, jobs = load("""\
        b: {over: [kernel, cc, arch], image: kbuild, run: make}
        t: {over: [kernel], needs: [b], image: kbuild, run: make}
        """)
    assert tags_of(jobs["b/6.12/clang/arm64"]) == ["b", "k:6.12", "cc:clang", "arch:arm64"]
    chosen = selection.builders_for_force(list(jobs.values()), kernel="6.12",
                                          axes={"cc": "clang", "arch": selection.ALL})
    assert chosen == ["b/6.12/clang/amd64", "b/6.12/clang/arm64"]


# -- the arch axis below the model: lock, images, QEMU ---------------------------------------

def _sha(name: str, version: str) -> str:
    return hashlib.sha256(f"{name}={version}".encode()).hexdigest()


def _index(arch: str, *packages: tuple[str, str]) -> str:
    return "\n".join(f"Package: {n}\nArchitecture: {arch}\nVersion: {v}\n"
                     f"Filename: pool/main/x/{n}_{v}_{arch}.deb\nSHA256: {_sha(n, v)}\n"
                     for n, v in packages)


TRIXIE_ARM64 = _index("arm64", ("linux-headers-6.12.117+deb13-arm64", "6.12.117-1"),
                      ("linux-image-6.12.117+deb13-arm64-unsigned", "6.12.117-1"),
                      ("linux-headers-6.12.117+deb13-cloud-arm64", "6.12.117-1"),
                      ("linux-headers-6.12.117+deb13-amd64", "6.12.117-1"),
                      ("busybox-static", "1:1.37.0-6+b8"), ("busybox-static", "1:1.37.0-6+b9"))


def test_an_arm64_kernel_is_locked_beside_the_amd64_one(tmp_path: Path) -> None:
    amd64 = KernelSource("6.12", "trixie", ("trixie",))
    arm64 = replace(amd64, arch="arm64")
    assert amd64.declaration_hash() == "78e239bf5cf3bac7"  # unchanged by the arch field
    assert arm64.declaration_hash() != amd64.declaration_hash() and arm64.key == "6.12:arm64"
    locked = resolve_kernel(arm64, [TRIXIE_ARM64])
    assert (locked.abi, locked.arch, locked.key) == ("6.12.117+deb13-arm64", "arm64",
                                                      "6.12:arm64")
    assert locked.image.package == "linux-image-6.12.117+deb13-arm64-unsigned"
    assert locked.busybox is not None and locked.busybox.version == "1:1.37.0-6+b9"
    assert locked.busybox in locked.packages()
    path = tmp_path / "matrix.lock"
    write_lock(path, {locked.key: locked})
    assert read_lock(path) == {"6.12:arm64": locked}
    assert "arch" not in LockedKernel.to_yaml(replace(locked, arch="amd64", busybox=None))
    with pytest.raises(InputError, match="no busybox-static for arm64"):
        resolve_kernel(arm64, [_index("arm64", *[(n, v) for n, v in (
            ("linux-headers-6.12.117+deb13-arm64", "6.12.117-1"),
            ("linux-image-6.12.117+deb13-arm64-unsigned", "6.12.117-1"))])])


def _arm64_kernel() -> LockedKernel:
    return resolve_kernel(KernelSource("6.12", "trixie", ("trixie",), arch="arm64"),
                          [TRIXIE_ARM64])


def test_arm64_flavours_cross_build_in_amd64_images(tmp_path: Path) -> None:
    catalog, base = ImageCatalog(ROOT / "images"), ImageBase()
    kernel = _arm64_kernel()
    flavour = catalog.render("kbuild-arm64", kernel, base)
    assert flavour.architectures == ("arm64",)
    assert flavour.extract == ("linux-headers-6.12.117+deb13-arm64:arm64=6.12.117-1",)
    assert "linux-headers-6.12.117+deb13-common=6.12.117-1" in flavour.packages
    assert "linux-kbuild-6.12.117+deb13=6.12.117-1" in flavour.packages
    bookworm = replace(kernel, version="6.1", abi="6.1.0-50-arm64")
    assert "linux-kbuild-6.1=6.12.117-1" in catalog.render("kbuild-arm64", bookworm,
                                                           base).packages
    cmd = mmdebstrap_command(flavour, tmp_path / "r.tar", tmp_path / "apt")
    assert "--architectures=amd64,arm64" in cmd
    hook = next(c for c in cmd if "apt-get download" in c)
    assert "linux-headers-6.12.117+deb13-arm64:arm64=6.12.117-1" in hook
    tag = image_tag(flavour, catalog.dockerfile(flavour, base, rootfs_tag(flavour)), kernel)
    assert tag.startswith("kmatrix/kbuild-arm64-6.12-arm64:")
    registry = catalog.dockerfile(flavour, ImageBase(mode="registry"), "unused")
    assert "dpkg --add-architecture arm64 && apt-get update" in registry
    assert "apt-get download linux-headers-6.12.117+deb13-arm64:arm64" in registry


def test_flavours_without_the_new_keys_keep_their_tags() -> None:
    catalog, base = ImageCatalog(ROOT / "images"), ImageBase()
    rust = catalog.render("rust", None, base)
    assert rust.architectures == () and rust.extract == ()
    assert "architectures" not in rust.hashed() and "extract" not in rust.rootfs_recipe()
    registry = catalog.dockerfile(rust, ImageBase(mode="registry"), "unused")
    assert "RUN apt-get update \\\n && apt-get install" in registry
    assert "download" not in registry


def test_qemu_machine_follows_the_kernels_architecture(tmp_path: Path) -> None:
    spec = vm.VmSpec(kernel=tmp_path / "Image", arch="arm64")
    cmd = vm.qemu_command(spec, tmp_path / "i.cpio.gz", "tcg")
    assert cmd[0] == "qemu-system-aarch64"
    assert cmd[cmd.index("-machine") + 1] == "virt"
    assert cmd[cmd.index("-cpu") + 1] == "max,pauth-impdef=on"
    assert "console=ttyAMA0" in cmd[cmd.index("-append") + 1]
    with pytest.raises(ValueError, match="arm64: tcg"):
        vm.qemu_command(spec, tmp_path / "i.cpio.gz", "kvm")
    amd64 = vm.qemu_command(vm.VmSpec(kernel=tmp_path / "bz"), tmp_path / "i", "tcg")
    assert amd64[0] == "qemu-system-x86_64" and "console=ttyS0" in amd64[amd64.index("-append")
                                                                         + 1]
    identity = vm.runtime_identity()
    assert identity["append"] == vm.BASE_APPEND and "qemu-arm64" in identity


def _foreign_busybox(path: Path) -> Path:
    """A static ELF header that says AArch64 (e_machine 183): it cannot run here."""
    header = bytearray(64)
    header[:4], header[4], header[5] = b"\x7fELF", 2, 1
    header[18:20] = (183).to_bytes(2, "little")
    path.write_bytes(bytes(header))
    return path


def test_a_foreign_busybox_gets_sh_and_links_the_rest_at_boot(tmp_path: Path) -> None:
    busybox = _foreign_busybox(tmp_path / "busybox")
    spec = vm.VmSpec(kernel=tmp_path / "Image", arch="arm64", busybox=busybox, command="x")
    entries = initramfs.initramfs_entries(spec, busybox)
    links = sorted(k for k, (mode, _) in entries.items() if mode == 0o120777)
    assert links == ["bin/sh"] and entries["bin/busybox"][1] == busybox.read_bytes()
    assert "/bin/busybox --install -s" in entries["init"][1].decode()


def test_vm_paths_find_a_need_whose_id_has_more_axis_values() -> None:
    env = {"NEEDS": "/n", "KERNEL": "6.12"}
    needs = ["kmod-build/6.12/arm64", "vexctl-static/arm64"]
    assert vm_path("$NEEDS/kmod-build/$KERNEL/vexfs.ko", env, needs) == \
        Path("/n/kmod-build/6.12/arm64/artifacts/vexfs.ko")
    assert vm_path("$NEEDS/vexctl-static/vexctl", env, needs) == \
        Path("/n/vexctl-static/arm64/artifacts/vexctl")
    assert vm_path("$NEEDS/kmod-build/6.12/vexfs.ko", env, ["kmod-build/6.12"]) == \
        Path("/n/kmod-build/6.12/artifacts/vexfs.ko")
    ambiguous = ["kmod-build/6.12/gcc", "kmod-build/6.12/clang"]
    assert vm_path("$NEEDS/kmod-build/6.12/vexfs.ko", env, ambiguous) == \
        Path("/n/kmod-build/6.12/vexfs.ko")  # not found: the job's missing-input error


def test_the_worked_examples_in_the_docs_expand_as_they_say() -> None:
    import re

    text = (ROOT / "docs" / "MATRIX.md").read_text()
    section = text[text.index("\n## axes\n"):text.index("\n## jobs\n")]
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", section, re.S) if "\njobs:" in b]
    assert len(blocks) == 2
    kernels = 'kernels:\n  "6.1": {suite: bookworm}\n  "6.12": {suite: trixie}\n'
    loaded = [load_matrix_text(kernels + b, str(ROOT / "matrix.yml")) for b in blocks]
    assert not any(m.warnings for m in loaded)
    clang, arm64 = ({j.id: j for j in expand(m)} for m in loaded)
    assert sorted(clang) == ["kmod-build/6.1/gcc", "kmod-build/6.12/clang",
                             "kmod-build/6.12/gcc"]
    assert clang["kmod-build/6.12/clang"].spec.image == "kbuild-clang"
    assert arm64["vm-test/6.12/arm64"].needs == ("kmod-build/6.12/arm64",
                                                  "vexctl-static/arm64")
    assert arm64["vm-test/6.12"].needs == ("kmod-build/6.12", "vexctl-static")
    assert arm64["vexctl-static/arm64"].spec.image == "rust-arm64"
