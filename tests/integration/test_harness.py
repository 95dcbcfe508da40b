"""The test harness against the real mosquitto: TLS, auth, ACL, restarts and the fault proxy."""
from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.broker import MosquittoBroker, Publisher, Subscriber, TestPKI, port_accepts
from tests.faultproxy import FaultProxy

pytestmark = pytest.mark.broker

NOT_AUTHORISED = 0x87
BAD_USER_OR_PASSWORD = 0x86


def test_broker_starts_fast_on_loopback_ports(broker: MosquittoBroker) -> None:
    assert broker.running
    assert broker.start_seconds is not None and broker.start_seconds < 2.0
    assert broker.plain_port != broker.tls_port
    assert port_accepts(broker.host, broker.plain_port) and port_accepts(broker.host, broker.tls_port)
    assert "persistence false" in broker.conf_file.read_text()


def test_tls_with_ca_and_hostname_check_publishes_and_receives(broker: MosquittoBroker) -> None:
    topic = broker.prefix + "/events/sos"
    with Subscriber(broker, "homecare/#", tls=True) as sub, Publisher(broker, tls=True) as pub:
        assert pub.connect().value == 0
        mid = pub.publish(topic, b"tls payload")
        assert pub.wait_puback(mid) is not None and not pub.pubacks[mid].is_failure
        got = sub.wait_for(1)
    assert (got[0].topic, got[0].payload, got[0].qos) == (topic, b"tls payload", 1)


def _refused_during_tls(pub: Publisher) -> bool:
    """True if the broker rejected our TLS handshake. With TLS 1.3 the client learns of the
    broker's rejection of its certificate only on its first read, i.e. before any CONNACK."""
    try:
        rc = pub.connect(timeout=2)
    except ssl.SSLError:
        return True
    return rc is None and pub.disconnected.is_set()


def test_tls_with_client_certificate_when_required(tmp_path: Path, test_pki: TestPKI) -> None:
    with MosquittoBroker(tmp_path / "mtls", test_pki, require_certificate=True) as b:
        with Publisher(b, tls=True, cert=test_pki.client_cert, key=test_pki.client_key) as ok:
            assert ok.connect().value == 0
        assert _refused_during_tls(Publisher(b, tls=True, cert=test_pki.other_client_cert,
                                             key=test_pki.other_client_key))
        assert _refused_during_tls(Publisher(b, tls=True))  # no certificate at all


def test_tls_client_trusting_another_ca_is_refused(broker: MosquittoBroker, test_pki: TestPKI) -> None:
    pub = Publisher(broker, tls=True, ca_file=test_pki.other_ca_cert)
    with pytest.raises(ssl.SSLCertVerificationError):
        pub.connect()


def test_tls_hostname_is_checked(broker: MosquittoBroker) -> None:
    # The server certificate names localhost and 127.0.0.1 only; reach it as 127.0.0.2.
    with FaultProxy(broker.host, broker.tls_port, listen_host="127.0.0.2") as proxy:
        pub = Publisher(broker, tls=True)
        with pytest.raises(ssl.SSLCertVerificationError, match="127.0.0.2"):
            pub.connect(proxy.port, host="127.0.0.2")


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311])
@pytest.mark.parametrize("user,password", [("device", "not-the-password"), ("nobody", "x")])
def test_wrong_credentials_are_refused(broker: MosquittoBroker, protocol: int, user: str,
                                       password: str) -> None:
    with Publisher(broker, user=user, password=password, protocol=protocol) as pub:
        rc = pub.connect()
        assert rc is not None and rc.is_failure
        # paho maps 3.1.1's CONNACK codes 4/5 onto the MQTT 5 reason codes 0x86/0x87
        assert rc.value in (BAD_USER_OR_PASSWORD, NOT_AUTHORISED)
        assert pub.wait_disconnected()


def test_anonymous_is_refused(broker: MosquittoBroker) -> None:
    with Publisher(broker, user=None) as pub:
        rc = pub.connect()
    assert rc is not None and rc.is_failure


