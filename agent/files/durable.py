"""Replacing a small file so that a power cut leaves either the old or the new content.

Write a temporary file beside it, fsync it, rename it over the old one, fsync the
folder (the rename itself is only durable once the folder is). Used for the counters
and the seen-command record; the outbox has SQLite for this.
"""
from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    fd = os.open(str(directory), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, content: bytes, *, mode: int = 0o600) -> None:
    """Atomically replace ``path`` with ``content``; durable when this returns."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(str(tmp), str(path))
    fsync_dir(path.parent)
