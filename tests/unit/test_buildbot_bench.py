"""The `bench` step of a bench job's builder (pipeline/buildbot/bench.py): where the
factory puts it and what it reads; the step itself runs on a real master in
tests/integration/test_buildbot_bench.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.results.status import PASSED

MATRIX = """\
version: 1
kernels:
  "6.1": {suite: bookworm}
jobs:
  plain:
    image: rust
    run: "true"
  measure:
    image: rust
    bench: {threshold: 12.5%}
    run: ./bench
"""


def test_only_a_bench_job_compares_between_publish_and_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("buildbot")
    from pipeline.buildbot.config import build_config
    from tests.unit.test_buildbot_config import step_names

    (tmp_path / "matrix.yml").write_text(MATRIX)
    basedir = tmp_path / ".buildbot"
    basedir.mkdir()
    (basedir / "kmatrix.yml").write_text("www_port: 18098\npb_port: 19098\n")
    for var in ("KMATRIX_BB_WWW_PORT", "KMATRIX_BB_PB_PORT", "KMATRIX_BB_BIND"):
        monkeypatch.delenv(var, raising=False)
    builders = {b.name: b for b in build_config(basedir=basedir,
                                                matrix=tmp_path / "matrix.yml")["builders"]}
    assert step_names(builders["measure"])[-3:] == ["publish", "bench", "report"]
    assert "bench" not in step_names(builders["plain"])
    step = next(s for s in builders["measure"].factory.steps if s.buildStep().name == "bench")
    made = step.buildStep()
    assert made.threshold == 12.5 and made.job_id == "measure"
    assert made.artifacts_root == str(basedir / "artifacts")


def test_the_job_result_is_read_from_the_published_metadata(tmp_path: Path) -> None:
    pytest.importorskip("buildbot")
    from pipeline.buildbot.bench import job_result

    (tmp_path / "metadata.json").write_text(json.dumps(
        {"status": "cached", "message": "", "tests": {"total": 3, "failures": 1}}))
    result = job_result("measure", tmp_path)
    assert (result.id, result.status, result.failures) == ("measure", "cached", 1)
    (tmp_path / "metadata.json").write_text("{broken")
    assert job_result("measure", tmp_path).status == PASSED  # nothing says otherwise
