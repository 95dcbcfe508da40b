"""homecare-receiver against a real mosquitto and a real PostgreSQL (docs/spec.md §15).

Receivers run as subprocesses (so one can be SIGKILLed); gateways are simulated with the
agent's own event, counter and signing code (tests/receiver/fleet.py).
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator, List

import psycopg
import pytest

from agent.remote.keys import load_command_verifier
from agent.remote.policy import CommandPolicy, SeenCommands
from tests.agent_files import private_pem
from tests.broker import Subscriber, free_port
from tests.helpers import REPO, assert_unique_boot_seq, cli_env, wait_until
from tests.postgres import PostgresServer
from tests.receiver.fleet import FleetBroker, Gateway, ReceiverProcess, write_setup

pytestmark = [pytest.mark.broker]


@pytest.fixture
def fleet_broker(tmp_path: Path, test_pki: Any) -> Iterator[FleetBroker]:
    with FleetBroker(tmp_path / "broker", test_pki) as b:
        yield b


@pytest.fixture
def db(postgres: PostgresServer) -> Iterator[psycopg.Connection]:  # type: ignore[type-arg]
    name = postgres.database()
    with psycopg.connect(host=postgres.host, port=postgres.port, user=postgres.user,
                         dbname=name, autocommit=True) as conn:
        conn.info_dbname = name  # type: ignore[attr-defined]
        yield conn


def _scalar(conn: Any, sql: str, *args: Any) -> Any:
    try:
        row = conn.execute(sql, args).fetchone()
    except psycopg.errors.UndefinedTable:     # the receiver has not made its tables yet
        return None
    return None if row is None else row[0]


def _gateways(tmp_path: Path, count: int, prefix: str = "gw") -> List[Gateway]:
    return [Gateway(f"{prefix}-{n:04d}", tmp_path / "gw" / f"{prefix}-{n:04d}")
            for n in range(count)]


@pytest.mark.slow
def test_three_receivers_fifty_gateways_one_killed_every_event_stored_once(
        tmp_path: Path, fleet_broker: FleetBroker, postgres: PostgresServer, db: Any) -> None:
    gateways = _gateways(tmp_path, 50)
    setup = write_setup(tmp_path / "rx", fleet_broker, postgres, db.info_dbname, gateways,
                        instances=("r1", "r2", "r3"))
    receivers = {name: ReceiverProcess(path).start() for name, path in setup["configs"].items()}
    try:
        for r in receivers.values():
            r.wait_ready()
        for gw in gateways:
            gw.connect(fleet_broker)
        rounds = 20
        for n in range(rounds):
            infos = [gw.publish(gw.event("door.opened", "door"), "door") for gw in gateways]
            if n == rounds // 3:
                receivers["r2"].kill()          # mid-stream, with messages in flight
            for info in infos:
                info.wait_for_publish(10)
        total = rounds * len(gateways)
        receivers["r2"].start()                 # same instance: its session comes back
        try:
            wait_until(lambda: _scalar(db, "SELECT count(*) FROM events") == total,
                       timeout=60, what=f"{total} events stored", interval=0.2)
        except AssertionError:
            raise AssertionError(
                f"{_scalar(db, 'SELECT count(*) FROM events')} of {total} stored; per receiver "
                f"{db.execute('SELECT receiver, count(*) FROM events GROUP BY 1').fetchall()}\n"
                + "\n".join(f"--- {n}\n{r.log()[-3000:]}" for n, r in receivers.items())) from None
        sent = [c for gw in gateways for c in gw.sent]
        stored = {r[0] for r in db.execute("SELECT jti FROM events").fetchall()}
        assert stored == {c["jti"] for c in sent}
        assert _scalar(db, "SELECT count(DISTINCT receiver) FROM events") >= 2
        assert _scalar(db, "SELECT sum(events) FROM gateways") == total   # once each
        # out of order across receivers, but in the end no number is missing
        assert _scalar(db, "SELECT sum(missing) FROM gateways") == 0
        for gw in gateways:             # (boot, seq) is per device
            assert_unique_boot_seq(gw.sent)
        assert "Traceback" not in receivers["r1"].log() + receivers["r3"].log()
    finally:
        for r in receivers.values():
            r.stop()
        for gw in gateways:
            gw.close()


GATEWAY_SCRIPT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from tests.receiver.fleet import Gateway
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
host, port, device, key_file, state = sys.argv[2:7]
password = sys.stdin.readline().strip()
from cryptography.hazmat.primitives import serialization
gw = Gateway(device, Path(state))
gw.key = serialization.load_pem_private_key(Path(key_file).read_bytes(), None)
from agent.record.signing import Signer
gw.signer = Signer("EdDSA", gw.key)
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sim-" + device,
                protocol=MQTTProtocolVersion.MQTTv5)
c.username_pw_set("fleet", password)
c.will_set("homecare/%s/status" % device, b'{"state":"offline"}', 1, True)
c.connect(host, int(port), 30); c.loop_start()
c.publish("homecare/%s/status" % device, b'{"state":"online"}', 1, True).wait_for_publish(10)
gw.client = c
gw.send()
print("sent", flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_supervision_silent_after_three_heartbeats_back_on_event_offline_earlier(
        tmp_path: Path, fleet_broker: FleetBroker, postgres: PostgresServer, db: Any) -> None:
    quiet, killed = Gateway("gw-quiet", tmp_path / "q"), Gateway("gw-killed", tmp_path / "k")
    setup = write_setup(tmp_path / "rx", fleet_broker, postgres, db.info_dbname,
                        [quiet, killed], heartbeat_s=1.0,
                        per_device_heartbeat={"gw-killed": 60.0})
    key_file = tmp_path / "killed.pem"
    key_file.write_bytes(private_pem(killed.key))
    receiver = ReceiverProcess(setup["configs"]["r1"]).start()
    gateway = None
    try:
        receiver.wait_ready()
        quiet.connect(fleet_broker)
        quiet.send()
        sent_at = time.time()
        gateway = subprocess.Popen(
            [sys.executable, "-c", GATEWAY_SCRIPT, str(REPO), fleet_broker.host,
             str(fleet_broker.plain_port), "gw-killed", str(key_file), str(tmp_path / "k2")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=cli_env())
        assert gateway.stdin is not None and gateway.stdout is not None
        gateway.stdin.write(fleet_broker.users["fleet"] + "\n")
        gateway.stdin.flush()
        assert gateway.stdout.readline().strip() == "sent"
        wait_until(lambda: _scalar(db, "SELECT count(*) FROM events WHERE device_id = "
                                   "'gw-killed'") == 1, timeout=10, what="gw-killed's event")
        killed_at = time.time()
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(10)

        def log(device: str) -> List[Any]:
            return db.execute("SELECT type, reason, at FROM supervision_log WHERE device_id = %s "
                              "ORDER BY id", (device,)).fetchall()
        # the last will: silent long before 3 x 60 s
        wait_until(lambda: len(log("gw-killed")) == 1, timeout=10, what="offline -> silent")
        assert log("gw-killed")[0][:2] == ("gateway.silent", "offline")
        assert log("gw-killed")[0][2] - killed_at < 5
        # no events for 3 x 1 s
        wait_until(lambda: len(log("gw-quiet")) == 1, timeout=10, what="gw-quiet silent")
        kind, reason, at = log("gw-quiet")[0]
        assert (kind, reason) == ("gateway.silent", "no_events")
        assert 3.0 <= at - sent_at < 5.0
        assert _scalar(db, "SELECT count(*) FROM alarms WHERE type = 'gateway.silent' AND "
                       "closed_at IS NULL") == 2
        quiet.send()
        wait_until(lambda: len(log("gw-quiet")) == 2, timeout=10, what="gw-quiet back")
        assert log("gw-quiet")[1][:2] == ("gateway.back", "event")
        assert _scalar(db, "SELECT count(*) FROM alarms WHERE type = 'gateway.silent' AND "
                       "closed_at IS NULL AND device_id = 'gw-quiet'") == 0
    finally:
        if gateway is not None and gateway.poll() is None:
            gateway.kill()
        receiver.stop()
        quiet.close()
        killed.close()


def _http(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_acknowledge_over_http_publishes_an_ack_the_agent_accepts(
        tmp_path: Path, fleet_broker: FleetBroker, postgres: PostgresServer, db: Any) -> None:
    gw, other = Gateway("gw-0001", tmp_path / "a"), Gateway("gw-0002", tmp_path / "b")
    port = free_port()
    setup = write_setup(tmp_path / "rx", fleet_broker, postgres, db.info_dbname, [gw, other],
                        http_ports=[port])
    receiver = ReceiverProcess(setup["configs"]["r1"]).start()
    try:
        receiver.wait_ready()
        gw.connect(fleet_broker)
        with Subscriber(fleet_broker, "homecare/+/commands", user="fleet") as commands:
            token = gw.send("sos.pressed", "sos", critical=True, data={"state": "pressed"})
            gw.send("sos.released", "sos", data={"state": "released", "held_ms": 900})
            sos = gw.sent[0]
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: len(_http(base + "/api/alarms")[1]["alarms"]) == 1, timeout=10,
                       what="the SOS listed", interval=0.05)
            alarm = _http(base + "/api/alarms")[1]["alarms"][0]
            assert (alarm["alarm_id"], alarm["type"], alarm["device_id"]) == \
                (sos["jti"], "sos.pressed", "gw-0001")
            status, answer = _http(f"{base}/api/alarms/{sos['jti']}/ack", {"operator": "anna"})
            assert status == 200 and answer["ack_sent"] is True, answer
            received = commands.wait_for(1, timeout=10)[0]
            assert received.topic == "homecare/gw-0001/commands"
            verifier = load_command_verifier("EdDSA", setup["centre_public"])
            decisions = {device: CommandPolicy(device_id=device, algorithm="EdDSA",
                                               verify_signature=verifier, seen=SeenCommands()
                                               ).check(received.payload, time.time())
                         for device in ("gw-0001", "gw-0002")}
            ours, theirs = decisions["gw-0001"], decisions["gw-0002"]
            assert ours.accepted and (ours.cmd, ours.in_reply_to) == ("ack", sos["jti"])
            assert theirs.reason == "wrong_aud"         # signed for gw-0001 only
            assert _http(base + "/api/alarms")[1]["alarms"] == []
            assert _http(f"{base}/api/alarms/{sos['jti']}/ack", {})[0] == 404
            row = db.execute("SELECT ack_latency_ms, operator, ack_jti FROM alarms "
                             "WHERE alarm_id = %s", (sos["jti"],)).fetchone()
            assert row[1] == "anna" and 0 <= row[0] < 10_000
            assert token == db.execute("SELECT token FROM events WHERE jti = %s",
                                       (sos["jti"],)).fetchone()[0]
    finally:
        receiver.stop()
        gw.close()
        other.close()


def test_a_repeat_is_counted_not_stored_and_a_forgery_is_refused(
        tmp_path: Path, fleet_broker: FleetBroker, postgres: PostgresServer, db: Any) -> None:
    gw, impostor = Gateway("gw-0001", tmp_path / "a"), Gateway("gw-0001", tmp_path / "b")
    setup = write_setup(tmp_path / "rx", fleet_broker, postgres, db.info_dbname, [gw])
    receiver = ReceiverProcess(setup["configs"]["r1"]).start()
    try:
        receiver.wait_ready()
        gw.connect(fleet_broker)
        token = gw.event("door.opened", "door")
        for _ in range(2):                       # a QoS 1 repeat: byte for byte the same
            gw.publish(token, "door").wait_for_publish(10)
        gw.publish(impostor.event("sos.pressed", "sos", critical=True), "sos"
                   ).wait_for_publish(10)       # the right name, the wrong key
        gw.send("door.closed", "door")
        wait_until(lambda: _scalar(db, "SELECT duplicates FROM gateways") == 1
                   and _scalar(db, "SELECT count(*) FROM events") == 2, timeout=10,
                   what="2 events, 1 duplicate", interval=0.05)
        assert [r[0] for r in db.execute("SELECT type FROM events ORDER BY seq")] == \
            ["door.opened", "door.closed"]
        assert _scalar(db, "SELECT count(*) FROM alarms") == 0
        assert "refused a message on homecare/gw-0001/events/sos: bad_token" in receiver.log()
    finally:
        receiver.stop()
        gw.close()
        impostor.close()
