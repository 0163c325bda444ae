"""Tests for the KTAP / TAP (KUnit, kselftest) to JUnit converter."""

from __future__ import annotations

from pathlib import Path

import junitparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.results.ktap import parse_ktap
from tests.unit.mutations import KINDS, mutate, roundtrip

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ktap"
P, F, S, E = "passed", "failure", "skipped", "error"
PANIC = "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(98,0)"


def _load(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def _summary(suite: junitparser.TestSuite) -> list[tuple[str, str, str, str | None]]:
    rows = []
    for case in suite:
        result = case.result[0] if case.result else None
        status = type(result).__name__.lower() if result else P
        rows.append((case.classname, case.name, status, result.message if result else None))
    return rows


SYSCTL = [
    "null_tbl_data",
    "table_maxlen_unset",
    "table_len_is_zero",
    "table_read_but_position_set",
    "happy_single_positive",
    "happy_single_negative",
    "single_less_int_min",
    "single_greater_int_max",
]
SYSCTL_ROWS = [
    ("ktap.sysctl_test", f"sysctl_test.sysctl_test_dointvec_{t}", P, None) for t in SYSCTL
]
EXAMPLE_OK = [
    ("ktap.example", "example.example_simple_test", P, None),
    ("ktap.example", "example.example_mock_test", P, None),
]
RESOURCE = [
    "init_resources",
    "alloc_resource",
    "destroy_resource",
    "cleanup_resources",
    "proper_free_ordering",
]
THREE_SUITES = (
    [
        ("ktap.kunit-resource-test", f"kunit-resource-test.kunit_resource_test_{t}", P, None)
        for t in RESOURCE
    ]
    + [
        ("ktap.kunit-try-catch-test", f"kunit-try-catch-test.kunit_test_try_catch_{t}", P, None)
        for t in ("successful_try_no_catch", "unsuccessful_try_does_catch")
    ]
    + [
        ("ktap.string-stream-test", f"string-stream-test.string_stream_test_{t}", P, None)
        for t in ("empty_on_creation", "not_empty_after_add", "get_string")
    ]
)
STRING_STREAM = [
    ("ktap.string-stream-test", f"string-stream-test.string_stream_test_{t}", P, None)
    for t in ("empty_on_creation", "not_empty_after_add", "get_string")
]
SELF = "selftests: vexfs: "

EXPECTED = {
    "kunit_all_passed.log": SYSCTL_ROWS + EXAMPLE_OK,
    "kunit_missing_plan.log": SYSCTL_ROWS + EXAMPLE_OK,
    "kunit_failure.log": [
        *SYSCTL_ROWS,
        (
            "ktap.example",
            "example.example_simple_test",
            F,
            "EXPECTATION FAILED at lib/kunit/example-test.c:30",
        ),
        EXAMPLE_OK[1],
    ],
    "kunit_crash.log": [
        *SYSCTL_ROWS,
        ("ktap.example", "example.example_simple_test", F, "kunit test case crashed!"),
        EXAMPLE_OK[1],
    ],
    "kunit_all_passed_nested.log": [
        SYSCTL_ROWS[0],
        ("ktap.sysctl_test.example", "sysctl_test.example.example_simple_test", P, None),
        ("ktap.sysctl_test.example", "sysctl_test.example.example_mock_test", P, None),
        SYSCTL_ROWS[2],
        SYSCTL_ROWS[3],
        *EXAMPLE_OK,
    ],
    "kunit_failure_nested.log": [
        ("ktap.subtest 1", "subtest 1.test 1", P, None),
        ("ktap", "subtest 1", F, "not ok"),
        ("ktap.subtest 2", "subtest 2.subsubtest 1", F, "not ok"),
    ],
    "kunit_skip_tests.log": [
        *STRING_STREAM,
        EXAMPLE_OK[0],
        ("ktap.example", "example.example_skip_test", S, "this test should be skipped"),
    ],
    "kunit_skip_all_tests.log": [(c, n, S, "all tests skipped") for c, n, _, _ in STRING_STREAM]
    + [
        ("ktap.example", "example.example_simple_test", S, "all tests skipped"),
        ("ktap.example", "example.example_skip_test", S, "this test should be skipped"),
    ],
    "kunit_interrupted_tap_output.log": THREE_SUITES,
    "kunit_multiple_prefixes.log": THREE_SUITES,
    "kunit_pound_sign.log": THREE_SUITES,
    "kunit_config_printk_time.log": THREE_SUITES,
    "kunit_kernel_panic_interrupt.log": [
        *THREE_SUITES[:8],
        (
            "ktap",
            "string-stream-test",
            E,
            "output ended before the result line of 'string-stream-test' "
            f"(1 of 3 subtest results seen): {PANIC}",
        ),
    ],
    "kunit_parse_subtest_header.log": [("ktap.suite", "suite.test", P, None)],
    "kunit_strip_hyphen.log": [SYSCTL_ROWS[0], EXAMPLE_OK[0]],
    "kselftest_membarrier.log": [
        ("ktap", "selftests: membarrier: membarrier_test_single_thread", P, None),
        ("ktap", "selftests: membarrier: membarrier_test_multi_thread", P, None),
    ],
    "kselftest_plan_at_end.log": [
        ("ktap", SELF + "mkfs_test.sh", P, None),
        ("ktap", SELF + "xattr_test", F, "not ok: exit=1"),
        ("ktap", SELF + "quota_test", S, "quota not supported"),
        ("ktap", SELF + "fuzz_test", S, "TODO: known broken, see issue 12"),
        ("ktap", SELF + "fsync_test", P, None),
        ("ktap", SELF + "unnumbered_test", P, None),
        ("ktap", SELF + "mkfs_test.sh #2", P, None),
    ],
    "kselftest_bailout.log": [
        ("ktap", SELF + "setup", P, None),
        ("ktap", "bail out", E, "Bail out! cannot allocate loop device"),
    ],
    "ktap_truncated_plan.log": [
        ("ktap", "vexfs_open", P, None),
        ("ktap", "vexfs_read", S, "no data"),
        ("ktap", "vexfs_write", F, "not ok"),
        ("ktap", "missing results", E, "missing 2 results (plan 1..5, got 3)"),
    ],
    "ktap_no_output.log": [("ktap", "no results", E, "no KTAP/TAP output found")],
    "vm_serial_oops.log": [
        ("ktap.vexfs_alloc", "vexfs_alloc.vexfs_alloc_basic", P, None),
        (
            "ktap.vexfs_alloc",
            "vexfs_alloc.vexfs_alloc_full",
            F,
            "EXPECTATION FAILED at fs/vexfs/alloc_test.c:57",
        ),
        ("ktap.vexfs_alloc", "vexfs_alloc.vexfs_alloc_large", S, "requires CONFIG_VEXFS_LARGE"),
        ("ktap.vexfs_alloc.vexfs_alloc_param", "vexfs_alloc.vexfs_alloc_param.order-0", P, None),
        ("ktap.vexfs_alloc.vexfs_alloc_param", "vexfs_alloc.vexfs_alloc_param.order-3", P, None),
        ("ktap.vexfs_journal", "vexfs_journal.vexfs_journal_replay", P, None),
        ("ktap.vexfs_mount", "vexfs_mount.vexfs_mount_ro", P, None),
        (
            "ktap",
            "vexfs_mount",
            E,
            "output ended before the result line of 'vexfs_mount' (1 of 3 subtest results seen): "
            "BUG: kernel NULL pointer dereference, address: 0000000000000008",
        ),
    ],
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_fixture_cases(fixture: str) -> None:
    assert _summary(parse_ktap(_load(fixture))) == EXPECTED[fixture]


def test_fixture_list_is_complete() -> None:
    assert {p.name for p in FIXTURES.glob("*.log")} == set(EXPECTED)


def test_failure_text_has_diagnostics() -> None:
    cases = {c.name: c for c in parse_ktap(_load("kunit_failure.log"))}
    failure = cases["example.example_simple_test"].result[0]
    assert failure.type == "not ok"
    assert "Expected 1 + 1 == 3, but" in failure.text
    assert "\n        1 + 1 == 2\n" in failure.text  # relative indent kept (tabs expanded)


def test_crash_case_holds_log_tail() -> None:
    suite = parse_ktap(_load("vm_serial_oops.log"), suite_name="vm")
    crash = next(c for c in suite if c.name == "vexfs_mount")
    assert crash.classname == "vm"
    text = crash.result[0].text.splitlines()
    assert len(text) == 40
    assert text[-1].endswith("---[ end Kernel panic - not syncing: Fatal exception ]---")
    assert any("RIP: 0010:vexfs_fill_super" in line for line in text)
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (8, 1, 1, 1)


def test_summary_lines_are_dropped() -> None:
    cases = {c.name: c for c in parse_ktap(_load("vm_serial_oops.log"))}
    out = cases["vexfs_journal.vexfs_journal_replay"].system_out or ""
    assert "Totals" not in out


def test_out_of_order_number_is_noted() -> None:
    cases = {c.name: c for c in parse_ktap(_load("kselftest_plan_at_end.log"))}
    assert "test number 4, expected 3" in cases[SELF + "quota_test"].system_out


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("ok 1 a # todo later", (P, None)),
        ("not ok 1 a # TODO later", (S, "TODO: later")),
        ("not ok 1 a # skip nope", (S, "nope")),
        ("ok 1 a #SKIP", (S, "skipped")),
        ("ok 1 - a # just a comment", (P, None)),
        ("not ok 1 - a # exit=2", (F, "not ok: exit=2")),
    ],
)
def test_directives(line: str, expected: tuple[str, str | None]) -> None:
    (row,) = _summary(parse_ktap(f"KTAP version 1\n1..1\n{line}\n"))
    assert row == ("ktap", "a", *expected)


