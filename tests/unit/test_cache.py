"""Result cache: what keys depend on, store/lookup/restore, corruption, LRU bound, races."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

import pipeline.model.recipes as recipe_module
from pipeline.debian.images import ImageBase, ImageBuilder, ImageCatalog
from pipeline.debian.lock import read_lock
from pipeline.model.expand import expand
from pipeline.model.matrix import load_matrix
from pipeline.plan.keys import KeyComputer, SourceTree
from pipeline.results.status import CACHED
from pipeline.run.runner import CACHED_FILES, RunContext, run_job
from pipeline.run.store import ResultCache

VM = {"qemu": "QEMU emulator version 7.2.22", "busybox": "b" * 64, "init": "i" * 64}


def computer(project: Path, image_ids: dict[str, str] | None = None,
             runtime: dict[str, str] | None = None) -> tuple[KeyComputer, dict]:
    """A KeyComputer over a project directory; image ids default to one per tag."""
    matrix = load_matrix(project / "matrix.yml")
    jobs = expand(matrix)
    kernels = read_lock(project / "matrix.lock")
    builder = ImageBuilder(None, ImageCatalog(project / "images"), ImageBase())

    def tag(job):
        kernel = kernels.get(job.kernel) if job.kernel else None
        return builder.plan(job.spec.image, kernel)[2]

    ids = image_ids if image_ids is not None else {}
    keys = KeyComputer(jobs, project, kernels, tag,
                       lambda t: ids.get(t, "sha256:" + t.split(":")[-1]),
                       runtime=lambda: dict(runtime or VM))
    return keys, {j.id: j for j in jobs}


def all_keys(project: Path, **kw) -> dict[str, str | None]:
    keys, jobs = computer(project, **kw)
    return {job_id: keys.key(job) for job_id, job in jobs.items()}


def test_keys_are_stable_and_distinct(project_copy: Path) -> None:
    first, second = all_keys(project_copy), all_keys(project_copy)
    assert first == second
    assert all(first.values()) and len(set(first.values())) == len(first)


def test_input_file_change_invalidates_the_job_and_its_dependents(project_copy) -> None:
    before = all_keys(project_copy)
    source = project_copy / "kernel" / "vexfs_main.c"
    source.write_text(source.read_text() + "\n/* edited */\n")
    after = all_keys(project_copy)
    changed = {j for j in before if before[j] != after[j]}
    assert changed == {f"{n}/{k}" for n in ("kmod-build", "vm-test", "vm-bench")
                       for k in ("5.10", "6.1", "6.12", "7.3")} | {
        "kmod-build-rust/7.3", "vm-test-rust/7.3", "kmod-build/6.12/arm64",
        "vm-test/6.12/arm64"} | {"kmod-build/6.12/clang"}


def test_files_outside_inputs_and_touching_do_not_matter(project_copy: Path) -> None:
    before = all_keys(project_copy)
    (project_copy / "NOTES.md").write_text("not an input\n")
    os.utime(project_copy / "kernel" / "vexfs_main.c", (1, 1))  # mtime is not content
    assert all_keys(project_copy) == before


def test_new_file_under_an_input_glob_counts(project_copy: Path) -> None:
    before = all_keys(project_copy)
    (project_copy / "userspace" / "src" / "new.rs").write_text("// new\n")
    after = all_keys(project_copy)
    assert before["crate-test/default"] != after["crate-test/default"]
    assert before["kmod-build/6.1"] == after["kmod-build/6.1"]


def test_step_change_invalidates(project_copy: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped kmod-build job's step comes from its recipe (kind: kmod-build)."""
    before = all_keys(project_copy)
    recipes = tmp_path / "recipes"
    shutil.copytree(recipe_module.RECIPES, recipes)
    recipe = recipes / "kmod-build.yml"
    recipe.write_text(recipe.read_text().replace(
        'M="$WORK/module" modules', 'M="$WORK/module" modules V=1'))
    monkeypatch.setattr(recipe_module, "RECIPES", recipes)
    recipe_module.load_recipe.cache_clear()
    try:
        after = all_keys(project_copy)
    finally:
        recipe_module.load_recipe.cache_clear()
    assert before["kmod-build/6.1"] != after["kmod-build/6.1"]
    assert before["vm-test/6.1"] != after["vm-test/6.1"]  # through its need's key
    assert before["crate-test/default"] == after["crate-test/default"]


