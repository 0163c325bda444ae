"""Built-in job kinds: partial job definitions (YAML) a job selects with `kind:`.

A job's own keys override the recipe's; `env` is merged (the job's variables win), so
recipe parameters such as MODULE_DIR or CRATE_DIR are set through the job's env.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pipeline.model.yamlmarks import Mark, MarkedDict, MarkedList, load_yaml_file, mark_of

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


def merged(base: MarkedDict, over: MarkedDict, deep: tuple[str, ...] = ()) -> MarkedDict:
    """`base` with `over`'s keys on top, every key keeping the marks of where it came from.

    Keys listed in `deep` whose values are mappings on both sides are merged one level.
    """
    result = MarkedDict()
    result.mark = over.mark
    result.key_marks, result.value_marks, result.key_texts, result.value_texts = {}, {}, {}, {}
    for source in (base, over):
        for key, value in source.items():
            if key in deep and isinstance(value, MarkedDict) \
                    and isinstance(result.get(key), MarkedDict):
                value = merged(result[key], value)
            result[key] = value
            for attr in ("key_marks", "value_marks", "key_texts", "value_texts"):
                table = getattr(source, attr, {})
                if key in table:
                    getattr(result, attr)[key] = table[key]
                else:
                    getattr(result, attr).pop(key, None)
    return result


def without(mapping: MarkedDict, keys: tuple[str, ...]) -> MarkedDict:
    """A copy of a marked mapping without some keys."""
    empty = MarkedDict()
    empty.mark = mapping.mark
    empty.key_marks, empty.value_marks, empty.key_texts, empty.value_texts = {}, {}, {}, {}
    trimmed = merged(empty, mapping)
    for key in keys:
        trimmed.pop(key, None)
    return trimmed


def remarked(value: Any, mark: Mark) -> Any:
    """A deep copy of marked data with every mark replaced by `mark` (source texts kept):
    data taken from another file (a built-in recipe) is then located where it was used."""
    if isinstance(value, MarkedDict):
        out = MarkedDict((k, remarked(v, mark)) for k, v in value.items())
        out.mark = mark
        out.key_marks = dict.fromkeys(value.key_marks, mark)
        out.value_marks = dict.fromkeys(value.value_marks, mark)
        out.key_texts, out.value_texts = dict(value.key_texts), dict(value.value_texts)
        return out
    if isinstance(value, MarkedList):
        items = MarkedList(remarked(v, mark) for v in value)
        items.mark, items.item_marks = mark, [mark] * len(value.item_marks)
        items.item_texts = dict(value.item_texts)
        return items
    return value
