"""The Buildbot "Matrix" dashboard in headless Chromium, on a real master with real builds.

A reduced matrix with one passing and one failing kernel job; both are forced-free: a push
touching kernel/ builds them. The dashboard page (as the Buildbot UI embeds it) must show a
green cell and a red cell with their test counts and build links; a screenshot is saved.
"""

from __future__ import annotations

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
  kmod-broken:
    over: [kernel]
    image: kbuild
    inputs: ["kernel/**"]
    steps:
      - name: fails
        run: echo "this job fails on purpose"; exit 3
"""


@pytest.mark.docker
@pytest.mark.slow
def test_matrix_dashboard_cells_in_chromium(chromium_driver, tmp_path):
    if not docker_available():
        pytest.skip("Docker is not available")
    from selenium.webdriver.common.by import By

    master = MasterHarness(tmp_path / "bb", ROOT, MATRIX)
    try:
        master.start()
        revision, _, _ = master.commit_and_push({"kernel/README.kmatrix-test": "x\n"},
                                                "kernel: touch")
        builds = master.wait_complete(revision, {"kmod-build/6.1", "kmod-broken/6.1"})
        assert builds["kmod-build/6.1"]["results"] == 0
        assert builds["kmod-broken/6.1"]["results"] == 2

        chromium_driver.get(f"{master.url}plugins/wsgi_dashboards/matrix/index.html"
                            f"?branch=main")
        assert chromium_driver.find_element(By.ID, "revision").text == revision
        cells = {c.get_attribute("data-job"): c for c in
                 chromium_driver.find_elements(By.CSS_SELECTOR, "td.cell")}
        assert set(cells) == {"kmod-build/6.1", "kmod-broken/6.1"}
        good, bad = cells["kmod-build/6.1"], cells["kmod-broken/6.1"]
        # Buildbot's results, mapped onto the status model, with the test counts
        assert good.get_attribute("data-result") == "success"
        assert good.get_attribute("data-status") == "passed"
        assert bad.get_attribute("data-result") == "failure"
        assert bad.get_attribute("data-status") == "failed"
        assert "1/1 tests passed" in good.text
        assert "0/1 tests passed" in bad.text and bad.get_attribute("data-failed") == "1"
        green = good.value_of_css_property("background-color")
        red = bad.value_of_css_property("background-color")
        assert green != red
        link = good.find_element(By.TAG_NAME, "a").get_attribute("href")
        assert link.endswith(f"/builds/{builds['kmod-build/6.1']['number']}")
        shot = screenshot(chromium_driver, tmp_path / "matrix-dashboard.png")
        print(f"\nscreenshot: {shot}")

        # the same page inside Buildbot's own UI (#/matrix fetches and embeds index.html)
        chromium_driver.get(f"{master.url}#/matrix")
        chromium_driver.implicitly_wait(15)
        embedded = chromium_driver.find_element(By.CSS_SELECTOR,
                                                'td.cell[data-job="kmod-broken/6.1"]')
        assert embedded.get_attribute("data-status") == "failed"
        shot = screenshot(chromium_driver, tmp_path / "matrix-in-buildbot-ui.png")
        print(f"screenshot: {shot}")
    finally:
        master.stop()
