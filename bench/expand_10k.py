"""Benchmark: load, validate and expand a generated matrix.yml of ~10,000 cells.

    python bench/expand_10k.py [CELLS] [REPEATS]

The matrix has K kernels x F explicit feature sets x 2 values of a user-defined axis `cc`
(gcc, clang with env; K * F * 2 = CELLS) on one job `test`, which needs a per-kernel `build`
job (K more cells), so needs resolution is exercised too; include and exclude name all three
axes.
A small Cargo.toml sits next to it so feature names are checked as in a real project.
`measure()` returns the medians (seconds) of each phase; other benchmarks import it.
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.model.expand import expand
from pipeline.model.matrix import build_matrix
from pipeline.model.yamlmarks import load_yaml_file

CARGO_FEATURES = ("userspace", "kernel", "serde", "fast-search")
CC = ("gcc", "clang")  # the third axis


def _shape(cells: int) -> tuple[int, int]:
    kernels = max(1, math.isqrt(cells))
    return kernels, max(1, cells // (kernels * len(CC)))


def matrix_text(cells: int = 10_000) -> str:
    """A matrix.yml whose `test` job has about `cells` cells (kernels x feature sets x cc)."""
    kernels, features = _shape(cells)
    suites = ("bullseye", "bookworm", "trixie", "trixie-backports")
    lines = ["version: 1", "defaults:", "  timeout: 600", "kernels:"]
    lines += [f'  "{5 + i // 100}.{i % 100}": {{suite: {suites[i % 4]}}}'
              for i in range(kernels)]
    lines.append("features:")
    for i in range(features):
        chosen = [CARGO_FEATURES[j] for j in range(4) if (i >> j) & 1] or ["userspace"]
        lines.append(f"  set{i}: {{no-default-features: true, features: [{', '.join(chosen)}]}}")
    lines += [
        "axes:",
        "  cc:",
        "    gcc: {}",
        "    clang: {env: {LLVM: \"1\"}}",
        "jobs:",
        "  build:",
        "    over: [kernel]",
        "    image: kbuild",
        "    inputs: [\"kernel/**\"]",
        "    steps:",
        "      - {name: build, results: build, run: make -C \"$SRC/kernel\" KDIR=\"$KDIR\"}",
        "  test:",
        "    over: [kernel, features, cc]",
        "    image: rust",
        "    needs: [build]",
        "    env: {RUST_BACKTRACE: 1}",
        "    run: cargo test $CARGO_FEATURE_ARGS",
        "exclude:",
        '  - {job: test, kernel: "5.0", features: set0, cc: clang}',
        "include:",
        '  - {job: test, kernel: "5.1", cc: clang, env: {EXTRA: "1"}}',
    ]
    return "\n".join(lines) + "\n"


def measure(cells: int = 10_000, repeats: int = 5) -> dict:
    """Medians (seconds) of load (YAML), validate (schema + model) and expand, and their sum."""
    times: dict[str, list[float]] = {"load": [], "validate": [], "expand": [], "total": []}
    jobs = 0
    with tempfile.TemporaryDirectory(prefix="kmatrix-bench-") as tmp:
        root = Path(tmp)
        (root / "Cargo.toml").write_text(
            '[package]\nname = "x"\nversion = "0.1.0"\n[features]\ndefault = ["userspace"]\n'
            + "".join(f'{f} = []\n' for f in CARGO_FEATURES))
        path = root / "matrix.yml"
        path.write_text(matrix_text(cells))
        for _ in range(repeats):
            t0 = time.perf_counter()
            data = load_yaml_file(path)
            t1 = time.perf_counter()
            matrix = build_matrix(data, path)
            t2 = time.perf_counter()
            jobs = len(expand(matrix))
            t3 = time.perf_counter()
            for key, value in (("load", t1 - t0), ("validate", t2 - t1), ("expand", t3 - t2),
                               ("total", t3 - t0)):
                times[key].append(value)
    kernels, features = _shape(cells)
    result: dict = {key: statistics.median(values) for key, values in times.items()}
    result.update(cells=kernels * features * len(CC), jobs=jobs, repeats=repeats,
                  yaml_bytes=len(matrix_text(cells)))
    return result


def main(argv: list[str]) -> int:
    cells = int(argv[0]) if argv else 10_000
    repeats = int(argv[1]) if len(argv) > 1 else 5
    r = measure(cells, repeats)
    print(f"{r['cells']} cells ({r['jobs']} jobs), median of {r['repeats']}: "
          f"load {r['load'] * 1000:.1f} ms, validate {r['validate'] * 1000:.1f} ms, "
          f"expand {r['expand'] * 1000:.1f} ms, total {r['total'] * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
