"""Reporting: what a run shows: summary.json and the terminal table, live progress,
regressions, bench jobs against their baselines (benchmarks, bench_view) and the HTML
matrix (one view model, shared with the Buildbot dashboard).

May import: the base modules, pipeline.model, pipeline.results.
"""
