"""kmatrix benchmark suite: ratios measured side by side in one run (see bench/README.md).

    make bench [ARGS="--only a,b --runs 7"]      or      .venv/bin/python bench/run.py

Runs on a snapshot of the project (sources, matrix, lock, images) in a temporary directory,
so edits made meanwhile do not disturb it, with a fresh result cache there; toolchain images
and build caches (cargo) are the user's, i.e. warm. Prints a table, writes
bench/results.json and refreshes the table in bench/README.md. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
PROJECT_PARTS = ("matrix.yml", "matrix.lock", "kernel", "userspace")
IGNORE = shutil.ignore_patterns("target", "*.o", "*.ko", "*.mod*", ".*.cmd", "Module.symvers",
                                "modules.order")
JOB_A = "kmod-build/6.1"
ALL = "abcdefghij"
VM_GOAL_S = 3.0  # (d): boot + tests per kernel (the host's architecture), TCG
OUTPUTS = ("results.json", "results-vm.json", "README.md")
TABLE_START, TABLE_END = "<!-- bench:table -->", "<!-- /bench:table -->"


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Project:
    """A snapshot of the project and a way to run `pipeline` in it."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "project"
        self.root.mkdir()
        for part in PROJECT_PARTS:
            src = ROOT / part
            if src.is_dir():
                shutil.copytree(src, self.root / part, ignore=IGNORE)
            elif src.is_file():
                shutil.copy2(src, self.root / part)
        self.env = {**os.environ, "KMATRIX_RESULT_CACHE_DIR": str(tmp / "results")}

    def pipeline(self, *args: str, check: bool = True,
                 results: Path | None = None) -> tuple[float, dict[str, Any]]:
        """Run `pipeline ARGS` as a user would; (wall seconds, summary.json of the run)."""
        env = dict(self.env)
        if results is not None:
            env["KMATRIX_RESULT_CACHE_DIR"] = str(results)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=self.root,
                              env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if check and proc.returncode != 0:
            raise SystemExit(f"bench: pipeline {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        summary = self.root / "reports" / "latest" / "summary.json"
        return wall, json.loads(summary.read_text()) if summary.is_file() else {}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def raw_script(reproduce: Path) -> str:
    """reproduce.sh without its image check and echoes: the bare `docker run`(s)."""
    keep = [line for line in reproduce.read_text().splitlines()
            if not line.startswith(("docker image inspect", "echo "))]
    return "\n".join(keep) + "\n"


def bench_a(project: Project, runs: int, tmp: Path) -> dict[str, Any]:
    """`pipeline run --job kmod-build/6.1 --no-cache` vs the same `docker run` by hand."""
    log(f"(a) {JOB_A}: warm-up")
    project.pipeline("run", "--job", JOB_A, "--no-cache")
    script = tmp / "raw.sh"
    script.write_text(raw_script(project.root / "reports" / "latest" / JOB_A / "reproduce.sh"))
    pipeline_s: list[float] = []
    job_s: list[float] = []
    raw_s: list[float] = []

    def raw() -> None:
        out, work = Path(tempfile.mkdtemp(dir=tmp)), Path(tempfile.mkdtemp(dir=tmp))
        t0 = time.perf_counter()
        proc = subprocess.run(["bash", str(script)], env={**os.environ, "OUT": str(out),
                                                           "WORK": str(work)},
                              capture_output=True, text=True)
        raw_s.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"bench: raw docker run failed:\n{proc.stdout[-2000:]}")
        for path in (out, work):  # the container wrote them as uid 1000: root removes
            shutil.rmtree(path, ignore_errors=True)

    def managed() -> None:
        wall, summary = project.pipeline("run", "--job", JOB_A, "--no-cache")
        pipeline_s.append(wall)
        job_s.append(summary["results"][0]["seconds"])

    for i in range(runs):
        log(f"(a) round {i + 1}/{runs}")
        for step in ((managed, raw) if i % 2 == 0 else (raw, managed)):
            step()
    ratio = median(pipeline_s) / median(raw_s)
    per_round = [p / r for p, r in zip(pipeline_s, raw_s, strict=True)]
    return {"title": f"`pipeline run --job {JOB_A} --no-cache` / raw `docker run`",
            "value": ratio, "unit": "x", "goal": "<= 1.05", "met": ratio <= 1.05,
            "detail": f"medians of {runs} alternating: pipeline {median(pipeline_s):.2f} s "
                      f"(job itself {median(job_s):.2f} s), docker run {median(raw_s):.2f} s; "
                      f"median of per-round ratios {median(per_round):.2f}, fastest/fastest "
                      f"{min(pipeline_s) / min(raw_s):.2f}",
            "pipeline_s": pipeline_s, "job_s": job_s, "raw_s": raw_s}


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def full_matrix(project: Project, tmp: Path, parallel: int) -> tuple[float, dict[str, Any]]:
    """Warm-up run (own throwaway result cache), then the first warm run into a fresh one;
    the summary gets the machine's CPU utilisation during that run."""
    log("(b, c) full matrix: warm-up run (build caches, not timed)")
    # its report goes elsewhere: the timed run must not judge its bench jobs against it
    project.pipeline("run", "--no-cache", "-j", str(parallel), "--reports",
                     str(tmp / "warmup-reports"), results=tmp / "warmup-results")
    log("(b, c) full matrix: first warm run (timed, fills an empty result cache)")
    project.env["KMATRIX_RESULT_CACHE_DIR"] = str(tmp / "results-matrix")  # not (a)'s
    busy0, total0 = cpu_ticks()
    wall, summary = project.pipeline("run", "-j", str(parallel))
    busy1, total1 = cpu_ticks()
    summary["cpu_busy"] = (busy1 - busy0) / max(1, total1 - total0)
    return wall, summary


