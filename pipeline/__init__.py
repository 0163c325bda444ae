"""kmatrix: a declarative build/test matrix for out-of-tree kernel modules and Rust crates.

The flow of one matrix cell, one subpackage per stage; imports run down this list only
(tests/unit/test_layout.py checks it):

    cli        parse and dispatch (nothing imports it)
    buildbot   master.cfg, steps, dashboard, master/worker control
    report     summary, terminal progress, HTML matrix, regressions
    run        runner, runtimes (container, VM), scheduler, result store
    plan       selection, changed paths, cache keys
    debian     lock, kernel packages, images
    model      matrix.yml -> typed model -> job graph
    results    status model, converters to JUnit (a leaf)
    errors, paths, fsutil   the base modules every layer may use
"""

__version__ = "0.1.0"