def test_env_timeout_and_limits_are_part_of_the_key(project_copy: Path) -> None:
    keys, jobs = computer(project_copy)
    job = jobs["crate-test/default"]
    base = keys.key(job)
    fresh = lambda: computer(project_copy)[0]  # noqa: E731
    assert fresh().key(replace(job, env={"RUST_LOG": "debug"})) != base
    assert fresh().key(replace(job, timeout=job.timeout + 1)) != base
    limits = replace(job.spec.limits, memory="8g")
    assert fresh().key(replace(job, spec=replace(job.spec, limits=limits))) != base
    assert fresh().key(job) == base


def test_image_tag_and_image_id_are_part_of_the_key(project_copy: Path) -> None:
    before = all_keys(project_copy)
    flavours = project_copy / "images" / "flavours.yml"  # a project override of `rust`
    flavours.parent.mkdir(exist_ok=True)
    builtin = (Path(recipe_module.__file__).parents[2] / "images" / "flavours.yml").read_text()
    flavours.write_text(builtin.replace("    - rustc\n", "    - rustc\n    - jq\n", 1))
    after = all_keys(project_copy)
    assert before["crate-test/default"] != after["crate-test/default"]  # new rust tag
    assert before["kmod-build/6.1"] == after["kmod-build/6.1"]
    keys, jobs = computer(project_copy)
    tag = keys.image_tag(jobs["kmod-build/6.1"])
    rebuilt = all_keys(project_copy, image_ids={tag: "sha256:rebuilt"})
    assert rebuilt["kmod-build/6.1"] != after["kmod-build/6.1"]
    assert rebuilt["vm-test/6.1"] != after["vm-test/6.1"]
    assert rebuilt["kmod-build/6.12"] == after["kmod-build/6.12"]


def test_vm_runtime_is_part_of_vm_job_keys(project_copy: Path) -> None:
    before = all_keys(project_copy)
    after = all_keys(project_copy, runtime={**VM, "qemu": "QEMU emulator version 8.0"})
    assert before["vm-test/6.1"] != after["vm-test/6.1"]
    assert before["kmod-build/6.1"] == after["kmod-build/6.1"]


def test_no_key_while_an_image_is_not_built(project_copy: Path) -> None:
    keys, jobs = computer(project_copy)
    keys.image_id = lambda _tag: None
    assert keys.key(jobs["kmod-build/6.1"]) is None
    assert keys.key(jobs["vm-test/6.1"]) is None  # its need has no key either
    keys.image_id = lambda tag: "sha256:" + tag.split(":")[-1]
    assert keys.key(jobs["vm-test/6.1"]) == all_keys(project_copy)["vm-test/6.1"]


def test_source_tree_outside_git_skips_reports_and_targets(project_copy: Path) -> None:
    (project_copy / "reports" / "r1").mkdir(parents=True)
    (project_copy / "reports" / "r1" / "x").write_text("x")
    (project_copy / "userspace" / "target").mkdir()
    (project_copy / "userspace" / "target" / "y").write_text("y")
    files = SourceTree(project_copy).files()
    assert "kernel/vexfs_main.c" in files and "matrix.yml" in files
    assert not any(f.startswith("reports/") or "/target/" in f for f in files)


# --------------------------------------------------------------------------- store