def bench_b(project: Project, warm_wall: float, runs: int, parallel: int) -> dict[str, Any]:
    """The whole matrix again with nothing changed (all cached) vs the first warm run."""
    walls = []
    statuses: dict[str, int] = {}
    for i in range(runs):
        log(f"(b) all-cached re-run {i + 1}/{runs}")
        wall, summary = project.pipeline("run", "-j", str(parallel))
        walls.append(wall)
        statuses = summary.get("jobs", {})
    cached = median(walls)
    ratio = cached / warm_wall
    return {"title": "whole matrix re-run, nothing changed (all cached): wall time",
            "value": cached, "unit": "s", "goal": "<= 0.3 s", "met": cached <= 0.3,
            "detail": f"median of {runs} re-runs (jobs: "
                      f"{', '.join(f'{n} {s}' for s, n in statuses.items())}; fastest "
                      f"{min(walls):.2f} s); {ratio:.2%} of the first warm run "
                      f"({warm_wall:.1f} s)",
            "cached_s": walls, "warm_s": warm_wall, "ratio": ratio}


def bench_c(warm_wall: float, summary: dict[str, Any], parallel: int) -> dict[str, Any]:
    """Parallel efficiency of the first warm run: sum of job times / (wall x parallelism)."""
    jobs = {r["id"]: r["seconds"] for r in summary["results"]}
    total = sum(jobs.values())
    efficiency = total / (warm_wall * parallel)
    return {"title": f"parallel efficiency of the full matrix (-j {parallel})",
            "value": efficiency, "unit": "", "goal": ">= 0.8", "met": efficiency >= 0.8,
            "detail": f"sum of {len(jobs)} job times {total:.1f} s / (wall {warm_wall:.1f} s "
                      f"x {parallel}); all CPUs were busy {summary['cpu_busy']:.0%} of that wall "
                      "time", "cpu_busy": summary["cpu_busy"], "jobs_s": jobs}


