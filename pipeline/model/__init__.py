"""The model: matrix.yml read with file:line:col marks, validated, typed and expanded.

Owns yamlmarks, schema (and reference, the docs tables made from it), matrix, features,
kernels (declarations), bench (a job's `bench:` settings), recipes (built-in job kinds as
YAML) and expand (the job graph).
Pure: no Docker, no network, no runs.
May import: pipeline.errors, pipeline.paths, pipeline.fsutil (the base modules).
"""
