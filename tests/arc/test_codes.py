"""agent.arc.codes: docs/spec.md §12.2's code table, overrides, event selection, zones."""
from __future__ import annotations

import pytest

from agent.arc.codes import (ADM_CID, ALARM_TYPES, SIA_DCS, ArcMessage, Code, CodeTable,
                             message_for, selected, zones)

pysia = pytest.importorskip("pysiaalarm", reason="pysiaalarm 3.2 (the independent DC-09 receiver) needs Python 3.10 or later")
from pysiaalarm.utils import ADM_MAPPING, SIA_CODES  # noqa: E402


def test_spec_table_of_adm_cid_codes() -> None:
    table = CodeTable("ADM-CID")
    texts = {t: table.code(t).text for t in ("sos.pressed", "smoke.alarm", "smoke.cleared",  # type: ignore[union-attr]
                                              "care.inactivity", "care.activity_resumed",
                                              "agent.test", "sensor.recovered")}
    assert texts == {"sos.pressed": "1 101", "smoke.alarm": "1 111", "smoke.cleared": "3 111",
                     "care.inactivity": "1 641", "care.activity_resumed": "3 641",
                     "agent.test": "1 602", "sensor.recovered": "3 380"}
    assert set(ADM_CID) == set(SIA_DCS)         # both formats code the same events


def test_every_code_but_641_is_known_to_an_independent_receiver() -> None:
    for event_type, code in ADM_CID.items():
        known = code.code in ADM_MAPPING and code.qualifier in ADM_MAPPING[code.code]
        assert known == (code.code != "641"), event_type     # pysiaalarm has no 641: DUH
    for event_type, code in SIA_DCS.items():
        assert code.code in SIA_CODES, event_type


def test_overrides_replace_one_entry_and_are_checked() -> None:
    table = CodeTable("ADM-CID", {"care.inactivity": "1 150", "door.opened": "1 134"})
    assert table.code("care.inactivity") == Code("ADM-CID", "150", "1")
    assert table.code("door.opened") == Code("ADM-CID", "134", "1")
    assert CodeTable("SIA-DCS", {"care.inactivity": "UA"}).code("care.inactivity") == Code("SIA-DCS", "UA")
    for fmt, bad in (("ADM-CID", "1150"), ("ADM-CID", "2 150"), ("ADM-CID", "QA"),
                     ("SIA-DCS", "1 150"), ("SIA-DCS", "qa")):
        with pytest.raises(ValueError, match="e.g."):
            CodeTable(fmt, {"care.inactivity": bad})


def test_reminders_and_link_events_never_get_a_code() -> None:
    table = CodeTable("ADM-CID", {"alarm.unacknowledged": "1 110", "arc.link_lost": "1 350"})
    assert table.code("alarm.unacknowledged") is None and table.code("arc.link_lost") is None


@pytest.mark.parametrize("event_type, critical, expected", [
    ("sos.pressed", True, ("alarms", "critical", "all")),
    ("smoke.cleared", False, ("alarms", "critical", "all")),
    ("power.mains_lost", True, ("critical", "all")),
    ("power.mains_restored", False, ("critical", "all")),
    ("sensor.fault", False, ("critical", "all")),
    ("agent.test", False, ("all",)),
    ("door.opened", False, ()),                   # no code: never sent
    ("alarm.unacknowledged", True, ()),
])
def test_events_selects_alarms_critical_or_all(event_type: str, critical: bool, expected: tuple) -> None:  # type: ignore[type-arg]
    table = CodeTable("ADM-CID")
    assert tuple(e for e in ("alarms", "critical", "all")
                 if selected(e, event_type, critical, table)) == expected


def test_a_critical_type_with_an_override_code_is_sent_with_events_critical() -> None:
    table = CodeTable("ADM-CID", {"buffer.evicted": "1 354"})
    assert selected("critical", "buffer.evicted", True, table)
    assert not selected("alarms", "buffer.evicted", True, table)


def test_alarm_types_are_spec_section_11_openers_and_their_restores() -> None:
    assert {"sos.pressed", "smoke.alarm", "care.not_returned", "tamper.closed"} <= ALARM_TYPES
    assert "sos.released" not in ALARM_TYPES


def test_zone_is_the_one_based_sensor_position_and_000_for_the_agent() -> None:
    zone_map = zones(("sos", "door", "smoke"))
    table = CodeTable("ADM-CID")
    smoke = message_for(table, zone_map, type="smoke.alarm", sensor="smoke", occurred=1.0, jti="j")
    assert smoke == ArcMessage(Code("ADM-CID", "111", "1"), 3, 1.0, "j")
    test = message_for(table, zone_map, type="agent.test", sensor="agent", occurred=1.0, jti="j")
    assert test is not None and test.zone == 0
    assert message_for(table, zone_map, type="door.opened", sensor="door", occurred=1.0, jti="j") is None
    with pytest.raises(ValueError, match="three digits"):
        zones(tuple(f"s{i}" for i in range(1000)))
    with pytest.raises(ValueError, match="delimiter"):
        ArcMessage(Code("ADM-CID", "111", "1"), 1, 1.0, "a]b")
