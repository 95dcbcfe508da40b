"""Checks on *secret* files (docs/spec.md §4): device private key, HS256 secrets, MQTT
password, TLS client key.

A secret file is refused at start — :class:`agent.errors.SecretFileError`, exit
status 1 — when it is missing, is a symlink or not a regular file, is owned by a
user other than the one the agent runs as, or can be read or written by its
group or by others (``mode & 0o077``), or is larger than :data:`MAX_SECRET_BYTES`
(never read whole). Every message ends with the command that
fixes it, e.g. ``run: chmod 600 /etc/homecare-agent/device-key.pem``.

Public keys and CA files are not secret and are not checked here.

Under systemd, ``LoadCredential=`` copies secrets into ``$CREDENTIALS_DIRECTORY``, a
private read-only mount only the unit's user can read. systemd may leave those files
owned by root and grant the user access with an ACL (which shows up as group bits in
the mode), so inside that directory only the symlink and regular-file checks apply:
systemd, not the file's mode, is what keeps the secret private there.

:func:`read_secret_file` opens with ``O_NOFOLLOW`` and checks the opened file
(``fstat``), so the file checked is the file read.
"""
from __future__ import annotations

import os
import pwd
import shlex
import stat
from typing import Union

from agent.errors import SecretFileError

PathLike = Union[str, "os.PathLike[str]"]

#: largest secret file accepted, in bytes: a PEM key (RSA 4096 included) or a password is
#: a few KB at most, so anything bigger is the wrong file, and is not read into memory
MAX_SECRET_BYTES = 65536


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _in_credentials_directory(path: str) -> bool:
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if not creds:
        return False
    parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    return parent == os.path.realpath(creds)


def _check_stat(st: os.stat_result, path: str, what: str) -> None:
    quoted = shlex.quote(path)
    if stat.S_ISLNK(st.st_mode):
        raise SecretFileError(
            f"{what} {path} is a symlink; secret files must be the real file",
            hint=f"run: cp --remove-destination \"$(readlink -f {quoted})\" {quoted} "
                 f"&& chmod 600 {quoted}")
    if not stat.S_ISREG(st.st_mode):
        raise SecretFileError(f"{what} {path} is not a regular file",
                              hint="point the config at the key file itself")
    if st.st_size > MAX_SECRET_BYTES:
        raise SecretFileError(
            f"{what} {path} is {st.st_size} bytes; a secret file (key or password) is at "
            f"most {MAX_SECRET_BYTES} bytes", hint="check that the config names the key or "
            "password file itself, not an archive, a log or a disk image")
    if _in_credentials_directory(path):
        return
    euid = os.geteuid()
    if st.st_uid != euid:
        user = _user_name(euid)
        raise SecretFileError(
            f"{what} {path} is owned by {_user_name(st.st_uid)}, but the agent runs as {user}",
            hint=f"run: chown {shlex.quote(user)} {quoted}")
    if st.st_mode & 0o077:
        raise SecretFileError(
            f"{what} {path} has mode {stat.S_IMODE(st.st_mode):04o}: its group or others "
            "can read or change it",
            hint=f"run: chmod 600 {quoted}")


def _missing(path: str, what: str, exc: OSError) -> SecretFileError:
    reason = "does not exist" if isinstance(exc, FileNotFoundError) else \
        f"cannot be opened ({exc.strerror})"
    return SecretFileError(
        f"{what} {path} {reason}",
        hint="check the path in the config; `homecare-agent keygen --out PATH` makes a "
             "device key")


def check_secret_file(path: PathLike, *, what: str) -> None:
    """Refuse a secret file that others could read, a symlink, or another user's file.

    ``what`` names the file in the message, e.g. ``"signing.key_file"``.
    Raises :class:`SecretFileError`; returns None when the file is fine.
    """
    text = os.fspath(path)
    try:
        st = os.lstat(text)
    except OSError as exc:
        raise _missing(text, what, exc) from None
    _check_stat(st, text, what)


def read_secret_file(path: PathLike, *, what: str) -> bytes:
    """Check (as :func:`check_secret_file`) and read a secret file, race-free."""
    text = os.fspath(path)
    try:
        fd = os.open(text, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno is not None and os.path.islink(text):
            _check_stat(os.lstat(text), text, what)
        raise _missing(text, what, exc) from None
    try:
        _check_stat(os.fstat(fd), text, what)
        chunks = []
        size = 0
        while size <= MAX_SECRET_BYTES:     # the file may grow after the fstat: bound the read
            chunk = os.read(fd, MAX_SECRET_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_SECRET_BYTES:
            raise SecretFileError(f"{what} {text} grew past {MAX_SECRET_BYTES} bytes while "
                                  f"being read; a secret file (key or password) is at most "
                                  f"{MAX_SECRET_BYTES} bytes", hint="check what writes to it")
        return b"".join(chunks)
    finally:
        os.close(fd)
