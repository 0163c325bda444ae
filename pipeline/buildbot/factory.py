"""How Buildbot runs one matrix job: the build steps of its builder, and which workers.

A build, in order (M: runs in the master, W: on the worker, no disk shared):
    M needs            wait for / check the needs in this buildset; a failed need ends the
                       build SKIPPED with the reason (every later step is skipped)
    W clean            remove the builder's out/, needs/ and cache/ of an earlier build
    W checkout         the pushed revision into build/
    M needs artifacts  one FileDownload per artifact of each need -> needs/<need>/artifacts/
    W key              `pipeline job ID --print-key`: the job's result-cache key
    M cache lookup     a passed result with that key in the master's store (from any
                       worker) is downloaded into cache/: the job is then reported CACHED
    W job              `pipeline job ID --dir ../out --needs-dir ../needs` (the same code as
                       `pipeline run`), its result cache in cache/
    W->M upload        out/<job id> -> <results>/.incoming/...; a passed result -> store
    M publish          into <results>/<revision>/<job id> and the store; retention
    M bench            (jobs with `bench:`) bench.json against the builder's newest earlier
                       SUCCESS build's (pipeline.buildbot.bench): a regression fails the
                       step and the build, the summary naming the metric, both values and
                       the threshold
    M report           JUnit -> test-results API, files kept, one step per matrix step
"""

from __future__ import annotations

import random
from typing import Any

from buildbot.plugins import steps, util
from buildbot.process.results import SUCCESS

from pipeline.buildbot.bench import BenchCompare
from pipeline.buildbot.settings import LOCAL_WORKER, Settings, WorkerSpec
from pipeline.buildbot.steps import CheckNeeds, JobReport, hide_skipped, not_skipped
from pipeline.buildbot.transfer import (
    CACHE,
    KEY_PROPERTY,
    MASTER_HIT_PROPERTY,
    NEEDS,
    OUT,
    DownloadNeeds,
    FetchCached,
    Publish,
    incoming,
)

REMOTE_PIPELINE = ["pipeline"]  # on a remote worker: the `pipeline` of its own install


class PipelineJob(steps.ShellCommand):
    """`pipeline job ID ...` on the worker; log.txt followed live."""

    renderables = ["logfiles"]


class Checkout(steps.Git):
    """Buildbot's Git step; a GitLab merge request's change names the target branch, so its
    head is fetched from the source project's branch (properties of GitLab's hook)."""

    def run_vc(self, branch: str, revision: str, patch: Any) -> Any:
        source = self.getProperty("source_branch")
        if source and self.getProperty("source_repository"):
            self.repourl, branch = self.getProperty("source_repository"), source
        return super().run_vc(branch, revision, patch)


def needs_capability(job: Any) -> str:
    """What a worker must be able to do to run the job."""
    return "qemu" if job.spec.vm is not None else "docker"


def eligible(job: Any, workers: list[WorkerSpec]) -> list[str]:
    """Names of the workers that can run the job."""
    need = needs_capability(job)
    return [w.name for w in workers if need in w.capabilities]


def prefer_kvm(kvm_workers: set[str]) -> Any:
    """A nextWorker that gives VM jobs to a kvm worker when one is free."""

    def next_worker(_builder: Any, workers: list[Any], _request: Any) -> Any:
        if not workers:
            return None
        fast = [w for w in workers if w.worker.workername in kvm_workers]
        return random.choice(fast or workers)

    return next_worker


def pipeline_command(settings: Settings, *args: Any) -> Any:
    """The `pipeline` command line, as the worker that runs the build has it installed."""

    @util.renderer
    def render(props: Any) -> list[Any]:
        local = props.getProperty("workername") == LOCAL_WORKER
        return [*(settings.pipeline if local else REMOTE_PIPELINE), "--matrix", "matrix.yml",
                *args]

    return render


def _where(root: str) -> Any:
    @util.renderer
    def render(props: Any) -> str:
        return incoming(root, props)

    return render


def _store_upload(step: Any) -> bool:
    return (not_skipped(step) and step.build.results == SUCCESS
            and not step.getProperty(MASTER_HIT_PROPERTY))


def _prepare(job: Any, settings: Settings, factory: util.BuildFactory) -> None:
    hidden = {"doStepIf": not_skipped, "hideStepIf": hide_skipped}
    for name in (OUT, NEEDS, CACHE):
        factory.addStep(steps.RemoveDirectory(
            dir=name, name=f"clean {name}", haltOnFailure=True, **hidden))
    factory.addStep(Checkout(
        name="checkout", repourl=settings.repo, mode="full", method="clean",
        workdir="build", haltOnFailure=True, logEnviron=False, **hidden))
    if job.needs:
        factory.addStep(DownloadNeeds(list(job.needs), str(settings.results), **hidden))
    factory.addStep(steps.SetPropertyFromCommand(
        name="key", command=pipeline_command(settings, "job", job.id, "--dir", f"../{OUT}",
                                             "--print-key"),
        property=KEY_PROPERTY, workdir="build", flunkOnFailure=False, warnOnFailure=True,
        logEnviron=False, **hidden))
    factory.addStep(FetchCached(str(settings.store), **hidden))


def job_factory(job: Any, settings: Settings, artifacts_url: str) -> util.BuildFactory:
    """The steps of the builder of one job (see the module docstring)."""
    results, hidden = str(settings.results), {"doStepIf": not_skipped,
                                              "hideStepIf": hide_skipped}
    factory = util.BuildFactory()
    if job.needs:
        factory.addStep(CheckNeeds(list(job.needs), results))
    _prepare(job, settings, factory)
    factory.addStep(PipelineJob(
        name="job", description=job.id, descriptionDone=job.id,
        command=pipeline_command(settings, "job", job.id, "--dir", f"../{OUT}",
                                 "--needs-dir", f"../{NEEDS}"),
        workdir="build", logfiles={"log.txt": f"../{OUT}/{job.id}/log.txt"},
        # stopping a build (or maxTime) sends SIGTERM first: `pipeline job` then stops its
        # containers and QEMU by id and writes its results; SIGKILL 30 s later
        timeout=None, maxTime=job.timeout + 600, sigtermTime=30, logEnviron=False,
        env={"PYTHONUNBUFFERED": "1",
             "KMATRIX_RESULT_CACHE_DIR": util.Interpolate(f"%(prop:builddir)s/{CACHE}")},
        haltOnFailure=False, **hidden))
    factory.addStep(steps.DirectoryUpload(
        name="upload results", workersrc=f"{OUT}/{job.id}", masterdest=_where(results),
        workdir=".", alwaysRun=True, **hidden))
    factory.addStep(steps.DirectoryUpload(
        name="upload to the store", workersrc=f"{CACHE}/v1",
        masterdest=_where(str(settings.store / "incoming")), workdir=".",
        doStepIf=_store_upload, hideStepIf=hide_skipped, flunkOnFailure=False))
    factory.addStep(Publish(job.id, results, str(settings.store),
                            str(settings.basedir / "artifacts"), settings.retention, **hidden))
    if job.spec.bench is not None:
        factory.addStep(BenchCompare(job.id, job.spec.bench.threshold, results,
                                     str(settings.basedir / "artifacts"), **hidden))
    factory.addStep(JobReport(job.id, results, str(settings.basedir / "artifacts"),
                              artifacts_url, **hidden))
    return factory