def test_acl_refuses_publish_outside_prefix_with_mqtt5(broker: MosquittoBroker) -> None:
    with Subscriber(broker, "homecare/#") as sub, Publisher(broker) as pub:
        assert pub.connect().value == 0
        denied = pub.publish("homecare/another-device/events/sos", b"forged")
        marker = pub.publish(broker.prefix + "/events/sos", b"marker")
        rc = pub.wait_puback(denied)
        assert rc is not None and rc.value >= 0x80 and rc.value == NOT_AUTHORISED
        assert not pub.wait_puback(marker).is_failure  # type: ignore[union-attr]
        # Same client, same session: once the later marker arrived, the forged one never will.
        got = sub.wait_until(lambda ms: any(m.payload == b"marker" for m in ms))
    assert [m.payload for m in got] == [b"marker"]


def test_unsubscribed_topic_puback_is_a_success_code(broker: MosquittoBroker) -> None:
    # docs/spec.md §5: mosquitto answers 0x10 "no matching subscribers"; still a success (< 0x80).
    with Publisher(broker) as pub:
        pub.connect()
        rc = pub.wait_puback(pub.publish(broker.prefix + "/events/door", b"x"))
    assert rc is not None and rc.value < 0x80


def test_stop_then_start_on_the_same_ports(broker: MosquittoBroker) -> None:
    ports = (broker.plain_port, broker.tls_port)
    pub = Publisher(broker)
    pub.connect()
    broker.stop()
    assert not broker.running
    assert pub.wait_disconnected()
    assert not port_accepts(broker.host, broker.plain_port)
    broker.start()
    assert (broker.plain_port, broker.tls_port) == ports
    with Subscriber(broker, "homecare/#") as sub, Publisher(broker) as pub2:
        pub2.connect()
        pub2.publish(broker.prefix + "/events/x", b"after restart")
        assert sub.wait_for(1)[0].payload == b"after restart"
    pub.close()


def test_kill_then_start(broker: MosquittoBroker) -> None:
    pub = Publisher(broker)
    pub.connect()
    broker.kill()
    assert pub.wait_disconnected()
    broker.start()
    with Publisher(broker) as again:
        assert again.connect().value == 0
    pub.close()


def test_first_start_moves_to_new_ports_if_one_was_taken(tmp_path: Path, test_pki: TestPKI) -> None:
    b = MosquittoBroker(tmp_path / "race", test_pki)
    taken = b.tls_port
    with socket.socket() as squatter:
        squatter.bind((b.host, taken))
        squatter.listen(1)
        try:
            b.start()
            assert b.running and b.tls_port != taken
            assert "in use" in b.log_file.read_text()
        finally:
            b.kill()


def test_broker_start_time(tmp_path: Path, test_pki: TestPKI) -> None:
    """Measures start/stop cycles; the figure is printed with -s and bounded generously."""
    b = MosquittoBroker(tmp_path / "timing", test_pki)
    times = []
    try:
        for _ in range(5):
            b.start()
            assert b.start_seconds is not None
            times.append(b.start_seconds)
            b.stop()
    finally:
        b.kill()
    print("mosquitto start: min {:.1f} ms, max {:.1f} ms".format(min(times) * 1e3, max(times) * 1e3))
    assert max(times) < 2.0


# --------------------------------------------------------------------------- the fault proxy
def test_proxy_pass_forwards(broker: MosquittoBroker, fault_proxy: FaultProxy) -> None:
    with Subscriber(broker, "homecare/#") as sub, Publisher(broker) as pub:
        assert pub.connect(fault_proxy.port).value == 0
        rc = pub.wait_puback(pub.publish(broker.prefix + "/events/sos", b"via proxy"))
        assert rc is not None and not rc.is_failure
        assert sub.wait_for(1)[0].payload == b"via proxy"
    assert fault_proxy.accepted == 1


