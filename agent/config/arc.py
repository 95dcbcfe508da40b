"""The ``arc`` section (docs/spec.md §12.2): the monitoring centre's SIA DC-09 receiver.

:func:`read_arc` checks the section's YAML node, every problem with its line, and returns
an :class:`ArcConfig` (None when the section is absent or null). The AES key file is not
opened here, like every key file of the config: :func:`load_arc_key` reads it as a secret
file (docs/spec.md §4) when the agent starts, and checks its length for ``key_encoding``.

Choices where docs/spec.md §12.2 is silent: ``account``, ``line`` and ``receiver`` are read
as the file's text (so ``account: 1234`` and ``account: "1234"`` are the same, and a
leading zero stays); ``ack_timeout_s`` 1-600; ``supervision_s`` 0 or 10-86400; ``codes``
keys are event types, and the reminders and the link's own events cannot be given a code.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import yaml

from agent.arc.codec import KEY_SIZES, FrameSettings
from agent.arc.codes import EVENT_CLASSES, FORMATS, NEVER, Code, CodeTable
from agent.arc.link import DEFAULT_ACK_TIMEOUT_S, DEFAULT_SUPERVISION_S, LinkSettings
from agent.config.reader import (Bad, MapReader, Node, Sink, as_bool, as_choice, as_int,
                                 as_number, as_text, describe)
from agent.errors import ConfigError
from agent.files.secrets import read_secret_file

ARC_KEYS = ("host", "port", "transport", "account", "receiver", "line", "key_file",
            "key_encoding", "format", "events", "ack_timeout_s", "supervision_s",
            "ack_closes_alarms", "codes")
TRANSPORTS = ("tcp", "udp")
KEY_ENCODINGS = ("ascii", "hex")
MIN_SUPERVISION_S = 10
_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\Z")
_KEY_HINT = ("the AES key must come from a file: use key_file: (mode 0600, e.g. "
             "${CREDENTIALS_DIRECTORY}/arc-key) and remove this key")


@dataclass(frozen=True)
class ArcConfig:
    """The checked ``arc`` section; ``account`` is upper case, ``codes`` (type, code) pairs."""

    host: str
    port: int
    account: str
    transport: str = "tcp"
    receiver: Optional[str] = None
    line: str = "0"
    key_file: Optional[Path] = None
    key_encoding: str = "ascii"
    format: str = "ADM-CID"
    events: str = "alarms"
    ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S
    supervision_s: float = DEFAULT_SUPERVISION_S
    ack_closes_alarms: bool = True
    codes: Tuple[Tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS or self.key_encoding not in KEY_ENCODINGS \
                or self.events not in EVENT_CLASSES:
            raise ValueError(f"arc: transport {self.transport!r}, key_encoding "
                             f"{self.key_encoding!r} or events {self.events!r} is not allowed")
        self.frame_settings(None)           # checks account, line, receiver and format
        self.code_table()                   # checks the overrides
        LinkSettings(self.ack_timeout_s, self.supervision_s)

    def frame_settings(self, key: Optional[bytes]) -> FrameSettings:
        return FrameSettings(self.account, self.format, self.line, self.receiver, key)

    def link_settings(self) -> LinkSettings:
        return LinkSettings(self.ack_timeout_s, self.supervision_s)

    def code_table(self) -> CodeTable:
        return CodeTable(self.format, dict(self.codes))


def _hex_text(lo: int, hi: int, what: str) -> Callable[[Node], str]:
    """Hex digits as written in the file (YAML would make ``0012`` the number 10)."""
    def conv(node: Node) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise Bad(f"expected {what}, got {describe(node)}")
        text = str(node.value)
        if not (lo <= len(text) <= hi and re.fullmatch(r"[0-9A-Fa-f]+", text)):
            raise Bad(f"{text!r} is not {what}: {lo}-{hi} hex digits (0-9, A-F)")
        return text.upper()
    return conv


def _host(node: Node) -> str:
    host = as_text(node).strip()
    if any(c.isspace() for c in host) or "/" in host:
        raise Bad(f"{host!r} is not a host name or address")
    return host


def _supervision(node: Node) -> float:
    value = as_number(0, 86400, "seconds")(node)
    if 0 < value < MIN_SUPERVISION_S:
        raise Bad(f"{value:g} s is too often for link tests: use {MIN_SUPERVISION_S}-86400, "
                  f"or 0 for none")
    return value


def _codes(r: MapReader, format: str) -> Tuple[Tuple[str, str], ...]:
    node = r.value_node("codes")
    if node is None:
        return ()
    if not isinstance(node, yaml.MappingNode):
        r.sink.add(node, "arc.codes", f"expected a mapping of event type to code, e.g. "
                   f"{{care.inactivity: \"1 150\"}}, got {describe(node)}")
        return ()
    known = tuple(t for t, _ in CodeTable(format).items())
    codes: Dict[str, str] = {}
    for key_node, value_node in node.value:
        event_type = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
        path = f"arc.codes.{event_type}"
        if not _TYPE_RE.match(event_type):
            r.sink.add(key_node, "arc.codes", f"{describe(key_node)} is not an event type "
                       f"(e.g. care.inactivity); the coded types are {', '.join(known)}")
        elif event_type in NEVER:
            r.sink.add(key_node, path, f"{event_type} is never sent to the ARC "
                       f"(docs/spec.md §11, §12.2); remove it")
        elif event_type in codes:
            r.sink.add(key_node, path, f"duplicate key: {event_type} is already given a code")
        else:
            try:
                text = str(value_node.value) if isinstance(value_node, yaml.ScalarNode) else ""
                codes[event_type] = Code.parse(format, text).text
            except ValueError as exc:
                r.sink.add(value_node, path, f"{describe(value_node)}: {exc} (format: {format})")
    return tuple(codes.items())


def read_arc(top: MapReader, sink: Sink, paths: Callable[[Node], Path]) -> Optional[ArcConfig]:
    """The ``arc`` section of the top-level mapping, or None when there is none."""
    node = top.value_node("arc")
    if node is None:
        return None
    r = MapReader(node, "arc", sink, ARC_KEYS, hints={"key": _KEY_HINT, "aes_key": _KEY_HINT})
    if not isinstance(node, yaml.MappingNode):
        return None
    fmt = r.get("format", as_choice(FORMATS), "ADM-CID")
    config = ArcConfig(
        host=r.require("host", _host, "localhost", "the ARC receiver's host name or address"),
        port=r.require("port", as_int(1, 65535), 1, "the port the ARC gave for its receiver"),
        account=r.require("account", _hex_text(3, 16, "an account"), "000",
                          "the account the ARC gave this home"),
        transport=r.get("transport", as_choice(TRANSPORTS), "tcp"),
        receiver=r.optional("receiver", _hex_text(1, 6, "a receiver number")),
        line=r.get("line", _hex_text(1, 6, "a line prefix"), "0"),
        key_file=r.optional("key_file", paths),
        key_encoding=r.get("key_encoding", as_choice(KEY_ENCODINGS), "ascii"),
        format=fmt,
        events=r.get("events", as_choice(EVENT_CLASSES), "alarms"),
        ack_timeout_s=r.get("ack_timeout_s", as_number(1, 600, "seconds"), DEFAULT_ACK_TIMEOUT_S),
        supervision_s=r.get("supervision_s", _supervision, DEFAULT_SUPERVISION_S),
        ack_closes_alarms=r.get("ack_closes_alarms", as_bool, True),
        codes=_codes(r, fmt),
    )
    if config.key_file is None and not _loopback(config.host):
        sink.warn(r.node, "arc.key_file", f"alarms go to {config.host} unencrypted; ask the "
                  f"ARC for an AES key and set key_file")
    return config


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def load_arc_key(config: ArcConfig) -> Optional[bytes]:
    """The AES key from ``arc.key_file`` (a secret file), checked for ``key_encoding``.

    None without a key file. Raises :class:`agent.errors.SecretFileError` for the file's
    mode, owner or type and :class:`ConfigError` for a key of the wrong length or digits;
    no message quotes the key."""
    if config.key_file is None:
        return None
    raw = read_secret_file(config.key_file, what="arc.key_file")
    text = raw.decode("ascii", errors="replace").rstrip("\r\n")
    where = f"arc.key_file {config.key_file}"
    if config.key_encoding == "ascii":
        if len(text) not in KEY_SIZES or not text.isprintable() or "\ufffd" in text:
            raise ConfigError(f"{where} holds {len(text)} characters; key_encoding: ascii "
                              f"needs 16, 24 or 32 printable ASCII characters (AES-128/192/256)",
                              hint="write the key exactly as the ARC gave it, or set "
                                   "key_encoding: hex for a key given as 32/48/64 hex digits")
        return text.encode("ascii")
    if len(text) not in (2 * n for n in KEY_SIZES) or not re.fullmatch(r"[0-9A-Fa-f]+", text):
        raise ConfigError(f"{where} holds {len(text)} characters; key_encoding: hex needs "
                          f"32, 48 or 64 hex digits (AES-128/192/256)",
                          hint="write the key as hex digits only, or set key_encoding: ascii "
                               "for a key of 16, 24 or 32 characters used as text")
    return bytes.fromhex(text)
