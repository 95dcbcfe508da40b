"""What every section of the config file shares: the secret-key hints, names, pins, zones.

The section readers (:mod:`agent.config.sensors`, :mod:`agent.config.mqtt`,
:mod:`agent.config.model`) open their mappings through :func:`mapping` and
:func:`section`, so an inline secret is refused with the same hint everywhere.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

from agent.config.reader import Bad, MapReader, Node, Sink, as_int, as_pattern, as_text
from agent.config.schema import MAX_BCM_PIN, MAX_NAME_CHARS
from drivers.events import NAME_PATTERN

_PASSWORD = ("passwords must come from a file: use password_file: (e.g. "
             "${CREDENTIALS_DIRECTORY}/mqtt-password, mode 0600) and remove this key")
_KEY = ("keys and secrets must come from a file: use key_file: (mode 0600) and remove "
        "this key")
SECRET_HINTS = {"password": _PASSWORD, "passwd": _PASSWORD, "pass": _PASSWORD,
                "key": _KEY, "secret": _KEY, "private_key": _KEY, "token": _KEY,
                "hs256_secret": _KEY}

NAME_RULE = "may contain only letters, digits, '.', '_' and '-'"
MS = "milliseconds"
SEC = "seconds"


def mapping(node: Node, path: str, sink: Sink, keys: Tuple[str, ...], **kw: Any) -> MapReader:
    return MapReader(node, path, sink, keys, hints=SECRET_HINTS, **kw)


def section(top: MapReader, key: str, keys: Tuple[str, ...]) -> MapReader:
    return top.section(key, keys, hints=SECRET_HINTS)


def required_section(top: MapReader, key: str, sink: Sink, example: str) -> Optional[Node]:
    node = top.value_node(key)
    if node is None:
        sink.add(top.node, key, f"missing: the {key} section is required, e.g. {example}")
    return node


def as_name(node: Node) -> str:
    name = as_pattern(NAME_PATTERN, NAME_RULE)(node)
    if len(name) > MAX_NAME_CHARS:
        raise Bad(f"is {len(name)} characters long; a name has at most {MAX_NAME_CHARS} "
                  f"(it is part of every event's topic and claims)")
    return name


def as_pin(node: Node) -> int:
    value = as_int()(node)
    if not 0 <= value <= MAX_BCM_PIN:
        raise Bad(f"{value} is not a BCM GPIO (0-{MAX_BCM_PIN}); use the GPIO number, "
                  f"not the header pin number")
    return value


def as_timezone(node: Node) -> str:
    name = as_text(node)
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    except ImportError:  # pragma: no cover - Python < 3.9
        return name
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise Bad(f"{name!r} is not a known IANA time zone name (e.g. Asia/Shanghai, "
                  f"Europe/London; `timedatectl list-timezones` lists them)") from None
    return name