def bench_d(project: Project) -> dict[str, Any]:
    """Per-kernel VM boot and test times: medians from bench/results-vm.json when present
    (bench/vm_boot.py), else the vm-test jobs of the first warm run (metadata.json `vm`).
    The figure is the slowest amd64 kernel's boot + tests; the goal is VM_GOAL_S for each
    (a cell of another architecture, 6.12/arm64, is shown without a goal)."""
    warm: dict[str, dict[str, Any]] = {}
    for meta_path in sorted((project.root / "reports" / "latest").glob("vm-test/**/metadata.json")):
        meta = json.loads(meta_path.read_text())
        vm = meta.get("vm") or {}
        warm[meta["job"].split("/", 1)[-1]] = {
            "boot": vm.get("boot_seconds"), "test": vm.get("test_seconds"),
            "accel": vm.get("accel"), "job": meta.get("seconds"),
            "arch": meta["axes"].get("arch", "amd64")}
    external: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        external = json.loads((BENCH / "results-vm.json").read_text())
    if external.get("kernels"):
        shown = {k: {"boot": v["boot"]["median"], "test": v["test"]["median"],
                     "total": (v.get("total") or {}).get("median"),
                     "accel": v.get("accel"), "arch": v.get("arch", "amd64")}
                 for k, v in external["kernels"].items()
                 if v.get("boot", {}).get("median") is not None}
        source = (f"bench/results-vm.json ({external.get('generated')}, medians of "
                  f"{external.get('runs')}, load {(external.get('load_avg') or ['?'])[0]})")
    else:
        shown = {k: v for k, v in warm.items() if v["boot"] is not None}
        source = "vm-test jobs of the first warm run (metadata.json `vm`)"
    totals = {k: v.get("total") or v["boot"] + v["test"]  # the median of the totals
              for k, v in shown.items() if v["arch"] == "amd64"}
    worst = max(totals.values()) if totals else None
    detail = ", ".join(f"{k}: boot {v['boot']:.2f} s + tests {v['test']:.2f} s ({v['accel']}"
                       f"{'' if v['arch'] == 'amd64' else ', no goal'})"
                       for k, v in shown.items())
    return {"title": "VM tests per kernel, boot + tests under TCG: the slowest kernel",
            "value": worst, "unit": "s", "goal": f"<= {VM_GOAL_S:g} s per kernel",
            "met": None if worst is None else worst <= VM_GOAL_S,
            "detail": f"{detail or 'no results'}; from {source}",
            "source": source, "per_kernel": shown, "warm_run": warm, "results_vm": external}


def bench_g(runs: int) -> dict[str, Any]:
    """kmatrix's vm-test job beside virtme-ng on the same kernel, module and KTAP script
    (bench/virtme.py: its own venv, the kernel's whole image package)."""
    from bench.virtme import measure

    log("(g) kmatrix vs virtme-ng (6.1, TCG)")
    try:
        return measure("6.1", runs)
    except (OSError, subprocess.CalledProcessError, SystemExit) as exc:
        return {"title": "kmatrix VM test / virtme-ng", "value": None, "unit": "x",
                "goal": "<= 0.5", "met": None, "detail": f"not measured: {exc}"}


def bench_e(runs: int) -> dict[str, Any]:
    """Load + validate + expand a generated 10,000-cell matrix in-process (bench/expand_10k)."""
    sys.path.insert(0, str(BENCH))
    from expand_10k import measure

    log("(e) 10,000-cell matrix")
    result = measure(10_000, max(5, runs))
    return {"title": "load + validate + expand a 10,000-cell matrix (in-process)",
            "value": result["total"], "unit": "s", "goal": "< 0.1 s", "met": result["total"] < 0.1,
            "detail": f"median of {result['repeats']}: load {result['load'] * 1000:.0f} ms, "
                      f"validate {result['validate'] * 1000:.0f} ms, expand "
                      f"{result['expand'] * 1000:.0f} ms ({result['jobs']} jobs)", **result}