def test_parent_failure_without_failing_child_is_reported() -> None:
    log = "KTAP version 1\n1..1\n  KTAP version 1\n  # Subtest: s\n  1..1\n  ok 1 t\nnot ok 1 s\n"
    assert _summary(parse_ktap(log)) == [
        ("ktap.s", "s.t", P, None),
        ("ktap", "s", F, "not ok"),
    ]


def test_open_subtest_without_parent_result() -> None:
    log = "KTAP version 1\n1..1\n  # Subtest: s\n  1..2\n  ok 1 t\n  ok 2 u\n"
    rows = _summary(parse_ktap(log))
    assert rows[-1] == (
        "ktap",
        "s",
        E,
        "output ended before the result line of 's' (2 of 2 subtest results seen)",
    )


def test_more_results_than_plan() -> None:
    rows = _summary(parse_ktap("TAP version 13\n1..1\nok 1 a\nok 2 b\n"))
    assert rows[-1] == ("ktap", "plan mismatch", E, "plan 1..1 but 2 results")


def test_empty_plan_is_fine() -> None:
    assert parse_ktap("KTAP version 1\n1..0\n").tests == 0


@pytest.mark.parametrize("text", ["", "\n", "KTAP version 1\n", "\x00\x01\ud800"])
def test_degenerate_input_is_error(text: str) -> None:
    (case,) = parse_ktap(text)
    assert case.name == "no results"
    assert isinstance(case.result[0], junitparser.Error)



