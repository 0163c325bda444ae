"""A bench job on a real Buildbot master: the `bench` step compares each build's bench.json
with the builder's newest earlier successful build (pipeline/buildbot/bench.py).

A throwaway master + local worker (tests/buildbot_harness.py) on a one-job matrix: a
container job with `bench: {threshold: 25%}` whose step prints the repository's
bench.txt. Each push rewrites bench.txt: 100 (no baseline), 105 (ok), 200 (regressed:
the build fails); then a forced build of that revision restores 200 from the master's
store and fails again (still compared with 105: a failed build is never a baseline).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("buildbot", reason="pip install -e '.[buildbot]'")
pytest.importorskip("buildbot_worker", reason="pip install -e '.[buildbot]'")

from tests.buildbot_harness import MasterHarness
from tests.conftest import ROOT, docker_available

pytestmark = [pytest.mark.docker, pytest.mark.slow,
              pytest.mark.skipif(not docker_available(), reason="Docker Engine not reachable")]

JOB = "bench-job/6.1"
MATRIX = """\
version: 1
defaults: {timeout: 300, image-base: mmdebstrap}
kernels:
  "6.1": {suite: bookworm}
jobs:
  bench-job:
    over: [kernel]
    image: kbuild
    inputs: ["bench.txt"]
    bench: {threshold: 25%}
    steps:
      - name: measure
        run: cat "$SRC/bench.txt"
"""
SUCCESS, FAILURE = 0, 2


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Any:
    harness = MasterHarness(tmp_path_factory.mktemp("bbbench"), ROOT, MATRIX)
    try:
        harness.start()
        yield harness
    finally:
        harness.stop()


def _push(master: MasterHarness, value: int) -> dict[str, Any]:
    """Commit bench.txt with op_us=value, wait for the build; what it left on the master."""
    (master.project / "bench.txt").write_text(
        f"# bench: op_us={value} unit=us better=lower reps=3 spread=1\n")
    revision, _, _ = master.commit_and_push({}, f"bench: op_us {value}")
    return _left(master, revision, master.wait_complete(revision, {JOB}, timeout=600)[JOB])


def _force(master: MasterHarness, revision: str) -> dict[str, Any]:
    """Force the job's build of `revision`, wait for it; what it left on the master."""
    reply = master.rpc("forceschedulers/kmatrix-force", "force",
                       builderid=master.builders()[JOB]["builderid"], kernel="6.1",
                       features="all", job="bench-job", reason="again",
                       username="t <t@example.com>", branch="main", revision=revision,
                       repository="", project="")
    assert "error" not in reply, reply
    bsid = reply["result"][0]

    def build() -> dict[str, Any] | None:
        (request,) = master.api(f"buildrequests?buildsetid={bsid}")["buildrequests"]
        builds = master.api(f"buildrequests/{request['buildrequestid']}/builds")["builds"]
        return builds[-1] if request["complete"] and builds else None

    return _left(master, revision, master.wait_for(build, 300, "the forced build", 1.0))


def _left(master: MasterHarness, revision: str, build: dict[str, Any]) -> dict[str, Any]:
    """A finished build, its `bench` step with its log, and the files it published."""
    steps = master.api(f"builds/{build['buildid']}/steps")["steps"]
    step = next(s for s in steps if s["name"] == "bench")
    logs = master.api(f"steps/{step['stepid']}/logs")["logs"]
    log = master.get(f"api/v2/logs/{logs[0]['logid']}/raw_inline")
    folder = master.basedir / "results" / revision / JOB
    return {"revision": revision, "build": build, "steps": [s["name"] for s in steps],
            "step": step, "log": log, "folder": folder,
            "bench": json.loads((folder / "bench.json").read_text())}


def _verdict(result: dict[str, Any]) -> dict[str, Any]:
    return result["bench"]["comparison"]["metrics"]["op_us"]


