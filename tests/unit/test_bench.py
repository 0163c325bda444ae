"""Bench lines -> metrics, the noise-aware comparison, and what a bench job writes
(pipeline/results/bench.py, the runner's bench.json and JUnit properties, model/bench.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from junitparser import JUnitXml

from pipeline.errors import InputError
from pipeline.model.expand import expand
from pipeline.model.matrix import load_matrix_text
from pipeline.results.bench import (
    IMPROVED,
    NEW,
    NO_BASELINE,
    NOT_COMPARABLE,
    OK,
    REGRESSED,
    Metric,
    compare_bench,
    judge,
    metrics_from_json,
    parse_bench,
    tally,
    verdict_line,
)
from pipeline.results.status import FAILED, PASSED
from pipeline.run.executor import ContainerSpec, StepOutcome
from pipeline.run.runner import RunContext, run_job
from tests.unit.test_faults_unit import FakeImages

NINE = ("insert_us", "search_p50_us", "search_p99_us", "hybrid_p50_us", "hybrid_p99_us",
        "ioctl_rtt_p50_us", "user_search_p50_us", "user_search_p99_us",
        "search_kernel_user_ratio")

# what kernel/tests/run-bench.sh prints: vexctl's KTAP nested (indented) in its own
VEXCTL_OUTPUT = """\
KTAP version 1
1..4
# run-bench: n=2000 reps=5 queries=50 k=10 seed=1
ok 1 insmod
ok 2 mount
  KTAP version 1
  # Subtest: bench
  1..6
  # bench: insert_us=41.5 unit=us better=lower reps=5 spread=2.125
  ok 1 insert
  # bench: search_p50_us=210.75 unit=us better=lower reps=5 spread=8.5
  # bench: search_p99_us=260.001 unit=us better=lower reps=5 spread=30.2
  ok 2 search
  # bench: hybrid_p50_us=120 unit=us better=lower reps=5 spread=4
  # bench: hybrid_p99_us=150.5 unit=us better=lower reps=5 spread=9
  ok 3 hybrid_search
  # bench: ioctl_rtt_p50_us=3.25 unit=us better=lower reps=5 spread=0.5
  ok 4 ioctl_rtt
  # bench: user_search_p50_us=65.9 unit=us better=lower reps=5 spread=1.1
  # bench: user_search_p99_us=80.2 unit=us better=lower reps=5 spread=2.9
  # bench: search_kernel_user_ratio=3.198 unit=x better=lower reps=5 spread=0.4
  ok 5 user_search
  ok 6 results_match
