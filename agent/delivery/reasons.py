"""MQTT 5 failure reason codes by name, for logs and ``status`` (no paho needed to read them)."""
from __future__ import annotations

_NAMES = {0x80: "unspecified error", 0x83: "implementation specific error",
          0x84: "unsupported protocol version", 0x85: "client identifier not valid",
          0x86: "bad user name or password", 0x87: "not authorized",
          0x88: "server unavailable", 0x89: "server busy", 0x8A: "banned",
          0x90: "topic name invalid", 0x97: "quota exceeded", 0x99: "payload format invalid"}


def reason_name(code: int) -> str:
    """The MQTT 5 name of a failure reason code, for logs and ``status``."""
    return _NAMES.get(code, f"reason 0x{code:02x}")
