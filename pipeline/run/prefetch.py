"""Work a run needs later that waits on other processes, started as early as possible.

What VM jobs run on (pipeline.run.vm.runtime_identity: `qemu-system-* --version`, the
busybox and init digests) is part of their cache keys; finding it takes QEMU a tenth of a
second, all of it in subprocesses. `pipeline run` starts it right after reading the matrix,
in a thread, so that it is ready when the first VM job's key is computed instead of making
that job, and every key computed after it, wait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from pipeline.model.expand import Job


def in_background(compute: Callable[[], Any]) -> Callable[[], Any]:
    """compute() started now in a thread (it waits on subprocesses, not on the CPU); the
    function returned waits for its result, or raises what it raised."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = compute()
        except BaseException as exc:  # raised again to the caller of result()
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="kmatrix-prefetch", daemon=True)
    thread.start()

    def result() -> Any:
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return result


def vm_identity(jobs: Iterable[Job]) -> Callable[[], dict[str, str]] | None:
    """runtime_identity() in the background when one of `jobs` is a VM job, else None."""
    if not any(job.spec.vm is not None for job in jobs):
        return None
    from pipeline.run import vm

    return in_background(vm.runtime_identity)
