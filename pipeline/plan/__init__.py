"""Planning: which jobs run, in what order, and under which cache key.

Owns select (filters and order), changes (changed paths -> affected jobs) and keys
(content-addressed cache keys). Nothing here starts a container or a VM.
May import: the base modules, pipeline.model, pipeline.debian, pipeline.results.
"""
