"""kill -9 of the REAL agent (docs/spec.md §6: "Kill -9 or a power cut at any moment loses no
event that had been stored").

Unlike ``test_delivery_e2e.py``'s kill test (a thin driver of the delivery classes), this
one kills ``homecare-agent simulate``: the whole agent — config, pins (mock), the same
debouncers, loop, care hooks, Ed25519 signing, counters, outbox, publisher — driven by a
long timeline of SOS presses (some bouncing) and door changes at ``--speed 20``, against
the test mosquitto as user ``device`` through a fault proxy. It is SIGKILLed at random
moments, the broker is stopped and started between some kills, and ``simulate`` starts
again on the same state folder each time; a last run on a short timeline drains.

What counts as committed: the agent logs ``event TYPE sensor=S seq=N ... jti=J`` right
after the outbox commit (``Recorder.record``); every complete such line on its stderr is
a promise. Checked: every promised ``jti`` reaches the subscriber, verified with the
device key, with the logged ``seq``; a ``jti`` seen twice is byte-for-byte the same
token; ``seq`` strictly increases within each boot and across boots, and no two events
ever share one (on the cloud side too, which also sees events committed but killed
before their line was written).
"""
from __future__ import annotations

import random
import re
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from agent.outbox.store import Outbox
from agent.record.signing import Verifier, ed25519_thumbprint
from tests.agent_files import write_agent_files
from tests.broker import MosquittoBroker
from tests.faultproxy import FaultProxy
from tests.helpers import assert_unique_boot_seq, cli_command, cli_env, wait_until
from tests.integration.test_delivery_e2e import _Cloud, kill_at_random

pytestmark = pytest.mark.broker

#: the committed-event line of agent/record/recorder.py Recorder.record
EVENT_LINE = re.compile(r"agent\.events: event (?P<type>\S+) sensor=(?P<sensor>\S+) "
                        r"seq=(?P<seq>\d+) prio=\S+ ts=\S+ jti=(?P<jti>[0-9a-f-]{36}) "
                        r"data=(?P<data>.*)$")
BOOT = re.compile(r'"boot":(\d+)')

SENSORS = [
    # flapping off for the button: presses come faster than a person's, and a flapping
    # episode would only suppress events (it is tested elsewhere)
    {"name": "sos", "kind": "sos_button", "pin": 17, "pull": "up", "active": "low",
     "flapping": False},
    {"name": "front_door", "kind": "door", "pin": 27, "pull": "up", "active": "high"},
    {"name": "kitchen_smoke", "kind": "smoke", "pin": 22, "pull": "up", "active": "low"},
]


def long_timeline(seconds: float, rng: random.Random) -> str:
    """An SOS press every ~0.5 s (a third of them bouncing), the door every ~3 s."""
    entries: List[Tuple[float, str, str]] = [(0.0, "front_door", "inactive")]
    t = 0.3
    while t < seconds:
        entries.append((t, "sos", "active"))
        if rng.random() < 0.33:                       # contact bounce on the press
            entries += [(t + 0.004, "sos", "inactive"), (t + 0.007, "sos", "active")]
        entries.append((t + rng.uniform(0.1, 0.25), "sos", "inactive"))
        t += rng.uniform(0.4, 0.6)
    t = 1.0
    while t < seconds:
        entries += [(t, "front_door", "active"), (t + 1.6, "front_door", "inactive")]
        t += rng.uniform(2.8, 3.5)
    return "".join(f"- {{at: {at:.3f}, sensor: {s}, level: {lv}}}\n"
                   for at, s, lv in sorted(entries))


