"""`simulate` drives every supervision input kind (docs/spec.md §13.1-13.2) end to end:
the real CLI, a real broker, events verified with the device's public key, delivered in
the order of docs/spec.md §6 (critical first; within a priority, ``seq`` order)."""
from __future__ import annotations

import datetime
from typing import Any, Dict, List, Mapping, Tuple

import pytest

from agent.record.signing import Verifier, ed25519_thumbprint
from tests.agent_files import files_for_broker, run_simulate
from tests.broker import MosquittoBroker, Subscriber
from tests.helpers import assert_unique_boot_seq

SENSORS = [
    {"name": "sos", "kind": "sos_button", "pin": 17},
    {"name": "kitchen_smoke", "kind": "smoke", "pin": 22, "pin_nc": 24, "wiring_fault_ms": 500},
    {"name": "lid", "kind": "tamper", "pin": 23},
    {"name": "mains", "kind": "mains", "pin": 25, "report_delay_s": 2, "jitter_s": 0,
     "restore_delay_s": 1},
    {"name": "ups", "kind": "battery", "pin": 26, "low_ms": 500, "ok_ms": 1000},
]

# (id, timeline, speed, sensor, [(ms after the start, type, data it includes)])
CASES: List[Tuple[str, str, float, str, List[Tuple[int, str, Dict[str, Any]]]]] = [
    ("tamper", """
- {at: 2.0, sensor: lid, level: active}
- {at: 2.1, sensor: lid, level: inactive}
- {at: 2.15, sensor: lid, level: active}
- {at: 4.0, sensor: lid, level: inactive}
""", 5, "lid", [(1000, "tamper.closed", {"initial": True}),
                (2350, "tamper.opened", {"state": "open"}),     # the 100 ms knock is debounced
                (5000, "tamper.closed", {"state": "closed"})]),
    ("mains", """
- {at: 2.0, sensor: mains, level: active}
- {at: 3.0, sensor: mains, level: inactive}
- {at: 4.0, sensor: mains, level: active}
- {at: 7.0, sensor: mains, level: inactive}
""", 10, "mains", [(1000, "power.mains_restored", {"initial": True}),   # the 1 s blip sends nothing
                   (6000, "power.mains_lost", {"delay_s": 2.0, "state": "lost"}),
                   (8000, "power.mains_restored", {"state": "present"})]),
    ("battery", """
- {at: 2.0, sensor: ups, level: active}
- {at: 2.2, sensor: ups, level: inactive}
- {at: 3.0, sensor: ups, level: active}
- {at: 5.0, sensor: ups, level: inactive}
""", 10, "ups", [(1000, "power.battery_ok", {"initial": True}),
                 (3500, "power.battery_low", {"state": "low"}),
                 (6000, "power.battery_ok", {"state": "ok"})]),
    ("form-c", """
- {at: 2.0, sensor: kitchen_smoke.nc, level: inactive}
- {at: 4.0, sensor: kitchen_smoke.nc, level: active}
- {at: 6.0, sensor: kitchen_smoke, level: active}
- {at: 6.2, sensor: kitchen_smoke.nc, level: active}
""", 5, "kitchen_smoke",  # 2.0: the common wire cut (both pins high); 6.2: NC shorted low in an alarm
                          [(50, "smoke.cleared", {"initial": True}),
                          (2500, "sensor.fault", {"fault": "wiring", "levels": {"no": 1, "nc": 1}}),
                          (4500, "sensor.recovered", {"fault": "wiring"}),
                          (6700, "sensor.fault", {"levels": {"no": 0, "nc": 0}}),
                          (7000, "smoke.alarm", {"pattern": "continuous"})]),
]


def _ms(ts: str) -> int:
    return int(datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
               .replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def _includes(data: Mapping[str, Any], part: Mapping[str, Any]) -> bool:
    return all(data.get(k) == v for k, v in part.items())


@pytest.mark.broker
@pytest.mark.parametrize("timeline,speed,sensor,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_simulate_drives_the_supervision_kind(tmp_path: Any, broker: MosquittoBroker, timeline: str,
                                              speed: float, sensor: str,
                                              expected: List[Tuple[int, str, Dict[str, Any]]]) -> None:
    files = files_for_broker(tmp_path / "agent", broker, extra={"sensors": SENSORS})
    with Subscriber(broker, f"{broker.prefix}/events/#") as sub:
        result = run_simulate(files, timeline, speed=speed)
        assert result.returncode == 0, result.stderr
        assert "0 still buffered" in result.stdout
        public = files.device_key.public_key()
        verifier = Verifier("EdDSA", public, kid=ed25519_thumbprint(public))
        claims = [verifier.verify(m.payload.decode()) for m in sub.wait_for(1 + 5 + len(expected) - 1)]
    assert_unique_boot_seq(claims)
    started = next(c for c in claims if c["type"] == "agent.started")
    mine = [c for c in claims if c["sensor"] == sensor]
    got = [(_ms(c["ts"]) - _ms(started["ts"]), c["type"]) for c in mine]
    assert [t for _, t in got] == [t for _, t, _ in expected], got
    for (at, _), (want_at, _, data), c in zip(got, expected, mine):
        assert abs(at - want_at) <= 2, got          # timeline time, whatever the speed
        assert _includes(c["data"], data), c
    # docs/spec.md §6: within a priority, delivered in seq order
    for prio in ("critical", "normal"):
        seqs = [c["seq"] for c in claims if c["prio"] == prio]
        assert seqs == sorted(seqs), claims
    assert all(c["prio"] == "critical" for c in mine if c["type"] in (
        "tamper.opened", "power.mains_lost", "power.battery_low", "sensor.fault", "smoke.alarm"))


@pytest.mark.broker
def test_the_heartbeat_counts_the_power_blips(tmp_path: Any, broker: MosquittoBroker) -> None:
    files = files_for_broker(tmp_path / "agent", broker, heartbeat_s=10, extra={"sensors": SENSORS})
    timeline = """
- {at: 2.0, sensor: mains, level: active}
- {at: 2.5, sensor: mains, level: inactive}
- {at: 4.0, sensor: mains, level: active}
- {at: 5.0, sensor: mains, level: inactive}
- {at: 10.5, sensor: sos, level: inactive}
"""
    with Subscriber(broker, f"{broker.prefix}/events/agent") as sub:
        result = run_simulate(files, timeline, speed=10)
        assert result.returncode == 0, result.stderr
        public = files.device_key.public_key()
        verifier = Verifier("EdDSA", public, kid=ed25519_thumbprint(public))
        claims = [verifier.verify(m.payload.decode()) for m in sub.wait_for(2)]
    [beat] = [c for c in claims if c["type"] == "agent.heartbeat"]
    assert beat["data"]["power_blips"] == 2
