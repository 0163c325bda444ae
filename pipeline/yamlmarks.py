"""YAML loading that remembers where every value came from (file:line:col)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import InputError


@dataclass(frozen=True)
class Mark:
    """A position in a source file, 1-based like editors show it."""

    path: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


class MarkedDict(dict):
    """A mapping that knows its own mark and the marks of its keys and values."""

    mark: Mark
    key_marks: dict[Any, Mark]
    value_marks: dict[Any, Mark]


class MarkedList(list):
    """A sequence that knows its own mark and the marks of its items."""

    mark: Mark
    item_marks: list[Mark]


def _mark(path: str, node: yaml.Node) -> Mark:
    return Mark(path, node.start_mark.line + 1, node.start_mark.column + 1)


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry marks; duplicate keys are errors."""

    source_path = "<string>"

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> MarkedDict:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping, found {node.id}", node.start_mark
            )
        self.flatten_mapping(node)
        result = MarkedDict()
        result.mark = _mark(self.source_path, node)
        result.key_marks = {}
        result.value_marks = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise InputError(
                    "a mapping key must be a plain scalar",
                    mark=_mark(self.source_path, key_node),
                )
            if key in result:
                raise InputError(
                    f"duplicate key {key!r} (first defined at line "
                    f"{result.key_marks[key].line})",
                    mark=_mark(self.source_path, key_node),
                    hint="remove or rename one of them",
                )
            result[key] = self.construct_object(value_node, deep=True)
            result.key_marks[key] = _mark(self.source_path, key_node)
            result.value_marks[key] = _mark(self.source_path, value_node)
        return result

    def construct_marked_sequence(self, node: yaml.SequenceNode) -> MarkedList:
        result = MarkedList(self.construct_object(child, deep=True) for child in node.value)
        result.mark = _mark(self.source_path, node)
        result.item_marks = [_mark(self.source_path, child) for child in node.value]
        return result


_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping
)
_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _Loader.construct_marked_sequence
)


def load_yaml_text(text: str, path: str) -> Any:
    """Parse YAML text; syntax errors become InputError with file:line:col."""
    loader = _Loader(text)
    loader.source_path = path
    try:
        return loader.get_single_data()
    except InputError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(path, mark.line + 1, mark.column + 1) if mark else Mark(path, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise InputError(f"YAML syntax error: {problem}", mark=where) from None
    except yaml.YAMLError as exc:
        raise InputError(f"YAML error: {exc}", mark=Mark(path, 1, 1)) from None
    except RecursionError:
        raise InputError("YAML nesting is too deep", mark=Mark(path, 1, 1)) from None
    finally:
        loader.dispose()


def load_yaml_file(path: Path) -> Any:
    """Read and parse a YAML file, reporting unreadable files as InputError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    return load_yaml_text(text, str(path))


def mark_of(container: Any, key: Any = None) -> Mark | None:
    """Best-known mark of `container[key]` (or of the container itself)."""
    if key is None:
        return getattr(container, "mark", None)
    if isinstance(container, MarkedDict):
        return container.value_marks.get(key, container.mark)
    if isinstance(container, MarkedList) and isinstance(key, int) and key < len(container):
        return container.item_marks[key]
    return getattr(container, "mark", None)


def key_mark_of(container: Any, key: Any) -> Mark | None:
    """Mark of a mapping key (where an unknown-key error should point)."""
    if isinstance(container, MarkedDict):
        return container.key_marks.get(key, container.mark)
    return getattr(container, "mark", None)
