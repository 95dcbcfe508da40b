"""agent.delivery.link and reasons: the publisher's settings, status and names, without paho."""
from __future__ import annotations

import json

import pytest

import agent.delivery.link as link_module
import agent.delivery.reasons as reasons_module
from agent.delivery.link import LinkSettings, StatusBoard, status_payload
from agent.delivery.reasons import reason_name
from tests.helpers import top_level_imports


def test_settings_refuse_an_unknown_protocol_and_name_the_topics() -> None:
    with pytest.raises(ValueError, match="protocol must be one of"):
        LinkSettings(host="h", port=1883, client_id="gw", topic_prefix="homecare/gw", protocol="4")
    s = LinkSettings(host="h", port=1883, client_id="gw", topic_prefix="homecare/gw")
    assert (s.status_topic, s.commands_topic) == ("homecare/gw/status", "homecare/gw/commands")
    assert "password" not in repr(LinkSettings(host="h", port=1, client_id="c",
                                               topic_prefix="p", password="s3cret"))


def test_a_status_snapshot_never_changes_under_its_reader() -> None:
    board = StatusBoard()
    before = board.current
    board.update(connected=True, connects=1)
    assert (before.connected, before.connects) == (False, 0)
    assert (board.current.connected, board.current.connects) == (True, 1)


def test_status_payload_and_reason_names() -> None:
    assert json.loads(status_payload("gw", "1.2", "online", 1700000000.9)) == {
        "state": "online", "client_id": "gw", "version": "1.2", "at": 1700000000}
    assert reason_name(0x87) == "not authorized" and reason_name(0x9F) == "reason 0x9f"


def test_status_can_be_read_without_importing_paho() -> None:
    assert "paho" not in top_level_imports(link_module) | top_level_imports(reasons_module)
