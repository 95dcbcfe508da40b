"""The receiver's config: values, defaults, and FILE:LINE:COL problems."""
from pathlib import Path

import pytest

from agent.config.reader import ConfigProblems
from receiver.config import load_receiver_config

GOOD = """\
instance: r1
database: {host: db.example, dbname: care}
mqtt: {host: broker.example, port: 8883, username: receiver, ca_file: ca.pem}
commands: {algorithm: EdDSA, key_file: centre-key.pem}
supervision: {heartbeat_s: 60}
devices:
  - {id: gw-0001, key_file: keys/gw-0001.pub.pem}
  - {id: gw-0002, algorithm: HS256, key_file: keys/gw-0002.secret, kid: k2, heartbeat_s: 30}
"""


def _load(tmp_path: Path, text: str):
    path = tmp_path / "receiver.yaml"
    path.write_text(text)
    return load_receiver_config(path)


def test_a_good_file(tmp_path):
    config = _load(tmp_path, GOOD)
    assert config.instance == "r1" and config.database.port == 5432
    assert config.mqtt.ca_file == tmp_path / "ca.pem" and config.mqtt.group == "homecare-receivers"
    assert config.http.host == "127.0.0.1" and config.commands.lifetime_s == 300
    assert [(d.device_id, d.algorithm, d.heartbeat_s) for d in config.devices] == \
        [("gw-0001", "EdDSA", 60.0), ("gw-0002", "HS256", 30.0)]
    assert config.devices[0].key_file == tmp_path / "keys" / "gw-0001.pub.pem"


def test_every_problem_with_its_line_and_column(tmp_path):
    text = GOOD.replace("heartbeat_s: 60", "heartbeat_secs: 60").replace(
        "port: 8883", "port: 99999").replace("id: gw-0002", "id: gw-0001") + "htpp: {}\n"
    with pytest.raises(ConfigProblems) as caught:
        _load(tmp_path, text)
    lines = str(caught.value).splitlines()
    name = str(tmp_path / "receiver.yaml")
    assert lines == [
        f"{name}:3:36: mqtt.port: 99999 is too large: the most allowed is 65535",
        f"{name}:5:15: supervision.heartbeat_secs: unknown key 'heartbeat_secs'; did you mean "
        "'heartbeat_s'?",
        f"{name}:8:10: devices[1].id: 'gw-0001' is already registered at devices[0]; keep one",
        f"{name}:9:1: htpp: unknown key 'htpp'; did you mean 'http'?",
    ]


def test_missing_essentials(tmp_path):
    with pytest.raises(ConfigProblems) as caught:
        _load(tmp_path, "database: {}\n")
    text = str(caught.value)
    assert "instance: missing" in text and "commands.key_file: missing" in text
    assert "devices: register at least one gateway" in text