def bench_j(runs: int) -> dict[str, Any]:
    """What hermetic inputs cost per job: the /src trees of the shipped matrix, made and
    removed as in a run, in-process on the checkout (bench/inputs_cost)."""
    sys.path.insert(0, str(BENCH))
    from inputs_cost import measure

    log("(j) hermetic inputs: /src trees of the shipped matrix")
    result = measure(max(9, runs))
    ms = result["per_job"] * 1000
    return {"title": "hermetic inputs: making and removing the jobs' /src trees, per job",
            "value": ms, "unit": "ms", "goal": "< 50 ms", "met": ms < 50,
            "detail": f"median of {result['runs']} runs of the shipped matrix: "
                      f"{result['jobs']} jobs, {result['input_sets']} distinct input sets "
                      f"({'hard links' if result['linked'] else 'copies'}), "
                      f"{result['run_total'] * 1000:.1f} ms per run (making "
                      f"{result['making'] * 1000:.1f}, removing "
                      f"{result['removing'] * 1000:.1f}); one job alone (`pipeline job`): "
                      f"at most {result['alone_worst'] * 1000:.1f} ms "
                      f"({result['alone_worst_files']} files); listing and matching the "
                      f"inputs, done for the cache keys anyway: "
                      f"{result['listing'] * 1000:.1f} ms", **result}


BUILDBOT_MATRIX = """\
version: 1
defaults: {timeout: 300, image-base: mmdebstrap}
kernels:
  "6.1": {suite: bookworm}
jobs:
  touch:
    over: [kernel]
    image: kbuild
    inputs: ["kernel/**"]
    run: echo ok
"""


def bench_f(tmp: Path, runs: int) -> dict[str, Any]:
    """Push-to-build-start latency through a real master + worker (MasterHarness)."""
    try:
        from tests.buildbot_harness import MasterHarness
    except ImportError as exc:
        return {"title": "push-to-build-start latency (Buildbot)", "value": None, "unit": "s",
                "goal": "-", "met": None, "detail": f"skipped: {exc}"}
    log("(f) Buildbot: starting a master and a worker")
    harness = MasterHarness(tmp / "bb", ROOT, BUILDBOT_MATRIX)
    seen_s, started_s = [], []
    try:
        harness.start()
        for i in range(runs):
            revision, pushed, _ = harness.commit_and_push(
                {"kernel/BENCH.txt": f"push {i}\n"}, f"bench push {i}")
            builds = harness.wait_for(lambda r=revision: harness.builds_for(r), 60,
                                      "the build", every=0.05)
            seen_s.append(time.time() - pushed)
            started_s.append(max(0.0, min(b["started_at"] for b in builds.values()) - pushed))
            harness.wait_complete(revision, {"touch/6.1"}, timeout=300)
            log(f"(f) push {i + 1}/{runs}: build visible after {seen_s[-1]:.2f} s")
    finally:
        harness.stop()
    value = median(seen_s)
    return {"title": "push-to-build-start latency (Buildbot, git push -> build in the API)",
            "value": value, "unit": "s", "goal": "-", "met": None,
            "detail": f"median of {runs}: first seen {value:.2f} s after the push (polled every "
                      f"50 ms); started_at - push {median(started_s):.1f} s (1 s resolution)",
            "seen_s": seen_s, "started_s": started_s}


def fmt(row: dict[str, Any]) -> str:
    value = row["value"]
    if value is None:
        return "-"
    return f"{value:.2f}{' ' + row['unit'] if row['unit'] not in ('', 'x') else row['unit']}"


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| | benchmark | measured | goal | met | details |",
             "|---|---|---|---|---|---|"]
    for name, row in results.items():
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        lines.append(f"| {name} | {row['title']} | {fmt(row)} | {row['goal']} | {met} | "
                     f"{row['detail']} |")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {"date": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": platform.node(), "cpus": os.cpu_count(), "kernel": platform.release(),
            "docker": out("docker", "version", "--format", "{{.Server.Version}}"),
            "commit": out("git", "rev-parse", "--short", "HEAD"),
            # the benchmarks' own outputs (bench/vm_boot.py's results-vm.json, written
            # before `make bench` copies it) do not make the measured code dirty
            "dirty": bool(out("git", "status", "--porcelain", "--untracked-files=no", "--",
                              ".", *(f":!bench/{name}" for name in OUTPUTS)))}


