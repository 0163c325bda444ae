"""BuildmasterConfig generated from matrix.yml: one builder per job id.

master.cfg is only:

    from pipeline.buildbot.config import build_config
    BuildmasterConfig = c = build_config(basedir=basedir, matrix="matrix.yml")

`buildbot reconfig` re-reads matrix.yml (and .buildbot/kmatrix.yml), so editing the matrix
adds, changes or removes builders.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Any

from buildbot.config.errors import error as config_error
from buildbot.plugins import changes, schedulers, util, worker
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet import utils as process_utils
from zope.interface import implementer

from pipeline.buildbot import selection
from pipeline.buildbot.factory import eligible, job_factory, needs_capability, prefer_kvm
from pipeline.buildbot.forge import PULL_CATEGORIES
from pipeline.buildbot.settings import Settings, load_settings
from pipeline.buildbot.statuses import reporters
from pipeline.buildbot.steps import NeedsKicker, can_start_build
from pipeline.model.expand import expand
from pipeline.model.matrix import load_matrix

POLLER_NAME = "kmatrix"
PUSH_SCHEDULER = "kmatrix-push"
FORCE_SCHEDULER = "kmatrix-force"
DASHBOARD = "matrix"
USERS_ROLE = "users"


@implementer(ICredentialsChecker)
class SharedSecretChecker:
    """Accepts HTTP basic auth whose password is the shared secret (any user name);
    compared in constant time."""

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def requestAvatarId(self, credentials: Any) -> Any:  # twisted's name
        password = credentials.password
        if isinstance(password, str):
            password = password.encode()
        if hmac.compare_digest(password, self._secret):
            return defer.succeed(credentials.username)
        return defer.fail(UnauthorizedLogin("wrong change hook secret"))


def www_security(settings: Settings) -> dict[str, Any]:
    """`www` keys for an exposed master: logins for every control action (force, stop,
    rebuild, ...) and the shared secret for the change hook. Empty on loopback."""
    if not settings.auth_required:
        return {}
    users = dict(settings.users)
    out: dict[str, Any] = {
        "auth": util.UserPasswordAuth(users) if users else util.NoAuth(),
        "authz": util.Authz(
            allowRules=[util.AnyControlEndpointMatcher(role=USERS_ROLE, defaultDeny=True)],
            roleMatchers=[util.RolesFromUsername(roles=[USERS_ROLE], usernames=list(users))]),
    }
    if settings.forge is None:  # a forge's hook checks its own secret (no basic auth)
        # without a secret nobody can notify the master: the GitPoller's interval still works
        out["change_hook_auth"] = [
            SharedSecretChecker(settings.hook_secret or os.urandom(24).hex())]
    return out


# short axis names in tags: the console view cuts a tag to 50 px per column, so
# "kernel:6.12" read "kernel:6.1"; "k:6.12" fits
TAG_AXIS = {"kernel": "k", "features": "f"}


def tags_of(job: Any) -> list[str]:
    """Builder tags: job kind, each axis value (`k:6.12`, `f:userspace`, `<axis>:<value>`)
    and `needs` for jobs that wait for others."""
    tags = [job.name]
    tags += [f"{TAG_AXIS.get(axis, axis)}:{value}" for axis, value in job.axes().items()]
    if job.needs:
        tags.append("needs")
    return tags


class MatrixChangeScheduler(schedulers.AnyBranchScheduler):
    """One buildset per change with exactly the builders whose inputs it touches (plus the
    jobs that need them and their needs): see selection.builders_for_files."""

    compare_attrs = (*schedulers.AnyBranchScheduler.compare_attrs, "matrix_jobs_key")

    def __init__(self, name: str, jobs: list[Any], **kwargs: Any) -> None:
        self.matrix_jobs = jobs
        self.matrix_jobs_key = tuple((j.id, j.needs, j.spec.inputs) for j in jobs)
        kwargs.setdefault("fileIsImportant", self.is_important)
        kwargs.setdefault("onlyImportant", True)
        super().__init__(name=name, builderNames=[j.id for j in jobs], **kwargs)

    def is_important(self, change: Any) -> bool:
        """A change is important when one of its files matches a job's inputs."""
        return selection.important(self.matrix_jobs, list(change.files or []))

    @defer.inlineCallbacks
    def addBuildsetForChanges(self, changeids: Any = None, builderNames: Any = None,
                              **kwargs: Any) -> Any:
        files: list[str] = []
        for changeid in changeids or []:
            change = yield self.master.db.changes.getChange(changeid)
            if not change.files:
                files = []
                break
            files.extend(change.files)
        names = selection.builders_for_files(self.matrix_jobs, files)
        if builderNames:
            names = [n for n in names if n in builderNames]
        if not names:
            return None
        result = yield super().addBuildsetForChanges(changeids=changeids, builderNames=names,
                                                     **kwargs)
        return result


