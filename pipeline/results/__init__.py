"""Results: the status model (status.py) and the converters of tool output to JUnit.

Owns status (statuses, JobResult: no I/O), ktap, libtest, build_log, merge, text and bench
(`# bench:` lines -> metrics, and their noise-aware comparison).
A leaf: used by run/, report/ and buildbot/, knows nothing of how jobs run.
May import: the base modules only.
"""
