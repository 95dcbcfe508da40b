"""Private 3-node broker clusters on loopback: RabbitMQ 3.10 (MQTT plugin) and NATS 2.9.

Theory of operation
-------------------
The agent's ``mqtt.host`` list (docs/spec.md §12.1) names the nodes of a clustered broker.
These fixtures start real clusters beside any system brokers, sharing nothing with them:
free loopback ports, one folder per cluster, the same ``device``/``consumer`` users and
passwords on every node (never on a command line), and every process ended by its pid.

* :class:`RabbitCluster`: three :class:`tests.rabbitmq.RabbitMQBroker` nodes booted in
  parallel (about 19 s) with one Erlang cookie and one private ``epmd``; nodes 2 and 3 then
  ``join_cluster`` node 1 (about 7 s). ``mqtt.durable_queue_type = quorum`` puts the queue
  of a persistent (clean-session=false) QoS 1 subscription on all three nodes, so a
  session outlives the node it was made on.
* :class:`NatsCluster`: three ``nats-server`` processes with JetStream and MQTT (3.1.1,
  QoS 0/1), routes to each other, MQTT streams and consumers replicated 3 times. Ready is
  (1) a JetStream meta leader, (2) one QoS 1 publish on each node (the first MQTT client of
  a server creates its session manager; done now, it spares ~10 s of refused CONNECTs after
  a peer dies), (3) ``/healthz`` green.

Both duck-type what clients need per node via :meth:`view` (``host``, ``plain_port``,
``users``, ``prefix``, ``ca_file``, ``device_id``), so :class:`tests.broker.Subscriber` and
:class:`tests.integration.agent_harness.AgentHarness` work on any node.
"""
from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.broker import LOCALHOST, free_port, wait_for_port
from tests.rabbitmq import RUN_AS, RabbitMQBroker, RabbitStartError, available as rabbit_available

NATS_SERVER = "/usr/sbin/nats-server"
SIZE = 3


@dataclass(frozen=True)
class NodeView:
    """One node of a cluster, as the test clients see a broker."""

    host: str
    plain_port: int
    users: Dict[str, str]
    device_id: str = "gw-test"
    ca_file: Optional[str] = None

    @property
    def prefix(self) -> str:
        return f"homecare/{self.device_id}"


def _kill_group(proc: "subprocess.Popen[bytes]") -> None:
    """SIGKILL the node's whole process group (it runs in a session of its own)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)


def mqtt_probe(host: str, port: int, user: str, password: str, timeout: float = 5.0) -> bool:
    """True once a QoS 1 publish on ``port`` is acknowledged (MQTT 3.1.1, clean session)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="probe-" + uuid.uuid4().hex[:8],
                         protocol=mqtt.MQTTv311, reconnect_on_failure=False)
    client.username_pw_set(user, password)
    acked: List[bool] = []
    client.on_publish = lambda c, u, mid, rc, p: acked.append(True)
    deadline = time.monotonic() + timeout
    try:
        client.connect(host, port, keepalive=10)
        client.publish("homecare/probe/commands", b"up", qos=1)  # consumer may write commands
        while not acked and time.monotonic() < deadline and client.loop(0.1) == mqtt.MQTT_ERR_SUCCESS:
            pass
        if acked:
            client.disconnect()
        return bool(acked)
    except OSError:
        return False
    finally:
        sock = client.socket()
        if sock is not None:
            sock.close()