def job_files(directory: Path, payload: bytes = b"module") -> Path:
    (directory / "artifacts" / "sub").mkdir(parents=True)
    (directory / "junit.xml").write_text("<testsuite name='j'><testcase name='build'/>"
                                         "</testsuite>")
    (directory / "log.txt").write_text("== step build (no network)\nok\n")
    (directory / "metadata.json").write_text(json.dumps({"status": "passed",
                                                         "tests": {"total": 1}}))
    (directory / "artifacts" / "vexfs.ko").write_bytes(payload)
    tool = directory / "artifacts" / "sub" / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    tool.chmod(0o755)
    return directory


def cache_at(tmp_path: Path, limit: int = 1 << 30) -> tuple[ResultCache, list[str]]:
    warnings: list[str] = []
    return ResultCache(tmp_path / "cache", limit, warn=warnings.append), warnings


KEY = "ab" + "0" * 62


def test_store_lookup_restore_round_trip(tmp_path: Path) -> None:
    cache, warnings = cache_at(tmp_path)
    source = job_files(tmp_path / "job")
    assert cache.lookup(KEY) is None
    assert cache.store(KEY, source, CACHED_FILES, {"job": "j", "run": "r1"})
    assert not cache.store(KEY, source, CACHED_FILES, {"job": "j", "run": "r2"})  # first wins
    entry = cache.lookup(KEY)
    assert entry is not None and entry.info["run"] == "r1"
    dest = tmp_path / "restored"
    assert cache.restore(entry, dest)
    for rel in ("junit.xml", "log.txt", "metadata.json", "artifacts/vexfs.ko",
                "artifacts/sub/tool"):
        assert (dest / rel).read_bytes() == (source / rel).read_bytes()
    assert os.access(dest / "artifacts" / "sub" / "tool", os.X_OK)
    assert not (tmp_path / "cache" / "tmp").exists() or not any(
        (tmp_path / "cache" / "tmp").iterdir())
    assert warnings == []


@pytest.mark.parametrize("damage", ["manifest", "missing", "size", "content"])
def test_corrupt_entry_is_reported_ignored_and_replaced(tmp_path: Path, damage: str) -> None:
    cache, warnings = cache_at(tmp_path)
    source = job_files(tmp_path / "job")
    cache.store(KEY, source, CACHED_FILES, {"job": "j"})
    path = cache.path(KEY)
    ko = path / "files" / "artifacts" / "vexfs.ko"
    if damage == "manifest":
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["body"]["info"]["job"] = "other"
        (path / "manifest.json").write_text(json.dumps(manifest))
    elif damage == "missing":
        ko.unlink()
    elif damage == "size":
        ko.write_bytes(b"truncated-or-longer-than-before")
    else:
        ko.write_bytes(b"MODULE")  # same size, other bytes: found while restoring
    entry = cache.lookup(KEY)
    if damage == "content":
        assert entry is not None
        assert not cache.restore(entry, tmp_path / "restored")
    else:
        assert entry is None
    assert len(warnings) == 1 and "corrupt" in warnings[0] and KEY[:16] in warnings[0]
    assert not path.exists()  # discarded
    assert cache.store(KEY, source, CACHED_FILES, {"job": "j"})  # and written again
    entry = cache.lookup(KEY)
    assert entry is not None and cache.restore(entry, tmp_path / "again")


def test_a_file_hashed_once_is_copied_unhashed_while_unchanged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.run import store

    cache, warnings = cache_at(tmp_path)
    cache.store(KEY, job_files(tmp_path / "job"), CACHED_FILES, {"job": "j"})
    entry = cache.lookup(KEY)
    assert entry is not None and cache.restore(entry, tmp_path / "first")
    # just written: its ctime is within RACY_NS of now, so nothing is trusted yet
    assert not (entry.path / store.VERIFIED).exists()
    monkeypatch.setattr(store, "RACY_NS", -10**9)  # as if the files were older
    assert cache.restore(entry, tmp_path / "second")
    stamps = json.loads((entry.path / store.VERIFIED).read_text())
    assert set(stamps) == {rel for rel, *_ in entry.body["files"]}

    def no_hashing(*_args: object) -> tuple[int, str]:
        raise AssertionError("hashed a file whose stamp is unchanged")

    monkeypatch.setattr(store, "_copy_hashing", no_hashing)
    assert cache.restore(entry, tmp_path / "third")
    for rel in stamps:
        assert (tmp_path / "third" / rel).read_bytes() == (entry.path / "files" / rel
                                                           ).read_bytes()
    assert warnings == []