ALL_FIXTURES = [_load(name) for name in sorted(EXPECTED)]



@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    index=st.integers(0, len(ALL_FIXTURES) - 1),
    seed=st.integers(0, 2**32),
    kind=st.integers(0, KINDS - 1),
    garbage=st.text(max_size=200),
)
def test_never_raises_and_serializes(
    tmp_path: Path, index: int, seed: int, kind: int, garbage: str
) -> None:
    text = mutate(ALL_FIXTURES[index], seed, kind, garbage)
    roundtrip(parse_ktap(text, suite_name=garbage[:20] or "s"), tmp_path / "out.xml")


# -- diagnostics printed after a `not ok` line -----------------------------------------------

def _failure(log: str, name: str) -> junitparser.Failure:
    case = next(c for c in parse_ktap(log) if c.name == name)
    (result,) = case.result
    assert isinstance(result, junitparser.Failure)
    return result


def test_diagnostics_after_the_last_not_ok_are_its_failure_text() -> None:
    log = ("KTAP version 1\n1..2\nok 1 mount\nnot ok 2 get\n# get k: got 'a' want 'b'\n"
           "# vexctl get: exit 1\n")
    failure = _failure(log, "get")
    assert failure.text.splitlines() == ["# get k: got 'a' want 'b'", "# vexctl get: exit 1"]
    assert failure.message == "not ok"


def test_diagnostics_before_and_after_are_both_kept_and_the_assertion_found() -> None:
    log = ("KTAP version 1\n1..2\n# before: setting up\nnot ok 1 a\n"
           "# a: EXPECTATION FAILED at fs/vexfs/x.c:12\nmodule noise\nok 2 b\n")
    failure = _failure(log, "a")
    assert failure.text.splitlines() == ["# before: setting up",
                                         "# a: EXPECTATION FAILED at fs/vexfs/x.c:12"]
    assert failure.message == "EXPECTATION FAILED at fs/vexfs/x.c:12"
    # only `#` lines attach to the failure; b's own output is unchanged
    b = next(c for c in parse_ktap(log) if c.name == "b")
    assert "module noise" in (b.system_out or "")


def test_kunit_diagnostics_of_the_next_test_stay_with_it() -> None:
    log = ("KTAP version 1\n1..2\n    # a: EXPECTATION FAILED at t.c:1\nnot ok 1 a\n"
           "# after a\n# b: EXPECTATION FAILED at t.c:2\nnot ok 2 b\n")
    a, b = _failure(log, "a"), _failure(log, "b")
    assert "# after a" in a.text and "t.c:2" not in a.text
    assert a.message == "EXPECTATION FAILED at t.c:1"
    assert b.message == "EXPECTATION FAILED at t.c:2"


def test_diagnostics_after_a_nested_not_ok_go_to_that_case() -> None:
    log = ("KTAP version 1\n1..1\n  KTAP version 1\n  # Subtest: s\n  1..2\n  not ok 1 t\n"
           "  # t: detail after\n  ok 2 u\nnot ok 1 s\n# s: suite detail\n")
    failure = _failure(log, "s.t")
    assert "# t: detail after" in failure.text and "suite detail" not in failure.text


def test_passing_skipped_and_todo_results_collect_no_trailing_diagnostics() -> None:
    log = ("KTAP version 1\n1..3\nok 1 a\n# x\nnot ok 2 b # SKIP no device\n# y\n"
           "not ok 3 c # TODO later\n# z\n")
    rows = _summary(parse_ktap(log))
    assert [r[2] for r in rows] == [P, S, S]
