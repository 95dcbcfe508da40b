"""The ``mqtt:`` section (docs/spec.md §10): the broker (one endpoint or a list, §12.1), TLS,
and what is refused as insecure."""
from __future__ import annotations

import ipaddress
from typing import Any, Callable, Dict, List, Optional, Tuple

import yaml

from agent.config.fields import SEC, mapping, required_section, section
from agent.config.reader import Bad, MapReader, Node, Sink, as_bool, as_choice, as_int, as_number, as_text
from agent.delivery.endpoints import Endpoint, parse_endpoint
from agent.config.schema import (DEFAULT_KEEPALIVE_S, DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_PROTOCOL,
                                 MAX_TOPIC_PREFIX_BYTES, MQTT_MAX_PAYLOAD, MQTT_PROTOCOLS,
                                 PORT_PLAIN, PORT_TLS, DeviceConfig, MqttConfig, TlsConfig)

MQTT_KEYS = ("host", "port", "protocol", "client_id", "keepalive_s", "topic_prefix", "tls",
             "username", "password_file", "allow_insecure", "ack_timeout_s", "max_inflight",
             "max_publish_rate", "max_payload_bytes")
TLS_KEYS = ("ca_file", "cert_file", "key_file", "insecure_skip_verify")

#: docs/spec.md §6: on 3.1.1 the agent deletes an event on a PUBACK that proves nothing
PROTOCOL_311_WARNING = (
    "MQTT 3.1.1 has no PUBACK reason codes, and some brokers (mosquitto among them) "
    "acknowledge a publish their ACL refused: the agent then deletes an event the cloud "
    "never got. Use protocol: \"5\" unless the broker speaks only 3.1.1 (docs/brokers.md)")


