"""Benchmark: what hermetic inputs cost per job on the shipped matrix (bench (j)).

    python bench/inputs_cost.py [RUNS]

Each job sees only its inputs at /src: a tree of hard links made once per distinct input
set per run (pipeline.run.inputs.InputTrees) and removed at the end. On the project's own
checkout (read-only: the trees go to the kmatrix cache, as in a run), each round lists the
project and matches each job's inputs (git ls-files and globs: done for the cache keys
anyway, so timed apart as `listing`), asks for the tree of every job of matrix.yml in
order, as a run does, then removes them. The cost per job is
(making + removing) / jobs. `alone` is a tree made from scratch for one job, as
`pipeline job` (one job per process: a Buildbot step) does: the slowest input set's.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.model.expand import expand  # noqa: E402
from pipeline.model.matrix import load_matrix  # noqa: E402
from pipeline.plan.keys import SourceTree  # noqa: E402
from pipeline.run.inputs import InputTrees  # noqa: E402


def one_run(root: Path, jobs: list[Any]) -> dict[str, Any]:
    """One run's worth: (listing, per-job tree times, removal) in seconds."""
    source = SourceTree(root)
    t0 = time.perf_counter()
    for job in jobs:  # the cache keys list and match the inputs first (digest())
        source.matched(tuple(job.spec.inputs))
    listing = time.perf_counter() - t0
    trees = InputTrees(source)
    per_job: dict[str, float] = {}
    made: dict[str, tuple[float, int]] = {}
    for job in jobs:
        t0 = time.perf_counter()
        tree = trees.tree(tuple(job.spec.inputs))
        per_job[job.id] = time.perf_counter() - t0
        if tree.seconds:
            made[", ".join(tree.globs) or "(no inputs)"] = (per_job[job.id], len(tree.files))
    t0 = time.perf_counter()
    trees.close()
    removing = time.perf_counter() - t0
    return {"listing_s": listing, "jobs_s": per_job, "removing_s": removing,
            "made": made, "linked": tree.linked}


def measure(runs: int = 9, root: Path = ROOT) -> dict[str, Any]:
    """Medians over `runs` rounds (after one warm-up); every sample is returned too."""
    jobs = expand(load_matrix(root / "matrix.yml"))
    one_run(root, jobs)  # warm-up: page cache, imports
    samples = [one_run(root, jobs) for _ in range(runs)]
    totals = [sum(s["jobs_s"].values()) + s["removing_s"] for s in samples]
    per_job = [t / len(jobs) for t in totals]
    sets = samples[0]["made"]
    alone = {name: statistics.median(s["made"][name][0] for s in samples) for name in sets}
    worst = max(alone, key=lambda name: alone[name])
    return {
        "jobs": len(jobs), "input_sets": len(sets), "per_job": statistics.median(per_job),
        "run_total": statistics.median(totals),
        "making": statistics.median(sum(s["jobs_s"].values()) for s in samples),
        "removing": statistics.median(s["removing_s"] for s in samples),
        "listing": statistics.median(s["listing_s"] for s in samples),
        "alone_worst": alone[worst], "alone_worst_set": worst,
        "alone_worst_files": sets[worst][1], "alone": alone,
        "files": {name: files for name, (_, files) in sets.items()},
        "linked": samples[0]["linked"], "runs": runs, "per_job_s": per_job,
        "samples": samples,
    }


if __name__ == "__main__":
    result = measure(int(sys.argv[1]) if len(sys.argv) > 1 else 9)
    print(f"{result['jobs']} jobs, {result['input_sets']} input sets: "
          f"{result['per_job'] * 1000:.2f} ms per job (run: {result['run_total'] * 1000:.1f} ms"
          f"); alone: worst {result['alone_worst'] * 1000:.1f} ms "
          f"({result['alone_worst_set']}, {result['alone_worst_files']} files); "
          f"listing and matching (shared with the keys) {result['listing'] * 1000:.1f} ms")