# --------------------------------------------------------------------------- RabbitMQ
class _RabbitNode(RabbitMQBroker):
    """A cluster member: the cluster's cookie, epmd and users, quorum session queues."""

    def __init__(self, directory: Path, cookie: str, epmd_port: int,
                 users: Dict[str, str]) -> None:
        super().__init__(directory)
        self.users = users
        self.epmd_port = epmd_port
        self.cookie = cookie

    def _write_files(self) -> None:
        super()._write_files()
        with open(self.dir / "rabbitmq.conf", "a") as conf:
            conf.write("mqtt.durable_queue_type = quorum\n")
        (self.dir / "rabbitmq-env.conf").write_text("# the system file would name the node\n")
        cookie = self.dir / ".erlang.cookie"
        if cookie.exists():
            cookie.chmod(0o600)
        cookie.write_text(self.cookie)
        cookie.chmod(0o400)
        if self._as_rabbit:
            entry = pwd.getpwnam(RUN_AS)
            for p in [self.dir, *self.dir.rglob("*")]:
                os.chown(p, entry.pw_uid, entry.pw_gid)

    def _env(self) -> Dict[str, str]:
        env = super()._env()
        env.update({"RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
                    "ERL_EPMD_ADDRESS": LOCALHOST,
                    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS":
                        "-kernel inet_dist_use_interface {127,0,0,1}"})
        return env

    def kill(self) -> None:
        assert self._proc is not None
        _kill_group(self._proc)


class RabbitCluster:
    """Three clustered RabbitMQ 3.10 nodes with MQTT on free loopback ports (module doc)."""

    kind = "rabbitmq"

    def __init__(self) -> None:
        # not under pytest's tmp: that is private to root, and the server runs as "rabbitmq"
        self.dir = Path(tempfile.mkdtemp(prefix="homecare-rmq-cluster-"))
        os.chmod(self.dir, 0o755)
        self.host = LOCALHOST
        self.users = {"device": secrets.token_urlsafe(16), "consumer": secrets.token_urlsafe(16)}
        cookie = secrets.token_hex(16)
        epmd = free_port()
        self.nodes = [_RabbitNode(self.dir / f"n{i}", cookie, epmd, self.users) for i in range(SIZE)]
        self.start_seconds: Optional[float] = None

    @property
    def mqtt_ports(self) -> List[int]:
        return [n.mqtt_port for n in self.nodes]

    def view(self, i: int) -> NodeView:
        return NodeView(self.host, self.nodes[i].mqtt_port, self.users)

    def start(self, timeout: float = 120.0) -> "RabbitCluster":
        t0 = time.monotonic()
        errors: List[BaseException] = []

        def boot(node: _RabbitNode) -> None:
            try:
                node._start_once(timeout)
            except BaseException as exc:  # re-raised below, on the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=boot, args=(n,)) for n in self.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            self.stop()
            raise errors[0]
        first = self.nodes[0].node
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first)
            node.ctl("start_app")
        for node in self.nodes:
            self._wait_ready(node, t0 + timeout)
        self.start_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self, node: _RabbitNode, deadline: float) -> None:
        ready = wait_for_port(self.host, node.mqtt_port, deadline, lambda: node.running)
        while ready and not mqtt_probe(self.host, node.mqtt_port, "consumer", self.users["consumer"]):
            if time.monotonic() > deadline:
                ready = False
            time.sleep(0.2)
        if not ready:
            raise RabbitStartError(f"cluster node {node.node} took no MQTT publish; "
                                   f"its log:\n{node.log_tail()}")

    def kill(self, i: int) -> None:
        """kill -9 node ``i`` (its beam and children)."""
        self.nodes[i].kill()

    def queue_types(self) -> Dict[str, str]:
        """``{queue name: type}`` as a surviving node lists them."""
        node = next(n for n in self.nodes if n.running)
        out = node.ctl("list_queues", "name", "type", "--formatter", "json").stdout
        return {q["name"]: q["type"] for q in json.loads(out[out.index("["):])}

    def stop(self) -> None:
        """Every node by its process group, then our epmd by its pid; the folder goes."""
        epmd = next((p for p in (n._epmd_pid() for n in self.nodes) if p is not None), None)
        for node in self.nodes:
            if node._proc is not None:
                _kill_group(node._proc)
                node._proc = None
        if epmd is not None:
            try:
                os.kill(epmd, signal.SIGTERM)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- NATS
@dataclass
class _NatsNode:
    name: str
    dir: Path
    client_port: int = field(default_factory=free_port)
    route_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    proc: Optional["subprocess.Popen[bytes]"] = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self, query: str = "") -> bool:
        try:
            with urllib.request.urlopen(f"http://{LOCALHOST}:{self.http_port}/healthz{query}",
                                        timeout=2) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.dir / "nats.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log yet)"