ok 3 bench
ok 4 unload
"""


# --- parsing ----------------------------------------------------------------------------

def test_the_nine_metrics_of_run_bench_are_read_with_their_fields() -> None:
    out = parse_bench(VEXCTL_OUTPUT)
    assert out.problems == []
    assert tuple(m.name for m in out.metrics) == NINE
    first = out.metrics[0]
    assert first == Metric("insert_us", 41.5, "us", "lower", 5, 2.125, line=9)
    ratio = out.metrics[-1]
    assert (ratio.value, ratio.unit, ratio.spread) == (3.198, "x", 0.4)


def test_the_shortest_form_and_the_defaults() -> None:
    (metric,) = parse_bench("# bench: boot_ms=812 unit=ms\n").metrics
    assert metric == Metric("boot_ms", 812.0, "ms", "lower", None, None, line=1)


@pytest.mark.parametrize("line", [
    "    # bench: a=1 unit=us",          # nested subtests indent with spaces
    "\t# bench: a=1 unit=us",
    "# bench: a=1 unit=us\r",            # a serial console's line end
    "# bench:   a=1    unit=us  ",
    "# bench: a=1 reps=3 unit=us better=lower",  # keys after the metric in any order
])
def test_indentation_spacing_and_key_order_do_not_matter(line: str) -> None:
    (metric,) = parse_bench(line + "\n").metrics
    assert (metric.name, metric.value, metric.unit) == ("a", 1.0, "us")


@pytest.mark.parametrize("value, expected", [
    ("1e3", 1000.0), ("-2.5", -2.5), (".5", 0.5), ("7.", 7.0), ("+3", 3.0)])
def test_values_are_plain_decimal_numbers(value: str, expected: float) -> None:
    (metric,) = parse_bench(f"# bench: m={value} unit=us\n").metrics
    assert metric.value == expected


@pytest.mark.parametrize("line, why", [
    ("# bench: search_p50_us=fast unit=us", "value 'fast' is not a number"),
    ("# bench: search_p50_us=nan unit=us", "value 'nan' is not a number"),
    ("# bench: search_p50_us=1_000 unit=us", "value '1_000' is not a number"),
    ("# bench: search_p50_us=1e999 unit=us", "value '1e999' is not a finite number"),
    ("# bench: search_p50_us=12", "no unit= (e.g. unit=us)"),
    ("# bench: Search-P50=12 unit=us", "'Search-P50=12' is not <metric>=<value> with a "
                                       "metric name of lower-case letters, digits and '_'"),
    ("# bench: search_p50_us unit=us", "'search_p50_us' is not <metric>=<value> with a "
                                       "metric name of lower-case letters, digits and '_'"),
    ("# bench:", "nothing after `bench:`"),
    ("# bench: a=1 unit=us colour=red", "unknown field 'colour=red' (known: unit, better, "
                                        "reps, spread)"),
    ("# bench: a=1 unit=us unit=ms", "unit given twice"),
    ("# bench: a=1 unit=", "unit is empty"),
    ("# bench: a=1 unit=us better=faster", "better='faster' is neither lower nor higher"),
    ("# bench: a=1 unit=us reps=0", "reps '0' is not a positive whole number"),
    ("# bench: a=1 unit=us reps=2.5", "reps '2.5' is not a positive whole number"),
    ("# bench: a=1 unit=us spread=-1", "spread '-1' is negative"),
])
def test_a_bad_line_is_a_located_problem_not_a_crash(line: str, why: str) -> None:
    out = parse_bench(f"KTAP version 1\n  {line}\n# bench: ok_metric=1 unit=us\n")
    assert [m.name for m in out.metrics] == ["ok_metric"]  # the good lines still count
    (problem,) = out.problems
    assert problem.line == 2 and problem.text == line
    assert problem.message == (
        f"log.txt:2: bad bench line {line!r}: {why}; expected `# bench: <metric>=<value> "
        "unit=<unit> [better=lower|higher] [reps=<R>] [spread=<value>]`; fix the line the "
        "benchmark prints (docs/BENCH-JOBS.md)")


def test_a_metric_reported_twice_and_no_metric_at_all_are_problems() -> None:
    out = parse_bench("# bench: a=1 unit=us\nx\n# bench: a=2 unit=us\n")
    assert [m.value for m in out.metrics] == [1.0]
    assert out.problems[0].message == (
        "log.txt:3: metric 'a' reported again (first at line 1); print each metric once "
        "per run")
    (none,) = parse_bench("KTAP version 1\n# benchmark: not one\n# bench_x: no\n").problems
    assert none.message.startswith("log.txt: no bench line in the job's output; a bench "
                                   "job prints one line per metric, `# bench: <metric>=")


def test_a_kernel_message_glued_to_a_bench_line_on_the_console_is_not_part_of_it() -> None:
    """Seen on vm-bench/6.12: the TSC calibration printk landed before the line's end."""
    out = parse_bench("  # bench: search_p50_us=131.259 unit=us better=lower reps=5 "
                      "spread=1.313[    1.889020] tsc: Refined TSC clocksource calibration: "
                      "2596.104 MHz\n\n")
    assert out.problems == [] and [(m.name, m.value, m.spread) for m in out.metrics] == [
        ("search_p50_us", 131.259, 1.313)]


# --- comparison ---------------------------------------------------------------------------

def m(name: str, value: float, spread: float | None = None, better: str = "lower",
      unit: str = "us") -> Metric:
    return Metric(name, value, unit, better, 5, spread)


def test_beyond_threshold_and_spread_is_a_regression_with_the_exact_message() -> None:
    (verdict,) = compare_bench([m("search_p50_us", 180.5, 9.0)],
                               [m("search_p50_us", 123.0, 8.1)], 25.0)
    assert verdict.verdict == REGRESSED
    assert verdict.message == ("search_p50_us regressed: 123.0 us -> 180.5 us (+46.7 %, "
                               "threshold 25 % and spread 9.0 us)")  # the larger
    assert verdict.ratio == pytest.approx(180.5 / 123.0)
    assert verdict.change_pct == pytest.approx(46.75, abs=0.01)


def test_within_the_threshold_passes() -> None:
    (verdict,) = compare_bench([m("a", 140.0, 2.0)], [m("a", 123.0, 1.0)], 25.0)
    assert verdict.verdict == OK and verdict.message == ""
    assert verdict.ratio == pytest.approx(140 / 123)


