"""Reading YAML nodes into checked Python values, collecting every problem with its line.

Theory of operation: PyYAML's ``compose`` gives a node tree in which every key and
value carries its start mark (line, column). :class:`MapReader` wraps one mapping
node: on construction it reports duplicate keys, non-text keys and unknown keys
(with a "did you mean" suggestion); its getters convert one value each and, on a
bad value, record a :class:`Problem` and return the default so that checking goes
on and *every* problem in the file is reported in one go. Nothing here knows the
config's sections; :mod:`agent.config.model` does.
"""
from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import yaml
from yaml.constructor import SafeConstructor
from yaml.error import Mark

from agent.errors import ConfigError

T = TypeVar("T")
Node = yaml.Node

NULL_TAG = "tag:yaml.org,2002:null"
#: deepest nesting of lists and mappings read; a config needs 4 levels, and PyYAML's
#: composer recurses once per level, so a deeper file must be refused before it is built
MAX_NESTING = 32
#: a number with more digits than this is no setting of ours (and would overflow floats)
MAX_DIGITS = 20
_ENV_RE = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config file; ``line``/``col`` are 1-based (0 = no position)."""

    file: str
    line: int
    col: int
    field_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        return f"{where}: {self.field_path}: {self.message}" if self.field_path \
            else f"{where}: {self.message}"


class ConfigProblems(ConfigError):
    """A config file with one or more problems; ``problems`` lists them in file order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: Tuple[Problem, ...] = tuple(
            sorted(problems, key=lambda p: (p.line, p.col)))
        super().__init__("\n".join(str(p) for p in self.problems))


class Bad(Exception):
    """Raised by a converter: the value is wrong; the message says why and what to do."""


class Sink:
    """Collects problems for one file, and warnings (a valid file may still have those)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: List[Problem] = []
        self.warnings: List[Problem] = []

    def warn(self, where: Union[Node, Mark, None], path: str, message: str) -> None:
        """A choice that works but may surprise; the message starts with ``warning:``."""
        mark = where.start_mark if isinstance(where, Node) else where
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        self.warnings.append(Problem(self.file, line, col, path, f"warning: {message}"))

    def add(self, where: Union[Node, Mark, None], path: str, message: str) -> None:
        mark = where.start_mark if isinstance(where, Node) else where
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        self.problems.append(Problem(self.file, line, col, path, message))


def describe(node: Node) -> str:
    """How a value reads in the file, and what YAML made of it when that may surprise."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    text = str(node.value)
    kind = node.tag.rsplit(":", 1)[-1]
    names = {"bool": "a boolean", "int": "an integer", "float": "a number", "null": "null",
             "str": "text", "timestamp": "a date"}
    return f"{text!r} ({names.get(kind, kind)})" if text else "an empty value"


def scalar(node: Node) -> Any:
    """The Python value of a scalar node (YAML 1.1 rules, as ``yaml.safe_load``)."""
    if not isinstance(node, yaml.ScalarNode):
        raise Bad(f"expected a single value, got {describe(node)}")
    try:
        value = SafeConstructor().construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise Bad(f"cannot read {node.value!r}: {getattr(exc, 'problem', exc)}") from None
    except (ValueError, OverflowError) as exc:   # !!int abc, 2021-02-30, an hour of 25
        raise Bad(f"cannot read {_short(node.value)!r} as {_tag_name(node)} ({exc}); "
                  f"put it in quotes if you mean text") from None
    if isinstance(value, int) and not isinstance(value, bool) and \
            len(str(abs(value))) > MAX_DIGITS:
        raise Bad(f"a number of {len(str(abs(value)))} digits is far too large for any setting")
    return value


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _tag_name(node: Node) -> str:
    kind = node.tag.rsplit(":", 1)[-1]
    return {"int": "a whole number", "float": "a number", "timestamp": "a date",
            "bool": "true or false"}.get(kind, kind)