class NatsCluster:
    """Three routed nats-server 2.9 nodes with JetStream and MQTT (module doc)."""

    kind = "nats"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="homecare-nats-cluster-"))
        self.host = LOCALHOST
        self.users = {"device": secrets.token_urlsafe(16), "consumer": secrets.token_urlsafe(16)}
        self.nodes = [_NatsNode(f"n{i}", self.dir / f"n{i}") for i in range(SIZE)]
        self.start_seconds: Optional[float] = None

    @property
    def mqtt_ports(self) -> List[int]:
        return [n.mqtt_port for n in self.nodes]

    def view(self, i: int) -> NodeView:
        return NodeView(self.host, self.nodes[i].mqtt_port, self.users)

    def _config(self, node: _NatsNode) -> str:
        routes = ", ".join(f"nats-route://{LOCALHOST}:{n.route_port}"
                           for n in self.nodes if n is not node)
        users = ", ".join(f"{{user: {name}, password: {json.dumps(pw)}}}"
                          for name, pw in self.users.items())
        return (f"# written by tests/clusters.py\n"
                f"server_name: {node.name}\n"            # JetStream clustering needs it
                f"listen: {LOCALHOST}:{node.client_port}\n"
                f"http: {LOCALHOST}:{node.http_port}\n"
                f"log_file: \"{node.dir / 'nats.log'}\"\n"
                f"authorization {{ users: [{users}] }}\n"
                f"jetstream {{ store_dir: \"{node.dir / 'js'}\", max_memory_store: 64MB, "
                f"max_file_store: 512MB }}\n"
                f"cluster {{ name: hc, listen: {LOCALHOST}:{node.route_port}, routes: [{routes}] }}\n"
                # R3 for $MQTT_sess/$MQTT_msgs and the per-session consumers: a session
                # outlives the node it was made on
                f"mqtt {{ listen: {LOCALHOST}:{node.mqtt_port}, stream_replicas: 3, "
                f"consumer_replicas: 3, ack_wait: \"30s\" }}\n")

    def start(self, timeout: float = 60.0) -> "NatsCluster":
        t0 = time.monotonic()
        for node in self.nodes:
            node.dir.mkdir(parents=True)
            conf = node.dir / "nats.conf"
            fd = os.open(str(conf), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # passwords
            with os.fdopen(fd, "w") as f:
                f.write(self._config(node))
            self._start_node(node)
        for node in self.nodes:
            self._wait_ready(node, t0 + timeout)
        self.start_seconds = time.monotonic() - t0
        return self

    def _start_node(self, node: _NatsNode) -> None:
        with open(node.dir / "stdout.log", "ab") as out:
            node.proc = subprocess.Popen([NATS_SERVER, "-c", str(node.dir / "nats.conf")],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_ready(self, node: _NatsNode, deadline: float) -> None:
        steps: List[Tuple[str, Callable[[], bool]]] = [
            ("no JetStream meta leader", lambda: node.healthy("?js-server-only=true")),
            ("no MQTT publish taken", lambda: mqtt_probe(self.host, node.mqtt_port, "consumer",
                                                         self.users["consumer"], 3.0)),
            ("/healthz stays red", lambda: node.healthy())]
        for what, check in steps:
            while not check():
                if time.monotonic() > deadline or not node.running:
                    raise RuntimeError(f"nats node {node.name}: {what}; its log:\n{node.log_tail()}")
                time.sleep(0.1)

    def kill(self, i: int) -> None:
        """kill -9 node ``i``."""
        node = self.nodes[i]
        assert node.proc is not None
        _kill_group(node.proc)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None:
                _kill_group(node.proc)
                node.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def nats_available() -> Optional[str]:
    """None when a NATS cluster can be started here, else why not (one line)."""
    if not os.path.exists(NATS_SERVER):
        return f"nats-server is not installed ({NATS_SERVER}); apt-get install nats-server"
    return None


def rabbit_cluster_available() -> Optional[str]:
    return rabbit_available()
