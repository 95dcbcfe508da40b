"""The ``seq`` and ``boot`` counters: numbers that only ever go up.

Theory of operation
-------------------
The cloud de-duplicates on ``jti`` and uses ``seq`` to order events and spot
replays, so ``seq`` must be strictly increasing across restarts, kill -9 and
power cuts, and never reused. ``boot`` counts agent starts.

Both live in ``{state_dir}/counters.json`` and, identically, in
``counters.json.bak``. Each file is written the durable way: a temporary file,
``fsync``, an atomic ``rename`` over the old one, then ``fsync`` of the
directory. Each holds a SHA-256 check of its content, so a flipped bit is seen
rather than believed.

Writing on every event would wear the SD card and cost an fsync per event, so
numbers are *reserved in blocks*. The file holds a high-water mark ``seq_mark``:
no number at or above it has ever been handed out. On open, the agent starts at
the stored mark and first persists ``mark + block`` (and ``boot + 1``); only then
does it hand out numbers below the new mark. When the block is used up it
persists the next one before handing out more. After a restart the unused rest
of the last block is skipped, so ``seq`` has gaps, but it never goes back.

Both copies are written before any number from a new block is handed out, so
either copy alone is a safe starting point. On open:

* both copies valid: the larger values are used;
* one copy damaged or missing, the other valid: the valid one is used (a
  warning is logged) and both are rewritten;
* neither file exists: a first start, ``boot`` 1 and ``seq`` from 1 (logged);
* files exist but none is valid: :class:`CountersError`. The agent refuses to
  start rather than restart from 0, which the cloud would see as replays. The
  message says how to write a new file above the last ``seq`` the cloud saw.

A floor from elsewhere (docs/spec.md §4): lost or rolled-back files would start
too low, so the caller passes ``floor=(seq, boot)`` from what the outbox still holds
and remembers (``Outbox.counter_floor``), a second place that fails independently
of these files. The start is the higher of the two: ``seq`` from at least the
floor's, ``boot`` above the floor's.

A lock (``counters.lock``, flock) keeps a second agent on the same state
directory from handing out the same numbers.

A state directory that cannot be written (a worn SD card remounted read-only, I/O
errors, a full disk) is a *degraded* mode, never an error (docs/spec.md §6):

* at start, ``boot + 1`` cannot be saved, so an ordinary boot number could be taken
  again by the next start on the same card. Such a start takes a random boot from
  ``DEGRADED_BOOT_MIN`` (2**52) up to 2**53 - 1 instead: far above any boot the file
  can reach, exact in every JSON implementation, and with 2**52 choices two degraded
  starts practically never meet. ``seq`` goes on from the stored mark. Nothing is
  persisted in such a run, so every (``boot``, ``seq``) it makes is new;
* while running, a block that cannot be saved does not stop the counting: numbers go
  on above the saved mark under this run's ``boot``, which no other run has (the next
  start saves ``boot + 1`` first, or is itself degraded). Each further number tries to
  save a block again; once that works the mark is above everything handed out.

:attr:`Counters.degraded` says why saving fails (None while it works). The lock is
taken on a read-only file descriptor when the file cannot be opened for writing
(flock works on one); a lock file that cannot even be created is skipped with a
warning, as nobody can write that directory anyway.

Not thread-safe: one owner (the agent's loop) calls :meth:`Counters.next_seq`.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from agent.files.durable import write_durably
from agent.errors import AgentError

log = logging.getLogger(__name__)

FILE_NAME = "counters.json"
BACKUP_NAME = "counters.json.bak"
LOCK_NAME = "counters.lock"
DEFAULT_BLOCK = 1000
#: boots of starts that could not save their counters lie in [2**52, 2**53 - 1]
DEGRADED_BOOT_MIN = 2 ** 52
#: errors that mean "this disk cannot be written now", not "the agent is wrong"
UNWRITABLE = frozenset({errno.EROFS, errno.EIO, errno.ENOSPC, errno.EDQUOT, errno.EACCES,
                        errno.EPERM})


def degraded_boot() -> int:
    """A boot for a start that cannot save its counters (module notes)."""
    return DEGRADED_BOOT_MIN + secrets.randbelow(DEGRADED_BOOT_MIN)


class CountersError(AgentError, OSError):
    """The counters file is damaged or cannot be written; the agent must not guess."""


def _check(boot: int, seq_mark: int) -> str:
    return hashlib.sha256(f"homecare-counters:{boot}:{seq_mark}".encode()).hexdigest()[:16]


def _encode(boot: int, seq_mark: int) -> bytes:
    body = {"boot": boot, "seq_mark": seq_mark, "check": _check(boot, seq_mark)}
    return (json.dumps(body, separators=(", ", ": ")) + "\n").encode()


def _decode(raw: bytes) -> Tuple[int, int]:
    """(boot, seq_mark) from a file's bytes; ValueError if damaged."""
    body = json.loads(raw.decode("utf-8"))
    if not isinstance(body, dict) or set(body) != {"boot", "seq_mark", "check"}:
        raise ValueError("unexpected content")
    boot, mark = body["boot"], body["seq_mark"]
    for value in (boot, mark):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError("counters must be non-negative integers")
    if mark < 1 or body["check"] != _check(boot, mark):
        raise ValueError("check value does not match (damaged file)")
    return boot, mark


