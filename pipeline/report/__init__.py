"""Reporting: what a run shows: summary.json and the terminal table, live progress,
regressions and the HTML matrix (one view model, shared with the Buildbot dashboard).

May import: the base modules, pipeline.model, pipeline.results.
"""
