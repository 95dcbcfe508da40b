"""What the agent and the care centre agree on, defined once (docs/spec.md §5 and §7).

The signing algorithms, the topic names and the strict reading of JSON inside a JWS are
used by the config check, the signer, the recorder and the command policy; each reads
them from here so the four can never disagree. Sans-IO: imports only ``json``.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Tuple

__all__ = ["ALGORITHMS", "JsonRefused", "commands_topic", "events_topic", "status_topic",
           "strict_json"]

#: JWS algorithms for events (``signing.algorithm``) and commands (``commands.algorithm``)
ALGORITHMS = ("EdDSA", "HS256")


def events_topic(prefix: str, sensor: str) -> str:
    """``{prefix}/events/{sensor}`` (docs/spec.md §5); ``sensor`` may be ``agent`` or ``#``."""
    return f"{prefix}/events/{sensor}"


def status_topic(prefix: str) -> str:
    """``{prefix}/status``: the retained online/offline message (docs/spec.md §5)."""
    return f"{prefix}/status"


def commands_topic(prefix: str) -> str:
    """``{prefix}/commands``: where the care centre's signed commands arrive (docs/spec.md §7)."""
    return f"{prefix}/commands"


class JsonRefused(ValueError):
    """Bytes that are not strict JSON. The message fits after "the header ..." or "the payload ...":
    ``is not JSON`` or ``has a duplicate JSON member 'x'``."""


def _unique_members(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    members: Dict[str, Any] = {}
    for name, value in pairs:
        if name in members:
            raise JsonRefused(f"has a duplicate JSON member {name!r}")
        members[name] = value
    return members


def _no_constant(name: str) -> Any:
    raise JsonRefused("is not JSON")  # NaN, Infinity, -Infinity: not in RFC 8259


def strict_json(raw: bytes) -> Any:
    """UTF-8 JSON with unique member names and no NaN/Infinity; :class:`JsonRefused` otherwise.

    Python's ``json`` keeps the last of two equal names, where another reader may keep the
    first: a signed token must mean one thing to every reader, so duplicates are refused.
    """
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_members,
                          parse_constant=_no_constant)
    except JsonRefused:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise JsonRefused("is not JSON") from None
