"""VM boot benchmark: every vm-test cell's job, N times, boot and test time apart.

    .venv/bin/python bench/vm_boot.py [--kernel 6.1 ...] [--runs 3] [--accel tcg|auto]

Works on a snapshot of the project (matrix, lock, images/, kernel/, userspace/) in a
temporary directory. One `pipeline run --job vm-test/<cell>...` builds what the VMs need
(kmod-build, vexctl-static; toolchain images and cargo caches are the user's, i.e. warm)
and boots each cell once as a warm-up (kernel download, PVH decompression, page cache).
Then, round by round (cells interleaved so machine noise spreads over all of them),
`pipeline job vm-test/<cell> --needs-dir ...` with the result cache disabled, reading
metadata.json's "vm" section:

    boot   QEMU start -> the init's start marker (QEMU, firmware, kernel, initramfs)
    test   start marker -> exit marker (the in-VM run-ktap.sh, i.e. insmod ... rmmod)
    total  boot + test: QEMU start to the verdict; the goal is a median <= 3 s per kernel
           under TCG for the host's architecture (a cell of another one, e.g. 6.12/arm64,
           emulates a foreign CPU: measured, no goal)
    job    wall time of the whole `pipeline job` process (Python start-up, initramfs
           build, QEMU exit, JUnit/metadata writing included)

A cell is a vm-test job id without `vm-test/` (6.1, 6.12/arm64); `--kernel 6.12` selects
every cell of that kernel. Prints a table and writes bench/results-vm.json (every sample,
not only medians, and the load average before and after). A run that does not pass is
recorded and the script exits 1 after writing the results. Nothing else asserts: these
are measurements, not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
PROJECT_PARTS = ("matrix.yml", "matrix.lock", "kernel", "userspace")
IGNORE = shutil.ignore_patterns("target", "*.o", "*.ko", "*.mod*", ".*.cmd", "Module.symvers",
                                "modules.order")
GOAL_SECONDS = 3.0
HOST_ARCH = "amd64"  # cells without an `arch` axis; the goal is for them
METRICS = ("boot", "test", "total", "job")


def log(message: str) -> None:
    print(f"vm_boot: {message}", file=sys.stderr, flush=True)


def snapshot(dest: Path) -> Path:
    """Copy the project parts a run needs to dest/project."""
    root = dest / "project"
    root.mkdir()
    for part in PROJECT_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, root / part, ignore=IGNORE)
        elif src.is_file():
            shutil.copy2(src, root / part)
    return root


def pipeline(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=3600)


def vm_cells(root: Path, env: dict[str, str], wanted: list[str]) -> dict[str, str]:
    """The matrix's vm-test cells (all, or those whose id or kernel is in `wanted`): cell
    label (job id without `vm-test/`) -> its Debian architecture."""
    proc = pipeline(root, env, "list", "--json", "--job", "vm-test/*")
    if proc.returncode != 0:
        raise SystemExit(f"vm_boot: pipeline list failed:\n{proc.stderr[-2000:]}")
    cells = {job["id"].split("/", 1)[1]: (job["axes"].get("kernel"),
                                          job["axes"].get("arch", HOST_ARCH))
             for job in json.loads(proc.stdout)
             if job["name"] == "vm-test" and "kernel" in job["axes"]}
    if wanted:
        chosen = {c: v for c, v in cells.items() if c in wanted or v[0] in wanted}
        unknown = sorted(w for w in wanted if w not in cells
                         and w not in {k for k, _ in cells.values()})
        if unknown:
            raise SystemExit(f"vm_boot: no vm-test job for {', '.join(unknown)}; "
                             f"the matrix has {', '.join(cells)}")
        cells = chosen
    return {cell: arch for cell, (_, arch) in cells.items()}


def stats(values: list[float]) -> dict[str, Any]:
    return {"median": round(statistics.median(values), 3) if values else None,
            "min": round(min(values), 3) if values else None,
            "max": round(max(values), 3) if values else None,
            "samples": [round(v, 3) for v in values]}


def one_run(root: Path, env: dict[str, str], kernel: str, out: Path,
            needs: Path) -> dict[str, Any]:
    """One `pipeline job vm-test/<kernel>` (a cell label); its metadata's `vm` figures."""
    job = f"vm-test/{kernel}"
    t0 = time.perf_counter()
    proc = pipeline(root, env, "job", job, "--dir", str(out), "--needs-dir", str(needs))
    wall = time.perf_counter() - t0
    meta_path = out / job / "metadata.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    vm = meta.get("vm") or {}
    boot, test = vm.get("boot_seconds"), vm.get("test_seconds")
    return {"status": meta.get("status", f"exit {proc.returncode}"),
            "vm_status": vm.get("status"), "accel": vm.get("accel"),
            "boot": boot, "test": test,
            "total": None if boot is None or test is None else boot + test,
            "job": wall, "tests": (meta.get("tests") or {}).get("total"),
            "message": meta.get("message") or (proc.stderr.strip().splitlines() or [""])[-1]}


