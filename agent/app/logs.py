"""Logging set-up: stderr, one line per record.

Under systemd (``JOURNAL_STREAM`` is set and names the stream stderr is
connected to) lines carry no timestamp because journald adds its own. Secrets
never reach a log: the code never formats one, and a registered secret is masked
as ``***`` in the whole formatted line, tracebacks included, as a second guard.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import List, Optional, TextIO

_SECRETS: List[str] = []

MASK = "***"


def register_secret(value: str) -> None:
    """Remember a secret (4 characters or more) so that any log line containing it is masked."""
    value = value.strip()
    if len(value) >= 4 and value not in _SECRETS:
        _SECRETS.append(value)
        # longest first, so that a secret containing another is masked whole
        _SECRETS.sort(key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Masks registered secrets in a record's message (for handlers we do not format)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            text = record.getMessage()
            masked = redact(text)
            if masked != text:
                record.msg, record.args = masked, None
        return True


class RedactingFormatter(logging.Formatter):
    """A formatter whose whole output (message, traceback, stack) is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def under_journald(stream: TextIO) -> bool:
    """True when ``stream`` is journald's: ``JOURNAL_STREAM`` is ``DEV:INODE`` of it.

    A child of a service inherits ``JOURNAL_STREAM`` even when its stderr goes
    elsewhere, so the variable is checked against the stream (as systemd advises).
    A stream without a file descriptor cannot be checked; then the variable decides.
    """
    value = os.environ.get("JOURNAL_STREAM")
    if not value:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return True
    return value == f"{st.st_dev}:{st.st_ino}"


def setup_logging(*, verbose: bool = False, stream: Optional[TextIO] = None) -> None:
    """Send every log record to ``stream`` (default stderr), one line each, secrets masked."""
    stream = sys.stderr if stream is None else stream
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not under_journald(stream):
        fmt = "%(asctime)s " + fmt
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # paho and urllib-style libraries are chatty at DEBUG and may echo payloads.
    logging.getLogger("paho").setLevel(logging.WARNING)
