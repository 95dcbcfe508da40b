"""A private, real mosquitto for tests, its certificates, and a real "cloud side" client.

Theory of operation
-------------------
* :func:`make_test_pki` writes a throw-away PKI made with the ``cryptography`` package:
  a CA, a ``localhost`` server certificate (SAN ``DNS:localhost`` and ``IP:127.0.0.1``),
  a client certificate from that CA, and a second, unrelated CA with its own client
  certificate (to make verification fail on purpose). Private keys are mode 0600, as
  the agent's secret-file checks require.
* :class:`MosquittoBroker` runs ``/usr/sbin/mosquitto -c <conf>`` from its own folder on
  free loopback ports: a plain listener and a TLS listener, both with a password file
  (PBKDF2-SHA512 hashes made in Python, the ``$7$`` format mosquitto >= 2.0 reads, so no
  password ever appears on a command line) and an ACL file. Persistence is off, so a
  restart starts empty. ``stop()`` / ``kill()`` then ``start()`` brings it back on the
  SAME ports, which is how tests make "broker down, then up again".
* :class:`Subscriber` is a real paho-mqtt 2.x client standing in for the cloud side: it
  subscribes at QoS 1 and collects what arrives; tests wait on it with a deadline.

Nothing here sleeps for a fixed time: readiness is polled with a deadline, and
messages are waited for on a :class:`threading.Condition`.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import pwd
import secrets
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MOSQUITTO = "/usr/sbin/mosquitto"
LOCALHOST = "127.0.0.1"

PathLike = Union[str, "os.PathLike[str]"]


# --------------------------------------------------------------------------- PKI
@dataclass(frozen=True)
class TestPKI:
    """File paths of a throw-away PKI (all PEM). ``other_*`` belong to an unrelated CA."""

    __test__ = False  # not a pytest test class

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path
    other_ca_key: Path
    other_client_cert: Path
    other_client_key: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(path, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "homecare-agent tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2)))


def _make_ca(common_name: str) -> Tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (_builder(common_name, _name(common_name), key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _make_leaf(common_name: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, *,
               server: bool) -> Tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (_builder(common_name, ca.subject, key)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                         x509.IPAddress(ipaddress.ip_address(LOCALHOST))]),
            critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_test_pki(directory: PathLike) -> TestPKI:
    """Write a CA, a localhost server cert, a client cert and an unrelated CA into ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _make_ca("homecare test CA")
    server, server_key = _make_leaf("localhost", ca, ca_key, server=True)
    client, client_key = _make_leaf("test-client", ca, ca_key, server=False)
    other, other_key = _make_ca("unrelated test CA")
    other_client, other_client_key = _make_leaf("rogue-client", other, other_key, server=False)
    pki = TestPKI(ca_cert=d / "ca.crt", ca_key=d / "ca.key",
                  server_cert=d / "server.crt", server_key=d / "server.key",
                  client_cert=d / "client.crt", client_key=d / "client.key",
                  other_ca_cert=d / "other-ca.crt", other_ca_key=d / "other-ca.key",
                  other_client_cert=d / "other-client.crt", other_client_key=d / "other-client.key")
    for cert_path, cert, key_path, key in (
            (pki.ca_cert, ca, pki.ca_key, ca_key),
            (pki.server_cert, server, pki.server_key, server_key),
            (pki.client_cert, client, pki.client_key, client_key),
            (pki.other_ca_cert, other, pki.other_ca_key, other_key),
            (pki.other_client_cert, other_client, pki.other_client_key, other_client_key)):
        _write_cert(cert_path, cert)
        _write_key(key_path, key)
    return pki


# --------------------------------------------------------------------------- passwords
PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 uses by default


def mosquitto_password_hash(password: str, *, salt: Optional[bytes] = None,
                            iterations: int = PBKDF2_ITERATIONS) -> str:
    """The ``$7$`` (PBKDF2-HMAC-SHA512) hash mosquitto >= 2.0 reads in a password_file."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return "$7${}${}${}".format(iterations, base64.b64encode(salt).decode("ascii"),
                                base64.b64encode(digest).decode("ascii"))


def check_mosquitto_password(password: str, encoded: str) -> bool:
    """True if ``encoded`` (a ``$7$`` password_file hash) is the hash of ``password``."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[1] != "7":
        raise ValueError("not a mosquitto $7$ (PBKDF2-SHA512) hash: {!r}".format(encoded[:8]))
    salt = base64.b64decode(parts[3])
    return secrets.compare_digest(mosquitto_password_hash(password, salt=salt, iterations=int(parts[2])),
                                  encoded)