class MatrixForceScheduler(schedulers.ForceScheduler):
    """Force a kernel / feature set / job kind: the chosen cells plus their needs."""

    def __init__(self, name: str, jobs: list[Any], repo: str = "", **kwargs: Any) -> None:
        self.matrix_jobs = jobs
        self.matrix_repo = repo
        self.matrix_choices = {p.name: list(p.choices) for p in kwargs.get("properties", [])
                               if hasattr(p, "choices")}
        self.matrix_axes = [n[5:] for n in self.matrix_choices if n.startswith("axis_")]
        kwargs.setdefault("reasonString", "forced by %(owner)s: %(reason)s")
        super().__init__(name=name, builderNames=[j.id for j in jobs], **kwargs)

    @defer.inlineCallbacks
    def addBuildsetForSourceStampsWithDefaults(self, reason: str, sourcestamps: Any = None,
                                               properties: Any = None, builderNames: Any = None,
                                               **kw: Any) -> Any:
        """The chosen cells, at the branch head resolved now (an empty revision would let
        each cell build whatever the branch is when it starts, and show no commit)."""
        for stamp in sourcestamps or []:
            if not stamp.get("revision") and self.matrix_repo:
                stamp["branch"], stamp["revision"] = yield resolve_head(
                    self.matrix_repo, stamp.get("branch") or "")
        result = yield self._add_cells(reason, sourcestamps, properties, builderNames, **kw)
        return result

    def _add_cells(self, reason: str, sourcestamps: Any, properties: Any,
                   builderNames: Any, **kw: Any) -> Any:
        props = properties.asDict() if properties is not None else {}

        def prop(name: str) -> str:
            return str(props.get(name, (selection.ALL,))[0] or selection.ALL)

        names = selection.builders_for_force(
            self.matrix_jobs, kernel=prop("kernel"), features=prop("features"),
            job_name=prop("job"), axes={a: prop(f"axis_{a}") for a in self.matrix_axes},
            among=None if builderNames is None or set(builderNames) == {
                j.id for j in self.matrix_jobs} else builderNames)
        if builderNames:
            # needs of the chosen builders are always added, even outside the clicked set
            names = selection.close(
                self.matrix_jobs, {n for n in names if n in builderNames} or set(names),
                dependents=False)
        if not names:
            raise KeyError("no builder matches the chosen kernel / feature set / job")
        return super().addBuildsetForSourceStampsWithDefaults(
            reason, sourcestamps, properties=properties, builderNames=names, **kw)


@defer.inlineCallbacks
def resolve_head(repo: str, branch: str) -> Any:
    """(branch, commit) of `branch`'s head in `repo` (the default branch when empty), by
    `git ls-remote`; (branch, None) when it cannot be resolved (the checkout then fails
    with git's own message)."""
    ref = f"refs/heads/{branch}" if branch and not branch.startswith("refs/") else \
        branch or "HEAD"
    out, _, code = yield process_utils.getProcessOutputAndValue(
        "git", ["ls-remote", "--symref", repo, ref], env=dict(os.environ))
    sha = None
    for line in out.decode(errors="replace").splitlines():
        head, _, name = line.partition("\t")
        if head.startswith("ref: ") and not branch:
            branch = head[5:].removeprefix("refs/heads/")
        elif name == ref and code == 0:
            sha = head
    return branch or None, sha


def master_dir(buildbot_basedir: str | None, project: str | os.PathLike[str]) -> Path:
    """The master directory: $KMATRIX_BUILDBOT_DIR, else Buildbot's basedir when it is a
    master directory (has buildbot.tac), else <project>/.buildbot."""
    explicit = os.environ.get("KMATRIX_BUILDBOT_DIR")
    if explicit:
        return Path(explicit).resolve()
    if buildbot_basedir and (Path(buildbot_basedir) / "buildbot.tac").is_file():
        return Path(buildbot_basedir).resolve()
    return (Path(project) / ".buildbot").resolve()


def _builders(jobs: list[Any], settings: Settings,
              artifacts_url: str) -> list[util.BuilderConfig]:
    """One builder per job id, tagged by kind and axes, waiting for its needs, on the
    workers that can run it (VM jobs: kvm workers first)."""
    needs_of = {j.id: list(j.needs) for j in jobs if j.needs}
    kvm = {w.name for w in settings.workers if "kvm" in w.capabilities}
    check_workers(jobs, settings)
    return [
        util.BuilderConfig(
            name=job.id, workernames=eligible(job, settings.workers),
            factory=job_factory(job, settings, artifacts_url),
            tags=tags_of(job), canStartBuild=can_start_build(needs_of),
            nextWorker=prefer_kvm(kvm) if needs_capability(job) == "qemu" and kvm else None,
            description=f"{job.name} {' '.join(job.axes().values())}".strip(),
            properties={"kmatrix_job": job.name, **{f"kmatrix_{k}": v
                                                   for k, v in job.axes().items()}},
        )
        for job in jobs
    ]


