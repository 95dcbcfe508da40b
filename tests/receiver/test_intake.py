"""The intake decision and the seq classification (sans-IO)."""
import pytest

from receiver.intake import (BAD_TOKEN, NOT_AN_EVENT_TOPIC, UNKNOWN_DEVICE, WRONG_ISSUER,
                             Accepted, Refused, advance_last, classify_seq, decide)


def _verify(claims):
    def verify(device_id, token):
        if token != "good":
            raise ValueError("bad signature")
        return claims
    return verify


CLAIMS = {"iss": "gw-1", "sensor": "sos", "type": "sos.pressed", "prio": "critical",
          "jti": "j1", "boot": 1, "seq": 5}


def test_a_good_alarm_event_is_accepted():
    result = decide("homecare/gw-1/events/sos", b"good", known=lambda d: True,
                    verify=_verify(CLAIMS))
    assert isinstance(result, Accepted) and result.alarm and result.jti == "j1"


@pytest.mark.parametrize("topic, payload, known, reason", [
    ("homecare/gw-1/status", b"good", True, NOT_AN_EVENT_TOPIC),
    ("homecare/gw-1/events/sos", b"good", False, UNKNOWN_DEVICE),
    ("homecare/gw-1/events/sos", b"forged", True, BAD_TOKEN),
    ("homecare/gw-1/events/sos", b"\xff", True, BAD_TOKEN),
    ("homecare/gw-1/events/door", b"good", True, WRONG_ISSUER),
    ("homecare/gw-2/events/sos", b"good", True, WRONG_ISSUER),
])
def test_refusals(topic, payload, known, reason):
    result = decide(topic, payload, known=lambda d: known, verify=_verify(CLAIMS))
    assert isinstance(result, Refused) and result.reason == reason


def test_tamper_opens_an_alarm_only_outside_maintenance():
    for prio, alarm in (("critical", True), ("normal", False)):
        claims = dict(CLAIMS, type="tamper.opened", prio=prio)
        result = decide("homecare/gw-1/events/sos", b"good", known=lambda d: True,
                        verify=_verify(claims))
        assert isinstance(result, Accepted) and result.alarm is alarm


@pytest.mark.parametrize("last, boot, seq, kind, missing", [
    (None, 1, 7, "first", 0),
    ((1, 7), 1, 8, "next", 0),
    ((1, 7), 1, 10, "gap", 2),
    ((1, 7), 1, 3, "late", -1),
    ((1, 7), 2, 1001, "new_boot", 0),
    ((3, 5000), 1, 2, "reset", 0),       # state directory wiped: a new series
    ((3, 5000), 2, 4000, "late", 0),
])
def test_classify_seq(last, boot, seq, kind, missing):
    step = classify_seq(last, boot, seq)
    assert (step.kind, step.missing) == (kind, missing)


def test_advance_last_keeps_the_highest():
    assert advance_last((1, 7), 1, 3) == (1, 7)
    assert advance_last((1, 7), 1, 9) == (1, 9)
    assert advance_last(None, 4, 2) == (4, 2)
