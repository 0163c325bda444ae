"""Running: one job on its runtime, and many jobs by the scheduler.

Owns runner (run_job: the one execution path), runtimes/ (Runtime; container and VM
runtimes, picked by runtime_for), frame (what a running job records), cached (result
cache hits and stores), store (the cache's files), context (RunContext wiring, signals),
executor (Docker), vm + console + initramfs + pvh + kvm (QEMU), scheduler and masking.
May import: the base modules, pipeline.model, pipeline.debian, pipeline.results,
pipeline.plan.
"""
