"""Logging set-up: stderr, one line per record.

Under systemd (``JOURNAL_STREAM`` is set) lines carry no timestamp because
journald adds its own. Secrets never reach a log: the code never formats one,
and :class:`RedactingFilter` is a second guard for values registered at start.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import List

_SECRETS: List[str] = []


def register_secret(value: str) -> None:
    """Remember a secret so that any log line containing it is masked."""
    if value and len(value) >= 4 and value not in _SECRETS:
        _SECRETS.append(value)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            text = record.getMessage()
            if any(s in text for s in _SECRETS):
                for s in _SECRETS:
                    text = text.replace(s, "***")
                record.msg, record.args = text, None
        return True


def setup_logging(*, verbose: bool = False) -> None:
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journald else \
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # paho and urllib-style libraries are chatty at DEBUG and may echo payloads.
    logging.getLogger("paho").setLevel(logging.WARNING)