def check_workers(jobs: list[Any], settings: Settings) -> None:
    """A configuration error when no declared worker can run some of the jobs."""
    orphans: dict[str, list[str]] = {}
    for job in jobs:
        if not eligible(job, settings.workers):
            orphans.setdefault(needs_capability(job), []).append(job.id)
    for capability, ids in sorted(orphans.items()):
        shown = ", ".join(ids[:4]) + (f" and {len(ids) - 4} more" if len(ids) > 4 else "")
        config_error(
            f"kmatrix: no worker can run {shown}: they need a worker with "
            f"`{capability}` in its capabilities (.buildbot/kmatrix.yml `workers:` or "
            f"`local_worker_capabilities:`); workers: "
            + (", ".join(f"{w.name} [{', '.join(sorted(w.capabilities))}]"
                         for w in settings.workers) or "none"))


def _schedulers(jobs: list[Any], matrix: Any, settings: Settings) -> list[Any]:
    """The push scheduler (builders by changed files) and the force form."""
    branches = settings.branches
    branch_filter = util.ChangeFilter(filter_fn=lambda change: (
        change.branch in branches or change.category in PULL_CATEGORIES)) if branches else None

    def choice(name: str, label: str, values: list[str]) -> Any:
        return util.ChoiceStringParameter(name=name, label=label, default=selection.ALL,
                                          choices=[selection.ALL, *values])

    return [
        MatrixChangeScheduler(PUSH_SCHEDULER, jobs, treeStableTimer=None,
                              change_filter=branch_filter),
        MatrixForceScheduler(
            FORCE_SCHEDULER, jobs, repo=settings.repo, label="Run matrix cells", buttonName="Start",
            properties=[
                choice("kernel", "Kernel", list(matrix.kernels)),
                choice("features", "Feature set", list(matrix.features)),
                *(choice(f"axis_{a}", a, list(axis.values)) for a, axis in matrix.axes.items()),
                choice("job", "Job kind", list(dict.fromkeys(j.name for j in jobs))),
            ]),
    ]


def _www(settings: Settings, dashboard: Any) -> dict[str, Any]:
    """The web UI: port, change hook, logins when exposed, views and the Matrix page."""
    return {
        "port": f"tcp:{settings.www_port}:interface={settings.bind}",
        "change_hook_dialects": settings.forge.dialect() if settings.forge else {
            "poller": {"allowed": [POLLER_NAME]}},
        **www_security(settings),
        "plugins": {
            "waterfall_view": {}, "console_view": {}, "grid_view": {},
            "wsgi_dashboards": [{
                "name": DASHBOARD, "caption": "Matrix", "app": dashboard,
                "order": 5, "icon": "th",
            }],
        },
    }


def build_config(basedir: str | os.PathLike[str] = ".", matrix: str | os.PathLike[str] = "",
                 settings: Settings | None = None) -> dict[str, Any]:
    """The BuildmasterConfig dictionary for this matrix and master directory."""
    from pipeline.buildbot.dashboard import create_app

    basedir = Path(basedir).resolve()
    matrix_path = Path(matrix or basedir.parent / "matrix.yml")
    if not matrix_path.is_absolute():
        matrix_path = (basedir.parent / matrix_path).resolve()
    settings = settings or load_settings(basedir)
    if not settings.repo:
        settings.repo = str(matrix_path.parent)
    loaded = load_matrix(matrix_path)
    jobs = expand(loaded)
    url = settings.www_url
    artifacts_url = f"{url}plugins/wsgi_dashboards/{DASHBOARD}/artifacts/"
    return {
        "title": f"kmatrix: {matrix_path.parent.name}",
        "titleURL": url,
        "buildbotURL": url,
        "workers": [worker.Worker(w.name, w.password, max_builds=w.max_builds)
                    for w in settings.workers],
        "protocols": {"pb": {"port": f"tcp:{settings.pb_port}:interface={settings.bind}"}},
        "change_source": [] if settings.forge else [changes.GitPoller(
            repourl=settings.repo, name=POLLER_NAME,
            branches=settings.branches or True,
            workdir=str(basedir / "gitpoller-work"),
            pollInterval=settings.poll_interval, pollAtLaunch=True)],
        "schedulers": _schedulers(jobs, loaded, settings),
        "builders": _builders(jobs, settings, artifacts_url),
        "services": [NeedsKicker(waiting=sorted(j.id for j in jobs if j.needs)),
                     *reporters(settings.forge, url)],
        "collapseRequests": False,
        "db": {"db_url": settings.db_url},
        "buildbotNetUsageData": None,
        "www": _www(settings, create_app(jobs, settings)),
    }
