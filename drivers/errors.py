"""The one error the drivers raise on purpose: GPIO that could not be claimed.

It lives here, not in ``agent.errors``, so that ``drivers/`` stands alone (data flows
one way: the agent uses the drivers, never the reverse). It has the shape of the
agent's errors (``message``, ``hint``, ``exit_status``) and ``agent.errors`` hands it on,
so callers catch it as they catch the others.
"""
from __future__ import annotations

from typing import Optional


class WiringError(RuntimeError):
    """GPIO could not be claimed: wrong backend, pin in use, not a Raspberry Pi."""

    #: process exit status the CLI uses when this error ends a command
    exit_status: int = 1

    def __init__(self, message: str, *, hint: Optional[str] = None) -> None:
        super().__init__(message if hint is None else f"{message} ({hint})")
        self.message = message
        self.hint = hint