def test_proxy_passes_tls_opaquely(broker: MosquittoBroker) -> None:
    with FaultProxy(broker.host, broker.tls_port) as proxy, Publisher(broker, tls=True) as pub:
        assert pub.connect(proxy.port).value == 0  # "localhost" matches the cert through the proxy
        assert not pub.wait_puback(pub.publish(broker.prefix + "/e", b"x")).is_failure  # type: ignore[union-attr]


def test_proxy_cut_closes_client_connection(broker: MosquittoBroker, fault_proxy: FaultProxy) -> None:
    pub = Publisher(broker)
    pub.connect(fault_proxy.port)
    fault_proxy.cut()
    assert pub.wait_disconnected()
    pub.close()
    with Publisher(broker) as again:  # new connections still accepted
        assert again.connect(fault_proxy.port).value == 0
    assert fault_proxy.accepted == 2


def test_proxy_blackhole_swallows_publish_until_pass(broker: MosquittoBroker,
                                                     fault_proxy: FaultProxy) -> None:
    with Subscriber(broker, "homecare/#") as sub, Publisher(broker) as pub:
        pub.connect(fault_proxy.port)
        fault_proxy.set_mode("blackhole")
        mid = pub.publish(broker.prefix + "/events/sos", b"into the void")
        assert pub.wait_puback(mid, timeout=0.5) is None
        assert fault_proxy.active == 1 and not pub.disconnected.is_set()
        assert sub.messages == []
        fault_proxy.set_mode("pass")  # the stalled link recovers: the held bytes flow
        assert pub.wait_puback(mid) is not None
        assert sub.wait_for(1)[0].payload == b"into the void"


def test_proxy_blackhole_new_connection_gets_no_connack(broker: MosquittoBroker,
                                                        fault_proxy: FaultProxy) -> None:
    fault_proxy.set_mode("blackhole")
    pub = Publisher(broker)
    with pytest.raises(TimeoutError):
        pub.connect(fault_proxy.port, timeout=0.5)
    assert fault_proxy.active == 1  # TCP is up: a silent broker, not a refused one
    pub.close()


def test_proxy_drop_pubacks_drops_only_pubacks(broker: MosquittoBroker, fault_proxy: FaultProxy) -> None:
    fault_proxy.set_mode("drop_pubacks")
    topic = broker.prefix + "/events/sos"
    # The device side talks through the proxy: its CONNACK, SUBACK and the PUBLISH the broker
    # forwards to it must all pass; only the PUBACK for its own publish is removed.
    with Subscriber(broker, "homecare/#") as cloud, \
            Subscriber(broker, broker.prefix + "/#", user="device", port=fault_proxy.port) as echo, \
            Publisher(broker, protocol=mqtt.MQTTv311) as pub:
        assert pub.connect(fault_proxy.port).value == 0
        mid = pub.publish(topic, b"delivered, unacknowledged")
        assert cloud.wait_for(1)[0].payload == b"delivered, unacknowledged"
        assert echo.wait_for(1)[0].payload == b"delivered, unacknowledged"
        fault_proxy.wait_until(lambda p: p.pubacks_dropped == 1)
        assert pub.wait_puback(mid, timeout=0.3) is None
        assert not pub.disconnected.is_set()
        fault_proxy.set_mode("pass")  # the stream stayed in sync: later PUBACKs arrive
        rc = pub.wait_puback(pub.publish(topic, b"acked"))
        assert rc is not None and not rc.is_failure
        assert mid not in pub.pubacks
    assert fault_proxy.pubacks_dropped == 1


def test_proxy_refuse(broker: MosquittoBroker, fault_proxy: FaultProxy) -> None:
    fault_proxy.set_mode("refuse")
    pub = Publisher(broker)
    started = time.monotonic()
    with pytest.raises((ConnectionError, OSError, TimeoutError)):
        if pub.connect(fault_proxy.port, timeout=2) is None:
            raise ConnectionError("closed before CONNACK")
    assert time.monotonic() - started < 2.0
    pub.close()
    with socket.create_connection((broker.host, broker.plain_port), timeout=2):
        pass  # the broker itself is fine
