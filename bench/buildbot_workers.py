"""(h) Buildbot throughput: the same 20-job matrix on one worker, then on two.

Each worker has one build slot and every job is limited to one CPU, so two workers fit
this 2-core machine. The workers share no disk with the master (tests/support/cluster.py:
own users, own installs, results through Buildbot); each configuration gets a fresh
master, so no result comes from a store. Makespan: from the push to the last build's end.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

JOBS = 20
MATRIX_HEAD = """\
version: 1
defaults: {timeout: 900, image-base: mmdebstrap, limits: {cpus: 1}}
kernels:
  "6.1": {suite: bookworm}
jobs:
"""
JOB = """\
  b{n:02d}:
    over: [kernel]
    image: kbuild
    inputs: ["kernel/**"]
    steps:
      - name: build
        results: build
        run: |
          cp -a "$SRC/kernel/." "$WORK/module"
          for round in 1 2 3; do
            make -s -C "$WORK/module" KDIR="$KDIR" clean >/dev/null
            make -s -C "$WORK/module" KDIR="$KDIR"
          done
          cp "$WORK"/module/*.ko "$OUT/"
"""


def matrix() -> str:
    return MATRIX_HEAD + "".join(JOB.format(n=n) for n in range(1, JOBS + 1))


def makespan(tmp: Path, workers: list[str]) -> dict[str, Any]:
    """Push once; seconds until every build of the revision completed, and per build."""
    from tests.support.cluster import Cluster

    cluster = Cluster(tmp, matrix(), {name: ["docker"] for name in workers})
    try:
        cluster.start()
        master = cluster.master
        revision, pushed, _ = master.commit_and_push({"kernel/BENCH.txt": "h\n"}, "bench h")
        names = {f"b{n:02d}/6.1" for n in range(1, JOBS + 1)}
        builds = master.wait_complete(revision, names, timeout=3600)
        failed = [n for n, b in builds.items() if b["results"] != 0]
        if failed:
            raise SystemExit(f"bench (h): builds failed: {failed}")
        done = max(b["complete_at"] for b in builds.values())
        per_build = sorted(b["complete_at"] - b["started_at"] for b in builds.values())
        by_worker: dict[str, int] = {}
        for build in builds.values():
            worker = cluster.worker_of(build)
            by_worker[worker] = by_worker.get(worker, 0) + 1
        return {"seconds": done - pushed, "build_s": per_build, "by_worker": by_worker}
    finally:
        cluster.stop()


def bench_h(tmp: Path, runs: int, log: Any) -> dict[str, Any]:
    """Ratio of throughput, two workers against one (median of `runs` pairs)."""
    one, two = [], []
    for i in range(runs):
        log(f"(h) run {i + 1}/{runs}: {JOBS} jobs on one worker")
        one.append(makespan(tmp / f"one-{i}", ["w1"]))
        log(f"(h) run {i + 1}/{runs}: one worker took {one[-1]['seconds']:.0f} s; "
            "now on two")
        two.append(makespan(tmp / f"two-{i}", ["w1", "w2"]))
        log(f"(h) two workers took {two[-1]['seconds']:.0f} s")
        time.sleep(1)
    ratios = [a["seconds"] / b["seconds"] for a, b in zip(one, two, strict=True)]
    value = statistics.median(ratios)
    return {"title": f"Buildbot throughput, 2 workers vs 1 ({JOBS} jobs, 1 CPU each, "
                     "1 slot per worker)",
            "value": value, "unit": "x", "goal": ">= 1.7", "met": value >= 1.7,
            "detail": f"median of {runs}: one worker "
                      f"{statistics.median(r['seconds'] for r in one):.0f} s, two workers "
                      f"{statistics.median(r['seconds'] for r in two):.0f} s (push to the "
                      f"last build's end); builds per worker {two[-1]['by_worker']}",
            "ratios": ratios, "one_worker": one, "two_workers": two}
