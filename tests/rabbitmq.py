"""A private RabbitMQ node with the MQTT plugin: the second broker of the interop tests.

Theory of operation
-------------------
Debian 12 ships RabbitMQ 3.10 (MQTT 3.1.1 only; MQTT 5 came with 3.13). A node of our
own runs beside any system one, sharing nothing with it:

* its own folder (config, ``enabled_plugins`` = ``[rabbitmq_mqtt].``, mnesia, logs,
  Erlang cookie via ``HOME``), owned by the ``rabbitmq`` user when we are root, because
  the server must be able to write there;
* its own node name (``hc<random>@localhost``) and free loopback ports: AMQP, MQTT,
  Erlang distribution, and a private ``epmd`` (``ERL_EPMD_PORT``) so the system's epmd
  is never touched and ours can be ended by its pid;
* users from a definitions file with salted SHA-256 password hashes written in Python
  (``rabbit_password_hashing_sha256``), so no password is ever on a command line:
  ``device`` may write only under ``homecare/<device_id>/`` (a topic permission on
  ``amq.topic``, where MQTT's ``/`` is ``.``), ``consumer`` may read everything. No
  ``guest``: a definitions import replaces the default user.

The server is ``/usr/lib/rabbitmq/bin/rabbitmq-server`` run in the foreground as a child
we own (as the ``rabbitmq`` user when we are root). Startup takes about 10 s, so the
test fixture is session-scoped. Outages are made with ``rabbitmqctl stop_app`` /
``start_app`` (the MQTT listener goes away and comes back on the same port, about 1 s
each) rather than a full restart.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Union

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.broker import LOCALHOST, free_port, port_accepts, wait_for_port

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
RUN_AS = "rabbitmq"

PathLike = Union[str, "os.PathLike[str]"]


class RabbitStartError(RuntimeError):
    """The node did not come up; the message carries the tail of its output."""


def rabbit_password_hash(password: str, salt: Optional[bytes] = None) -> str:
    """``rabbit_password_hashing_sha256``: base64(salt4 + SHA-256(salt4 + password))."""
    salt = secrets.token_bytes(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode("utf-8")).digest()).decode()


def available() -> Optional[str]:
    """None when a private node can be started here, else why not."""
    if not (os.path.exists(SERVER) and os.path.exists(CTL)):
        return f"RabbitMQ is not installed ({SERVER}); apt-get install rabbitmq-server"
    plugins = list(Path("/usr/lib/rabbitmq/lib").glob("rabbitmq_server-*/plugins/rabbitmq_mqtt-*"))
    if not plugins:
        return "the rabbitmq_mqtt plugin is missing"
    if os.getuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"no {RUN_AS!r} user to run the server as"
    return None


class RabbitMQBroker:
    """A private RabbitMQ node with MQTT on a free loopback port.

    Duck-types the parts of :class:`tests.broker.MosquittoBroker` that clients use
    (``host``, ``plain_port``, ``users``, ``prefix``, ``ca_file``, ``device_id``), so
    :class:`tests.broker.Subscriber` works with it (pass ``protocol=MQTTv311``).

    Example::

        r = RabbitMQBroker(tmp / "rabbit"); r.start()
        r.stop_app(); r.start_app()     # MQTT listener down, then up on the same port
        r.stop()                        # node and its epmd gone
    """

    def __init__(self, directory: PathLike, *, device_id: str = "gw-test",
                 host: str = LOCALHOST) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.device_id = device_id
        self.node = "hc{}@localhost".format(uuid.uuid4().hex[:10])
        self.users: Dict[str, str] = {"device": secrets.token_urlsafe(16),
                                      "consumer": secrets.token_urlsafe(16)}
        self.mqtt_port = free_port(host)
        self.amqp_port = free_port(host)
        self.dist_port = free_port(host)
        self.epmd_port = free_port(host)
        self.out_file = self.dir / "server.out"
        self.start_seconds: Optional[float] = None
        self._proc: Optional["subprocess.Popen[bytes]"] = None
        self._as_rabbit = os.getuid() == 0

    # -- what clients need
    @property
    def plain_port(self) -> int:
        return self.mqtt_port

    @property
    def prefix(self) -> str:
        return "homecare/{}".format(self.device_id)

    @property
    def ca_file(self) -> None:
        return None  # no TLS listener on this node

    # -- files
    def _write_files(self) -> None:
        (self.dir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (self.dir / "rabbitmq.conf").write_text(
            "# written by tests/rabbitmq.py\n"
            "listeners.tcp.default = {h}:{amqp}\n"
            "mqtt.listeners.tcp.default = {h}:{mqtt}\n"
            "mqtt.allow_anonymous = false\n"
            "loopback_users = none\n"
            "load_definitions = {defs}\n"
            "log.file.level = info\n"
            "log.console = false\n".format(h=self.host, amqp=self.amqp_port, mqtt=self.mqtt_port,
                                            defs=self.dir / "definitions.json"))
        device_topics = "^homecare\\.{}\\.".format(re.escape(self.device_id))
        definitions = {
            "vhosts": [{"name": "/"}],
            "users": [{"name": name, "password_hash": rabbit_password_hash(pw),
                       "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""}
                      for name, pw in self.users.items()],
            "permissions": [{"user": name, "vhost": "/", "configure": ".*", "write": ".*",
                             "read": ".*"} for name in self.users],
            "topic_permissions": [
                {"user": "device", "vhost": "/", "exchange": "amq.topic",
                 "write": device_topics, "read": device_topics},
                {"user": "consumer", "vhost": "/", "exchange": "amq.topic",
                 "write": "^homecare\\.[^.]+\\.commands$", "read": ".*"}],
        }
        path = self.dir / "definitions.json"
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(definitions, f)
        if self._as_rabbit:
            entry = pwd.getpwnam(RUN_AS)
            for p in [self.dir, *self.dir.rglob("*")]:
                os.chown(p, entry.pw_uid, entry.pw_gid)

    def _env(self) -> Dict[str, str]:
        d = str(self.dir)
        return {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8", "HOME": d,
                "RABBITMQ_NODENAME": self.node, "RABBITMQ_DIST_PORT": str(self.dist_port),
                "ERL_EPMD_PORT": str(self.epmd_port),
                "RABBITMQ_MNESIA_BASE": d + "/mnesia", "RABBITMQ_LOG_BASE": d + "/log",
                "RABBITMQ_ENABLED_PLUGINS_FILE": d + "/enabled_plugins",
                "RABBITMQ_CONFIG_FILE": d + "/rabbitmq"}

    def _user_kwargs(self) -> Dict[str, str]:
        return {"user": RUN_AS, "group": RUN_AS} if self._as_rabbit else {}

    # -- life cycle
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60.0) -> "RabbitMQBroker":
        """Start the node and return once its MQTT port accepts the test users.

        Ports are only reserved when the node binds them, so one of them may be taken
        meanwhile (outgoing connections use the same range); then new ports are chosen and
        the start is tried once more.
        """
        if self.running:
            raise RuntimeError("the RabbitMQ node {} is already running".format(self.node))
        try:
            self._start_once(timeout)
        except RabbitStartError:
            if not self._log_mentions("eaddrinuse"):
                raise
            self.mqtt_port, self.amqp_port = free_port(self.host), free_port(self.host)
            self.dist_port, self.epmd_port = free_port(self.host), free_port(self.host)
            self._start_once(timeout)
        return self

    def _start_once(self, timeout: float) -> None:
        self._write_files()
        t0 = time.monotonic()
        with open(self.out_file, "ab") as out:
            self._proc = subprocess.Popen(  # type: ignore[call-overload]
                [SERVER], cwd=str(self.dir), env=self._env(), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                **self._user_kwargs())
        ready = wait_for_port(self.host, self.mqtt_port, t0 + timeout, lambda: self.running)
        # the listener may open before the definitions (users) are imported
        while ready and not self._users_ready():
            if time.monotonic() > t0 + timeout or not self.running:
                ready = False
            time.sleep(0.1)
        if not ready:
            tail = self.log_tail()
            self.stop()
            raise RabbitStartError("RabbitMQ node {} did not accept the test users on MQTT port "
                                   "{} within {:.0f} s; output:\n{}".format(
                                       self.node, self.mqtt_port, timeout, tail))
        self.start_seconds = time.monotonic() - t0

    def _log_mentions(self, word: str) -> bool:
        for path in [self.out_file, *(self.dir / "log").glob("*.log")]:
            try:
                if word in path.read_text(errors="replace").lower():
                    return True
            except OSError:
                pass
        return False

    def _users_ready(self) -> bool:
        """True once the ``consumer`` user can log in over MQTT 3.1.1."""
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="probe-" + uuid.uuid4().hex[:8],
                             protocol=mqtt.MQTTv311, reconnect_on_failure=False)
        client.username_pw_set("consumer", self.users["consumer"])
        result: List[bool] = []
        client.on_connect = lambda c, u, f, rc, p: result.append(not rc.is_failure)
        try:
            client.connect(self.host, self.mqtt_port, keepalive=10)
            deadline = time.monotonic() + 5
            while not result and time.monotonic() < deadline:
                client.loop(0.1)
            if result and result[0]:
                client.disconnect()
            return bool(result and result[0])
        except OSError:
            return False
        finally:
            sock = client.socket()
            if sock is not None:
                sock.close()

    def ctl(self, *args: str, timeout: float = 60.0, check: bool = True) -> "subprocess.CompletedProcess[str]":
        """``rabbitmqctl -n <node> ARGS`` with this node's cookie and epmd."""
        done: "subprocess.CompletedProcess[str]" = subprocess.run(  # type: ignore[call-overload]
            [CTL, "-n", self.node, *args], cwd=str(self.dir), env=self._env(),
            capture_output=True, text=True, timeout=timeout, **self._user_kwargs())
        if check and done.returncode != 0:
            raise RuntimeError("rabbitmqctl {} failed ({}):\n{}{}".format(
                " ".join(args), done.returncode, done.stdout, done.stderr))
        return done

    def stop_app(self) -> None:
        """Outage: the RabbitMQ application (and its MQTT listener) stops; the VM stays."""
        self.ctl("stop_app")
        deadline = time.monotonic() + 10
        while port_accepts(self.host, self.mqtt_port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def start_app(self, timeout: float = 30.0) -> None:
        """End of the outage: MQTT comes back on the same port."""
        self.ctl("start_app")
        if not wait_for_port(self.host, self.mqtt_port, time.monotonic() + timeout):
            raise RabbitStartError("MQTT port {} did not come back after start_app".format(self.mqtt_port))

    def close_all_connections(self, why: str = "test") -> None:
        self.ctl("close_all_connections", why)

    def stop(self) -> None:
        """``rabbitmqctl stop``, wait for the server, then end our private epmd by its pid."""
        epmd = self._epmd_pid()
        if self.running:
            self.ctl("stop", check=False)
            assert self._proc is not None
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(10)
        self._proc = None
        if epmd is not None:
            try:
                os.kill(epmd, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _epmd_pid(self) -> Optional[int]:
        """The pid of the epmd listening on our private port (found via /proc)."""
        inodes = _listening_inodes(self.epmd_port)
        if not inodes:
            return None
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit():
                continue
            try:
                if "epmd" not in (pid_dir / "comm").read_text():
                    continue
                for fd in (pid_dir / "fd").iterdir():
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        return int(pid_dir.name)
            except OSError:
                continue
        return None

    def log_tail(self, lines: int = 40) -> str:
        texts: List[str] = []
        for path in [self.out_file, *sorted((self.dir / "log").glob("*.log"))]:
            try:
                texts.extend(path.read_text(errors="replace").splitlines()[-lines:])
            except OSError:
                pass
        return "\n".join(texts[-lines:]) or "(no output yet)"

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __repr__(self) -> str:
        return "<RabbitMQBroker {} mqtt={} {}>".format(self.node, self.mqtt_port,
                                                        "running" if self.running else "stopped")


def _listening_inodes(port: int) -> List[str]:
    """Socket inodes listening on ``port`` (IPv4 and IPv6), from /proc/net/tcp*."""
    found: List[str] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                found.append(cols[9])
    return found