def parse_log(text: str) -> Tuple[int, List[Tuple[str, int, str]]]:
    """(boot, [(jti, seq, type)]) from one run's stderr; boot -1 if none was logged.

    Only complete lines count: a kill can cut the last one short."""
    boot = -1
    events: List[Tuple[str, int, str]] = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            continue
        m = EVENT_LINE.search(line.rstrip("\n"))
        if m is None:
            continue
        if m["type"] == "agent.started":
            boot = int(BOOT.search(m["data"]).group(1))  # type: ignore[union-attr]
        events.append((m["jti"], int(m["seq"]), m["type"]))
    assert boot >= 0 or not events, "events logged before agent.started"
    return boot, events


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_kill_9_of_the_real_agent_loses_no_committed_event(tmp_path: Path,
                                                            broker: MosquittoBroker) -> None:
    rng = random.Random(20)
    (tmp_path / "long.yaml").write_text(long_timeline(400.0, rng))   # 20 s of wall time at x20
    (tmp_path / "short.yaml").write_text("- {at: 0.2, sensor: sos, level: active}\n"
                                         "- {at: 0.4, sensor: sos, level: inactive}\n")
    boots: Dict[int, List[Tuple[str, int, str]]] = defaultdict(list)
    boot_order: List[int] = []
    kills = 0
    t_start = time.monotonic()
    with FaultProxy(broker.host, broker.plain_port) as proxy:
        files = write_agent_files(tmp_path / "agent", port=proxy.port, username="device",
                                  password=broker.users["device"], commands=False,
                                  # delivery under kill -9 is the subject: reminders of the
                                  # open alarms (nobody acknowledges here) would only add rows
                                  extra={"sensors": SENSORS, "alarms": {"max_repeats": 0}})
        cloud = _Cloud(broker, proxy)

        def simulate(timeline: str, run: int) -> "Tuple[subprocess.Popen[str], Path]":
            log = tmp_path / f"run-{run}.log"
            with open(log, "w") as err:
                proc = subprocess.Popen(
                    cli_command("simulate", "--config", str(files.config), "--timeline",
                                str(tmp_path / timeline), "--speed", "20", "--timeout", "40"),
                    env=cli_env(), text=True, stdout=subprocess.PIPE, stderr=err)
            return proc, log

        def collect(log: Path) -> None:
            boot, events = parse_log(log.read_text())
            if boot >= 0:
                boot_order.append(boot)
                boots[boot] += events

        try:
            for k in range(20):
                proc, log = simulate("long.yaml", k)
                # start-up takes longer on a loaded machine: count from the first commit,
                # so that every run dies while streaming, at a random moment of it
                wait_until(lambda: "event agent.started" in log.read_text()
                           or proc.poll() is not None, timeout=30, what="the agent's first commit")
                # the broker goes down or comes back meanwhile, every third kill
                kill_at_random(proc, rng, live_s=(0.05, 1.5), what=f"simulate (see {log})",
                               toggle=cloud.toggle if k % 3 == 1 else None, toggle_s=0.6)
                kills += 1
                collect(log)
            if not cloud.up:
                cloud.bring_up()
            final, log = simulate("short.yaml", 99)
            out, _ = final.communicate(timeout=60)
            assert final.returncode == 0, log.read_text()[-3000:]
            assert "0 still buffered" in out
            collect(log)
            received = cloud.events()
        finally:
            cloud.close()
    took = time.monotonic() - t_start

    assert kills >= 20 and cloud.markers >= 3      # broker stopped at least three times
    assert len(boot_order) >= 20                   # every run got as far as committing
    public = files.device_key.public_key()
    verifier = Verifier("EdDSA", public, kid=ed25519_thumbprint(public))
    payload_of: Dict[str, bytes] = {}
    claims_of: Dict[str, dict] = {}  # type: ignore[type-arg]
    for m in received:
        claims = verifier.verify(m.payload.decode("ascii"))
        assert payload_of.setdefault(claims["jti"], m.payload) == m.payload   # same bytes only
        claims_of[claims["jti"]] = claims
    logged = {jti: (seq, boot, type_) for boot, evs in boots.items() for jti, seq, type_ in evs}
    lost = sorted(set(logged) - set(payload_of))
    assert not lost, f"{len(lost)} of {len(logged)} committed events never arrived: {lost[:5]}"
    for jti, (seq, boot, type_) in logged.items():
        c = claims_of[jti]
        assert (c["seq"], c["boot"], c["type"]) == (seq, boot, type_)
    # seq: strictly increasing within a boot, every boot above the one before, never reused
    assert boot_order == sorted(boot_order) and len(set(boot_order)) == len(boot_order)
    last = 0
    for boot in sorted(boots):
        seqs = [s for _, s, _ in boots[boot]]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"boot {boot}: {seqs}"
        assert seqs[0] > last
        last = seqs[-1]
    assert_unique_boot_seq(list(claims_of.values()))
    cloud_seqs = [c["seq"] for c in claims_of.values()]
    assert len(set(cloud_seqs)) == len(cloud_seqs), "two events share a seq"
    types = {t for _, _, t in logged.values()}
    assert {"agent.started", "sos.pressed", "sos.released", "door.opened"} <= types
    with Outbox.open(files.state_dir / "outbox.sqlite3") as box:
        assert box.stats().depth == 0
    print(f"kill -9 of simulate: {kills} kills, {cloud.markers} broker stops, {len(boot_order)} "
          f"boots logged, {len(logged)} committed events logged, {len(payload_of)} distinct "
          f"arrived, {len(received) - len(payload_of)} duplicates, {took:.1f} s")
