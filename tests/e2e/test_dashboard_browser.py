"""The Buildbot "Matrix" page in headless Chromium, on a real master and worker with real
builds: a sequence of pushes and a forced build, after each the branch's JSON state checked
cell by cell and the page checked in the DOM (and screenshotted).

The reduced matrix: kmod-build (the VexFS C module), kmod-check (needs kmod-build's .ko:
it stands in for the VM test) and crate-check (userspace only).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("buildbot", reason="pip install -e '.[buildbot]'")
pytest.importorskip("flask", reason="pip install -e '.[buildbot]'")

from tests.buildbot_harness import MasterHarness
from tests.conftest import ROOT, docker_available
from tests.e2e.conftest import screenshot

MATRIX = """\
version: 1
defaults: {timeout: 600, image-base: mmdebstrap}
kernels:
  "6.1": {suite: bookworm}
features:
  default: {}
jobs:
  kmod-build:
    over: [kernel]
    image: kbuild
    inputs: ["kernel/**"]
    steps:
      - name: build
        results: build
        run: |
          cp -a "$SRC/kernel/." "$WORK/kernel"
          make -C "$WORK/kernel" KDIR="$KDIR"
          cp "$WORK"/kernel/*.ko "$OUT/"
  kmod-check:
    over: [kernel]
    image: kbuild
    needs: [kmod-build]
    inputs: ["kernel/**"]
    steps:
      - name: modinfo
        run: modinfo "$NEEDS/kmod-build/$KERNEL"/*.ko
  crate-check:
    over: [features]
    image: rust
    inputs: ["userspace/**"]
    steps:
      - name: manifest
        run: grep -q '^name' "$SRC/userspace/Cargo.toml"
"""
BUILD, CHECK, CRATE = "kmod-build/6.1", "kmod-check/6.1", "crate-check/default"
BREAK = "\n#error broken on purpose by the dashboard test\n"
PAGE = "plugins/wsgi_dashboards/matrix/"
README_SHOT = "branch-matrix"  # the page after the broken push: docs/images/branch-matrix.png


def _state(master: MasterHarness) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    state = json.loads(master.get(f"{PAGE}api/branch/main"))
    return state, {c["job"]: c for c in state["cells"]}


def _push(master: MasterHarness, files: dict[str, str], message: str,
          names: set[str]) -> str:
    revision, _, _ = master.commit_and_push(files, message)
    master.wait_complete(revision, names)
    return revision


def _set_file(master: MasterHarness, name: str, text: str, message: str,
              names: set[str]) -> str:
    (master.project / name).write_text(text)
    return _push(master, {}, message, names)


def _not_blank(png: Path) -> bool:
    """Decode the PNG's pixel data (no imaging library): a blank page has a handful of
    distinct bytes, a drawn matrix hundreds of colours."""
    data, pos, idat = png.read_bytes(), 8, b""
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + size]
        pos += size + 12
    pixels = zlib.decompress(idat)
    return len(set(pixels[i:i + 3] for i in range(0, min(len(pixels), 3_000_000), 3))) > 50


def _page(driver: Any, master: MasterHarness, tmp: Path, name: str) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    driver.get(f"{master.url}{PAGE}index.html?branch=main")
    cells = {c.get_attribute("data-job"): c
             for c in driver.find_elements(By.CSS_SELECTOR, "td.cell")}
    shot = screenshot(driver, tmp / f"{name}.png")
    assert _not_blank(shot), f"{shot} is blank"
    keep = os.environ.get("KMATRIX_SCREENSHOT_DIR")
    if keep and name == README_SHOT:
        shutil.copy(shot, Path(keep) / f"{name}.png")
    return cells


@pytest.mark.docker
@pytest.mark.slow
def test_dashboard_branch_matrix(chromium_driver, tmp_path) -> None:
    if not docker_available():
        pytest.skip("Docker is not available")
    from selenium.webdriver.common.by import By

    master = MasterHarness(tmp_path / "bb", ROOT, MATRIX)
    try:
        master.start()
        source = (master.project / "kernel/vexfs_main.c").read_text()
        # 1. everything builds and passes
        first = _push(master, {"kernel/README.kmatrix-test": "x\n", "userspace/NOTES": "x\n"},
                      "kernel, userspace: first", {BUILD, CHECK, CRATE})
        state, cells = _state(master)
        assert state["head"] == first and state["status"] == "passed"
        assert {j: (c["status"], c["commit"]) for j, c in cells.items()} == {
            BUILD: ("passed", first), CHECK: ("passed", first), CRATE: ("passed", first)}

        # 2. a userspace-only change: the kernel cells are carried from `first`
        second = _push(master, {"userspace/NOTES": "y\n"}, "userspace: notes", {CRATE})
        state, cells = _state(master)
        assert state["head"] == second
        assert (cells[BUILD]["commit"], cells[BUILD]["carried"]) == (first, True)
        assert (cells[CHECK]["commit"], cells[CHECK]["carried"]) == (first, True)
        assert (cells[CRATE]["commit"], cells[CRATE]["carried"]) == (second, False)
        page = _page(chromium_driver, master, tmp_path, "carried")
        assert page[BUILD].get_attribute("data-carried") == "true"
        assert f"carried from {first[:10]}" in page[BUILD].text
        assert page[CRATE].get_attribute("data-carried") is None

        # 3. a broken kernel change: kmod-build red, kmod-check skipped with its cause
        broken = _set_file(master, "kernel/vexfs_main.c", source + BREAK, "kernel: break it",
                           {BUILD, CHECK})
        state, cells = _state(master)
        assert state["status"] == "failed"
        assert (cells[BUILD]["status"], cells[BUILD]["commit"]) == ("failed", broken)
        assert cells[BUILD]["broken_since"].startswith(broken[:10])
        assert cells[BUILD]["broken_since"].endswith("kernel: break it")
        assert [h["status"] for h in cells[BUILD]["history"]] == ["failed", "passed"]
        # the compiler's path inside the container, mapped back to the repository
        assert cells[BUILD]["failing"][0]["message"].startswith("kernel/vexfs_main.c:")
        assert cells[CHECK]["status"] == "skipped"
        assert cells[CHECK]["message"] == f"skipped: needs failed: {BUILD}"
        assert (cells[CRATE]["commit"], cells[CRATE]["carried"]) == (second, True)
        page = _page(chromium_driver, master, tmp_path, README_SHOT)
        assert page[BUILD].get_attribute("data-status") == "failed"
        assert f"broken since {broken[:10]}: kernel: break it" in page[BUILD].text
        cause = page[CHECK].find_element(By.PARTIAL_LINK_TEXT, f"cause: {BUILD}")
        assert cause.get_attribute("href").endswith(f"#{page[BUILD].get_attribute('id')}")
        for name in ("log.txt", "reproduce.sh", "junit.xml"):  # the uploaded files
            href = page[BUILD].find_element(By.LINK_TEXT, name).get_attribute("href")
            assert href.endswith(f"/results/{broken}/{BUILD}/{name}")
        assert "#error broken on purpose" in master.get(
            f"{PAGE}results/{broken}/{BUILD}/log.txt")
        grey, red = (page[c].value_of_css_property("background-color") for c in (CHECK, BUILD))
        assert grey != red

        # 4. the fix: green again, the history shows the red build in between
        fixed = _set_file(master, "kernel/vexfs_main.c", source + "/* fixed */\n",
                          "kernel: fix it", {BUILD, CHECK})
        state, cells = _state(master)
        assert state["status"] == "passed" and cells[BUILD]["commit"] == fixed
        assert [h["status"] for h in cells[BUILD]["history"]] == ["passed", "failed", "passed"]
        assert cells[BUILD]["broken_since"] is None

        # 5. a forced build (empty revision): pinned to the head, shown as forced
        builders = master.builders()
        reply = master.rpc("forceschedulers/kmatrix-force", "force",
                           builderid=builders[CRATE]["builderid"], kernel="all",
                           features="default", job="crate-check", reason="re-run",
                           username="test <test@example.com>", branch="main", revision="",
                           repository="", project="")
        assert "error" not in reply, reply
        master.wait_complete(fixed, {CRATE})
        state, cells = _state(master)
        assert (cells[CRATE]["commit"], cells[CRATE]["carried"]) == (fixed, False)
        page = _page(chromium_driver, master, tmp_path, "forced")
        strip = chromium_driver.find_element(
            By.CSS_SELECTOR, f'#recent li.commit[data-revision="{fixed}"]')
        assert "forced" in strip.text and "kernel: fix it" in strip.text

        # the same page inside Buildbot's own UI (#/matrix shows index.html in a frame)
        chromium_driver.get(f"{master.url}#/matrix")
        chromium_driver.implicitly_wait(15)
        chromium_driver.switch_to.frame(
            chromium_driver.find_element(By.CSS_SELECTOR, "iframe.kmatrix-frame"))
        embedded = chromium_driver.find_element(By.CSS_SELECTOR, f'td.cell[data-job="{BUILD}"]')
        assert embedded.get_attribute("data-status") == "passed", (
            chromium_driver.page_source[-20000:])
    finally:
        master.stop()