def test_beyond_the_percentage_but_within_the_previous_spread_passes() -> None:
    """A noisy baseline (spread 60 us) hides a +46.7 % change: it is within noise."""
    (verdict,) = compare_bench([m("a", 180.5, 5.0)], [m("a", 123.0, 60.0)], 25.0)
    assert verdict.verdict == OK and verdict.change_pct == pytest.approx(46.75, abs=0.01)


def test_beyond_the_percentage_but_within_the_new_runs_spread_passes() -> None:
    """A run that itself varied by 785 us over its repetitions (a p99 under TCG) does not
    show that a +40 % (+217 us) change is more than noise."""
    (verdict,) = compare_bench([m("p99", 751.6, 785.2)], [m("p99", 535.069, 204.025)], 25.0)
    assert verdict.verdict == OK and verdict.change_pct == pytest.approx(40.47, abs=0.01)
    (verdict,) = compare_bench([m("p99", 751.6, 200.0)], [m("p99", 535.069, 204.025)], 25.0)
    assert verdict.verdict == REGRESSED and "and spread 204.025 us)" in verdict.message


def test_the_threshold_is_the_jobs() -> None:
    assert judge(m("a", 130.0), m("a", 100.0, 1.0), 25.0).verdict == REGRESSED
    assert judge(m("a", 130.0), m("a", 100.0, 1.0), 40.0).verdict == OK
    assert judge(m("a", 100.0), m("a", 100.0), 0.001).verdict == OK  # no change at all


def test_higher_is_better_turns_the_direction_around() -> None:
    worse = judge(m("ops", 700.0, better="higher", unit="op/s"),
                  m("ops", 1000.0, 10.0, better="higher", unit="op/s"), 25.0)
    assert worse.verdict == REGRESSED
    assert worse.message == ("ops regressed: 1000.0 op/s -> 700.0 op/s (-30.0 %, threshold "
                             "25 % and spread 10.0 op/s)")
    assert judge(m("ops", 1400.0, better="higher"), m("ops", 1000.0, better="higher"),
                 25.0).verdict == IMPROVED


def test_improvements_new_metrics_and_changed_units_pass() -> None:
    verdicts = compare_bench(
        [m("faster", 50.0), m("fresh", 1.0), m("ms_now", 2.0, unit="ms")],
        [m("faster", 100.0, 1.0), m("ms_now", 2000.0, unit="us")], 25.0)
    assert [v.verdict for v in verdicts] == [IMPROVED, NEW, NOT_COMPARABLE]
    assert verdicts[2].message == "unit changed from us to ms"
    assert [v.verdict for v in compare_bench([m("a", 1.0)], None)] == [NO_BASELINE]


def test_a_zero_baseline_has_no_ratio_and_needs_only_the_spread() -> None:
    verdict = judge(m("errors", 3.0), m("errors", 0.0, 1.0), 25.0)
    assert verdict.verdict == REGRESSED and verdict.ratio is None
    assert "0.0 us -> 3.0 us (from zero, threshold 25 %" in verdict.message
    assert judge(m("errors", 0.5), m("errors", 0.0, 1.0), 25.0).verdict == OK


def test_a_verdict_is_one_log_line_with_value_baseline_ratio_and_verdict() -> None:
    """What Buildbot's `bench` step logs per metric (pipeline/buildbot/bench.py)."""
    now = [m("op_us", 200.0), m("fresh", 1.0), m("t", 2.0, unit="ms"), m("same", 10.0)]
    verdicts = compare_bench(now, [m("op_us", 105.0, 1.0), m("t", 2000.0),
                                   m("same", 10.0)], 25.0)
    assert [verdict_line(a, v) for a, v in zip(now, verdicts, strict=True)] == [
        "op_us: 200.0 us, baseline 105.0 us, ratio 1.905 (+90.5 %): regressed",
        "fresh: 1.0 us, baseline -, ratio -: new",
        "t: 2.0 ms, baseline 2000.0, ratio -: not comparable (unit changed from us to ms)",
        "same: 10.0 us, baseline 10.0 us, ratio 1.000 (+0.0 %): ok"]
    assert verdict_line(now[0], compare_bench(now[:1], None)[0]) == \
        "op_us: 200.0 us, baseline -, ratio -: no baseline"
    assert tally(verdicts) == "1 regressed, 1 new, 1 not comparable, 1 ok"
    assert tally(compare_bench([m("a", 1.0), m("b", 2.0)], [m("a", 1.0), m("b", 2.0)])) \
        == "2 ok"
    assert tally([]) == "no metrics"