def stamp_line(rows: dict[str, dict[str, Any]], env: dict[str, Any]) -> str:
    """When and on which commit the rows were measured, grouped (runs with --only merge
    their rows into the earlier ones)."""
    groups: dict[tuple[str, str, bool], list[str]] = {}
    for name, row in rows.items():
        key = (str(row.get("measured", "?"))[:16], str(row.get("commit", "?")),
               bool(row.get("dirty", False)))
        groups.setdefault(key, []).append(name)
    parts = [f"({', '.join(names)}) {when} at commit {commit}"
             f"{' with uncommitted changes' if dirty else ''}"
             for (when, commit, dirty), names in sorted(groups.items())]
    return f"_{'; '.join(parts)}; {env['cpus']} CPUs, Docker {env['docker']}_"


def update_readme(text: str, env: dict[str, Any], rows: dict[str, dict[str, Any]]) -> None:
    readme = BENCH / "README.md"
    if not readme.is_file():
        return
    content = readme.read_text()
    if TABLE_START not in content or TABLE_END not in content:
        return
    head, rest = content.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    stamp = stamp_line(rows, env)
    readme.write_text(f"{head}{TABLE_START}\n{stamp}\n\n{text}\n{TABLE_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=ALL, help="which benchmarks, e.g. 'a,e' (default all)")
    parser.add_argument("--runs", type=int, default=5, help="repetitions where medians are taken")
    parser.add_argument("--runs-h", type=int, default=1,
                        help="pairs of (h) runs (each is 20 builds on 1 worker, then on 2)")
    parser.add_argument("-j", "--parallel", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    only = set(re.sub(r"[^a-z]", "", args.only))
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="kmatrix-bench-") as tmp_name:
        tmp = Path(tmp_name)
        project = Project(tmp)
        if "a" in only:  # the noisiest one: at least 9 rounds
            results["a"] = bench_a(project, max(args.runs, 9), tmp)
        if only & set("bcd"):
            warm_wall, summary = full_matrix(project, tmp, args.parallel)
            if "b" in only:
                results["b"] = bench_b(project, warm_wall, args.runs, args.parallel)
            if "c" in only:
                results["c"] = bench_c(warm_wall, summary, args.parallel)
            if "d" in only:
                results["d"] = bench_d(project)
        if "e" in only:
            results["e"] = bench_e(args.runs)
        if "f" in only:
            results["f"] = bench_f(tmp, min(args.runs, 3))
        if "h" in only:  # one pair is 20 + 20 builds (minutes): --runs-h for more
            from bench.buildbot_workers import bench_h

            results["h"] = bench_h(tmp, args.runs_h, log)
        if "g" in only:
            results["g"] = bench_g(args.runs)
        if "j" in only:
            results["j"] = bench_j(args.runs)
        if "i" in only:  # last: it builds every image again (tens of minutes)
            from bench.fresh import bench_i

            results["i"] = bench_i(tmp, log)
    env = environment()
    for row in results.values():  # (i) measures a clone of HEAD: it sets its own commit
        row["measured"] = env["date"]
        row.setdefault("commit", env["commit"])
        row.setdefault("dirty", env["dirty"])
    results = dict(sorted(results.items()))
    text = table(results)
    print(text)
    if not args.no_write:
        path = BENCH / "results.json"
        previous = json.loads(path.read_text()) if path.is_file() else {}
        merged = {**previous.get("benchmarks", {}), **results}
        path.write_text(json.dumps({**env, "benchmarks": dict(sorted(merged.items()))},
                                   indent=2) + "\n")
        update_readme(table(dict(sorted(merged.items()))), env, merged)
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
