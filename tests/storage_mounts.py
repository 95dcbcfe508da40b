"""Real failing storage for tests: a loop-mounted ext4 card and a small tmpfs.

:class:`Ext4Card` is an ext4 image mounted with ``errors=remount-ro``, what Raspberry
Pi OS uses for its root; :meth:`Ext4Card.fail` writes the kernel's
``/sys/fs/ext4/<dev>/trigger_fs_error``, which makes ext4 behave exactly as on a worn
SD card that reported an error: the file system goes read-only under the running
agent (``emergency_ro``), writes fail with EROFS. :class:`SmallTmpfs` is a tmpfs of a
few hundred kB to fill up (a full disk) or remount read-only.

Both need root and the ``mount`` tool; :func:`mount_or_skip` skips a test that cannot
mount (the reason in the skip message). Teardown unmounts lazily, so a file the
agent still holds open never leaves a mount behind.
"""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Callable, TypeVar

import pytest

T = TypeVar("T")


def _run(*args: str) -> None:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise OSError(f"{' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")


def mount_or_skip(make: Callable[[], T]) -> T:
    if os.geteuid() != 0:
        pytest.skip("mounting a test file system needs root")
    try:
        return make()
    except OSError as exc:
        pytest.skip(f"this machine cannot mount a test file system: {exc}")


class Ext4Card:
    """An ext4 image on a loop device, mounted ``errors=remount-ro`` at ``path``."""

    def __init__(self, folder: Path, size_mb: int = 32) -> None:
        self.image = folder / "card.img"
        self.path = folder / "card"
        self.path.mkdir()
        with open(self.image, "wb") as f:
            f.truncate(size_mb * 1024 * 1024)
        _run("mkfs.ext4", "-q", "-F", str(self.image))
        _run("mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.path))
        source = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(self.path)],
                                capture_output=True, text=True).stdout.strip()
        self.sysfs = Path("/sys/fs/ext4") / Path(source).name
        if not (self.sysfs / "trigger_fs_error").exists():
            self.close()
            raise OSError(f"{self.sysfs}/trigger_fs_error is missing (kernel too old)")

    def fail(self) -> None:
        """What a worn card does: an error, and ext4 remounts itself read-only."""
        (self.sysfs / "trigger_fs_error").write_text("homecare test: card failed\n")
        probe = self.path / f".probe-{uuid.uuid4().hex}"
        try:
            probe.write_text("x")
        except OSError:
            return
        probe.unlink()
        raise AssertionError(f"{self.path} is still writable after trigger_fs_error")

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=30)


class SmallTmpfs:
    """A tmpfs of ``size_kb`` at ``path`` (fill it, or remount it read-only)."""

    def __init__(self, folder: Path, size_kb: int = 512) -> None:
        self.path = folder / "small"
        self.path.mkdir()
        _run("mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0700", "tmpfs", str(self.path))

    def fill(self) -> Path:
        """Take every free byte (a full disk); returns the filler file."""
        filler = self.path / "filler"
        fd = os.open(str(filler), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (65536, 4096, 512, 1):
                try:
                    while os.write(fd, b"\0" * size) == size:
                        pass
                except OSError:
                    pass
        finally:
            os.close(fd)
        return filler

    def remount_ro(self) -> None:
        _run("mount", "-o", "remount,ro", str(self.path))

    def remount_rw(self) -> None:
        _run("mount", "-o", "remount,rw", str(self.path))

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=30)