def check_nesting(text: str, sink: Sink, limit: int = MAX_NESTING) -> bool:
    """False (and a problem at the spot) if lists and mappings nest deeper than ``limit``.

    Runs PyYAML's event parser, which does not recurse, before the node tree is built."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > limit:
                    at = event.start_mark
                    mark = None if at is None else Mark(at.name, at.index, at.line, at.column, "", 0)
                    sink.add(mark, "", f"lists and mappings are nested more than "
                             f"{limit} levels deep here; a config needs only a few")
                    return False
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        pass        # reported, with its position, when the file is composed
    return True


# --- converters: Node -> value, raising Bad ----------------------------------------

def as_int(lo: Optional[int] = None, hi: Optional[int] = None, unit: str = "") -> Callable[[Node], int]:
    def conv(node: Node) -> int:
        value = scalar(node)
        if isinstance(value, bool) or not isinstance(value, int):
            raise Bad(f"expected a whole number{unit and ' of ' + unit}, got {describe(node)}")
        _check_range(value, lo, hi, unit)
        return value
    return conv


SECONDS = "seconds"


def as_number(lo: Optional[float] = None, hi: Optional[float] = None, unit: str = "",
              above: Optional[float] = None) -> Callable[[Node], float]:
    """A finite int or float; ``above`` is an exclusive lower bound."""
    def conv(node: Node) -> float:
        value = scalar(node)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise Bad(f"expected a number{unit and ' of ' + unit}, got {describe(node)}")
        if above is not None and value <= above:
            raise Bad(f"{value:g} is too small: it must be more than {above:g}{unit and ' ' + unit}")
        _check_range(value, lo, hi, unit)
        return float(value)
    return conv


def _check_range(value: float, lo: Optional[float], hi: Optional[float], unit: str) -> None:
    u = f" {unit}" if unit else ""
    if lo is not None and value < lo:
        raise Bad(f"{value:g} is too small: the least allowed is {lo:g}{u}")
    if hi is not None and value > hi:
        raise Bad(f"{value:g} is too large: the most allowed is {hi:g}{u}")


def as_blink(*, with_count: bool, max_s: float = 60.0,
             max_count: int = 1000) -> Callable[[Node], Tuple[Any, ...]]:
    """A blink pattern: ``[on_s, off_s]``, or ``[on_s, off_s, count]`` with ``with_count``."""
    shape = "[on_s, off_s, count]" if with_count else "[on_s, off_s]"
    seconds = as_number(hi=max_s, unit=SECONDS, above=0)

    def conv(node: Node) -> Tuple[Any, ...]:
        if not isinstance(node, yaml.SequenceNode) or len(node.value) != (3 if with_count else 2):
            raise Bad(f"expected {shape}, e.g. {'[0.1, 0.1, 3]' if with_count else '[0.1, 0.1]'}, "
                      f"got {describe(node)}"
                      + (f" of {len(node.value)}" if isinstance(node, yaml.SequenceNode) else ""))
        try:
            on, off = seconds(node.value[0]), seconds(node.value[1])
            if not with_count:
                return (on, off)
            return (on, off, as_int(1, max_count)(node.value[2]))
        except Bad as exc:
            raise Bad(f"{shape}: {exc}") from None
    return conv


def as_bool(node: Node) -> bool:
    value = scalar(node)
    if not isinstance(value, bool):
        raise Bad(f"expected true or false, got {describe(node)}")
    return value


def as_text(node: Node) -> str:
    value = scalar(node)
    if not isinstance(value, str):
        raise Bad(f"expected text, got {describe(node)}; put it in quotes if you mean text")
    if not value.strip():
        raise Bad("is empty; give a value or remove the key")
    return value


def as_choice(choices: Sequence[str]) -> Callable[[Node], str]:
    """One of ``choices``; the file's own text is used, so ``5`` and ``"5"`` are the same."""
    def conv(node: Node) -> str:
        if isinstance(node, yaml.ScalarNode) and node.value in choices:
            return str(node.value)
        hint = ""
        if isinstance(node, yaml.ScalarNode):
            close = difflib.get_close_matches(str(node.value), choices, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
        raise Bad(f"{describe(node)} is not one of {', '.join(choices)}{hint}")
    return conv


def as_pattern(pattern: str, rule: str) -> Callable[[Node], str]:
    regex = re.compile(pattern)

    def conv(node: Node) -> str:
        value = as_text(node)
        if not regex.fullmatch(value):
            raise Bad(f"{value!r} {rule}")
        return value
    return conv


def as_hhmm(node: Node) -> str:
    """A time of day "HH:MM". YAML 1.1 reads unquoted 22:00 as 1320; the file's text is used."""
    text = str(node.value) if isinstance(node, yaml.ScalarNode) else ""
    if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", text):
        raise Bad(f"{describe(node)} is not a time of day; write it as \"HH:MM\", "
                  f"24-hour, e.g. \"22:00\"")
    return text


def as_path(base: Path, environ: Mapping[str, str]) -> Callable[[Node], Path]:
    """A file or folder; ``$VAR``/``${VAR}`` expanded, relative to the config's folder."""
    def conv(node: Node) -> Path:
        raw = as_text(node)
        return resolve_path(raw, base, environ)
    return conv


def resolve_path(raw: str, base: Path, environ: Mapping[str, str]) -> Path:
    def sub(match: "re.Match[str]") -> str:
        name = match.group(1) if match.group(1) is not None else match.group(2)
        if not _VAR_NAME.match(name):
            raise Bad(f"{match.group(0)!r} in {raw!r} is not a valid variable reference")
        value = environ.get(name)
        if not value:
            hint = ""
            if name == "CREDENTIALS_DIRECTORY":
                hint = ("; systemd sets it for LoadCredential=. To check the file by hand, "
                        "run: CREDENTIALS_DIRECTORY=/path/to/the/credentials homecare-agent "
                        "validate --config ...")
            raise Bad(f"environment variable {name} is not set (used in {raw!r}){hint}")
        return value
    expanded = _ENV_RE.sub(sub, raw)
    path = Path(expanded)
    if not path.is_absolute():
        path = base / path
    return Path(os.path.normpath(str(path)))


# --- mappings ------------------------------------------------------------------------

class MapReader:
    """One YAML mapping: checks its keys once, then hands out converted values.

    ``keys`` are the allowed keys. ``hints`` maps a known-wrong key to a full message
    (e.g. an inline ``password:``); ``stranger`` may explain a key that is allowed
    elsewhere (e.g. another sensor kind's key) and returns None otherwise.
    """

    def __init__(self, node: Node, path: str, sink: Sink, keys: Sequence[str], *,
                 hints: Optional[Mapping[str, str]] = None,
                 stranger: Optional[Callable[[str], Optional[str]]] = None) -> None:
        self.node, self.path, self.sink = node, path, sink
        self.items: Dict[str, Tuple[Node, Node]] = {}
        if not isinstance(node, yaml.MappingNode):
            sink.add(node, path, f"expected a mapping of keys to values, got {describe(node)}")
            return
        for key_node, value_node in node.value:
            self._take(key_node, value_node, keys, hints or {}, stranger)

    def _take(self, key_node: Node, value_node: Node, keys: Sequence[str],
              hints: Mapping[str, str], stranger: Optional[Callable[[str], Optional[str]]]) -> None:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            self.sink.add(key_node, self.path, f"{describe(key_node)} cannot be a key here "
                          f"(keys are plain names; YAML merge keys are not supported)")
            return
        key = str(key_node.value)
        where = self.sub(key)
        if key in self.items:
            first = self.items[key][0].start_mark.line + 1
            self.sink.add(key_node, where, f"duplicate key: {key!r} is already set on line {first}; "
                          f"keep one")
            return
        self.items[key] = (key_node, value_node)
        if key in keys:
            return
        message = hints.get(key) or (stranger(key) if stranger else None)
        if message is None:
            close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
            message = f"unknown key {key!r}" + (
                f"; did you mean {close[0]!r}?" if close else f"; the keys here are {', '.join(keys)}")
        self.sink.add(key_node, where, message)

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def value_node(self, key: str) -> Optional[Node]:
        """The value's node, or None when the key is absent or its value is null."""
        item = self.items.get(key)
        if item is None or (isinstance(item[1], yaml.ScalarNode) and item[1].tag == NULL_TAG):
            return None
        return item[1]

    def get(self, key: str, conv: Callable[[Node], T], default: T) -> T:
        """The converted value, or ``default`` when absent, null, or wrong (wrong is recorded)."""
        node = self.value_node(key)
        if node is None:
            return default
        try:
            return conv(node)
        except Bad as exc:
            self.sink.add(node, self.sub(key), str(exc))
            return default

    def require(self, key: str, conv: Callable[[Node], T], placeholder: T, what: str = "") -> T:
        """Like :meth:`get`, but a missing or null value is a problem too."""
        if self.value_node(key) is None and isinstance(self.node, yaml.MappingNode):
            self.sink.add(self.node, self.sub(key),
                          f"missing: {key} is required{what and '; ' + what}")
            return placeholder
        return self.get(key, conv, placeholder)

    def optional(self, key: str, conv: Callable[[Node], T]) -> Optional[T]:
        node = self.value_node(key)
        if node is None:
            return None
        try:
            return conv(node)
        except Bad as exc:
            self.sink.add(node, self.sub(key), str(exc))
            return None

    def section(self, key: str, keys: Sequence[str], **kwargs: Any) -> "MapReader":
        """A nested mapping; an absent or null one reads as empty (all defaults)."""
        node = self.value_node(key)
        if node is None:
            return MapReader(yaml.MappingNode("tag:yaml.org,2002:map", [],
                                              self.node.start_mark, self.node.end_mark),
                             self.sub(key), self.sink, keys)
        return MapReader(node, self.sub(key), self.sink, keys, **kwargs)

    def node_or_self(self, key: str) -> Node:
        node = self.value_node(key)
        return node if node is not None else self.node
