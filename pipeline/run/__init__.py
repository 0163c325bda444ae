"""Running: one job on its runtime, and many jobs by the scheduler.

Owns runner (run_job: the one execution path), the runtimes (container, VM), executor
(Docker), vm and kvm (QEMU), scheduler, masking and store (the result cache's files).
May import: the base modules, pipeline.model, pipeline.debian, pipeline.results,
pipeline.plan.
"""
