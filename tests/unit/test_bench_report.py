"""Bench jobs across runs (pipeline/report/benchmarks.py): the baseline, the verdict that
fails a job, and what the HTML report and the Buildbot dashboard show (bench_view.py).

Each run here is made by the real runner (run_job, with containers that print bench
lines) and reported by write_run_report, as `pipeline run` does."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import pytest
from junitparser import JUnitXml

from pipeline.model.expand import expand
from pipeline.model.matrix import load_matrix
from pipeline.report.bench_view import bench_line
from pipeline.report.benchmarks import find_baseline
from pipeline.report.run_output import write_run_report
from pipeline.results.status import CACHED, FAILED, PASSED
from pipeline.run.runner import RunContext, run_job
from tests.unit.test_bench import Printing
from tests.unit.test_faults_unit import FakeImages
from tests.unit.test_html_report import Dom

MATRIX = """\
kernels: {"6.12": {suite: trixie}}
jobs:
  perf:
    image: rust
    over: [kernel]
    bench: {threshold: 25%}
    steps:
      - {name: measure, run: ./bench}
"""
JOB = "perf/6.12"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
REGRESSION = ("search_p50_us regressed: 123.0 us -> 180.5 us (+46.7 %, threshold 25 % and "
              "spread 9.0 us)")


def output(search: float, spread: float, insert: float = 41.5) -> str:
    """What a bench script prints: KTAP with two metrics in a nested subtest."""
    return ("KTAP version 1\n1..1\n  KTAP version 1\n  # Subtest: bench\n  1..2\n"
            f"  # bench: insert_us={insert} unit=us better=lower reps=5 spread=2\n"
            "  ok 1 insert\n"
            f"  # bench: search_p50_us={search} unit=us better=lower reps=5 spread={spread}\n"
            "  ok 2 search\nok 1 bench\n")


class Runs:
    """Consecutive runs of one matrix into one reports directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.matrix = root / "matrix.yml"
        self.matrix.write_text(MATRIX)
        self.reports = root / "reports"
        self.count = 0

    def run(self, printed: str, baseline: str | None = None) -> dict[str, Any]:
        """One run: the job prints `printed`; its summary.json row (the report written)."""
        self.count += 1
        run_id = f"2026120{self.count}-120000-abcd"
        run_dir = self.reports / run_id
        run_dir.mkdir(parents=True)
        jobs = expand(load_matrix(self.matrix))
        ctx = RunContext(run_id=run_id, run_dir=run_dir, root=self.root, images=FakeImages(),
                         containers=Printing(printed), kernels={}, flavour_caches={})
        results = {job.id: run_job(ctx, job) for job in jobs}
        summary, _, _ = write_run_report(self.reports, run_dir, run_id, self.matrix, jobs,
                                         results, T0 + timedelta(hours=self.count), baseline)
        (row,) = summary["results"]
        return row

    def dir(self, row: dict[str, Any]) -> Path:
        return self.reports / self.latest / row["directory"]

    @property
    def latest(self) -> str:
        return f"2026120{self.count}-120000-abcd"

    def bench(self) -> dict[str, Any]:
        return json.loads((self.reports / self.latest / JOB / "bench.json").read_text())

    def html(self) -> str:
        return (self.reports / self.latest / "index.html").read_text()


@pytest.fixture
def runs(tmp_path: Path) -> Runs:
    return Runs(tmp_path)


def verdicts(data: dict[str, Any]) -> dict[str, str]:
    return {name: v["verdict"] for name, v in data["comparison"]["metrics"].items()}


def test_the_first_run_has_no_baseline_and_passes(runs: Runs) -> None:
    row = runs.run(output(123.0, 8.1))
    assert row["status"] == PASSED
    data = runs.bench()
    assert data["comparison"]["baseline_run"] is None
    assert data["comparison"]["threshold_pct"] == 25.0
    assert verdicts(data) == {"insert_us": "no baseline", "search_p50_us": "no baseline"}


