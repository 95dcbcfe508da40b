"""agent.app.logs: timestamps only outside journald; registered secrets never printed."""
from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path
from typing import Iterator, TextIO

import pytest

from agent.app import logs
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


@pytest.fixture(autouse=True)
def clean_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    monkeypatch.setattr(logs, "_SECRETS", [])
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def journal_id(stream: TextIO) -> str:
    st = os.fstat(stream.fileno())
    return f"{st.st_dev}:{st.st_ino}"


def log_line(stream: TextIO, *args: object) -> None:
    logs.setup_logging(stream=stream)
    logging.getLogger("agent.test").info(*args)


def test_no_timestamp_under_journald(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open(tmp_path / "out", "w+") as out:
        monkeypatch.setenv("JOURNAL_STREAM", journal_id(out))
        log_line(out, "door %s", "opened")
        out.seek(0)
        assert out.read() == "INFO agent.test: door opened\n"


def test_timestamp_without_journald(tmp_path: Path) -> None:
    with open(tmp_path / "out", "w+") as out:
        log_line(out, "door opened")
        out.seek(0)
        text = out.read()
    assert STAMP.match(text) and text.endswith(" INFO agent.test: door opened\n")


def test_inherited_journal_stream_for_another_stream_keeps_timestamps(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    with open(tmp_path / "out", "w+") as out:
        log_line(out, "x")
        out.seek(0)
        assert STAMP.match(out.read())


def test_stream_without_descriptor_trusts_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    out = io.StringIO()
    log_line(out, "x")
    assert out.getvalue() == "INFO agent.test: x\n"


def test_registered_secret_never_appears() -> None:
    logs.register_secret("hunter2-password")
    logs.register_secret("hunter2")  # a secret inside another: the longer one masked whole
    out = io.StringIO()
    logs.setup_logging(stream=out)
    log = logging.getLogger("agent.test")
    log.info("connecting with %s", "hunter2-password")
    log.warning("literal hunter2 in the message")
    try:
        raise ValueError("bad password hunter2-password")
    except ValueError:
        log.exception("failed")
    text = out.getvalue()
    assert "hunter2" not in text
    assert "connecting with ***" in text and "literal *** in the message" in text
    assert "bad password ***" in text  # the traceback is masked too


def test_short_secrets_are_not_registered() -> None:
    logs.register_secret("ab")
    assert logs.redact("about") == "about"


def test_filter_masks_records_for_foreign_handlers() -> None:
    logs.register_secret("s3cret-token")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token=%s", ("s3cret-token",), None)
    assert logs.RedactingFilter().filter(record)
    assert record.getMessage() == "token=***"
