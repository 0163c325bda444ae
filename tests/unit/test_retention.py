"""Retention of the master's results: by age and count, the newest always kept."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.buildbot.retention import DAY, Retention, prune, to_prune

NOW = 1_800_000_000.0


def test_count_keeps_the_newest() -> None:
    ages = {f"r{i}": NOW - i * 60 for i in range(6)}
    assert to_prune(ages, keep=4, days=0, now=NOW) == ["r4", "r5"]


def test_age_removes_old_but_never_the_newest() -> None:
    ages = {"new": NOW - 1 * DAY, "old": NOW - 40 * DAY, "older": NOW - 50 * DAY}
    assert to_prune(ages, keep=10, days=30, now=NOW) == ["old", "older"]
    only_old = {"old": NOW - 40 * DAY, "older": NOW - 50 * DAY}
    assert to_prune(only_old, keep=10, days=30, now=NOW) == ["older"]
    assert to_prune(only_old, keep=0, days=0, now=NOW) == ["older"]


def test_prune_removes_directories_on_disk(tmp_path: Path) -> None:
    results, artifacts = tmp_path / "results", tmp_path / "artifacts"
    for root, count in ((results, 5), (artifacts, 3)):
        for i in range(count):
            path = root / f"d{i}"
            (path / "job").mkdir(parents=True)
            (path / "job" / "junit.xml").write_text("<testsuite/>")
            os.utime(path, (NOW - i * DAY, NOW - i * DAY))
    (results / "d9").write_text("a file is left alone")
    removed = prune(results, artifacts, Retention(days=2.5, revisions=4, builds=1), now=NOW)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in removed) == [
        "artifacts/d1", "artifacts/d2", "results/d3", "results/d4"]
    assert sorted(p.name for p in results.iterdir()) == ["d0", "d1", "d2", "d9"]
    assert [p.name for p in artifacts.iterdir()] == ["d0"]