# --------------------------------------------------------------------------- ports
def free_port(host: str = LOCALHOST) -> int:
    """A TCP port nobody listens on right now (bind port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, deadline: float,
                  alive: Callable[[], bool] = lambda: True) -> bool:
    """Poll until ``port`` accepts a TCP connection; False at ``deadline`` or when not ``alive()``."""
    while time.monotonic() < deadline:
        if not alive():
            return False
        if port_accepts(host, port):
            return True
        time.sleep(0.005)  # poll interval, bounded by the deadline
    return False


# --------------------------------------------------------------------------- broker
class BrokerStartError(RuntimeError):
    """mosquitto did not come up; the message carries the tail of its log."""


_B = TypeVar("_B", bound="MosquittoBroker")  # __enter__ returns the subclass (FleetBroker)


class MosquittoBroker:
    """A private mosquitto on two free loopback ports, with users, an ACL and TLS.

    Users (``broker.users``, name -> password):

    * ``device``: read/write on ``homecare/<device_id>/#`` (its events, status and commands);
    * ``consumer``: read on ``homecare/#`` and write on ``homecare/+/commands`` (the cloud side).

    Example::

        b = MosquittoBroker(tmp_path / "broker", pki); b.start()
        sub = Subscriber(b, "homecare/#", user="consumer", tls=True)
        b.stop(); b.start()   # same ports
    """

    def __init__(self, directory: PathLike, pki: TestPKI, *, device_id: str = "gw-test",
                 require_certificate: bool = False, host: str = LOCALHOST,
                 users: Optional[Dict[str, str]] = None) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.host = host
        self.device_id = device_id
        self.require_certificate = require_certificate
        # ``users``: the same passwords as another broker's (a standby of it)
        self.users: Dict[str, str] = dict(users) if users is not None else {
            "device": secrets.token_urlsafe(16), "consumer": secrets.token_urlsafe(16)}
        self.plain_port = free_port(host)
        self.tls_port = free_port(host)
        self.conf_file = self.dir / "mosquitto.conf"
        self.log_file = self.dir / "mosquitto.log"
        self.password_file = self.dir / "passwd"
        self.acl_file = self.dir / "acl"
        self.start_seconds: Optional[float] = None  # how long the last start() took
        self._proc: Optional["subprocess.Popen[bytes]"] = None
        self._write_auth_files()

    # -- files
    @property
    def ca_file(self) -> Path:
        return self.pki.ca_cert

    @property
    def prefix(self) -> str:
        return "homecare/{}".format(self.device_id)

    def _write_auth_files(self) -> None:
        lines = ["{}:{}\n".format(u, mosquitto_password_hash(p)) for u, p in self.users.items()]
        fd = os.open(str(self.password_file), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(lines)
        self.acl_file.write_text(
            "user device\n"
            "topic readwrite homecare/{0}/#\n\n"
            "user consumer\n"
            "topic read homecare/#\n"
            "topic write homecare/+/commands\n".format(self.device_id))

    def _write_conf(self) -> None:
        self.conf_file.write_text(
            "# written by tests/broker.py\n"
            # As root, mosquitto would drop to the "mosquitto" user and lose access to
            # this folder; naming the current user keeps it (ignored when not root).
            "user {user}\n"
            "persistence false\n"
            # a subscriber that falls behind must not lose messages in these tests
            "max_queued_messages 1000000\n"
            "log_dest file {log}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "connection_messages true\n"
            "log_timestamp_format %H:%M:%S\n"
            "allow_anonymous false\n"
            "password_file {pw}\n"
            "acl_file {acl}\n"
            "\n"
            "listener {plain} {host}\n"
            "\n"
            "listener {tls} {host}\n"
            "cafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
            "require_certificate {req}\n".format(
                user=pwd.getpwuid(os.getuid()).pw_name, log=self.log_file, pw=self.password_file, acl=self.acl_file, host=self.host,
                plain=self.plain_port, tls=self.tls_port, ca=self.pki.ca_cert,
                cert=self.pki.server_cert, key=self.pki.server_key,
                req="true" if self.require_certificate else "false"))

    # -- life cycle
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 10.0) -> "MosquittoBroker":
        """Start mosquitto (again, on the same ports) and return once both ports accept.

        On the very first start only, if a port was taken between choosing and binding it,
        new ports are chosen and the start is tried once more.
        """
        if self.running:
            raise RuntimeError("mosquitto is already running (pid {})".format(self.pid))
        first = self.start_seconds is None
        try:
            self._start_once(timeout)
        except BrokerStartError as e:
            if not (first and "in use" in str(e)):
                raise
            self.plain_port, self.tls_port = free_port(self.host), free_port(self.host)
            self._start_once(timeout)
        return self

    def _start_once(self, timeout: float) -> None:
        self._write_conf()
        t0 = time.monotonic()
        log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open(self.log_file, "ab") as out:  # stderr too: config errors come before the log opens
            self._proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf_file)], cwd=str(self.dir),
                                          stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        deadline = t0 + timeout
        # A port that accepts is not enough (someone else may hold it): mosquitto says
        # "running" in its log only once every listener is bound.
        ok = self._wait_log_running(log_start, deadline) and all(
            wait_for_port(self.host, p, deadline, lambda: self.running)
            for p in (self.plain_port, self.tls_port)) and self.running
        if not ok:
            self._terminate(signal.SIGKILL)
            raise BrokerStartError("mosquitto did not start within {:.0f} s; log tail:\n{}".format(
                timeout, self.log_tail()))
        self.start_seconds = time.monotonic() - t0

    def _wait_log_running(self, log_start: int, deadline: float) -> bool:
        while time.monotonic() < deadline and self.running:
            with open(self.log_file, "rb") as f:
                f.seek(log_start)
                if b" running" in f.read():
                    return True
            time.sleep(0.002)
        return False

    def _terminate(self, sig: int, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def stop(self) -> None:
        """Clean shutdown (SIGTERM) and wait for the process to end."""
        self._terminate(signal.SIGTERM)

    def kill(self) -> None:
        """Abrupt death (SIGKILL): clients see their connections reset, no clean close."""
        self._terminate(signal.SIGKILL)

    def close(self) -> None:
        self.kill()

    def __enter__(self: _B) -> _B:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log yet)"
        return "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        return "<MosquittoBroker {} plain={} tls={} {}>".format(
            self.host, self.plain_port, self.tls_port, "running" if self.running else "stopped")


# --------------------------------------------------------------------------- clients
def tls_context(ca_file: Optional[PathLike], *, cert: Optional[PathLike] = None,
                key: Optional[PathLike] = None, check_hostname: bool = True) -> ssl.SSLContext:
    """A client SSLContext that verifies the broker against ``ca_file``."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                     cafile=str(ca_file) if ca_file is not None else None)
    ctx.check_hostname = check_hostname
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key is not None else None)
    return ctx


