"""Tests for the libtest (cargo test) to JUnit converter."""

from __future__ import annotations

from pathlib import Path

import junitparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.results.libtest import panic_message, parse_libtest
from tests.unit.mutations import KINDS, mutate, roundtrip

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "libtest"
LIB = "unittests src/lib.rs::"
CLI = "tests/cli.rs::"
DOC = "Doc-tests vexfs::"
PANIC_EQ = "panicked at src/lib.rs:35:9: assertion `left == right` failed: math is broken"
PANIC_IDX = "panicked at src/lib.rs:42:18: index out of bounds: the len is 0 but the index is 3"
NO_PANIC = "test did not panic as expected at src/lib.rs:61:8"
UNWRAP = 'panicked at tests/cli.rs:9:7: called `Result::unwrap()` on an `Err` value: "mount failed"'


def _load(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def _outcome(case: junitparser.TestCase) -> tuple[str, str | None]:
    if not case.result:
        return ("passed", None)
    result = case.result[0]
    return (type(result).__name__.lower(), result.message)


def _summary(suite: junitparser.TestSuite) -> dict[str, tuple[str, str | None]]:
    return {case.name: _outcome(case) for case in suite}


MULTI = {
    LIB + "tests::ignored_with_reason": ("skipped", "needs a block device"),
    LIB + "tests::div_by_zero_panics": ("passed", None),
    LIB + "tests::it_adds": ("passed", None),
    LIB + "tests::it_fails_eq": ("failure", PANIC_EQ),
    LIB + "tests::it_panics": ("failure", PANIC_IDX),
    LIB + "tests::nested::deep_ok": ("passed", None),
    LIB + "tests::should_panic_but_does_not": ("failure", NO_PANIC),
    LIB + "tests::slow_ignored": ("skipped", "ignored"),
    CLI + "cli_fails": ("failure", UNWRAP),
    CLI + "cli_ok": ("passed", None),
    DOC + "src/lib.rs - div (line 14)": (
        "failure",
        "panicked at /tmp/rustdoctestuNz3Lh/doctest_bundle_2024.rs:14:1: "
        "assertion `left == right` failed",
    ),
    DOC + "src/lib.rs - add (line 5)": ("passed", None),
}


def _with_doc_path(expected: dict, tmpdir: str) -> dict:
    key = DOC + "src/lib.rs - div (line 14)"
    status, msg = expected[key]
    return {**expected, key: (status, msg.replace("rustdoctestuNz3Lh", tmpdir))}


EXPECTED = {
    "cargo_plain_multi.log": MULTI,
    "cargo_nocapture.log": _with_doc_path(MULTI, "rustdoctestWns2hS"),
    "cargo_json.log": _with_doc_path(MULTI, "rustdoctestrNnXc4"),
    "cargo_report_time.log": {k: v for k, v in MULTI.items() if k.startswith(LIB)},
    "cargo_backtrace.log": {LIB + "tests::it_fails_eq": ("failure", PANIC_EQ)},
    "cargo_abort.log": {
        LIB + "tests::a_first_ok": ("passed", None),
        LIB + "tests::b_aborts": (
            "error",
            "test started but never reported a result "
            "(2 of 3 results missing; signal: 6, SIGABRT: process abort signal)",
        ),
    },
    "cargo_compile_error.log": {"build": ("error", "error[E0308]: mismatched types")},
    "truncated_plain.log": {
        LIB + "tests::ignored_with_reason": ("skipped", "needs a block device"),
        LIB + "tests::div_by_zero_panics": ("passed", None),
        LIB + "tests::it_adds": ("passed", None),
        LIB + "(missing results)": (
            "error",
            "5 of 8 results missing: test binary output ended early",
        ),
    },
    "truncated_json.log": {
        LIB + "tests::div_by_zero_panics": ("passed", None),
        LIB + "tests::ignored_with_reason": ("skipped", "needs a block device"),
        LIB + "tests::it_adds": (
            "error",
            "test started but never reported a result (6 of 8 results missing)",
        ),
        LIB + "tests::it_fails_eq": (
            "error",
            "test started but never reported a result (6 of 8 results missing)",
        ),
    },
    "handmade_bench_oldcargo.log": {
        "target/debug/deps/vexbench-0123456789abcdef::bench_alloc": ("passed", None),
        "target/debug/deps/vexbench-0123456789abcdef::dup": ("passed", None),
        "target/debug/deps/vexbench-0123456789abcdef::dup #2": (
            "failure",
            "panicked at 'boom', src/old.rs:3:5",
        ),
    },
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_fixture_cases(fixture: str) -> None:
    suite = parse_libtest(_load(fixture))
    assert _summary(suite) == EXPECTED[fixture]
    assert all(case.classname == "libtest" for case in suite)


def test_fixture_list_is_complete() -> None:
    assert {p.name for p in FIXTURES.glob("*.log")} == set(EXPECTED)


def test_suite_statistics_and_name() -> None:
    suite = parse_libtest(_load("cargo_plain_multi.log"), suite_name="vexfs")
    assert suite.name == "vexfs"
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (12, 5, 0, 2)
    assert {case.classname for case in suite} == {"vexfs"}


def test_failure_text_holds_panic_block() -> None:
    cases = {c.name: c for c in parse_libtest(_load("cargo_plain_multi.log"))}
    failure = cases[LIB + "tests::it_panics"].result[0]
    assert failure.type == "panic"
    assert failure.text.startswith("about to index an empty vec\n")
    assert "index out of bounds" in failure.text


def test_nocapture_output_goes_to_system_out() -> None:
    cases = {c.name: c for c in parse_libtest(_load("cargo_nocapture.log"))}
    out = cases[LIB + "tests::div_by_zero_panics"].system_out
    assert "division by zero" in out


def test_times() -> None:
    json_cases = {c.name: c for c in parse_libtest(_load("cargo_json.log"))}
    assert json_cases[LIB + "tests::it_fails_eq"].time == pytest.approx(0.000008092)
    assert json_cases[DOC + "src/lib.rs - add (line 5)"].time == pytest.approx(0.004776514)
    timed = parse_libtest(_load("cargo_report_time.log"))
    assert {c.time for c in timed if not c.result or c.result[0].type == "panic"} == {0.0}


def test_build_error_carries_first_errors() -> None:
    (case,) = parse_libtest(_load("cargo_compile_error.log"))
    text = case.result[0].text.splitlines()
    assert len(text) == 20
    assert text[0] == "error[E0308]: mismatched types"
    assert "error[E0425]: cannot find function `undefined_helper` in this scope" in text


def test_abort_error_includes_tail() -> None:
    cases = {c.name: c for c in parse_libtest(_load("cargo_abort.log"))}
    assert "SIGABRT" in cases[LIB + "tests::b_aborts"].result[0].text


@pytest.mark.parametrize("text", ["", "\n\n", "hello world\n", "\x00\xff garbage"])
def test_no_output_is_an_error(text: str) -> None:
    (case,) = parse_libtest(text)
    assert case.name == "(no results)"
    assert isinstance(case.result[0], junitparser.Error)


def test_zero_tests_is_not_an_error() -> None:
    suite = parse_libtest("running 0 tests\n\ntest result: ok. 0 passed; 0 failed\n")
    assert suite.tests == 0


def test_workspace_duplicate_targets_get_crate_suffix() -> None:
    log = (
        "     Running unittests src/lib.rs (target/debug/deps/alpha-0123456789abcdef)\n"
        "running 1 test\ntest t ... ok\ntest result: ok. 1 passed\n"
        "     Running unittests src/lib.rs (target/debug/deps/beta-fedcba9876543210)\n"
        "running 1 test\ntest t ... ok\ntest result: ok. 1 passed\n"
    )
    names = [c.name for c in parse_libtest(log)]
    assert names == ["unittests src/lib.rs::t", "unittests src/lib.rs (beta)::t"]


def test_raw_binary_output_has_bare_names() -> None:
    log = "running 2 tests\ntest a ... ok\ntest b ... ignored\n"
    assert _summary(parse_libtest(log)) == {
        "a": ("passed", None),
        "b": ("skipped", "ignored"),
    }


def test_panic_message_fallbacks() -> None:
    assert panic_message([]) == "test failed"
    assert panic_message(["", "  Error: custom  "]) == "Error: custom"



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
    roundtrip(parse_libtest(text, suite_name=garbage[:20] or "s"), tmp_path / "out.xml")


def test_a_panic_line_in_no_known_form_is_its_own_summary() -> None:
    """Found by the fuzz test above: 'panicked at' without a location must not crash."""
    from pipeline.results.libtest import panic_message

    assert panic_message(["thread 'main' panicked at"]) == "thread 'main' panicked at"
