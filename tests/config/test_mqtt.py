"""agent.config.mqtt: ``mqtt.host`` as one endpoint or a list (docs/spec.md §12.1), each
entry checked where it is written, and the insecure rule (§5) for every entry."""
from __future__ import annotations

from pathlib import Path
from typing import List

import pytest

from agent.app.assemble import link_settings
from agent.config.model import Config, ConfigProblems, Problem, parse_config
from agent.delivery.endpoints import Endpoint

# Lines: 1 device / 2 id / 3 sensors / 4 sos / 5 mqtt / 6 host ...
HEAD = """\
device:
  id: gw-1
sensors:
  - {name: sos, kind: sos_button, pin: 17}
mqtt:
"""


def ok(mqtt: str) -> Config:
    return parse_config(HEAD + mqtt, Path("/etc/hc/config.yaml"), environ={})


def problems(mqtt: str) -> List[Problem]:
    with pytest.raises(ConfigProblems) as info:
        parse_config(HEAD + mqtt, Path("/etc/hc/config.yaml"), environ={},
                     file_name="config.yaml")
    return list(info.value.problems)


def test_a_list_of_hosts_with_and_without_ports() -> None:
    c = ok("  host: [node1.example.org, \"node2.example.org:8884\", \"[2001:db8::7]:8885\"]\n"
           "  port: 8883\n")
    assert c.mqtt.endpoints == (Endpoint("node1.example.org", 8883),
                                Endpoint("node2.example.org", 8884),
                                Endpoint("2001:db8::7", 8885))
    assert (c.mqtt.host, c.mqtt.port) == ("node1.example.org", 8883)
    link = link_settings(c, None)
    assert link.endpoints == c.mqtt.endpoints and link.tls is not None


def test_a_block_list_and_the_default_port_of_tls_or_plaintext() -> None:
    c = ok("  host:\n    - localhost\n    - 127.0.0.2:1884\n  tls: false\n")
    assert [str(e) for e in c.mqtt.endpoints] == ["localhost:1883", "127.0.0.2:1884"]


def test_a_single_string_may_carry_its_port() -> None:
    c = ok("  host: broker.example.org:8884\n")
    assert c.mqtt.endpoints == (Endpoint("broker.example.org", 8884),)
    assert ok("  host: \"[::1]:1884\"\n  tls: false\n").mqtt.endpoints == (Endpoint("::1", 1884),)
    assert ok("  host: broker.example.org\n").mqtt.endpoints == \
        (Endpoint("broker.example.org", 8883),)


@pytest.mark.parametrize("mqtt, line, col, path, phrase", [
    ("  host: []\n", 6, 9, "mqtt.host", "the list of brokers is empty"),
    ("  host: [a.example.org, \"\"]\n", 6, 25, "mqtt.host[1]", "is empty"),
    ("  host:\n    - a.example.org\n    - a.example.org:70000\n", 8, 7, "mqtt.host[1]",
     "'70000' in 'a.example.org:70000' is not a port"),
    ("  host: \"a.example.org:x\"\n", 6, 9, "mqtt.host", "'x' in 'a.example.org:x' is not a port"),
    ("  host: [a.example.org, \"[::1:8883\"]\n", 6, 25, "mqtt.host[1]", "without ']'"),
    ("  host: [\"[a.example.org]:8883\"]\n", 6, 10, "mqtt.host[0]", "not an IPv6 address"),
    ("  host:\n    - a.example.org\n    - A.example.org:8883\n", 8, 7, "mqtt.host[1]",
     "A.example.org:8883 is already listed as mqtt.host[0] (line 7)"),
    ("  host: [a.example.org, mqtts://b.example.org]\n", 6, 25, "mqtt.host[1]",
     "without mqtts://"),
    ("  host: [a.example.org, {name: b}]\n", 6, 25, "mqtt.host[1]", "expected a single value"),
])
def test_a_bad_entry_is_reported_at_its_own_line(mqtt: str, line: int, col: int, path: str,
                                                 phrase: str) -> None:
    [p] = problems(mqtt)
    assert (p.line, p.col, p.field_path) == (line, col, path), str(p)
    assert phrase in p.message
    assert str(p).startswith(f"config.yaml:{line}:{col}: {path}: ")


def test_every_entry_must_be_loopback_for_plaintext() -> None:
    [p] = problems("  host: [localhost, node2.example.org, \"[::1]:1884\", 10.0.0.9]\n"
                   "  tls: false\n")
    assert (p.line, p.field_path) == (7, "mqtt.tls")
    assert "plaintext MQTT to node2.example.org, 10.0.0.9 is refused" in p.message
    [p] = problems("  host: [localhost, node2.example.org]\n  tls: {insecure_skip_verify: true}\n")
    assert p.field_path == "mqtt.tls.insecure_skip_verify" and "node2.example.org is refused" in p.message
    assert ok("  host: [localhost, \"127.0.0.2:1884\", \"::1\"]\n  tls: false\n").mqtt.tls is None
    assert ok("  host: [localhost, node2.example.org]\n  tls: false\n"
              "  allow_insecure: true\n").mqtt.allow_insecure
