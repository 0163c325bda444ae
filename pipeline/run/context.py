"""The wiring of one run or job: locked kernels, images, cache keys, result store, signals.

build_context() makes the RunContext that run_job() needs; stop_on_signals() turns Ctrl-C
and SIGTERM into stopping that context's containers and VMs (by id).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from pipeline.debian.images import ImageBase, ImageBuilder, ImageCatalog
from pipeline.debian.lock import LOCK_NAME, LockedKernel, check_lock, read_lock
from pipeline.errors import InputError
from pipeline.model.expand import Job
from pipeline.model.matrix import Matrix
from pipeline.plan.keys import SourceTree
from pipeline.run.inputs import InputTrees
from pipeline.run.runner import RunContext

Say = Callable[[str], None]


def image_base(matrix: Matrix) -> ImageBase:
    """How base images are made: matrix.yml's image_base, or KMATRIX_IMAGE_BASE."""
    mode = os.environ.get("KMATRIX_IMAGE_BASE", matrix.image_base)
    if mode not in ("mmdebstrap", "registry"):
        raise InputError(f"KMATRIX_IMAGE_BASE={mode!r} is not a known image base",
                         hint="use mmdebstrap or registry")
    return ImageBase(mode=mode, registry_image=matrix.registry_image, snapshot=matrix.snapshot)


def locked_kernels(matrix: Matrix, jobs: list[Job]) -> dict[str, LockedKernel]:
    """The matrix.lock entries of the kernels `jobs` use (InputError when it is stale)."""
    wanted = {j.kernel_key for j in jobs if j.kernel}
    sources = [s for s in matrix.kernel_sources(jobs) if s.key in wanted]
    return check_lock(sources, _read_lock(matrix.root / LOCK_NAME), matrix.root / LOCK_NAME)


_LOCKS: dict[tuple[str, int, int, int, int], dict[str, LockedKernel]] = {}


def _read_lock(path: Path) -> dict[str, LockedKernel]:
    """read_lock(), parsed once per process while the file is unchanged (a run checks the
    lock several times: before any work, for the lock check, for the cache keys)."""
    try:
        st = path.stat()
    except OSError:
        return read_lock(path)
    signature = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if signature not in _LOCKS:
        _LOCKS[signature] = read_lock(path)
    return dict(_LOCKS[signature])


def check_still_offered(matrix: Matrix, jobs: list[Job], client: Any, warn: Say
                        ) -> ImageBuilder:
    """Before any image work: InputError when a kernel of `jobs` pins packages its suite no
    longer offers and they are not all here yet (pipeline.debian.offered). Returns the
    ImageBuilder it used (build_context can go on with it)."""
    from pipeline.debian.kernels import cached_kernel_image
    from pipeline.debian.offered import check_offered

    kernels = locked_kernels(matrix, jobs)
    images = ImageBuilder(client, ImageCatalog(matrix.root / "images"), image_base(matrix))

    def local(kernel: LockedKernel) -> bool:
        mine = [j for j in jobs if j.kernel_key == kernel.key]
        tags = [images.plan(image, k)[2]
                for image, k in job_images(mine, kernels, images.catalog) if k is not None]
        boots = any(j.spec.vm is not None and not j.spec.vm.kernel for j in mine)
        return all(images.exists(t) for t in tags) and (
            not boots or cached_kernel_image(kernel) is not None)

    sources = {s.key: s for s in matrix.kernel_sources(jobs)}
    check_offered([(sources[key], k) for key, k in kernels.items()], local, warn)
    return images


def find_job(matrix: Matrix, jobs: list[Job], job_id: str) -> Job:
    """The job with id `job_id` (InputError with a did-you-mean hint)."""
    by_id = {j.id: j for j in jobs}
    if job_id not in by_id:
        from pipeline.model.schema import did_you_mean

        raise InputError(f"no job {job_id!r} in {matrix.path.name}",
                         hint=did_you_mean(job_id, list(by_id))
                         or "see the ids with `pipeline list`")
    return by_id[job_id]


