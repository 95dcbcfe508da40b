"""A private PostgreSQL for tests: ``initdb`` + ``pg_ctl`` in a temp folder, free port.

Theory of operation
-------------------
Debian installs the server binaries under ``/usr/lib/postgresql/<major>/bin`` (not on
``PATH``); the newest is used. PostgreSQL refuses to run as root, so as root the folder
is owned by the ``postgres`` user and the binaries run as it (``runuser``). The cluster
listens on 127.0.0.1 and a socket in its own folder only, with ``trust`` authentication
for its one superuser (loopback, throw-away data: no password to keep anywhere), and
``fsync`` off (the tests kill receivers, never this server). ``database()`` makes a fresh
database per test. Nothing of the machine's own PostgreSQL is touched.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import List, Optional

from tests.broker import LOCALHOST, free_port

SUPERUSER = "homecare_test"


def server_bin() -> Optional[Path]:
    """The newest installed ``/usr/lib/postgresql/<major>/bin``, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def available() -> Optional[str]:
    """None if a private server can be started here, else why not (a skip reason)."""
    if server_bin() is None:
        return "PostgreSQL server binaries not installed (apt-get install postgresql)"
    if os.getuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no postgres user to run the server as"
    return None


class PostgresServer:
    """``start()`` / ``stop()``; ``dsn_kwargs(dbname)`` for psycopg.connect."""

    def __init__(self) -> None:
        bindir = server_bin()
        if bindir is None:
            raise RuntimeError(available() or "no PostgreSQL")
        self.bin = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="homecare-pg-"))
        self.data = self.dir / "data"
        self.log_file = self.dir / "server.log"
        self.port = free_port()
        self.host = LOCALHOST
        self.user = SUPERUSER
        self._as_postgres = os.getuid() == 0
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str, timeout: float = 60) -> None:
        command: List[str] = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                cwd=str(self.dir))
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr[-2000:]}"
                               f"\n{self.log_tail()}")

    def start(self) -> "PostgresServer":
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust",
                  "-E", "UTF8", "--no-instructions")
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses={self.host} "
                   "-c fsync=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_file), "-o", options,
                  "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        if self.data.exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except RuntimeError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def database(self) -> str:
        """A fresh, empty database; its name."""
        import psycopg
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name
