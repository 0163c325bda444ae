"""Job results from the result cache: a job's key, restoring a stored result, storing one.

A job whose key has a stored passed result gets that result's files ("cached") and no
container or VM is started; a passed job's files are stored under its key. The cache must
never break a run: its problems are warnings and the job runs (or is not stored).
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.model.expand import Job
from pipeline.results.status import CACHED, PASSED, JobResult
from pipeline.run.frame import job_dir
from pipeline.run.runtimes.container import SRC

if TYPE_CHECKING:
    from pipeline.run.runner import RunContext

CACHED_FILES = ("junit.xml", "log.txt", "metadata.json", "reproduce.sh", "artifacts",
                "bench.json")


def cache_key(ctx: RunContext, job: Job) -> str | None:
    """The job's cache key; None when there is no cache or the key cannot be computed."""
    if ctx.cache is None or ctx.keys is None or not ctx.cache.enabled:
        return None
    try:
        return ctx.keys.key(job)
    except Exception as exc:  # the cache must never break a run
        ctx.warn(f"{job.id}: cannot compute its cache key ({exc.__class__.__name__}: "
                 f"{exc}); it is not cached")
        return None


def from_cache(ctx: RunContext, job: Job, key: str) -> JobResult | None:
    """Restore the job's stored result into its directory; None if there is none (or it
    cannot be restored: the job then runs)."""
    assert ctx.cache is not None
    started = time.monotonic()
    entry = ctx.cache.lookup(key)
    if entry is None:
        return None
    directory = job_dir(ctx, job)
    if not ctx.cache.restore(entry, directory):
        shutil.rmtree(directory, ignore_errors=True)
        return None
    info = entry.info
    origin = (f"result {key[:16]} of run {info.get('run', '?')} ({entry.body.get('created')}), "
              f"which passed in {info.get('seconds', 0):.1f} s")
    log = directory / "log.txt"
    meta_path = directory / "metadata.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        meta = {"job": job.id, "status": PASSED}
    meta["cache"] = {"hit": True, "key": key, "run": info.get("run"),
                     "stored": entry.body.get("created"), "seconds": info.get("seconds")}
    try:  # plain writes: these are the run's own copies, and a failed one makes the job run
        log.write_text(f"== cached: {origin}; no container or VM was started\n"
                       + (log.read_text(errors="replace") if log.is_file() else ""))
        _relocate_reproducer(directory / "reproduce.sh", info, _paths(ctx))
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    except OSError as exc:
        ctx.warn(f"{job.id}: cannot restore its cached result ({exc.strerror or exc}); "
                 "it runs")
        shutil.rmtree(directory, ignore_errors=True)
        return None
    ctx.log(job.id, f"== cached: {origin}")
    tests = meta.get("tests") or {}
    return JobResult(
        id=job.id, status=CACHED, seconds=round(time.monotonic() - started, 3),
        message=f"cached: passed in {info.get('seconds', 0):.1f} s in run "
                f"{info.get('run', '?')}",
        tests=int(tests.get("total", 0)), failures=int(tests.get("failures", 0)),
        errors=int(tests.get("errors", 0)), skipped=int(tests.get("skipped", 0)),
        image=info.get("image"), directory=str(directory.relative_to(ctx.run_dir)))


def _paths(ctx: RunContext) -> dict[str, str]:
    """Host paths a reproduce.sh names that differ between checkouts and runs."""
    return {"root": str(ctx.root), "needs": str(ctx.needs_dir or ctx.run_dir)}


def _relocate_reproducer(script: Path, info: dict[str, Any], now: dict[str, str]) -> None:
    """Point a restored reproduce.sh at this checkout and run (a cached result may come from
    another checkout of the same content, e.g. a Buildbot worker's)."""
    then = info.get("paths") or {}
    if not script.is_file() or not then:
        return
    text = original = script.read_text()
    for name, suffix in (("root", f":{SRC}"), ("needs", "/")):
        if then.get(name) and then[name] != now[name]:
            text = text.replace(then[name] + suffix, now[name] + suffix)
    if then.get("root") and then["root"] != now["root"]:  # where its inputs are copied from
        text = text.replace(f"\nPROJECT={shlex.quote(then['root'])}\n",
                            f"\nPROJECT={shlex.quote(now['root'])}\n")
    if text == original and script.stat().st_mode & 0o7777 == 0o755:
        return  # the same checkout and run paths: nothing to rewrite
    script.write_text(text)
    script.chmod(0o755)


def store_result(ctx: RunContext, job: Job, key: str | None, result: JobResult) -> None:
    """Store a passed job's files under its key (computed now if the image was missing)."""
    assert ctx.cache is not None
    key = key or cache_key(ctx, job)  # its image exists now
    if key is None:
        return
    info = {"job": job.id, "run": ctx.run_id, "seconds": result.seconds,
            "image": result.image, "tests": result.tests, "paths": _paths(ctx)}
    try:
        ctx.cache.store(key, job_dir(ctx, job), CACHED_FILES, info)
    except OSError as exc:
        ctx.warn(f"{job.id}: cannot store its result in the cache: {exc}")