def test_a_file_changed_after_its_hash_is_found_even_with_its_mtime_put_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.run import store

    monkeypatch.setattr(store, "RACY_NS", -10**9)
    cache, warnings = cache_at(tmp_path)
    cache.store(KEY, job_files(tmp_path / "job"), CACHED_FILES, {"job": "j"})
    entry = cache.lookup(KEY)
    assert entry is not None and cache.restore(entry, tmp_path / "first")
    ko = entry.path / "files" / "artifacts" / "vexfs.ko"
    before = ko.stat()
    ko.write_bytes(b"MODULE")  # same size, other bytes, and the old times put back
    os.utime(ko, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert not cache.restore(entry, tmp_path / "second")  # ctime moved: hashed, found
    assert len(warnings) == 1 and "content differs" in warnings[0]


def test_store_replaces_a_corrupt_entry_in_place(tmp_path: Path) -> None:
    cache, _ = cache_at(tmp_path)
    source = job_files(tmp_path / "job")
    cache.store(KEY, source, CACHED_FILES, {"job": "j", "run": "old"})
    (cache.path(KEY) / "files" / "junit.xml").write_text("garbage")
    assert cache.store(KEY, source, CACHED_FILES, {"job": "j", "run": "new"})
    assert cache.lookup(KEY).info["run"] == "new"


def test_prune_removes_least_recently_used_first(tmp_path: Path) -> None:
    cache, _ = cache_at(tmp_path)
    keys = [f"{i:02x}" + "1" * 62 for i in range(6)]
    for i, key in enumerate(keys):
        cache.store(key, job_files(tmp_path / f"job{i}", b"x" * 10_000), CACHED_FILES, {})
        os.utime(cache.path(key) / "manifest.json", (1000 + i, 1000 + i))
    assert cache.lookup(keys[0]) is not None  # a hit makes it the most recently used
    sizes = {p.name: size for _, size, p in cache.entries()}
    limit = int(sum(sizes.values()) * 0.6)
    removed, left = cache.prune(limit)
    survivors = {p.name for _, _, p in cache.entries()}
    assert left <= limit * 0.9 and removed == 6 - len(survivors)
    assert keys[0] in survivors and keys[1] not in survivors and keys[5] in survivors
    order = keys[1:] + keys[:1]  # least to most recently used
    assert survivors == set(order[len(order) - len(survivors):])


def test_store_prunes_to_the_bound_and_zero_disables(tmp_path: Path) -> None:
    cache, _ = cache_at(tmp_path, limit=25_000)
    for i in range(5):
        cache.store(f"{i:02x}" + "2" * 62, job_files(tmp_path / f"j{i}", b"y" * 10_000),
                    CACHED_FILES, {})
        time.sleep(0.01)
    stats = cache.stats()
    assert stats["bytes"] <= 25_000 and stats["entries"] == 2
    off, _ = cache_at(tmp_path / "off", limit=0)
    assert not off.store(KEY, tmp_path / "j0", CACHED_FILES, {})
    assert off.lookup(KEY) is None


def test_concurrent_writers_and_readers_of_one_key(tmp_path: Path) -> None:
    cache, warnings = cache_at(tmp_path)
    sources = [job_files(tmp_path / f"w{i}", b"z" * 200_000) for i in range(4)]
    wrote: list[bool] = []
    restored: list[bool] = []
    start, done = threading.Barrier(5), threading.Event()

    def writer(source: Path) -> None:
        start.wait()
        for _ in range(10):
            wrote.append(cache.store(KEY, source, CACHED_FILES, {"job": "j"}))
            if len(wrote) % 7 == 0:
                cache.discard(KEY)
            time.sleep(0.002)

    def reader() -> None:
        start.wait()
        i = 0
        while not done.is_set():
            entry = cache.lookup(KEY)
            if entry is not None:
                restored.append(cache.restore(entry, tmp_path / "r" / str(i)))
                i += 1

    writers = [threading.Thread(target=writer, args=(s,)) for s in sources]
    read = threading.Thread(target=reader)
    for thread in [*writers, read]:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    read.join()
    assert any(wrote) and restored.count(True) >= 3
    # readers never saw a partial entry; an entry discarded mid-read is a silent miss
    assert warnings == [], warnings
    assert cache.lookup(KEY) is None or cache.restore(cache.lookup(KEY), tmp_path / "end")
    assert not any((tmp_path / "cache" / "tmp").iterdir())


def _store_in_process(args: tuple[str, str, str]) -> bool:
    root, source, key = args
    return ResultCache(Path(root), 1 << 30).store(key, Path(source), CACHED_FILES, {"p": 1})


def test_two_processes_racing_on_one_key(tmp_path: Path) -> None:
    import multiprocessing

    source = job_files(tmp_path / "job", b"q" * 500_000)
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        results = pool.map(_store_in_process,
                           [(str(tmp_path / "cache"), str(source), KEY)] * 6)
    assert results.count(True) >= 1
    cache, warnings = cache_at(tmp_path)
    entry = cache.lookup(KEY)
    assert entry is not None and cache.restore(entry, tmp_path / "out") and warnings == []


# --------------------------------------------------------------------------- runner


def test_cached_job_is_restored_without_images_or_containers(project_copy: Path,
                                                             tmp_path: Path) -> None:
    keys, jobs = computer(project_copy)
    job = jobs["kmod-build/6.1"]
    cache, warnings = cache_at(tmp_path)
    orig = job_files(tmp_path / "orig")
    (orig / "reproduce.sh").write_text("docker run -v /old/root:/src:ro "
                                       "-v /old/run/x/artifacts:/needs/x:ro img\n")
    cache.store(keys.key(job), orig, CACHED_FILES,
                {"job": job.id, "run": "r0", "seconds": 42.0, "image": "kmatrix/kbuild:x",
                 "paths": {"root": "/old/root", "needs": "/old/run"}})
    run_dir = tmp_path / "run"
    ctx = RunContext(run_id="r1", run_dir=run_dir, root=project_copy, images=None,
                     containers=None, kernels=keys.kernels, flavour_caches={},
                     cache=cache, keys=keys, warn=warnings.append)
    result = run_job(ctx, job)  # images/containers are None: using them would raise
    assert result.status == CACHED and result.tests == 1 and "r0" in result.message
    directory = run_dir / "kmod-build" / "6.1"
    assert (directory / "artifacts" / "vexfs.ko").read_bytes() == b"module"
    assert "<testcase name='build'/>" in (directory / "junit.xml").read_text()
    meta = json.loads((directory / "metadata.json").read_text())
    assert meta["status"] == "passed" and meta["cache"]["hit"] and meta["cache"]["run"] == "r0"
    assert (directory / "log.txt").read_text().startswith("== cached: result ")
    assert (directory / "reproduce.sh").read_text() == (
        f"docker run -v {project_copy}:/src:ro -v {run_dir}/x/artifacts:/needs/x:ro img\n")
    assert warnings == []


def test_a_change_to_the_result_shaping_code_invalidates_every_key(project_copy: Path,
                                                                    monkeypatch) -> None:
    import pipeline.plan.keys as cache

    before = all_keys(project_copy)
    assert len(cache.tool_digest()) == 16 and cache.tool_digest() == cache.tool_digest()
    monkeypatch.setattr(cache, "_TOOL_DIGEST", "0" * 16)  # as if runner.py had changed
    after = all_keys(project_copy)
    assert all(before[j] != after[j] for j in before if before[j] is not None)


@pytest.mark.parametrize("damage", [None, "manifest", "content", "key"])
def test_adopt_takes_in_only_valid_entries_from_another_store(tmp_path: Path,
                                                              damage: str | None) -> None:
    """A worker's entry uploaded to the master: kept when intact, dropped otherwise."""
    worker = ResultCache(tmp_path / "worker", 1 << 30)
    master = ResultCache(tmp_path / "master", 1 << 30)
    assert worker.store(KEY, job_files(tmp_path / "job"), CACHED_FILES, {"job": "j"})
    uploaded = tmp_path / "incoming"
    shutil.copytree(worker.path(KEY), uploaded)
    if damage == "manifest":
        (uploaded / "manifest.json").write_text("{")
    elif damage == "content":
        (uploaded / "files" / "artifacts" / "vexfs.ko").write_bytes(b"MODULE")
    elif damage == "key":
        (uploaded / "manifest.json").write_text(
            (uploaded / "manifest.json").read_text().replace(KEY, "../" + KEY[3:]))
    adopted = master.adopt(uploaded)
    assert not uploaded.exists()
    if damage is None:
        assert adopted == KEY
        assert master.entry_files(KEY)[-1] == "manifest.json"
        assert "files/artifacts/vexfs.ko" in master.entry_files(KEY)
        assert master.lookup(KEY) is not None
    else:
        assert adopted is None and master.lookup(KEY) is None
        assert master.entry_files(KEY) == []


# --------------------------------------------------------------------------- key material


def _package_copy(tmp_path: Path) -> Path:
    import pipeline

    package = tmp_path / "pipeline"
    shutil.copytree(Path(pipeline.__file__).resolve().parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return package


def test_code_digest_covers_every_file_of_the_package(tmp_path: Path) -> None:
    """Not a hand-kept list: code and data anywhere in the package (recipes, templates,
    the report and CLI code, a new file) change the digest; byte-code caches do not."""
    from pipeline.plan.keys import package_digest, package_files

    package = _package_copy(tmp_path)
    names = {p.relative_to(package).as_posix() for p in package_files(package)}
    assert {"cli/parser.py", "report/summary.py", "model/schema.py", "model/recipes/cargo-test.yml",
            "report/templates/report.html.j2", "run/templates/vm-init.j2"} <= names
    base = package_digest(package)
    assert package_digest(package) == base
    for rel in ("report/summary.py", "model/recipes/cargo-test.yml",
                "report/templates/report.html.j2", "model/schema.py", "cli/parser.py"):
        path = package / rel
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        assert package_digest(package) != base, rel
        path.write_bytes(original)
    assert package_digest(package) == base
    (package / "run" / "limits.json").write_text("{}")  # a new data file counts
    assert package_digest(package) != base
    (package / "run" / "limits.json").unlink()
    (package / "run" / "__pycache__").mkdir()
    (package / "run" / "__pycache__" / "runner.cpython-311.pyc").write_bytes(b"byte code")
    (package / "run" / ".runner.py.swp").write_bytes(b"an editor's")
    assert package_digest(package) == base
    (package / "errors.py").rename(package / "errors2.py")  # same bytes, another module
    assert package_digest(package) != base


def test_code_digest_is_the_installed_package_computed_once(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pipeline
    import pipeline.plan.keys as keys

    calls: list[Path] = []
    real = keys.package_digest
    monkeypatch.setenv("KMATRIX_CACHE_DIR", str(tmp_path))  # no digest remembered yet
    monkeypatch.setattr(keys, "_TOOL_DIGEST", None)
    monkeypatch.setattr(keys, "package_digest", lambda p: calls.append(p) or real(p))
    first = keys.tool_digest()
    assert keys.tool_digest() == first and len(calls) == 1
    assert calls == [Path(pipeline.__file__).resolve().parent]
    assert first == real(calls[0]) and len(first) == 16
    assert not hasattr(keys, "BEHAVIOUR_FILES")
    monkeypatch.setattr(keys, "_TOOL_DIGEST", None)  # the next process: files unchanged
    assert keys.tool_digest() == first and len(calls) == 1


def test_key_material_is_the_content_of_exactly_what_the_job_sees(project_copy) -> None:
    keys, jobs = computer(project_copy)
    job = jobs["crate-test/default"]
    seen = keys.tree.matched(job.spec.inputs)
    assert {"kernel/include/uapi/vexfs.h", "kernel/tests/abi_dump.c",
            "userspace/Cargo.toml", "userspace/tests/abi_c.rs"} <= set(seen)
    assert "kernel/vexfs_main.c" not in seen and "matrix.yml" not in seen
    material = keys.material(job)
    assert material["input_files"] == len(seen)
    assert material["definition"]["env"]["VEXFS_REQUIRE_C_ABI"] == "1"
    assert material["runs_on"]["image_id"].startswith("sha256:")
    for rel in seen:  # each file's content is in the key, none other's
        path = project_copy / rel
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        assert computer(project_copy)[0].key(job) != keys.key(job), rel
        path.write_bytes(original)
    (project_copy / "kernel" / "vexfs_main.c").write_text("/* not seen */\n")
    assert computer(project_copy)[0].key(job) == keys.key(job)


def test_header_change_changes_every_job_that_reads_it(project_copy: Path) -> None:
    before = all_keys(project_copy)
    header = project_copy / "kernel" / "include" / "uapi" / "vexfs.h"
    header.write_text(header.read_text() + "\n/* edited */\n")
    after = all_keys(project_copy)
    changed = {j for j in before if before[j] != after[j]}
    readers = {j for j in before
               if j.startswith(("crate-test/", "kmod-build", "vm-test", "vm-bench"))}
    assert changed == readers | {"abi-check"}
    assert len([j for j in changed if j.startswith("crate-test/")]) >= 10
    assert not changed & {"vexctl-static", "feature-guards", "crate-build/kernel"}


def test_a_job_without_inputs_is_keyed_by_every_project_file_but_reports(
        project_copy: Path) -> None:
    keys, jobs = computer(project_copy)
    job = jobs["feature-guards"]
    whole = replace(job, spec=replace(job.spec, inputs=()))
    plain = computer(project_copy)[0].key(job)
    base = keys.key(whole)  # (keys are memoised by job id: a fresh computer for each)
    assert keys.material(whole)["input_files"] == len(keys.tree.files())
    (project_copy / "reports" / "r1").mkdir(parents=True)
    (project_copy / "reports" / "r1" / "summary.json").write_text("{}")
    assert computer(project_copy)[0].key(whole) == base
    (project_copy / "NOTES.md").write_text("any project file\n")
    assert computer(project_copy)[0].key(whole) != base
    assert computer(project_copy)[0].key(job) == plain  # not in its inputs


def test_host_files_a_vm_job_boots_with_are_keyed(project_copy: Path, tmp_path: Path) -> None:
    """A `vm:` path outside $SRC and $NEEDS (e.g. a tool of the machine) is hashed."""
    tool = tmp_path / "tool"
    tool.write_bytes(b"v1")
    _, jobs = computer(project_copy)
    job = jobs["vm-test/6.1"]
    assert job.spec.vm is not None
    vm = replace(job.spec.vm, files={**job.spec.vm.files, "/tests/tool": str(tool)})
    edited = replace(job, spec=replace(job.spec, vm=vm))
    first = computer(project_copy)[0].key(edited)
    assert computer(project_copy)[0].material(edited)["runs_on"]["host_files"] == {
        str(tool): hashlib.sha256(b"v1").hexdigest()}
    tool.write_bytes(b"v2")
    assert computer(project_copy)[0].key(edited) != first
