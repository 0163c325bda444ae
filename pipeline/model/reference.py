"""The key reference tables of docs/MATRIX.md, generated from the matrix.yml schema
(a unit test checks that the document's generated block is this output)."""

from __future__ import annotations

import json
from typing import Any

from pipeline.model.bench import BENCH
from pipeline.model.schema import (
    AXIS_VALUE,
    CELL_FILTER,
    FEATURE_SET,
    INCLUDE,
    JOB,
    KERNEL,
    LIMITS,
    MATRIX_SCHEMA,
    STEP,
    VM,
)

REFERENCE_SECTIONS = (
    ("Top level", MATRIX_SCHEMA),
    ("`defaults`", MATRIX_SCHEMA["properties"]["defaults"]),
    ("`defaults.limits`, `jobs.<name>.limits`", LIMITS),
    ("`kernels.<version>`", KERNEL),
    ("`features.<name>`", FEATURE_SET),
    ("`axes.<name>.<value>`", AXIS_VALUE),
    ("`jobs.<name>`", JOB),
    ("`jobs.<name>.steps[]`", STEP),
    ("`jobs.<name>.vm`", VM),
    ("`jobs.<name>.bench`", BENCH),
    ("`include[]`", INCLUDE),
    ("`exclude[]`", CELL_FILTER),
)


def _type_words(schema: dict[str, Any]) -> str:
    names = schema.get("type", [])
    names = names if isinstance(names, list) else [names]
    words = []
    for name in names:
        if name == "array":
            item = schema.get("items", {})
            inner = _type_words(item) if item else "values"
            words.append("list of " + (inner if inner.endswith("s") else inner + "s")
                         if item.get("type") != "array" else "list of lists of strings")
        elif name == "object":
            words.append("mapping")
        else:
            words.append(name)
    return " or ".join(words)


BAR = "\\|"  # a | inside a table cell


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _fact(value: Any) -> str:
    return f"`{value}`" if isinstance(value, str) and value else f"`{json.dumps(value)}`"


def reference_markdown() -> str:
    """Markdown tables of every key: type, default, constraints, description."""
    out = []
    for title, schema in REFERENCE_SECTIONS:
        out += [f"#### {title}", ""]
        if schema.get("description"):
            out += [_cell(schema["description"]), ""]
        out += ["| key | type | default | constraints | meaning |",
                "|---|---|---|---|---|"]
        required = set(schema.get("required", []))
        for key, prop in schema["properties"].items():
            rules = []
            if key in required:
                rules.append("required")
            if "enum" in prop:
                rules.append("one of " + ", ".join(_fact(v) for v in prop["enum"]))
            if "pattern" in prop:
                rules.append(f"matches {_fact(prop['pattern'])}")
            if "minimum" in prop:
                rules.append(f"≥ {prop['minimum']}")
            if "maximum" in prop:
                rules.append(f"≤ {prop['maximum']}")
            if prop.get("minItems") or prop.get("minProperties"):
                rules.append("not empty")
            if prop.get("propertyNames"):
                rules.append("names: " + prop["propertyNames"]["description"])
            default = _fact(prop["default"]) if "default" in prop else ""
            out.append(f"| `{key}` | {_type_words(prop)} | {default.replace('|', BAR)} | "
                       f"{_cell('; '.join(rules))} | {_cell(prop.get('description', ''))} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
