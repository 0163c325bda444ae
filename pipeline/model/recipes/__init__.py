"""Built-in job kinds: partial job definitions (YAML) a job selects with `kind:`.

A job's own keys override the recipe's; `env` is merged (the job's variables win), so
recipe parameters such as MODULE_DIR or CRATE_DIR are set through the job's env.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pipeline.model.yamlmarks import MarkedDict, load_yaml_file, mark_of, merged, remarked, without

RECIPES = Path(__file__).resolve().parent


def recipe_names() -> list[str]:
    """The kinds that exist (one YAML file each in pipeline/model/recipes/)."""
    return sorted(p.stem for p in RECIPES.glob("*.yml"))


@cache
def load_recipe(kind: str) -> MarkedDict:
    """A recipe, with marks pointing into its file."""
    return load_yaml_file(RECIPES / f"{kind}.yml")


def apply_kinds(data: Any) -> Any:
    """Jobs with a known `kind:` get the recipe's keys under their own (in place).

    Unknown kinds are left alone: the schema reports them with the list of kinds.
    A job that declares its own `steps`, `run` or `vm` keeps only those commands.
    """
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
        return data
    known = set(recipe_names())
    for name, job in list(data["jobs"].items()):
        if not isinstance(job, MarkedDict) or job.get("kind") not in known:
            continue
        # the recipe's values are located at the job's `kind:` line: the user's file
        recipe = remarked(load_recipe(job["kind"]), mark_of(job, "kind"))
        if any(k in job for k in ("steps", "run", "vm")):
            recipe = without(recipe, ("steps", "run", "results", "vm"))
        data["jobs"][name] = merged(recipe, job, deep=("env",))
    return data