class Counters:
    """``boot`` (incremented at open) and ``next_seq()`` for one state directory.

    ``Counters(state_dir)`` creates the directory if needed, takes the lock,
    reads the stored counters (see the module notes for damaged files), and
    persists ``boot + 1`` and the first block before returning. ``block`` is
    how many numbers one disk write reserves (default 1000). ``floor`` is
    ``(seq, boot)`` known from elsewhere: the first ``seq`` is at least its
    ``seq`` and ``boot`` is above its ``boot`` (default ``(1, 0)``: none).
    """

    def __init__(self, state_dir: Union[str, "os.PathLike[str]"], *,
                 block: int = DEFAULT_BLOCK, floor: Tuple[int, int] = (1, 0)) -> None:
        if not isinstance(block, int) or block < 1:
            raise ValueError(f"block is {block!r}; it must be a positive integer")
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / FILE_NAME
        self.backup_path = self.state_dir / BACKUP_NAME
        self._block = block
        self._lock_fd: Optional[int] = None
        self._closed = False
        #: why the counters cannot be saved (None while they can): module notes
        self.degraded: Optional[str] = None
        self._may_save = True   # False when the stored values could not even be read
        try:
            try:
                self.state_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                if exc.errno not in UNWRITABLE:
                    raise
                self._may_save = False
                self.degraded = f"cannot create {self.state_dir}: {exc.strerror}"
            self._lock()
            stored_boot, stored_mark = self._raised(
                self._load() if self._may_save else (0, 1), floor)
            self._saved_boot = stored_boot + 1
            self._boot = self._saved_boot
            self._next = stored_mark
            self._limit = stored_mark  # nothing reserved yet: _reserve() persists first
            if not self._try_reserve():
                self._boot = degraded_boot()
                log.error("cannot save the event counters in %s (%s): running with boot %d, "
                          "which no other start uses; seq goes on from %d", self.state_dir,
                          self.degraded, self._boot, self._next)
        except BaseException:
            self.close()
            raise

    @property
    def boot(self) -> int:
        """This start's number: 1 on the first start, then one more each start."""
        return self._boot

    def next_seq(self) -> int:
        """The next sequence number: greater than every one handed out before, ever."""
        if self._closed:
            raise CountersError(f"counters in {self.state_dir} are closed")
        if self._next >= self._limit:
            self._try_reserve()   # if it fails: on above the mark, this boot is ours alone
        seq = self._next
        self._next += 1
        return seq

    def close(self) -> None:
        """Release the lock. Unused numbers of the current block are skipped for good."""
        self._closed = True
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "Counters":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<Counters {str(self.state_dir)!r} boot={self._boot} next={self._next} "
                f"reserved_to={self._limit}>")

    # --- internals -------------------------------------------------------------

    def _lock(self) -> None:
        path = str(self.state_dir / LOCK_NAME)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            # ENOENT: the directory itself could not be created (see __init__)
            if exc.errno not in UNWRITABLE and exc.errno != errno.ENOENT:
                raise
            try:    # a read-only card: flock works on a read-only descriptor too
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                log.warning("cannot create %s (%s); nobody can write %s, so no other agent "
                            "can save counters there either", path, exc.strerror, self.state_dir)
                return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise CountersError(
                    f"another homecare-agent is using {self.state_dir}; stop it first "
                    "(systemctl stop homecare-agent) or give this one its own state_dir") from None
            raise
        self._lock_fd = fd

    def _load(self) -> Tuple[int, int]:
        """(boot, seq_mark) to start from; (0, 1) on a first start."""
        found: List[Tuple[int, int]] = []
        problems: Dict[Path, str] = {}
        existing = 0
        for path in (self.path, self.backup_path):
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno not in UNWRITABLE:
                    raise CountersError(f"cannot read {path}: {exc.strerror}; check the disk "
                                        f"and the permissions of {self.state_dir}") from None
                # a failing card: what is stored is unknown, so never write over it
                self._may_save = False
                self.degraded = f"cannot read {path}: {exc.strerror}"
                return 0, 1
            existing += 1
            try:
                found.append(_decode(raw))
            except ValueError as exc:
                problems[path] = str(exc)
        if existing == 0:
            log.warning("no counters in %s: a first start, seq from 1 unless the outbox knows "
                        "higher (if this gateway has sent events before, its state directory "
                        "was lost)", self.state_dir)
            return 0, 1
        if not found:
            details = "; ".join(f"{p.name}: {why}" for p, why in problems.items())
            raise CountersError(
                f"the event counters in {self.state_dir} are damaged ({details}). The agent "
                "will not restart seq from 1, because the cloud would take new events for "
                "replays.",
                hint=f"restore {FILE_NAME} from a backup, or ask the cloud operator for the "
                     f"last seq and boot seen from this device, then run: python3 -c "
                     f"'from agent.record.counters import write_counters; write_counters("
                     f"\"{self.state_dir}\", boot=BOOT, seq_mark=SEQ + 1000)'")
        for path, why in problems.items():
            log.warning("counters file %s is damaged (%s); continuing from the other copy",
                        path, why)
        if existing == 1 and not problems:
            log.warning("one copy of the counters in %s is missing; continuing from the other",
                        self.state_dir)
        return max(b for b, _ in found), max(m for _, m in found)

    def _raised(self, stored: Tuple[int, int], floor: Tuple[int, int]) -> Tuple[int, int]:
        boot, mark = max(stored[0], floor[1]), max(stored[1], floor[0])
        if (boot, mark) != stored:
            log.warning("the counters in %s (boot %d, seq mark %d) are behind what the outbox "
                        "holds and remembers (boot %d, seq %d): lost or rolled-back files; "
                        "continuing above it", self.state_dir, stored[0], stored[1], floor[1],
                        floor[0])
        return boot, mark

    def _try_reserve(self) -> bool:
        """Save the next block; False (and :attr:`degraded` says why) if the disk refuses."""
        if not self._may_save:
            return False
        new_limit = self._next + self._block
        content = _encode(self._saved_boot, new_limit)
        try:
            write_durably(self.path, content)
            write_durably(self.backup_path, content)
        except OSError as exc:
            if exc.errno not in UNWRITABLE:
                raise CountersError(f"cannot save the event counters in {self.state_dir}: "
                                    f"{exc.strerror or exc}; check the disk") from None
            if self.degraded is None:
                log.error("cannot save the event counters in %s: %s; counting on in memory "
                          "under boot %d", self.state_dir, exc.strerror, self._boot)
            self.degraded = f"{exc.strerror or exc} ({self.state_dir})"
            return False
        if self.degraded is not None:
            log.warning("event counters in %s saved again (next block from %d)",
                        self.state_dir, self._next)
        self.degraded = None
        self._limit = new_limit
        return True


def write_counters(state_dir: Union[str, "os.PathLike[str]"], *, boot: int,
                   seq_mark: int) -> None:
    """Write both counters files by hand (recovery of a damaged state directory).

    The next start uses ``boot + 1`` and hands out numbers from ``seq_mark``:
    choose a ``seq_mark`` above the last ``seq`` the cloud has seen.
    """
    directory = Path(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    if seq_mark < 1 or boot < 0:
        raise ValueError("seq_mark must be >= 1 and boot >= 0")
    content = _encode(boot, seq_mark)
    write_durably(directory / FILE_NAME, content)
    write_durably(directory / BACKUP_NAME, content)
