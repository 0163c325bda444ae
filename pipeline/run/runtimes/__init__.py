"""Job runtimes: where a job's work runs, behind one interface (base.Runtime).

runtime_for(job) picks the registered runtime that handles the job: ContainerRuntime (its
steps in Docker containers) or VmRuntime (a `vm:` job, booted in QEMU). A new runtime is a
Runtime subclass decorated with @register and imported here.
"""

from pipeline.run.runtimes.base import RUNTIMES, Runtime, register, runtime_for
from pipeline.run.runtimes.container import ContainerRuntime
from pipeline.run.runtimes.vm import VmRuntime

__all__ = ["RUNTIMES", "ContainerRuntime", "Runtime", "VmRuntime", "register", "runtime_for"]
