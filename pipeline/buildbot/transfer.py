"""Master-side steps that move a job's files through Buildbot: no disk is shared.

On the worker, a build uses three directories of its builder directory: `needs/` (its
needs' artifacts), `out/` (what `pipeline job` writes) and `cache/` (a result store for
this build only). The master keeps:
    <results>/<revision>/<job id>/   every job's uploaded results (what the reports read)
    <store>/                         passed results by cache key (pipeline.run.store)
Downloads are Buildbot FileDownload steps added at run time, one per file; uploads are
DirectoryUpload steps into <results>/.incoming/ and <store>/incoming/, taken in by Publish
only once complete (a worker lost mid-upload leaves nothing half-written in place).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from buildbot.process import buildstep
from buildbot.process.results import FAILURE, SUCCESS
from buildbot.steps.transfer import FileDownload
from twisted.internet import defer

from pipeline.buildbot.retention import Retention, prune
from pipeline.run.store import ResultCache

NEEDS, OUT, CACHE = "needs", "out", "cache"
KEY_PROPERTY = "kmatrix_key"
MASTER_HIT_PROPERTY = "kmatrix_cached_on_master"


def revision_of(step: buildstep.BuildStep) -> str:
    """The revision this build checked out (or was asked for)."""
    return str(step.getProperty("got_revision") or step.getProperty("revision") or "unknown")


def incoming(root: str | Path, props: Any) -> str:
    """Where a build's upload lands before Publish takes it in."""
    return str(Path(root) / ".incoming" / props.getProperty("buildername")
               / str(props.getProperty("buildnumber")))


def _downloads(files: list[tuple[Path, str]], what: str) -> list[FileDownload]:
    """One FileDownload per (master file, worker path below the builder directory)."""
    return [FileDownload(mastersrc=str(src), workerdest=dest, workdir=".",
                         mode=src.stat().st_mode & 0o755, name=f"download {what}",
                         hideStepIf=lambda results, _step: results == SUCCESS,
                         haltOnFailure=True)
            for src, dest in files]


class DownloadNeeds(buildstep.BuildStep):
    """Queue the download of exactly the needs' artifacts of this revision."""

    name = "needs artifacts"
    haltOnFailure = True

    def __init__(self, needs: list[str], results: str, **kwargs: Any) -> None:
        self.needs, self.results_root = list(needs), results
        super().__init__(**kwargs)

    @defer.inlineCallbacks
    def run(self) -> Any:
        revision = Path(self.results_root) / revision_of(self)
        files: list[tuple[Path, str]] = []
        lines, missing = [], []
        for need in self.needs:
            artifacts = revision / need / "artifacts"
            if not artifacts.is_dir():
                missing.append(need)
                continue
            found = sorted(p for p in artifacts.rglob("*") if p.is_file())
            files += [(p, f"{NEEDS}/{need}/artifacts/{p.relative_to(artifacts)}")
                      for p in found]
            lines += [f"{need}: {p.relative_to(artifacts)} ({p.stat().st_size} bytes)"
                      for p in found]
        if missing:
            yield self.addCompleteLog("needs", f"not on the master: {', '.join(missing)}\n")
            self.descriptionDone = [f"artifacts missing: {', '.join(missing)}"]
            return FAILURE
        yield self.addCompleteLog("needs", "\n".join(lines) + "\n")
        self.build.addStepsAfterCurrentStep(_downloads(files, "need"))
        self.descriptionDone = [f"{len(files)} files of {len(self.needs)} needs"]
        return SUCCESS


class FetchCached(buildstep.BuildStep):
    """If the master's store holds a passed result for the job's key (from any worker),
    queue its download into the build's cache/: `pipeline job` then reports it CACHED."""

    name = "cache lookup"
    flunkOnFailure = False

    def __init__(self, store: str, **kwargs: Any) -> None:
        self.store = store
        super().__init__(**kwargs)

    @defer.inlineCallbacks
    def run(self) -> Any:
        key = str(self.getProperty(KEY_PROPERTY) or "").strip()
        if not key.isalnum():
            self.descriptionDone = ["no key yet (image not built on this worker)"]
            return SUCCESS
        store = ResultCache(Path(self.store))
        files = store.entry_files(key)
        if not files:
            self.descriptionDone = [f"{key[:12]}: not stored"]
            return SUCCESS
        entry = store.path(key)
        below = entry.relative_to(store.root).as_posix()
        self.build.addStepsAfterCurrentStep(_downloads(
            [(entry / rel, f"{CACHE}/{below}/{rel}") for rel in files], "cached result"))
        self.setProperty(MASTER_HIT_PROPERTY, True, "kmatrix")
        yield self.addCompleteLog("cache", f"stored on the master: {entry}\n")
        self.descriptionDone = [f"{key[:12]}: stored on the master"]
        return SUCCESS


class Publish(buildstep.BuildStep):
    """Take the uploaded results into <results>/<revision>/<job id> and a passed result
    into the store; then apply the retention limits."""

    name = "publish"
    alwaysRun = True
    flunkOnFailure = False

    def __init__(self, job_id: str, results: str, store: str, artifacts: str,
                 retention: Retention, **kwargs: Any) -> None:
        self.job_id, self.results_root, self.store = job_id, results, store
        self.artifacts, self.retention = artifacts, retention
        super().__init__(**kwargs)

    @defer.inlineCallbacks
    def run(self) -> Any:
        props = self.build.getProperties()
        upload = Path(incoming(self.results_root, props))
        lines = []
        if upload.is_dir():
            final = Path(self.results_root) / revision_of(self) / self.job_id
            replace_dir(upload, final)
            lines.append(f"results: {final}")
        stored = Path(incoming(Path(self.store) / "incoming", props))
        store = ResultCache(Path(self.store), self.retention.store_mb * 1024 * 1024)
        # the upload holds v1/ of the build's store: <key[:2]>/<key>/ entries
        for entry in sorted(stored.glob("*/*")) if stored.is_dir() else []:
            key = store.adopt(entry)
            lines.append(f"stored: {key}" if key else f"dropped an invalid entry {entry.name}")
        shutil.rmtree(stored, ignore_errors=True)
        for path in prune(Path(self.results_root), Path(self.artifacts), self.retention):
            lines.append(f"pruned: {path}")
        yield self.addCompleteLog("publish", "\n".join(lines or ["nothing uploaded"]) + "\n")
        self.descriptionDone = ["published" if upload.is_dir() else "nothing uploaded"]
        return SUCCESS


def replace_dir(new: Path, final: Path) -> None:
    """Put `new` at `final`, replacing what was there, without a moment where `final`
    holds a mix of both."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.rename(final, old)
    os.rename(new, final)
    shutil.rmtree(old, ignore_errors=True)