def is_loopback(host: str) -> bool:
    """True for localhost names and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def as_endpoint(default_port: int) -> Callable[[Node], Endpoint]:
    """One ``mqtt.host`` entry: ``name``, ``name:port``, an IPv6 address, ``[v6]:port``."""

    def conv(node: Node) -> Endpoint:
        text = as_text(node).strip()
        if "://" in text or "/" in text or " " in text:
            raise Bad(f"{text!r} is not a host name; give only the name or address, optionally "
                      f"with :port (e.g. broker.example.org or broker.example.org:8883), "
                      f"without mqtts:// or a path")
        try:
            return parse_endpoint(text, default_port)
        except ValueError as exc:
            raise Bad(str(exc)) from None

    return conv


def read_endpoints(m: MapReader, sink: Sink, default_port: int) -> Tuple[Endpoint, ...]:
    """``mqtt.host``: one entry or a list of them, each checked where it is written."""
    node = m.value_node("host")
    if node is None:
        m.require("host", as_text, "", "the broker's name or address")
        return ()
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    if not items:
        sink.add(node, "mqtt.host", "the list of brokers is empty; give at least one, e.g. "
                 "host: [node1.example.org, node2.example.org]")
    paths = [f"mqtt.host[{i}]" for i in range(len(items))] \
        if isinstance(node, yaml.SequenceNode) else ["mqtt.host"]
    conv = as_endpoint(default_port)
    endpoints: List[Endpoint] = []
    seen: Dict[Tuple[str, int], str] = {}   # host names are case-blind
    for item, path in zip(items, paths):
        try:
            endpoint = conv(item)
        except Bad as exc:
            sink.add(item, path, str(exc))
            continue
        key = (endpoint.host.lower(), endpoint.port)
        if key in seen:
            sink.add(item, path, f"{endpoint} is already listed as {seen[key]}; "
                     f"name each broker once")
            continue
        seen[key] = f"{path} (line {item.start_mark.line + 1})"
        endpoints.append(endpoint)
    return tuple(endpoints)


def as_topic_prefix(node: Node) -> str:
    prefix = as_text(node)
    if any(c in prefix for c in "+#\0") or prefix.startswith(("/", "$")) or prefix.endswith("/") \
            or "//" in prefix:
        raise Bad(f"{prefix!r} is not a usable topic prefix: no '+', '#', empty levels, or "
                  f"leading '/' or '$' (e.g. homecare/gw-0001)")
    size = len(prefix.encode("utf-8"))
    if size > MAX_TOPIC_PREFIX_BYTES:
        raise Bad(f"is {size} bytes long; a topic prefix has at most {MAX_TOPIC_PREFIX_BYTES} "
                  f"(with /events/ and a sensor name it must fit brokers' topic limits)")
    return prefix


def _tls(m: MapReader, sink: Sink, paths: Any) -> Optional[TlsConfig]:
    node = m.value_node("tls")
    if node is None:
        return TlsConfig()
    if isinstance(node, yaml.ScalarNode):
        return TlsConfig() if m.get("tls", as_bool, True) else None
    t = mapping(node, m.sub("tls"), sink, TLS_KEYS)
    tls = TlsConfig(ca_file=t.optional("ca_file", paths), cert_file=t.optional("cert_file", paths),
                    key_file=t.optional("key_file", paths),
                    insecure_skip_verify=t.get("insecure_skip_verify", as_bool,
                                               TlsConfig.insecure_skip_verify))
    if (t.value_node("cert_file") is None) != (t.value_node("key_file") is None):
        have, need = ("cert_file", "key_file") if t.value_node("key_file") is None \
            else ("key_file", "cert_file")
        sink.add(t.node_or_self(have), t.sub(need), f"{have} is set without {need}; a client "
                 f"certificate needs both files (or neither)")
    return tls


def _refuse_insecure(m: MapReader, sink: Sink, tls: Optional[TlsConfig], remote: List[str]) -> None:
    """docs/spec.md §5, for every endpoint: no plaintext or unverified TLS off this machine."""
    if not remote:
        return
    hosts = ", ".join(remote)
    if tls is None:
        sink.add(m.node_or_self("tls"), "mqtt.tls", f"plaintext MQTT to {hosts} is refused: "
                 f"events and passwords would cross the network unencrypted. Remove "
                 f"`tls: false`, or set allow_insecure: true if this network is trusted")
    elif tls.insecure_skip_verify:
        t_node = m.value_node("tls")
        where = t_node if t_node is not None else m.node
        sink.add(where, "mqtt.tls.insecure_skip_verify", f"an unverified TLS connection to "
                 f"{hosts} is refused: anyone on the path could pose as the broker. Give "
                 f"ca_file: instead, or set allow_insecure: true if you accept the risk")


def read_mqtt(top: MapReader, sink: Sink, device: DeviceConfig, paths: Any) -> MqttConfig:
    node = required_section(top, "mqtt", sink, "mqtt: {host: broker.example.org}")
    m = mapping(node, "mqtt", sink, MQTT_KEYS) if node is not None else section(top, "mqtt", MQTT_KEYS)
    tls = _tls(m, sink, paths)
    port = m.get("port", as_int(1, 65535), PORT_TLS if tls else PORT_PLAIN)
    endpoints = read_endpoints(m, sink, port) if node is not None else ()
    first = endpoints[0] if endpoints else Endpoint("localhost", port)  # only with problems
    mqtt = MqttConfig(
        host=first.host if endpoints else "",
        port=first.port,
        more_endpoints=endpoints[1:],
        protocol=m.get("protocol", as_choice(MQTT_PROTOCOLS), DEFAULT_PROTOCOL),
        client_id=m.get("client_id", as_text, device.id),
        keepalive_s=m.get("keepalive_s", as_int(5, 65535, SEC), DEFAULT_KEEPALIVE_S),
        topic_prefix=m.get("topic_prefix", as_topic_prefix, f"homecare/{device.id}"),
        tls=tls,
        username=m.optional("username", as_text),
        password_file=m.optional("password_file", paths),
        allow_insecure=m.get("allow_insecure", as_bool, MqttConfig.allow_insecure),
        ack_timeout_s=m.get("ack_timeout_s", as_number(hi=3600, unit=SEC, above=0),
                            MqttConfig.ack_timeout_s),
        max_inflight=m.get("max_inflight", as_int(1, 65535), MqttConfig.max_inflight),
        max_publish_rate=m.optional("max_publish_rate", as_number(unit="publishes per second", above=0)),
        max_payload_bytes=m.get("max_payload_bytes", as_int(1, MQTT_MAX_PAYLOAD, "bytes"),
                                DEFAULT_MAX_PAYLOAD_BYTES),
    )
    if not mqtt.allow_insecure:
        _refuse_insecure(m, sink, tls, [e.host for e in endpoints if not is_loopback(e.host)])
    if mqtt.protocol == "3.1.1":
        sink.warn(m.value_node("protocol"), "mqtt.protocol", PROTOCOL_311_WARNING)
    if mqtt.password_file and not mqtt.username and mqtt.protocol == "3.1.1":
        sink.add(m.node_or_self("password_file"), "mqtt.username", "MQTT 3.1.1 sends a "
                 "password only with a user name: set username: (or use protocol: \"5\")")
    return mqtt