def with_needs(jobs: list[Job], all_jobs: list[Job]) -> list[Job]:
    """`jobs` and their needs, transitively (what cache keys depend on)."""
    by_id = {j.id: j for j in all_jobs}
    seen = {j.id: j for j in jobs}
    stack = list(jobs)
    while stack:
        for need in stack.pop().needs:
            if need in by_id and need not in seen:
                seen[need] = by_id[need]
                stack.append(by_id[need])
    return list(seen.values())


def job_images(jobs: list[Job], kernels: dict[str, LockedKernel], catalog: ImageCatalog
               ) -> Iterator[tuple[str, LockedKernel | None]]:
    """Each toolchain image `jobs` use, once: (flavour, its kernel if it is per kernel)."""
    seen = set()
    for job in jobs:
        if not job.spec.image:  # a VM job boots a kernel; it has no toolchain image
            continue
        kernel = kernels.get(job.kernel_key) if catalog.per_kernel(job.spec.image) else None
        key = (job.spec.image, kernel.key if kernel else None)
        if key not in seen:
            seen.add(key)
            yield job.spec.image, kernel


def toolchain_images(matrix: Matrix, jobs: list[Job], build: bool, log: Say) -> Iterator[str]:
    """`pipeline images list|build`: the tag of each image `jobs` use; with `build`, each
    is built when missing and the line says so and how long it took."""
    from pipeline.run.executor import docker_client

    kernels = locked_kernels(matrix, jobs)
    catalog = ImageCatalog(matrix.root / "images")
    client = docker_client() if build else None
    if build:  # a stale lock is exit 2 before mmdebstrap
        check_still_offered(matrix, jobs, client, lambda m: log(f"warning: {m}"))
    builder = ImageBuilder(client, catalog, image_base(matrix), log=log)
    for image, kernel in job_images(jobs, kernels, catalog):
        if not build:
            yield builder.plan(image, kernel)[2]
            continue
        ref = builder.ensure(image, kernel)
        yield f"{ref.tag}  {'built' if ref.built else 'present'} ({ref.seconds:.1f} s)"


def _key_computer(matrix: Matrix, keyed: list[Job], kernels: dict[str, LockedKernel],
                  images: ImageBuilder, client: Any,
                  flavour_caches: dict[str, dict[str, str]], tree: SourceTree,
                  runtime: Callable[[], dict[str, str]] | None) -> Any:
    """The cache keys of `keyed`, with image tags as runner.ensure() names them; `runtime`
    gives what VM jobs run on (pipeline.run.prefetch.vm_identity, started when not given)."""
    from pipeline.plan.keys import KeyComputer, docker_image_id
    from pipeline.run import vm
    from pipeline.run.prefetch import vm_identity

    tags: dict[tuple[str, str | None], str] = {}

    def image_tag(job: Job) -> str:  # as runner.ensure() names it, without building
        kernel = kernels.get(job.kernel_key) if job.kernel else None
        memo = (job.spec.image, kernel.key if kernel else None)
        if memo not in tags:
            tags[memo] = images.plan(job.spec.image, kernel)[2]
        return tags[memo]

    lookup = docker_image_id(client)

    def image_id(tag: str) -> str | None:  # the lock check just looked most of them up
        return images.seen.get(tag) or lookup(tag)

    if runtime is None:
        runtime = vm_identity(keyed) or vm.runtime_identity
    return KeyComputer(keyed, matrix.root, kernels, image_tag, image_id,
                       flavour_caches, runtime=runtime, tree=tree)