def test_metrics_read_back_from_json_skip_what_does_not_fit() -> None:
    data = {"metrics": [{"name": "a", "value": 1, "unit": "us", "reps": 3, "spread": 0.5},
                        {"name": "b"}, "junk", {"name": "c", "value": "x", "unit": "us"}]}
    assert metrics_from_json(data) == [Metric("a", 1.0, "us", "lower", 3, 0.5)]
    assert metrics_from_json(None) == [] and metrics_from_json({"metrics": 3}) == []


# --- the runner: bench.json, JUnit properties and cases ----------------------------------

MATRIX = """\
kernels: {"6.1": {suite: bookworm}}
jobs:
  perf:
    image: rust
    bench: {threshold: 10%}
    steps:
      - {name: measure, run: ./bench}
"""


class Printing:
    """Containers whose step prints `output` and exits 0."""

    stopping = False

    def __init__(self, output: str) -> None:
        self.output = output

    def run(self, spec: ContainerSpec, timeout: float, on_line: Any = None) -> StepOutcome:
        for line in self.output.splitlines():
            on_line(line)
        return StepOutcome(0, self.output, 0.1)


def run_bench_job(tmp_path: Path, output: str) -> tuple[Any, Path]:
    matrix = load_matrix_text(MATRIX, str(tmp_path / "matrix.yml"))
    (job,) = expand(matrix)
    assert job.spec.bench is not None and job.spec.bench.threshold == 10.0
    ctx = RunContext(run_id="r1", run_dir=tmp_path / "run", root=tmp_path,
                     images=FakeImages(), containers=Printing(output), kernels={},
                     flavour_caches={})
    return run_job(ctx, job), tmp_path / "run" / "perf"


def test_a_bench_job_writes_bench_json_and_junit_properties(tmp_path: Path) -> None:
    result, folder = run_bench_job(tmp_path, VEXCTL_OUTPUT)
    assert result.status == PASSED, result.message
    data = json.loads((folder / "bench.json").read_text())
    assert data["job"] == "perf" and data["problems"] == [] and data["comparison"] is None
    assert [r["name"] for r in data["metrics"]] == list(NINE)
    assert data["metrics"][1] == {"name": "search_p50_us", "value": 210.75, "unit": "us",
                                  "better": "lower", "reps": 5, "spread": 8.5,
                                  "line": data["metrics"][1]["line"]}
    log = (folder / "log.txt").read_text().splitlines()
    assert log[data["metrics"][1]["line"] - 1].strip().startswith("# bench: search_p50_us=")
    (suite,) = list(JUnitXml.fromfile(str(folder / "junit.xml")))
    props = {p.name: p.value for p in suite.properties()}
    assert props["bench.search_p50_us"] == "210.75"
    assert props["bench.search_p50_us.unit"] == "us"
    assert props["bench.search_p50_us.better"] == "lower"
    assert props["bench.search_p50_us.reps"] == "5"
    assert props["bench.search_p50_us.spread"] == "8.5"
    assert props["bench.search_kernel_user_ratio"] == "3.198"
    cases = {c.name: c for c in suite}
    assert all(f"bench.{n}" in cases and not cases[f"bench.{n}"].result for n in NINE)
    assert result.tests == len(cases) and result.failures == 0


def test_a_bad_bench_line_fails_the_job_with_the_located_message(tmp_path: Path) -> None:
    result, folder = run_bench_job(
        tmp_path, "# bench: insert_us=41.5 unit=us\n# bench: search_p50_us=?? unit=us\n")
    assert result.status == FAILED
    assert "log.txt:" in result.message and "bad bench line" in result.message
    assert "value '??' is not a number" in result.message
    data = json.loads((folder / "bench.json").read_text())
    assert [r["name"] for r in data["metrics"]] == ["insert_us"]
    assert data["problems"][0]["message"] == result.message
    cases = {c.name: c for s in JUnitXml.fromfile(str(folder / "junit.xml")) for c in s}
    (failure,) = cases["bench.lines"].result
    assert failure.message == result.message


def test_a_bench_job_that_prints_no_metric_fails(tmp_path: Path) -> None:
    result, _ = run_bench_job(tmp_path, "KTAP version 1\n1..1\nok 1 nothing\n")
    assert result.status == FAILED
    assert result.message.startswith("log.txt: no bench line in the job's output")


# --- the model: `bench:` and its threshold ------------------------------------------------

def _load(bench: str) -> Any:
    return load_matrix_text('kernels: {"6.1": {suite: bookworm}}\njobs:\n'
                            "  kmod-build: {kind: kmod-build}\n"
                            f"  b:\n    kind: vm-bench\n    bench: {bench}\n")


