"""Open alarms and the ack command, checked with the agent's own command verifier."""
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.remote.keys import CommandVerifier
from agent.remote.policy import CommandPolicy, SeenCommands
from receiver.alarms import Alarm, ack_claims, latency_ms, opens_alarm, parse_ts
from receiver.commands import CommandSigner

SOS = Alarm("5ede54d8-8ef3-44ed-afed-64ae6611ef53", "gw-1", "sos.pressed", "sos",
            "2026-11-28T14:07:51.123Z", 1795874872.0)


def test_alarm_types_follow_spec_section_11():
    for kind in ("sos.pressed", "smoke.alarm", "sensor.stuck", "care.night_door",
                 "care.inactivity", "care.door_left_open", "care.not_returned"):
        assert opens_alarm({"type": kind, "prio": "critical"})
    for kind in ("sos.released", "smoke.cleared", "care.activity_resumed", "door.opened",
                 "agent.heartbeat"):
        assert not opens_alarm({"type": kind, "prio": "critical"})


def test_latency_is_from_the_alarms_ts():
    assert parse_ts("2026-11-28T14:07:51.123Z") == pytest.approx(1795874871.123)
    assert latency_ms(SOS, 1795874881.123) == 10000


@pytest.mark.parametrize("algorithm", ["EdDSA", "HS256"])
def test_signed_ack_is_accepted_by_the_agent_for_its_device_only(algorithm):
    if algorithm == "EdDSA":
        key = Ed25519PrivateKey.generate()
        signer = CommandSigner("EdDSA", key)
        verifier = CommandVerifier("EdDSA", public_key=key.public_key())
    else:
        secret = b"s" * 40
        signer = CommandSigner("HS256", secret, kid="centre")
        verifier = CommandVerifier("HS256", secret=secret)
    claims = ack_claims(SOS, jti="c1", now_epoch=1795874900.5, lifetime_s=600)
    assert claims["exp"] - claims["iat"] == 600
    token = signer.sign(claims).encode("ascii")
    for device, accepted in (("gw-1", True), ("gw-2", False)):
        policy = CommandPolicy(device_id=device, algorithm=algorithm,
                               verify_signature=verifier, seen=SeenCommands())
        decision = policy.check(token, now_epoch=1795874901.0)
        assert decision.accepted is accepted, decision
        if accepted:
            assert (decision.cmd, decision.in_reply_to) == ("ack", SOS.alarm_id)
        else:
            assert decision.reason == "wrong_aud"


def test_no_command_for_a_silent_gateway_and_lifetime_is_bounded():
    silent = Alarm("a1", "gw-1", "gateway.silent", "receiver", "", 100.0)
    assert ack_claims(silent, jti="c", now_epoch=200.0) is None
    assert latency_ms(silent, 101.5) == 1500
    with pytest.raises(ValueError, match="600"):
        ack_claims(SOS, jti="c", now_epoch=1.0, lifetime_s=601)