def render_table(result: dict[str, Any]) -> str:
    head = ("cell", "boot s", "test s", "total s", "job s", "tests", "accel",
            f"total <= {GOAL_SECONDS:g} s")
    rows = [head]
    for kernel, k in result["kernels"].items():
        def med(metric: str, k: dict[str, Any] = k) -> str:
            s = k[metric]
            return "-" if s["median"] is None else (
                f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})")
        rows.append((kernel, med("boot"), med("test"), med("total"), med("job"),
                     str(k["tests"]), k["accel"] or "-",
                     {True: "yes", False: "NO", None: "-"}[k["meets_goal"]]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + (
        f"\nmedian (min-max) of {result['runs']} run(s) per cell; total = QEMU start to "
        "verdict (exit marker); job = the whole `pipeline job` process; load average "
        f"{result['load_avg_before'][0]:.1f} before, {result['load_avg'][0]:.1f} after")


def measure(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, str], dict[str, list]]:
    """Warm-up run, then args.runs rounds over the cells; (cells, samples per cell)."""
    root = snapshot(tmp)
    env = {**os.environ, "KMATRIX_RESULT_CACHE_DIR": str(tmp / "results")}
    env.pop("KMATRIX_ACCEL", None)
    if args.accel != "auto":
        env["KMATRIX_ACCEL"] = args.accel
    cells = vm_cells(root, env, args.kernel)
    log(f"cells {', '.join(cells)}; building the needs and one warm-up boot each")
    jobs = [arg for k in cells for arg in ("--job", f"vm-test/{k}")]
    warm = pipeline(root, env, "run", *jobs)
    if warm.returncode != 0:
        raise SystemExit(f"vm_boot: warm-up run failed:\n{warm.stdout[-3000:]}\n"
                         f"{warm.stderr[-2000:]}")
    needs = (root / "reports" / "latest").resolve()
    env["KMATRIX_RESULT_CACHE_MB"] = "0"  # every measured job really boots
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in cells}
    for i in range(args.runs):
        for cell in cells:
            run = one_run(root, env, cell, tmp / "runs" / f"{i}-{cell.replace('/', '-')}",
                          needs)
            log(f"round {i + 1}/{args.runs} {cell}: {run['status']}, boot "
                f"{run['boot'] or 0:.2f} s, tests {run['test'] or 0:.2f} s, "
                f"job {run['job']:.2f} s ({run['accel']})")
            samples[cell].append(run)
    return cells, samples


def cell_entry(runs: list[dict[str, Any]], arch: str) -> dict[str, Any]:
    """Medians and failures of one cell; the goal applies to the host's architecture."""
    passed = [r for r in runs if r["status"] == "passed"]
    entry: dict[str, Any] = {
        metric: stats([r[metric] for r in passed if r[metric] is not None])
        for metric in METRICS}
    total = entry["total"]["median"]
    entry.update({
        "arch": arch,
        "accel": ",".join(sorted({r["accel"] for r in runs if r["accel"]})) or None,
        "tests": max((r["tests"] or 0 for r in runs), default=0),
        "passed": len(passed), "failed": [
            {"status": r["status"], "vm_status": r["vm_status"], "message": r["message"]}
            for r in runs if r["status"] != "passed"],
        "meets_goal": None if total is None or arch != HOST_ARCH else total <= GOAL_SECONDS,
    })
    return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", action="append", default=[],
                    help="cell (6.1, 6.12/arm64) or kernel axis value (repeatable; default: "
                         "every vm-test cell)")
    ap.add_argument("--runs", type=int, default=3, help="boots per cell (default 3)")
    ap.add_argument("--accel", choices=("tcg", "auto", "kvm"), default="tcg",
                    help="tcg (default: the goal is for TCG), auto (KVM when it works), kvm")
    ap.add_argument("--output", type=Path, default=BENCH / "results-vm.json")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be >= 1")

    load_before = [round(x, 2) for x in os.getloadavg()]
    tmp = Path(tempfile.mkdtemp(prefix="kmatrix-vm-bench-"))
    try:
        cells, samples = measure(args, tmp)
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result: dict[str, Any] = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(), "cpus": os.cpu_count(), "load_avg_before": load_before,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "runs": args.runs, "accel_requested": args.accel, "goal_total_seconds": GOAL_SECONDS,
        "goal_applies_to": HOST_ARCH,
        "kernels": {cell: cell_entry(runs, cells[cell]) for cell, runs in samples.items()},
    }
    failed = any(k["failed"] for k in result["kernels"].values())
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(render_table(result))
    log(f"wrote {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
