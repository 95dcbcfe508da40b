"""The agent's few exception classes, split by whose fault a problem is.

Each also subclasses a builtin so that callers who only know the builtin still
catch it (as gpiozero's ``BadWaitTime(GPIOZeroError, ValueError)`` does). The
message always says what to do next; ``hint`` carries that advice separately for
callers that format errors themselves.
"""
from __future__ import annotations

from typing import Optional

from drivers.errors import WiringError

__all__ = ["AgentError", "ConfigError", "SecretFileError", "WiringError", "OutboxError",
           "USER_ERRORS"]


class AgentError(Exception):
    """Base class of every error the agent raises on purpose."""

    #: process exit status the CLI uses when this error ends a command
    exit_status: int = 1

    def __init__(self, message: str, *, hint: Optional[str] = None) -> None:
        super().__init__(message if hint is None else f"{message} ({hint})")
        self.message = message
        self.hint = hint


class ConfigError(AgentError, ValueError):
    """The technician's configuration (or a file it points at) is wrong."""

    exit_status = 2


class SecretFileError(ConfigError):
    """A secret file is readable by others, a symlink, or owned by someone else."""

    exit_status = 1


class OutboxError(AgentError, OSError):
    """The on-disk outbox could not be opened or written."""


#: what the CLI turns into a one-line message and an exit status, never a traceback
USER_ERRORS = (AgentError, WiringError)