def test_within_noise_passes_and_beyond_fails_with_the_exact_message(runs: Runs) -> None:
    runs.run(output(123.0, 8.1))
    first = runs.latest
    row = runs.run(output(140.0, 9.0, insert=40.0))  # +13.8 %: within the threshold
    assert row["status"] == PASSED
    data = runs.bench()
    assert data["comparison"]["baseline_run"] == first
    assert verdicts(data) == {"insert_us": "ok", "search_p50_us": "ok"}
    assert data["comparison"]["metrics"]["search_p50_us"]["ratio"] == pytest.approx(140 / 123)

    runs.run(output(123.0, 8.1))  # back to the first numbers: the next baseline
    row = runs.run(output(180.5, 9.0))  # +46.7 %, far beyond the spread of 8.1
    assert row["status"] == FAILED and row["message"] == REGRESSION
    assert row["failures"] == 1
    assert row["failing"] == [{"name": f"{JOB}.bench.search_p50_us", "kind": "failure",
                               "message": REGRESSION}]
    folder = runs.dir(row)
    cases = {c.name: c for s in JUnitXml.fromfile(str(folder / "junit.xml")) for c in s}
    (failure,) = cases["bench.search_p50_us"].result
    assert failure.message == REGRESSION and not cases["bench.insert_us"].result
    meta = json.loads((folder / "metadata.json").read_text())
    assert (meta["status"], meta["message"], meta["tests"]["failures"]) == (
        FAILED, REGRESSION, 1)
    summary = json.loads((runs.reports / runs.latest / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["tests"]["failures"] == 1
    assert verdicts(runs.bench()) == {"insert_us": "ok", "search_p50_us": "regressed"}


def test_beyond_the_percentage_but_within_the_previous_spread_passes(runs: Runs) -> None:
    runs.run(output(123.0, 60.0))  # a noisy baseline
    row = runs.run(output(180.5, 5.0))
    assert row["status"] == PASSED
    assert verdicts(runs.bench())["search_p50_us"] == "ok"


def test_a_failed_run_is_not_a_baseline_so_the_regression_stays(runs: Runs) -> None:
    runs.run(output(123.0, 8.1))
    good = runs.latest
    assert runs.run(output(180.5, 9.0))["status"] == FAILED
    row = runs.run(output(181.0, 9.0))  # the same slow numbers: still against the good run
    assert row["status"] == FAILED and row["message"].startswith(
        "search_p50_us regressed: 123.0 us -> 181.0 us")
    assert runs.bench()["comparison"]["baseline_run"] == good
    regressed = runs.latest
    row = runs.run(output(182.0, 9.0), baseline=regressed)  # accepting the new numbers
    assert row["status"] == PASSED
    assert runs.bench()["comparison"]["baseline_run"] == regressed
    assert runs.run(output(180.0, 9.0))["status"] == PASSED  # the accepted run is the base


def test_a_cached_result_is_a_baseline(tmp_path: Path) -> None:
    """Passed and cached runs are baselines, failed ones not; a run without the job is
    passed over."""
    for run_id, status in (("r1", PASSED), ("r2", CACHED), ("r3", FAILED)):
        folder = tmp_path / run_id / "job"
        folder.mkdir(parents=True)
        (tmp_path / run_id / "summary.json").write_text(json.dumps({"results": [
            {"id": "job", "status": status, "directory": "job"}]}))
        (folder / "bench.json").write_text(json.dumps({"metrics": [
            {"name": "a", "value": int(run_id[1]), "unit": "us"}]}))
    filtered = tmp_path / "r4"  # a newer run that did not run the job (--kernel ...)
    filtered.mkdir()
    (filtered / "summary.json").write_text(json.dumps({"results": [
        {"id": "other", "status": PASSED, "directory": "other"}]}))
    runs = [tmp_path / r for r in ("r4", "r3", "r2", "r1")]  # newest first
    found = find_baseline(runs, "job")
    assert found is not None and found[0] == "r2" and found[1][0].value == 2.0
    assert find_baseline(runs, "job", any_status=True)[0] == "r3"  # type: ignore[index]
    assert find_baseline(runs, "other") is None  # it left no bench.json


# --- what the pages show --------------------------------------------------------------------

def bench_rows(html: str) -> dict[str, list[str]]:
    """metric -> the texts of its row's cells, in the bench table."""
    table = re.search(r'<table class="benchtab">(.*?)</table>', html, re.S)
    assert table, "no bench table"
    rows = {}
    for metric, body in re.findall(r'<tr [^>]*data-metric="([^"]+)"[^>]*>(.*?)</tr>',
                                   table.group(1), re.S):
        rows[metric] = [" ".join(re.sub(r"<[^>]+>", " ", c).split())
                        for c in re.findall(r"<td[^>]*>(.*?)</td>", body, re.S)]
    return rows


def test_the_report_has_a_bench_table_and_the_cell_its_line(runs: Runs) -> None:
    runs.run(output(123.0, 8.1))
    first = runs.latest
    runs.run(output(180.5, 9.0))
    html = runs.html()
    head = re.search(r'<table class="benchtab">\s*<thead>(.*?)</thead>', html, re.S)
    assert head and re.findall(r"<th[^>]*>(.*?)</th>", head.group(1)) == [
        "metric", "value", "unit", "spread", "baseline", "ratio", "verdict"]
    assert bench_rows(html) == {
        "insert_us": ["insert_us ↓", "41.5", "us", "2.0", "41.5", "1.000", "ok"],
        "search_p50_us": ["search_p50_us ↓", "180.5", "us", "9.0", "123.0", "1.467",
                          "regressed"],
    }
    assert f'<pre class="message">{escape(REGRESSION)}</pre>' in html
    dom = Dom(html)
    (article,) = [a for t, a in dom.elements if t == "article" and "data-regressed" in a]
    assert article["data-job"] == JOB and article["data-regressed"] == "1"
    assert f"../{first}/index.html" in dom.hrefs() and f"{JOB}/bench.json" in dom.hrefs()
    assert f"#{article['id']}" in dom.hrefs()  # the cell links its table
    assert dom.cells() == {JOB: FAILED}
    assert "bench: 1 of 2 regressed (search_p50_us)" in dom.all_text()


def test_the_cell_line_names_the_worst_ratio_or_says_what_is_missing() -> None:
    metrics = [{"name": "a", "value": 10, "unit": "us"},
               {"name": "qps", "value": 90, "unit": "op/s", "better": "higher"}]
    judged = {"a": {"verdict": "ok", "ratio": 1.05}, "qps": {"verdict": "ok", "ratio": 0.9}}
    data = {"metrics": metrics, "comparison": {"baseline_run": "r1", "metrics": judged}}
    assert bench_line(data) == "bench: 2 metrics, worst 0.90x qps"  # 1/0.9 > 1.05
    assert bench_line({"metrics": metrics, "comparison": None}) == \
        "bench: 2 metrics, a 10.0 us"  # not compared
    first = {"metrics": metrics, "comparison": {"metrics": {
        "a": {"verdict": "no baseline"}, "qps": {"verdict": "no baseline"}}}}
    assert bench_line(first) == "bench: 2 metrics, no baseline"
    assert bench_line({"metrics": []}) == "bench: no metrics" and bench_line(None) == ""


def test_the_dashboard_cell_shows_the_bench_line_and_links_bench_json(tmp_path: Path) -> None:
    from pipeline.buildbot.dashboard import add_failing
    from pipeline.report.view import Cell

    folder = tmp_path / "abc123" / JOB
    folder.mkdir(parents=True)
    (folder / "bench.json").write_text(json.dumps({"metrics": [
        {"name": "search_p50_us", "value": 123, "unit": "us"}], "comparison": None}))
    (folder / "log.txt").write_text("log\n")
    bench, plain = (Cell(id=i, name=i.split("/")[0], axes={}, status=PASSED,
                         commit="abc123") for i in (JOB, "other"))
    add_failing([bench, plain], tmp_path, "http://bb/")
    assert bench.bench == "bench: 1 metric, search_p50_us 123.0 us"
    assert [link.label for link in bench.links] == ["log.txt", "bench.json"]
    assert bench.links[1].href.endswith(f"results/abc123/{JOB}/bench.json")
    assert plain.bench == ""


def test_the_dashboard_page_and_branch_api_show_a_bench_cell(tmp_path: Path) -> None:
    """On the Matrix page (the report's renderer) and in /api/branch/NAME."""
    from tests.unit.test_buildbot_config import _cell_attrs, dashboard_client
    from tests.unit.test_dashboard_branch import OLD, BranchApi

    folder = tmp_path / "results" / OLD / "vm-test" / "6.1"
    folder.mkdir(parents=True)
    (folder / "bench.json").write_text(json.dumps({"metrics": [
        {"name": "boot_ms", "value": 812, "unit": "ms"}], "comparison": None}))
    client = dashboard_client(tmp_path, BranchApi())
    cells = {c["job"]: c for c in client.get("/api/branch/main").get_json()["cells"]}
    assert cells["vm-test/6.1"]["bench"] == "bench: 1 metric, boot_ms 812.0 ms"
    assert cells["kmod-build/6.1"]["bench"] is None
    page = client.get("/index.html?branch=main").get_data(as_text=True)
    assert "vm-test/6.1" in _cell_attrs(page)
    cell = page.split('data-job="vm-test/6.1"', 1)[1].split("</td>", 1)[0]
    assert '<div class="benchline"' in cell and "bench: 1 metric, boot_ms 812.0 ms" in cell
    assert f"results/{OLD}/vm-test/6.1/bench.json" in cell
