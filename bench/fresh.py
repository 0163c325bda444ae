"""(i) a fresh machine: `make run` in a fresh clone, with no image, cache or venv of its own.

    .venv/bin/python bench/run.py --only i       (or: .venv/bin/python bench/fresh.py)

What a newcomer pays, measured without touching the user's images and caches: a `git clone`
of HEAD into a temporary directory, then its `make run` (scripts/setup.sh: the venv from PyPI
with an empty pip cache; then `pipeline run` on the shipped defaults) with

    KMATRIX_IMAGE_NAMESPACE=kmatrix-fresh-<pid>   every image is built again under that name
                                                  (rootfs bootstraps, toolchain images, the
                                                  kernel trees prepared for clang and Rust),
                                                  beside the user's ones
    KMATRIX_CACHE_DIR, XDG_CACHE_HOME, PIP_CACHE_DIR   empty directories: apt archives,
                                                  kernel packages, cargo registry and
                                                  targets, results, pip's downloads

Each output line is stamped with its time since the start, so the timeline (setup, each
image, each job) is in results.json. Afterwards the namespace's images and the temporary
directory are removed. What it does not redo: the host's apt packages (scripts/setup.sh
finds them installed) and Docker's own layer store of identical base layers (a `docker
import` of the same rootfs is a new image either way).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
GOAL_S = 600.0
STAMPED = re.compile(r"^(START|PASS|FAIL|ERROR|CACHED|SKIP|run |setup: |\.venv/bin/pipeline"
                     r"|  bootstrapping|  building image|\S+ +\S+/\S+ +\d)")


def _namespace_images(namespace: str) -> list[str]:
    out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
                         capture_output=True, text=True, check=False).stdout
    return [tag for tag in out.split() if tag.startswith(namespace + "/")]


def _remove_images(namespace: str, say: Callable[[str], None]) -> None:
    tags = _namespace_images(namespace)
    if tags:
        proc = subprocess.run(["docker", "rmi", "--force", *tags], capture_output=True,
                              text=True, check=False)
        say(f"(i) removed {len(tags)} images of {namespace}"
            + ("" if proc.returncode == 0 else f" (docker rmi: {proc.stderr.strip()[-300:]})"))


def _make_run(clone: Path, env: dict[str, str], log_path: Path,
              say: Callable[[str], None]) -> tuple[float, int, list[list[Any]]]:
    """`make run` in the clone; (wall seconds, exit code, [seconds, line] for key lines)."""
    timeline: list[list[Any]] = []
    t0 = time.perf_counter()
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(["make", "run"], cwd=clone, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.perf_counter() - t0
            log_file.write(f"{now:8.1f} {line}")
            if STAMPED.match(line):
                timeline.append([round(now, 1), line.rstrip()[:200]])
                say(f"(i) {now:6.0f} s  {line.rstrip()[:120]}")
        code = proc.wait()
    return time.perf_counter() - t0, code, timeline


def bench_i(tmp: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """`make run` in a fresh clone under a throwaway image namespace and empty caches."""
    namespace = f"kmatrix-fresh-{os.getpid()}"
    clone = tmp / "fresh"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, text=True,
                            capture_output=True, check=True).stdout.strip()
    caches = {"KMATRIX_CACHE_DIR": tmp / "cache", "XDG_CACHE_HOME": tmp / "xdg",
              "PIP_CACHE_DIR": tmp / "pip"}
    env = {**os.environ, "KMATRIX_IMAGE_NAMESPACE": namespace,
           **{name: str(path) for name, path in caches.items()}}
    for name in ("KMATRIX_RESULT_CACHE_DIR", "VIRTUAL_ENV"):
        env.pop(name, None)
    say(f"(i) make run in a fresh clone, images under {namespace}/ (tens of minutes)")
    try:
        wall, code, timeline = _make_run(clone, env, tmp / "make-run.log", say)
        summary_path = clone / "reports" / "latest" / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        log_tail = (tmp / "make-run.log").read_text()[-3000:]
    finally:
        _remove_images(namespace, say)
    passed = code == 0 and summary.get("status") == "passed"
    setup_s = next((t for t, line in timeline if line.startswith(".venv/bin/pipeline")), None)
    counts = (f", {len(summary['results'])} jobs, {summary['tests']['total']} tests"
              if passed else "")
    return {"title": "fresh machine: `make run` in a fresh clone to a green matrix "
                     "(own image namespace, empty caches)",
            "value": wall, "unit": "s", "goal": f"<= {GOAL_S:.0f} s",
            "met": passed and wall <= GOAL_S,
            "detail": (f"{wall / 60:.1f} min: setup (venv) {setup_s or 0:.0f} s, then the "
                       f"matrix {'green' if passed else f'NOT green (exit {code})'}{counts}; "
                       "timeline in results.json"),
            "commit": commit, "dirty": False,  # a clone: only what HEAD holds
            "exit": code, "status": summary.get("status"), "timeline": timeline,
            "log_tail": None if passed else log_tail}


def main() -> int:
    def say(message: str) -> None:
        print(f"bench: {message}", file=sys.stderr, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="kmatrix-bench-i-"))
    try:
        row = bench_i(tmp, say)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({k: v for k, v in row.items() if k != "timeline"}, indent=2))
    return 0 if row["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