def test_a_bench_regression_fails_the_build_with_the_metric_and_both_values(
        master: MasterHarness) -> None:
    first = _push(master, 100)
    assert first["build"]["results"] == SUCCESS, first["build"]
    names = first["steps"]
    assert names.index("publish") < names.index("bench") < names.index("report")
    assert first["bench"]["comparison"]["baseline_run"] is None
    assert _verdict(first)["verdict"] == "no baseline"
    assert "no earlier successful build" in first["step"]["state_string"]
    assert "op_us: 100.0 us, baseline -, ratio -: no baseline" in first["log"]

    second = _push(master, 105)
    assert second["build"]["results"] == SUCCESS, second["build"]
    comparison = second["bench"]["comparison"]
    assert comparison["baseline_run"] == first["revision"]
    assert comparison["baseline_build"] == first["build"]["number"]
    assert comparison["threshold_pct"] == 25.0
    assert _verdict(second)["verdict"] == "ok"
    assert _verdict(second)["ratio"] == pytest.approx(1.05)
    assert "op_us: 105.0 us, baseline 100.0 us, ratio 1.050 (+5.0 %): ok" in second["log"]
    assert second["step"]["state_string"] == f"bench: 1 ok vs build {first['build']['number']}"
    assert [u["name"] for u in second["step"]["urls"]] == [
        f"baseline: build {first['build']['number']}"]
    kept_first = f"artifacts/{first['build']['buildid']}/bench.json"
    assert kept_first in second["log"].splitlines()[0]  # the copy `report` kept

    third = _push(master, 200)
    message = ("op_us regressed: 105.0 us -> 200.0 us (+90.5 %, threshold 25 % and "
               "spread 1.0 us)")
    assert third["build"]["results"] == FAILURE, third["build"]
    assert message in third["build"]["state_string"]  # the build's summary: statuses, UI
    assert third["step"]["results"] == FAILURE and message in third["step"]["state_string"]
    assert "op_us: 200.0 us, baseline 105.0 us, ratio 1.905 (+90.5 %): regressed" \
        in third["log"] and message in third["log"]
    assert third["bench"]["comparison"]["baseline_run"] == second["revision"]
    assert _verdict(third)["verdict"] == "regressed" and _verdict(third)["message"] == message
    _assert_recorded_as_failed(master, third, message)

    # the same revision again: its result comes from the master's store (it passed on
    # the worker) and is compared with 105 again, not with the failed build's 200; the
    # copy of the baseline that `report` kept is gone, so its published folder is read
    kept = master.basedir / "artifacts" / str(second["build"]["buildid"]) / "bench.json"
    kept.unlink()
    again = _force(master, third["revision"])
    assert (again["folder"] / "log.txt").read_text().startswith("== cached: ")
    assert again["build"]["results"] == FAILURE and message in again["build"]["state_string"]
    assert again["bench"]["comparison"]["baseline_build"] == second["build"]["number"]
    assert f"{second['revision']}/{JOB}/bench.json" in again["log"].splitlines()[0]


def _assert_recorded_as_failed(master: MasterHarness, result: dict[str, Any],
                               message: str) -> None:
    """metadata.json, junit.xml, the test-results API and the Matrix page agree."""
    folder: Path = result["folder"]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["status"] == "failed" and meta["message"] == message
    junit = (folder / "junit.xml").read_text()
    case = junit.split('name="bench.op_us"', 1)[1].split("</testcase>", 1)[0]
    assert "<failure" in case and "bench-regression" in case
    build = result["build"]
    sets = master.api(f"builds/{build['buildid']}/test_result_sets")["test_result_sets"]
    assert sum(s["tests_failed"] for s in sets) == 1
    kept = master.basedir / "artifacts" / str(build["buildid"]) / "bench.json"
    assert json.loads(kept.read_text())["comparison"]["metrics"]["op_us"]["verdict"] == \
        "regressed"
    cells = {c["job"]: c for c in json.loads(master.get(
        "plugins/wsgi_dashboards/matrix/api/branch/main"))["cells"]}
    assert cells[JOB]["status"] == "failed"
    assert cells[JOB]["bench"] == "bench: 1 of 1 regressed (op_us)"
    assert [f["message"] for f in cells[JOB]["failing"]] == [message]