def test_the_vm_bench_kind_is_a_bench_job_with_a_25_percent_threshold() -> None:
    matrix = load_matrix_text('kernels: {"6.1": {suite: bookworm}}\njobs:\n'
                              "  kmod-build: {kind: kmod-build}\n  b: {kind: vm-bench}\n")
    spec = matrix.jobs["b"]
    assert spec.bench is not None and spec.bench.threshold == 25.0
    assert spec.vm is not None and spec.vm.command == "sh /tests/run-bench.sh /lib/modules-test"
    assert spec.vm.modules == ("$NEEDS/$BUILD_JOB/$KERNEL/*.ko",)
    assert spec.vm.files == {"/tests/run-bench.sh": "$SRC/$BENCH_SCRIPT"}
    assert (spec.timeout, spec.vm.test_timeout, spec.over, spec.needs, spec.inputs) == (
        900, 600, ("kernel",), ("kmod-build",), ("tests/run-bench.sh",))
    assert spec.env == {"BUILD_JOB": "kmod-build", "BENCH_SCRIPT": "tests/run-bench.sh"}
    assert _load("{threshold: 12.5%}").jobs["b"].bench.threshold == 12.5
    assert _load("{}").jobs["b"].bench.threshold == 25.0


@pytest.mark.parametrize("threshold, message", [
    ("25", "jobs.b.bench.threshold: 25 is not a percentage; write it with a percent sign, "
           "e.g. 25%"),
    ("0.25", "jobs.b.bench.threshold: 0.25 is not a percentage; write it with a percent "
             "sign, e.g. 0.25% (or 25% if 0.25 is a fraction)"),
    ("0%", "jobs.b.bench.threshold: '0%' would call any change beyond the spread a "
           "regression; expected a percentage above 0%, e.g. 25%"),
    ("-5%", "jobs.b.bench.threshold: '-5%' is not valid; expected a percentage with its "
            "sign, such as 25%"),
    ("lots", "jobs.b.bench.threshold: 'lots' is not valid; expected a percentage"),
])
def test_a_bad_threshold_is_an_error_at_its_line(threshold: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        _load(f"{{threshold: {threshold}}}")
    (diag,) = info.value.diagnostics
    assert (diag.mark.line, diag.mark.col) == (6, 24)
    assert str(diag).startswith(f"matrix.yml:6:24: error: {message}")


def test_a_bad_threshold_is_exit_2_with_file_line_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "matrix.yml"
    path.write_text('kernels: {"6.1": {suite: bookworm}}\njobs:\n'
                    "  kmod-build: {kind: kmod-build}\n"
                    "  vm-bench:\n    kind: vm-bench\n    bench: {threshold: 25}\n")
    proc = subprocess.run([sys.executable, "-m", "pipeline", "--matrix", str(path),
                           "validate"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr == (f"pipeline: {path}:6:24: error: jobs.vm-bench.bench.threshold: 25 "
                           "is not a percentage; write it with a percent sign, e.g. 25%\n")


def test_the_bench_docs_cite_tests_that_exist() -> None:
    """Every `tests/...py::test` (or `::test`, of the file cited before it) that
    docs/BENCH-JOBS.md names exists, and each of its sections cites at least one."""
    import re

    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "BENCH-JOBS.md").read_text()
    last, cited = "", []
    for span in re.findall(r"`([^`]*::[^`]*)`", text):
        found = re.match(r"^(tests/[\w/]+\.py)?::(\w+)$", span)
        assert found, span
        last = found[1] or last
        cited.append((last, found[2]))
    for path, name in cited:
        assert f"def {name}(" in (root / path).read_text(), f"{path}::{name}"
    sections = text.split("\n## ")[1:]
    assert len(sections) == 7 and all("::" in s for s in sections)


def test_the_shipped_vm_bench_covers_the_debian_kernels_vm_test_boots() -> None:
    from pipeline.model.matrix import load_matrix

    jobs = expand(load_matrix(Path(__file__).resolve().parents[2] / "matrix.yml"))
    bench = {j.kernel: j for j in jobs if j.name == "vm-bench"}
    booted = {j.kernel for j in jobs if j.name == "vm-test" and j.arch == "amd64"}
    assert set(bench) == booted == {"5.10", "6.1", "6.12", "7.3"}  # not 7.3-rust
    for kernel, job in bench.items():
        assert job.id == f"vm-bench/{kernel}"
        assert job.needs == (f"kmod-build/{kernel}", "vexctl-static")
        assert job.spec.bench is not None and job.spec.bench.threshold == 25.0
        assert job.spec.vm is not None
        assert job.spec.vm.files == {"/tests/run-bench.sh": "$SRC/kernel/tests/run-bench.sh"}