def build_context(matrix: Matrix, jobs: list[Job], run_id: str, run_dir: Path, say: Say,
                  verbose: bool, needs_dir: Path | None = None,
                  all_jobs: list[Job] | None = None, read_cache: bool = True,
                  client: Any = None, checked: ImageBuilder | None = None,
                  vm_runtime: Callable[[], dict[str, str]] | None = None) -> RunContext:
    """The RunContext for running `jobs` of `matrix` into run_dir (`say` shows messages,
    `verbose` also job output); Docker's client is made when not given. VM jobs need no
    Docker: without it, they run (their needs' keys, hence theirs, are then unknown).
    A stale lock is exit 2 here unless the caller ran check_still_offered() already and
    passes the ImageBuilder it returned as `checked`; `vm_runtime` is what
    pipeline.run.prefetch.vm_identity() started, if the caller did."""
    from pipeline.errors import EnvironmentProblem
    from pipeline.run.executor import ContainerRunner, docker_client
    from pipeline.run.store import ResultCache

    keyed = with_needs(jobs, all_jobs or jobs)
    kernels = locked_kernels(matrix, keyed)
    if client is None:
        try:
            client = docker_client()
        except EnvironmentProblem:
            if any(j.spec.vm is None for j in jobs):
                raise
    images = checked or check_still_offered(matrix, jobs, client,
                                            lambda m: say(f"pipeline: warning: {m}"))
    images.log = lambda m: say(f"  {m}")
    catalog = images.catalog
    flavour_caches = {n: dict(catalog.spec[n].get("caches") or {}) for n in catalog.names()}

    def warn(message: str) -> None:
        say(f"pipeline: warning: {message}")

    def error(message: str) -> None:
        say(f"pipeline: error: {message}")

    cache = ResultCache(warn=warn)
    tree = SourceTree(matrix.root)  # one listing of the project: keys and /src trees
    keys = _key_computer(matrix, keyed, kernels, images, client,
                         flavour_caches, tree, vm_runtime) if cache.enabled else None
    return RunContext(
        run_id=run_id, run_dir=run_dir, root=matrix.root,
        images=images, containers=ContainerRunner(client), kernels=kernels,
        flavour_caches=flavour_caches,
        log=(lambda job, line: say(f"  [{job}] {line}")) if verbose else
        (lambda _job, _line: None),
        needs_dir=needs_dir, cache=cache if cache.enabled else None, keys=keys,
        read_cache=read_cache, warn=warn, error=error, inputs=InputTrees(tree),
    )


def start_order(ctx: RunContext, jobs: list[Job]) -> list[Job]:
    """`jobs` in the order to start them (pipeline.plan.order): a job costs 1 plus, when
    its toolchain image is not in the engine yet, its flavour's build-minutes."""
    from pipeline.plan.order import critical_path_first

    catalog = ctx.images.catalog

    def cost(job: Job) -> float:
        if not job.spec.image or ctx.images.client is None:
            return 1.0
        kernel = ctx.kernels.get(job.kernel_key) if catalog.per_kernel(job.spec.image) else None
        tag = ctx.images.plan(job.spec.image, kernel)[2]
        return 1.0 + (0.0 if tag in ctx.images.seen or ctx.images.exists(tag)
                      else catalog.build_minutes(job.spec.image))

    return critical_path_first(jobs, cost)


@contextmanager
def stop_on_signals(ctx: RunContext, say: Say, what: str,
                    interrupted: threading.Event | None = None) -> Iterator[threading.Event]:
    """Within the block, SIGINT and SIGTERM (how Buildbot stops a build) say so, set
    `interrupted` (yielded) and ctx.cancel (VM jobs stop their QEMU) and stop the context's
    containers; on exit the previous handlers are restored and the jobs' /src trees
    removed."""
    event = interrupted if interrupted is not None else threading.Event()

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        say(f"pipeline: {signal.Signals(signum).name}: stopping {what}")
        event.set()
        ctx.cancel.set()
        threading.Thread(target=ctx.containers.stop_all, daemon=True).start()

    old = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if ctx.inputs is not None:  # the jobs have ended: their /src trees go
            ctx.inputs.close()