def make_client(broker: MosquittoBroker, *, user: Optional[str] = "consumer",
                password: Optional[str] = None, tls: bool = False,
                ca_file: Optional[PathLike] = None, cert: Optional[PathLike] = None,
                key: Optional[PathLike] = None, protocol: int = mqtt.MQTTv5,
                client_id: Optional[str] = None) -> mqtt.Client:
    """A configured (not yet connected) paho-mqtt 2.x client for ``broker``.

    ``password`` defaults to the broker's password for ``user``; TLS verifies against the
    test CA with hostname checking unless ``ca_file`` says otherwise.
    """
    client = mqtt.Client(CallbackAPIVersion.VERSION2,
                         client_id=client_id or "test-" + uuid.uuid4().hex[:10],
                         protocol=MQTTProtocolVersion(protocol), reconnect_on_failure=False)
    if user is not None:
        client.username_pw_set(user, password if password is not None else broker.users[user])
    if tls:
        client.tls_set_context(tls_context(ca_file or broker.ca_file, cert=cert, key=key))
    return client


@dataclass(frozen=True)
class Received:
    """One message a :class:`Subscriber` got."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


class Subscriber:
    """A real MQTT client that subscribes at QoS 1 and collects messages (the cloud side).

    ``Subscriber(broker, "homecare/#")`` returns once the subscription is acknowledged.
    ``wait_for(n)`` returns the first ``n`` messages or raises :class:`TimeoutError`.
    """

    def __init__(self, broker: MosquittoBroker, topic: str = "homecare/#", *,
                 user: str = "consumer", tls: bool = False, protocol: int = mqtt.MQTTv5,
                 port: Optional[int] = None, timeout: float = 5.0, **client_kwargs: Any) -> None:
        self.topic = topic
        self.messages: List[Received] = []
        self._cond = threading.Condition()
        self._connect_rc: Optional[Any] = None
        self._subscribed = False
        self.client = make_client(broker, user=user, tls=tls, protocol=protocol, **client_kwargs)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        port = port if port is not None else (broker.tls_port if tls else broker.plain_port)
        self.client.connect(broker.host, port, keepalive=30)
        self.client.loop_start()
        try:
            self._wait(lambda: self._subscribed or (self._connect_rc is not None
                                                    and self._connect_rc.is_failure), timeout,
                       "SUBACK for {!r}".format(topic))
            if not self._subscribed:
                raise ConnectionError("subscriber could not connect: {}".format(self._connect_rc))
        except BaseException:
            self.close()
            raise

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                    properties: Any = None) -> None:
        with self._cond:
            self._connect_rc = rc
            self._cond.notify_all()
        if not rc.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, rcs: Sequence[Any],
                      properties: Any = None) -> None:
        with self._cond:
            self._subscribed = all(not rc.is_failure for rc in rcs)
            if not self._subscribed:
                self._connect_rc = rcs[0]
            self._cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain)))
            self._cond.notify_all()

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError("no {} within {} s".format(what, timeout))

    def wait_for(self, count: int, timeout: float = 5.0) -> List[Received]:
        """The first ``count`` messages, waiting up to ``timeout`` seconds for them."""
        try:
            self._wait(lambda: len(self.messages) >= count, timeout, "{} messages".format(count))
        except TimeoutError as e:
            raise TimeoutError("{}; got {}: {!r}".format(e, len(self.messages), self.messages)) from None
        with self._cond:
            return list(self.messages[:count])

    def wait_until(self, predicate: Callable[[List[Received]], bool],
                   timeout: float = 5.0) -> List[Received]:
        """All messages so far, once ``predicate(messages)`` holds (else TimeoutError)."""
        try:
            self._wait(lambda: predicate(self.messages), timeout, "match")
        except TimeoutError as e:
            raise TimeoutError("{}; got {!r}".format(e, self.messages)) from None
        with self._cond:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Publisher:
    """A real MQTT client that publishes and records each PUBACK's reason code (by mid).

    ``connect()`` returns the CONNACK reason code (it does not raise on a refusal);
    ``publish()`` returns the message id; ``wait_puback(mid)`` returns the PUBACK's
    reason code or None if none came within the timeout. ``disconnected`` is set when
    the connection is lost or closed.
    """

    def __init__(self, broker: MosquittoBroker, *, user: Optional[str] = "device",
                 tls: bool = False, protocol: int = mqtt.MQTTv5, **client_kwargs: Any) -> None:
        self.broker = broker
        self.tls = tls
        self.client = make_client(broker, user=user, tls=tls, protocol=protocol, **client_kwargs)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = self._on_disconnect
        self._cond = threading.Condition()
        self.connack: Optional[Any] = None
        self.pubacks: Dict[int, Any] = {}
        self.disconnected = threading.Event()
        self._loop = False

    def connect(self, port: Optional[int] = None, *, host: Optional[str] = None,
                keepalive: int = 30, timeout: float = 5.0) -> Any:
        port = port if port is not None else (self.broker.tls_port if self.tls else self.broker.plain_port)
        self.client.connect(host or ("localhost" if self.tls else self.broker.host), port, keepalive)
        self.client.loop_start()
        self._loop = True
        with self._cond:
            if not self._cond.wait_for(lambda: self.connack is not None or self.disconnected.is_set(),
                                       timeout):
                raise TimeoutError("no CONNACK within {} s".format(timeout))
        return self.connack

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                    properties: Any = None) -> None:
        with self._cond:
            self.connack = rc
            self._cond.notify_all()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, rc: Any,
                    properties: Any = None) -> None:
        with self._cond:
            self.pubacks[mid] = rc
            self._cond.notify_all()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                       properties: Any = None) -> None:
        with self._cond:
            self.disconnected.set()
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return int(info.mid)

    def wait_puback(self, mid: int, timeout: float = 5.0) -> Optional[Any]:
        with self._cond:
            self._cond.wait_for(lambda: mid in self.pubacks, timeout)
            return self.pubacks.get(mid)

    def wait_disconnected(self, timeout: float = 5.0) -> bool:
        return self.disconnected.wait(timeout)

    def close(self) -> None:
        self.client.disconnect()
        if self._loop:
            self.client.loop_stop()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
