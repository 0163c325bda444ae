"""The order a run starts its jobs in (pipeline.plan.order): longest remaining chain first."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pipeline.model.expand import Job, expand
from pipeline.model.matrix import load_matrix
from pipeline.plan.order import chain_costs, critical_path_first

ROOT = Path(__file__).resolve().parents[2]


def _jobs() -> list[Job]:
    return expand(load_matrix(ROOT / "matrix.yml"))


def _graph(edges: dict[str, tuple[str, ...]], base: Job) -> list[Job]:
    return [replace(base, id=name, needs=needs) for name, needs in edges.items()]


def test_chain_is_own_cost_plus_costliest_dependent_chain() -> None:
    base = _jobs()[0]
    jobs = _graph({"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ()}, base)
    cost = {"a": 1.0, "b": 5.0, "c": 2.0, "d": 1.0, "e": 3.0}
    chains = chain_costs(jobs, lambda j: cost[j.id])
    assert chains == {"a": 7.0, "b": 6.0, "c": 3.0, "d": 1.0, "e": 3.0}
    # needs outside the given jobs (already done elsewhere) do not count
    assert chain_costs(jobs[1:], lambda j: cost[j.id])["b"] == 6.0


def test_equal_costs_keep_the_matrix_order_among_equal_chains() -> None:
    jobs = _jobs()
    ordered = critical_path_first(jobs, lambda _j: 1.0)
    assert sorted(j.id for j in ordered) == sorted(j.id for j in jobs)
    chains = chain_costs(jobs, lambda _j: 1.0)
    # builds that VM jobs need (chains of 2) come before the leaves, each group in the
    # matrix's order
    firsts = [j.id for j in ordered if chains[j.id] == 2.0]
    assert firsts == [j.id for j in jobs if chains[j.id] == 2.0]
    assert "kmod-build/5.10" in firsts and "vexctl-static" in firsts
    assert ordered[:len(firsts)] == [j for j in ordered if j.id in firsts]
    assert [j.id for j in ordered[len(firsts):]] == [j.id for j in jobs if j.id not in firsts]


def test_the_job_behind_a_missing_slow_image_starts_first() -> None:
    """A fresh machine: the kbuild-rust-debian image (a kernel tree prepared for Rust) is
    missing, so the Rust module's build starts first although the matrix lists four kmod
    builds before it."""
    jobs = _jobs()
    assert [j.id for j in jobs].index("kmod-build-rust/7.3") == 4
    slow = {"kbuild-rust-debian": 16.0, "kbuild-clang": 8.0}
    ordered = critical_path_first(jobs, lambda j: 1.0 + slow.get(j.spec.image, 0.0))
    assert [j.id for j in ordered[:2]] == ["kmod-build-rust/7.3", "kmod-build/6.12/clang"]
    position = {j.id: i for i, j in enumerate(ordered)}
    for job in jobs:  # still a valid start order: every need before the job needing it
        assert all(position[n] < position[job.id] for n in job.needs)


def test_build_minutes_are_flavour_data(tmp_path: Path) -> None:
    import pytest

    from pipeline.debian.images import ImageCatalog
    from pipeline.errors import InputError

    shipped = ImageCatalog(ROOT / "images")
    assert shipped.build_minutes("kbuild-rust") > shipped.build_minutes("kbuild-clang") \
        > shipped.build_minutes("kbuild") == 3.0
    (tmp_path / "flavours.yml").write_text("odd:\n  build-minutes: soon\n")
    with pytest.raises(InputError, match="flavour 'odd': build-minutes is 'soon'"):
        ImageCatalog(tmp_path).build_minutes("odd")
