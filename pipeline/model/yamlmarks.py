"""YAML loading that remembers where every value came from (file:line:col).

The loader is a safe subset of YAML: mappings, sequences and scalars (strings, numbers,
booleans, null). Timestamps stay strings; other tags are errors. Every failure is an
`InputError` with a mark, including hostile input: nesting is limited to `MAX_DEPTH`,
and anchors/aliases may add at most `MAX_ALIAS_NODES` values (no "billion laughs").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from pipeline.errors import InputError, Mark

MAX_DEPTH = 64  # nesting levels; a real matrix.yml needs about 7
MAX_ALIAS_NODES = 100_000  # values that aliases may add to the document when expanded

try:  # libyaml's scanner/parser (C) under our Python composer: same marks, much faster
    from yaml._yaml import CParser as _Parser

    _C_PARSER = True
except ImportError:  # pragma: no cover - PyYAML without libyaml
    _C_PARSER = False


class MarkedDict(dict):
    """A mapping that knows its own mark and the marks of its keys and values.

    `key_texts`/`value_texts` hold the source text of keys/values that YAML did not read
    as strings (`6.10` -> 6.1, `no` -> False), so messages can quote what was written.
    """

    mark: Mark
    key_marks: dict[Any, Mark]
    value_marks: dict[Any, Mark]
    key_texts: dict[Any, str]
    value_texts: dict[Any, str]


class MarkedList(list):
    """A sequence that knows its own mark and the marks (and source texts) of its items."""

    mark: Mark
    item_marks: list[Mark]
    item_texts: dict[int, str]


def _mark(path: str, node: Any) -> Mark:
    """Our Mark for a node, an event or a parser mark (PyYAML's or libyaml's)."""
    start = getattr(node, "start_mark", node)
    return Mark(path, start.line + 1, start.column + 1)


_STR = "tag:yaml.org,2002:str"


def _scalar_text(node: yaml.Node) -> str | None:
    """Source text of a plain scalar that was not read as a string."""
    if isinstance(node, yaml.ScalarNode) and node.tag != _STR:
        return node.value
    return None


_KINDS = (
    (bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
    (dict, "a mapping"), (list, "a list"),
)


def describe(value: Any) -> str:
    """What a loaded value is, in words (`a string`, `a list`, `nothing (null)`)."""
    if value is None:
        return "nothing (null)"
    for kind, words in _KINDS:
        if isinstance(value, kind):
            return words
    return "a value of an unsupported type"


if _C_PARSER:
    _Bases: tuple[type, ...] = (_Parser,)
else:  # pragma: no cover
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    _Bases = (Reader, Scanner, Parser)


class _Loader(*_Bases, Composer, SafeConstructor, Resolver):  # type: ignore[misc]
    """Marked, bounded, duplicate-key-checking YAML loader."""

    def __init__(self, text: str, path: str) -> None:
        if _C_PARSER:
            _Parser.__init__(self, text)
        else:  # pragma: no cover
            Reader.__init__(self, text)
            Scanner.__init__(self)
            Parser.__init__(self)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self.source_path = path
        self._depth = 0
        self._alias_nodes = 0
        self._sizes: dict[int, int] = {}  # id(node) -> values in it, aliases expanded

    # -- composing: depth and alias limits --------------------------------------------

    def get_single_node(self) -> yaml.Node | None:
        # Python's Composer (CParser has its own, which we must not use: no limits)
        return Composer.get_single_node(self)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None:
                size = self._sizes.get(id(node))
                if size is None:
                    raise InputError(f"alias *{event.anchor} refers to a value that contains "
                                     "it (a recursive alias)", mark=_mark(self.source_path,
                                                                          event),
                                     hint="aliases must refer to a complete earlier value")
                self._alias_nodes += size
                if self._alias_nodes > MAX_ALIAS_NODES:
                    raise InputError(
                        f"aliases expand to more than {MAX_ALIAS_NODES} values "
                        "(a \"billion laughs\" document?)", mark=_mark(self.source_path, event),
                        hint="write the values out or use fewer nested aliases")
            return Composer.compose_node(self, parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise InputError(f"nesting deeper than {MAX_DEPTH} levels",
                             mark=_mark(self.source_path, self.peek_event()),
                             hint="matrix.yml needs only a few levels; flatten this value")
        try:
            node = Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._sizes.get(id(child), 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1)
                           for k, v in node.value)
        else:
            size = 1
        self._sizes[id(node)] = size
        return node

    # -- constructing: marks, duplicate keys, plain values only ------------------------

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, KeyError, TypeError, OverflowError):  # `!!int abc`, `!!bool x`
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            what = _show(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            raise InputError(f"{what} is not a valid {tag} value",
                             mark=_mark(self.source_path, node),
                             hint="remove the explicit tag or fix the value") from None

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> MarkedDict:
        path = self.source_path
        if not isinstance(node, yaml.MappingNode):
            raise InputError(f"expected a mapping here, found {node.id}",
                             mark=_mark(path, node), hint="use `key: value` entries")
        own = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        self.flatten_mapping(node)  # `<<: *base` first, then own keys (which override)
        result = MarkedDict()
        result.mark = _mark(path, node)
        result.key_marks = {}
        result.value_marks = {}
        result.key_texts = {}
        result.value_texts = {}
        owned: set[Any] = set()
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, dict | list):
                raise InputError(f"a mapping key must be a plain scalar, not {describe(key)}",
                                 mark=_mark(path, key_node),
                                 hint="use a string key; quote it if it contains [ ] { }")
            if key in result and id(key_node) in own and key in owned:
                first = result.key_marks[key].line
                written = _scalar_text(key_node)
                if written is not None and written != _show(key):  # 6.10 after 6.1
                    raise InputError(
                        f"duplicate key {written}: YAML reads it as {_show(key)}, the same as "
                        f"the key at line {first}", mark=_mark(path, key_node),
                        hint=f'quote the keys ("{written}")')
                raise InputError(
                    f"duplicate key {_show(key)} (first defined at line {first})",
                    mark=_mark(path, key_node), hint="remove or rename one of them")
            if id(key_node) in own:
                owned.add(key)
            if key in result:  # an own key overrides a merged one, and moves to its place
                del result[key]
                result.key_texts.pop(key, None)
                result.value_texts.pop(key, None)
            result[key] = self.construct_object(value_node, deep=True)
            result.key_marks[key] = _mark(path, key_node)
            result.value_marks[key] = _mark(path, value_node)
            if key_node.tag != _STR:
                result.key_texts[key] = key_node.value
            if value_node.tag != _STR and isinstance(value_node, yaml.ScalarNode):
                result.value_texts[key] = value_node.value
        return result

    def construct_marked_sequence(self, node: yaml.SequenceNode) -> MarkedList:
        result = MarkedList(self.construct_object(child, deep=True) for child in node.value)
        result.mark = _mark(self.source_path, node)
        result.item_marks = [_mark(self.source_path, child) for child in node.value]
        result.item_texts = {i: t for i, child in enumerate(node.value)
                             if (t := _scalar_text(child)) is not None}
        return result

    def construct_text(self, node: yaml.ScalarNode) -> str:
        """Timestamps stay as written (no field wants a date; bad dates must not crash)."""
        return str(node.value)

    def construct_unsupported(self, node: yaml.Node) -> Any:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise InputError(f"unsupported YAML tag {tag}", mark=_mark(self.source_path, node),
                         hint="remove the tag: matrix.yml uses plain mappings, lists, strings, "
                              "numbers and booleans")


_Loader.yaml_constructors = dict(SafeConstructor.yaml_constructors)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
                        _Loader.construct_marked_sequence)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_text)
for _tag in ("tag:yaml.org,2002:omap", "tag:yaml.org,2002:pairs", "tag:yaml.org,2002:set",
             "tag:yaml.org,2002:binary", None):
    _Loader.add_constructor(_tag, _Loader.construct_unsupported)


def _show(value: Any) -> str:
    """A key or value for a message: strings quoted, YAML spelling for the rest."""
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# YAML allows only printable characters (plus tab, newlines); 1.1's set, as PyYAML checks it.
# Written as the characters outside that set: the same test, a tenth of the compile time.
_NON_PRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f"
                            "\ud800-\udfff\ufffe\uffff]")


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _syntax_error(exc: yaml.MarkedYAMLError, text: str, path: str) -> InputError:
    """A parser error rephrased: what is wrong, where, and how to fix it."""
    problem = (exc.problem or "").strip()
    context = (exc.context or "").strip()
    mark = exc.problem_mark or exc.context_mark
    where = _mark(path, mark) if mark else Mark(path, 1, 1)
    char = ""
    if mark is not None:
        lines = text.split("\n")
        if mark.line < len(lines) and mark.column < len(lines[mark.line]):
            char = lines[mark.line][mark.column]
    if char == "\t" or (problem.startswith("found character") and "\\t" in problem):
        return InputError("YAML syntax error: a tab character where YAML expects spaces",
                          mark=where, hint="indent with spaces (YAML forbids tabs there)")
    if "quoted scalar" in context and exc.context_mark is not None:
        return InputError("YAML syntax error: a quoted string is never closed",
                          mark=_mark(path, exc.context_mark),
                          hint="add the closing quote (or escape the quote inside the string)")
    if "expected a single document" in context or "another document" in problem:
        return InputError("YAML syntax error: more than one YAML document ('---')", mark=where,
                          hint="matrix.yml is a single document: remove the extra `---`")
    hints = {
        "mapping values are not allowed": "quote a value that contains ': ', or fix the "
                                          "indentation of this line",
        "could not find expected ':'": "a line is missing `: ` after its key, or a string "
                                       "needs quotes",
        "did not find expected key": "check the indentation: keys of one mapping must line up",
        "did not find expected '-' indicator": "check the indentation of this list's items",
        "found undefined alias": "define the anchor (&name) before using the alias (*name)",
        "found duplicate anchor": "give each anchor a different name",
        "while scanning an alias": "an alias is *name, with a name after the *",
        "while scanning an anchor": "an anchor is &name, with a name after the &",
        "found unexpected end of stream": "the file ends inside a value: close it",
        "found unexpected ':'": "quote the value: it contains ':'",
        "did not find expected ',' or ']'": "close the list with ']' or separate items "
                                            "with ','",
        "did not find expected ',' or '}'": "close the mapping with '}' or separate entries "
                                            "with ','",
        "cannot start any token": "quote the value: it starts with a reserved character "
                                  "(@ ` % |)",
        "exceeded maximum nesting depth": "matrix.yml needs only a few levels; flatten this "
                                          "value",
    }
    hint = next((h for key, h in hints.items() if key in problem or key in context),
                "fix the YAML syntax here (an editor with a YAML mode shows it)")
    message = problem or context or "invalid YAML"
    if context and problem and context not in problem:
        message = f"{problem} ({context}"
        if exc.context_mark is not None and exc.problem_mark is not None \
                and exc.context_mark.line != exc.problem_mark.line:
            message += f" at line {exc.context_mark.line + 1}"
        message += ")"
    return InputError(f"YAML syntax error: {message}", mark=where, hint=hint)


def load_yaml_text(text: str, path: str) -> Any:
    """Parse YAML text; every problem becomes an InputError with file:line:col."""
    bad = _NON_PRINTABLE.search(text)
    if bad:
        line, col = _position(text, bad.start())
        raise InputError(f"the file contains the control character U+{ord(bad.group()):04X}",
                         mark=Mark(path, line, col),
                         hint="remove it: YAML allows only printable text (is this a text "
                              "file?)")
    loader = _Loader(text, path)
    try:
        return loader.get_single_data()
    except InputError:
        raise
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, text, path) from None
    except yaml.YAMLError as exc:
        reason = getattr(exc, "reason", None) or str(exc).split("\n", 1)[0]
        raise InputError(f"YAML error: {reason}", mark=Mark(path, 1, 1),
                         hint="fix the YAML syntax") from None
    except RecursionError:  # pragma: no cover - MAX_DEPTH keeps us far from it
        raise InputError("YAML nesting is too deep", mark=Mark(path, 1, 1)) from None
    finally:
        loader.dispose()


def load_yaml_file(path: Path) -> Any:
    """Read and parse a YAML file, reporting unreadable files as InputError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw.count(b"\n", 0, start) + 1
        line_start = raw.rfind(b"\n", 0, start) + 1
        col = len(raw[line_start:start].decode("utf-8", errors="replace")) + 1
        hint = "save it as UTF-8"
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            hint = "the file looks like UTF-16: save it as UTF-8"
        elif b"\0" in raw[:1024]:
            hint = "this looks like a binary file, not YAML; check the --matrix path"
        raise InputError(f"not UTF-8 text: byte 0x{raw[start]:02x} cannot start a character "
                         "here", mark=Mark(str(path), line, col), hint=hint) from None
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


def source_text(container: Any, key: Any, *, of_key: bool = False) -> str:
    """How `container[key]` (or the key itself) was written in the file.

    Differs from str(value) for scalars YAML did not read as strings: `6.10` (read as
    6.1), `no` (read as False), `~` (null).
    """
    texts = None
    if isinstance(container, MarkedDict):
        texts = container.key_texts if of_key else container.value_texts
    elif isinstance(container, MarkedList) and not of_key:
        texts = container.item_texts
    if texts and key in texts:
        return texts[key]
    value = key if of_key else container[key]
    return _show(value) if not isinstance(value, str) else value
