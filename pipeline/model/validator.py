"""A validator for the subset of JSON Schema that pipeline.model.schema uses, with located,
actionable messages (file:line:col from the marked YAML loader)."""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

from pipeline.errors import Diagnostic
from pipeline.model.yamlmarks import (
    Mark,
    describe,
    key_mark_of,
    mark_of,
    source_text,
)

_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool,
    "integer": int, "number": (int, float),
}
_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string",
               "boolean": "a boolean (true/false)", "integer": "an integer",
               "number": "a number"}
# what the names of a mapping's keys are called in messages
_KEY_LABELS = {"kernels": "kernel version", "features": "feature set name", "jobs": "job name",
               "env": "variable name", "axes": "axis name"}


def _type_ok(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def did_you_mean(word: str, choices: list[str]) -> str | None:
    """A ' did you mean X?' suggestion for a near-miss name."""
    word = str(word)
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if not close and len(word) >= 3:  # `each` for `each-feature`
        close = [c for c in names if c.startswith(word) or (word.startswith(c) and len(c) >= 3)]
    return f"did you mean {close[0]!r}?" if close else None


def validate(value: Any, schema: dict[str, Any], path: str = "",
             root_mark: Mark | None = None) -> list[Diagnostic]:
    """Check `value` (from the marked YAML loader) against `schema`.

    `root_mark` locates problems of the document itself when it is not a mapping or list
    (an empty file, a lone scalar).
    """
    return list(_validate(value, schema, path, None, None, root_mark))


def _quote_hint(parent: Any, key: Any, value: Any) -> str:
    if parent is None or isinstance(value, dict | list) or value is None:
        return ""
    text = source_text(parent, key)
    hint = f'; quote it ("{text}")'
    if isinstance(value, float) and text != str(value):
        hint += f": YAML reads {text} as the number {value}"
    elif isinstance(value, bool):
        hint += f": YAML reads {text} as {'true' if value else 'false'}"
    return hint


def _type_hint(value: Any, names: list[str], parent: Any, key: Any) -> str:
    words = [_TYPE_WORDS[t] for t in names if not (t == "integer" and "number" in names)]
    expected = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    hint = f"expected {expected}"
    if value is None:
        if "object" in names:
            hint += "; write {} for an empty mapping"
        elif "array" in names:
            hint += "; write [] for an empty list"
        elif "string" in names:
            hint += '; write "" for an empty string'
    elif "string" in names and not isinstance(value, dict | list):
        hint += _quote_hint(parent, key, value)
    elif "array" in names and not isinstance(value, dict):
        hint += f" such as [{source_text(parent, key) if parent is not None else value}]"
    return hint


def _validate(value, schema, path, parent, key, root_mark):
    mark = (mark_of(parent, key) if parent is not None else mark_of(value)) or root_mark
    where = path or "the file"
    types = schema.get("type")
    if types:
        names = types if isinstance(types, list) else [types]
        if not any(_type_ok(value, t) for t in names):
            if path:
                yield Diagnostic(f"{where} is {describe(value)}", mark,
                                 _type_hint(value, names, parent, key))
            else:
                yield Diagnostic("the file is " + ("empty (no YAML document)" if value is None
                                                   else describe(value)), mark,
                                 "expected a mapping with `kernels:` and `jobs:` at the top "
                                 "level (see `pipeline schema`)")
            return
    if isinstance(value, float) and not math.isfinite(value):
        yield Diagnostic(f"{where} is {value}", mark, "expected a finite number")
        return
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(repr(c) for c in schema["enum"])
        hint = did_you_mean(str(value), [str(c) for c in schema["enum"]])
        yield Diagnostic(f"{where}: {_short(value)} is not allowed", mark,
                         f"expected one of {choices}" + (f"; {hint}" if hint else ""))
        return
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"],
                                                                         value):
        yield Diagnostic(f"{where}: {_short(value)} is not valid", mark,
                         "expected " + schema.get("description", f"a match of "
                                                  f"{schema['pattern']!r}"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            yield Diagnostic(f"{where}: {value} is too small", mark,
                             f"expected at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            yield Diagnostic(f"{where}: {_short(value)} is too large", mark,
                             f"expected at most {schema['maximum']}")
    if isinstance(value, dict):
        yield from _validate_object(value, schema, path, mark)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            yield Diagnostic(f"{where} is empty", mark,
                             f"expected at least {schema['minItems']} item(s)")
        items = schema.get("items")
        if items:
            for index, item in enumerate(value):
                yield from _validate(item, items, f"{path}[{index}]", value, index, mark)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit - 4] + "...'"


def _validate_object(value, schema, path, mark):
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    names = schema.get("propertyNames")
    place = path or "the top level"
    for required in schema.get("required", []):
        if required not in value:
            yield Diagnostic(f"{place}: missing key {required!r}", mark_of(value) or mark,
                             f"add `{required}:`")
    if len(value) < schema.get("minProperties", 0):
        yield Diagnostic(f"{path or 'the file'} is empty", mark_of(value) or mark,
                         "declare at least one entry")
    for key, item in value.items():
        sub = f"{path}.{key}" if path else str(key)
        if names is not None:
            problem = _key_problem(value, key, names, path)
            if problem:
                yield problem
                continue
        if key in props:
            yield from _validate(item, props[key], sub, value, key, mark)
        elif extra is False:
            hint = did_you_mean(str(key), list(props))
            allowed = "allowed keys: " + ", ".join(props)
            yield Diagnostic(f"unknown key {source_text(value, key, of_key=True)!r} in {place}"
                             if isinstance(key, str) else
                             f"unknown key {source_text(value, key, of_key=True)} in {place}",
                             key_mark_of(value, key), f"{hint} {allowed}" if hint else allowed)
        elif isinstance(extra, dict):
            yield from _validate(item, extra, sub, value, key, mark)


def _key_problem(mapping: Any, key: Any, names: dict[str, Any], path: str) -> Diagnostic | None:
    label = _KEY_LABELS.get(path.rsplit(".", 1)[-1], "key")
    written = source_text(mapping, key, of_key=True)
    if not isinstance(key, str):
        hint = f'quote it ("{written}")'
        if isinstance(key, float) and written != str(key):
            hint += f": YAML reads {written} as the number {key}"
        elif isinstance(key, bool):
            hint += f": YAML reads {written} as {'true' if key else 'false'}"
        return Diagnostic(f"{path}: {label} {written} is not a string",
                          key_mark_of(mapping, key), hint)
    if not re.search(names["pattern"], key):
        return Diagnostic(f"{path}: {label} {_short(key)} is not valid",
                          key_mark_of(mapping, key),
                          "use " + names.get("description", f"a match of {names['pattern']!r}"))
    return None
