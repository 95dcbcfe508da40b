"""Tests of the test helpers themselves: the PKI, password hashes, the MQTT stream filter
and the fault proxy (against a plain TCP server, no broker needed)."""
from __future__ import annotations

import queue
import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.broker import (TestPKI, check_mosquitto_password, free_port, mosquitto_password_hash,
                          tls_context)
from tests.faultproxy import FaultProxy, MqttStreamFilter, encode_remaining_length


# --------------------------------------------------------------------------- PKI
def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_server_cert_names_localhost_and_loopback_and_chains_to_ca(test_pki: TestPKI) -> None:
    server, ca = _load(test_pki.server_cert), _load(test_pki.ca_cert)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert server.issuer == ca.subject
    server.verify_directly_issued_by(ca)
    _load(test_pki.client_cert).verify_directly_issued_by(ca)


def test_other_ca_is_unrelated(test_pki: TestPKI) -> None:
    other = _load(test_pki.other_ca_cert)
    assert other.subject != _load(test_pki.ca_cert).subject
    with pytest.raises((ValueError, Exception)):
        _load(test_pki.server_cert).verify_directly_issued_by(other)
    _load(test_pki.other_client_cert).verify_directly_issued_by(other)


def test_private_keys_are_owner_only(test_pki: TestPKI) -> None:
    for key in (test_pki.ca_key, test_pki.server_key, test_pki.client_key, test_pki.other_ca_key,
                test_pki.other_client_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_client_tls_context_loads_client_cert(test_pki: TestPKI) -> None:
    ctx = tls_context(test_pki.ca_cert, cert=test_pki.client_cert, key=test_pki.client_key)
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED


# --------------------------------------------------------------------------- passwords
def test_password_hash_round_trip() -> None:
    encoded = mosquitto_password_hash("s3cret")
    assert encoded.startswith("$7$101$")
    assert check_mosquitto_password("s3cret", encoded)
    assert not check_mosquitto_password("s3cret!", encoded)
    assert encoded != mosquitto_password_hash("s3cret")  # fresh salt each time


@pytest.mark.broker
def test_password_hash_matches_mosquitto_passwd(tmp_path: Path) -> None:
    # mosquitto_passwd -U hashes a plaintext file in place: no password on a command line.
    pwfile = tmp_path / "pw"
    pwfile.write_text("alice:correct horse\n")
    subprocess.run(["mosquitto_passwd", "-U", str(pwfile)], check=True, capture_output=True, timeout=10)
    user, encoded = pwfile.read_text().strip().split(":", 1)
    assert user == "alice"
    assert check_mosquitto_password("correct horse", encoded)
    assert not check_mosquitto_password("wrong", encoded)


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


# --------------------------------------------------------------------------- MQTT stream filter
def _packet(ptype: int, body: bytes, flags: int = 0) -> bytes:
    return bytes([(ptype << 4) | flags]) + encode_remaining_length(len(body)) + body


@pytest.mark.parametrize("length,encoded", [
    (0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"),
    (16_384, b"\x80\x80\x01"), (2_097_152, b"\x80\x80\x80\x01"), (268_435_455, b"\xff\xff\xff\x7f")])
def test_remaining_length_encoding(length: int, encoded: bytes) -> None:
    assert encode_remaining_length(length) == encoded


packets = st.lists(st.tuples(st.integers(1, 15), st.binary(max_size=300)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(packets, st.lists(st.integers(0, 4000), max_size=10))
def test_filter_drops_exactly_pubacks_across_any_split(pkts: List[Tuple[int, bytes]],
                                                       cuts: List[int]) -> None:
    stream = b"".join(_packet(t, b) for t, b in pkts)
    expected = b"".join(_packet(t, b) for t, b in pkts if t != 4)
    f = MqttStreamFilter()
    out = b""
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    for a, b in zip(bounds, bounds[1:]):
        out += f.feed(stream[a:b], lambda t: t == 4)
    assert out == expected
    assert f.dropped == sum(1 for t, _ in pkts if t == 4)
    assert f.packets == len(pkts)


def test_filter_handles_one_byte_segments_and_long_lengths() -> None:
    big = _packet(3, b"x" * 20_000)        # 3-byte remaining length
    puback = _packet(4, b"\x00\x01")
    stream = puback + big + puback + _packet(13, b"")
    f = MqttStreamFilter()
    out = b"".join(f.feed(stream[i:i + 1], lambda t: t == 4) for i in range(len(stream)))
    assert out == big + _packet(13, b"")
    assert f.dropped == 2


def test_filter_passes_non_mqtt_through_once_broken() -> None:
    f = MqttStreamFilter()
    junk = b"\x40\xff\xff\xff\xff\x01rest"
    assert f.feed(junk, lambda t: False) == junk
    assert f.broken
    assert f.feed(b"\x40\x02\x00\x01", lambda t: t == 4) == b"\x40\x02\x00\x01"


# --------------------------------------------------------------------------- FaultProxy
class TcpServer:
    """A plain TCP server whose accepted sockets the test drives itself."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns: "queue.Queue[socket.socket]" = queue.Queue()
        self._t = threading.Thread(target=self._accept, daemon=True)
        self._t.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(5)
            self.conns.put(conn)

    def next(self) -> socket.socket:
        return self.conns.get(timeout=5)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def tcp_server() -> Iterator[TcpServer]:
    s = TcpServer()
    yield s
    s.close()
    while not s.conns.empty():
        s.conns.get().close()


@pytest.fixture
def proxy(tcp_server: TcpServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", tcp_server.port) as p:
        yield p


def _connect(proxy: FaultProxy) -> socket.socket:
    c = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    return c


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _refused(proxy: FaultProxy) -> bool:
    """True if a new connection is closed at once (the reset may even beat connect())."""
    try:
        c = _connect(proxy)
    except ConnectionResetError:
        return True
    with c:
        return _closed_by_peer(c)


def test_pass_forwards_both_ways(proxy: FaultProxy, tcp_server: TcpServer) -> None:
    with _connect(proxy) as c:
        s = tcp_server.next()
        c.sendall(b"up" * 50_000)
        assert _recv_exactly(s, 100_000) == b"up" * 50_000
        s.sendall(b"down")
        assert _recv_exactly(c, 4) == b"down"
        s.close()
    assert proxy.accepted == 1
    assert proxy.bytes_up == 100_000 and proxy.bytes_down == 4


def test_server_close_reaches_client(proxy: FaultProxy, tcp_server: TcpServer) -> None:
    with _connect(proxy) as c:
        s = tcp_server.next()
        s.sendall(b"bye")
        s.close()
        assert _recv_exactly(c, 3) == b"bye"
        assert _closed_by_peer(c)
    proxy.wait_until(lambda p: p.active == 0)


def test_cut_resets_both_ends_and_accepts_new(proxy: FaultProxy, tcp_server: TcpServer) -> None:
    c = _connect(proxy)
    s = tcp_server.next()
    proxy.wait_until(lambda p: p.active == 1)
    proxy.cut()
    assert proxy.active == 0
    assert _closed_by_peer(c) and _closed_by_peer(s)
    c.close(); s.close()
    with _connect(proxy) as c2:
        s2 = tcp_server.next()
        c2.sendall(b"again")
        assert _recv_exactly(s2, 5) == b"again"
        s2.close()
    assert proxy.accepted == 2


def test_blackhole_holds_bytes_then_pass_releases_them(proxy: FaultProxy, tcp_server: TcpServer) -> None:
    with _connect(proxy) as c:
        s = tcp_server.next()
        proxy.wait_until(lambda p: p.active == 1)
        proxy.set_mode("blackhole")
        c.sendall(b"held")
        s.sendall(b"also held")
        s.settimeout(0.3)
        c.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(10)
        with pytest.raises(socket.timeout):
            c.recv(10)
        assert proxy.bytes_up == 0 and proxy.bytes_down == 0
        assert proxy.active == 1  # still open
        proxy.set_mode("pass")
        s.settimeout(5)
        c.settimeout(5)
        assert _recv_exactly(s, 4) == b"held"
        assert _recv_exactly(c, 9) == b"also held"
        s.close()


def test_blackhole_keeps_connections_when_target_is_down(tcp_server: TcpServer) -> None:
    dead_port = free_port()
    with FaultProxy("127.0.0.1", dead_port, mode="blackhole") as p, _connect(p) as c:
        p.wait_until(lambda p: p.active == 1)
        c.settimeout(0.2)
        with pytest.raises(socket.timeout):
            c.recv(1)
        p.set_mode("pass")  # nothing to forward to: the lone connection is dropped
        c.settimeout(5)
        assert _closed_by_peer(c)


def test_refuse_closes_new_connections_only(proxy: FaultProxy, tcp_server: TcpServer) -> None:
    with _connect(proxy) as old:
        s = tcp_server.next()
        proxy.set_mode("refuse")
        assert _refused(proxy)
        old.sendall(b"still")
        assert _recv_exactly(s, 5) == b"still"
        s.close()
    assert proxy.accepted == 2
    assert tcp_server.conns.empty()


def test_drop_pubacks_over_tcp(proxy: FaultProxy, tcp_server: TcpServer) -> None:
    with _connect(proxy) as c:
        s = tcp_server.next()
        proxy.set_mode("drop_pubacks")
        publish = _packet(3, b"\x00\x03a/b" + b"p" * 300, flags=2)
        puback = _packet(4, b"\x00\x07")
        stream = publish + puback + _packet(9, b"\x00\x01\x01") + puback
        for i in range(0, len(stream), 7):  # many small writes
            s.sendall(stream[i:i + 7])
        expected = publish + _packet(9, b"\x00\x01\x01")
        assert _recv_exactly(c, len(expected)) == expected
        proxy.wait_until(lambda p: p.pubacks_dropped == 2)
        proxy.set_mode("pass")
        s.sendall(puback)
        assert _recv_exactly(c, len(puback)) == puback
        s.close()


def test_unknown_mode_is_refused(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="blackhole"):
        proxy.set_mode("slow")


def test_close_is_idempotent_and_frees_port(tcp_server: TcpServer) -> None:
    p = FaultProxy("127.0.0.1", tcp_server.port)
    port = p.port
    p.close()
    p.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
