"""PostgreSQL storage: events once per ``jti``, gateways, alarms, acknowledgements.

Several receivers write to one database. Each event is inserted with ``ON CONFLICT (jti)
DO NOTHING``: the first copy is stored, later copies (QoS 1 repeats, a receiver that died
before its PUBACK) only count as duplicates. A batch is one transaction, and its
gateway rows are locked in device order, so two instances never deadlock on them. The
schema is created at start under an advisory lock (instances may start together).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import psycopg

from agent.files.secrets import read_secret_file
from receiver.alarms import SILENT, Alarm
from receiver.config import DatabaseConfig
from receiver.intake import Accepted, advance_last, classify_seq
from receiver.supervision import Change

SCHEMA_LOCK = 0x686F6D65   # "home": serialises schema creation between instances
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    jti text PRIMARY KEY, device_id text NOT NULL, boot bigint NOT NULL, seq bigint NOT NULL,
    type text NOT NULL, sensor text NOT NULL, prio text NOT NULL, ts text NOT NULL,
    token text NOT NULL, received_at double precision NOT NULL,
    stored_at double precision NOT NULL DEFAULT extract(epoch FROM clock_timestamp()),
    receiver text NOT NULL);
CREATE TABLE IF NOT EXISTS gateways (
    device_id text PRIMARY KEY, last_seen double precision, last_boot bigint, last_seq bigint,
    events bigint NOT NULL DEFAULT 0, duplicates bigint NOT NULL DEFAULT 0,
    -- gaps: how often numbers were skipped; missing: how many are still not seen
    gaps bigint NOT NULL DEFAULT 0, missing bigint NOT NULL DEFAULT 0,
    status text, status_at double precision);
CREATE TABLE IF NOT EXISTS alarms (
    alarm_id text PRIMARY KEY, device_id text NOT NULL, type text NOT NULL, sensor text NOT NULL,
    ts text NOT NULL, opened_at double precision NOT NULL, closed_at double precision,
    ack_at double precision, ack_jti text, ack_latency_ms bigint, operator text);
CREATE INDEX IF NOT EXISTS alarms_open ON alarms (opened_at) WHERE ack_at IS NULL AND closed_at IS NULL;
CREATE TABLE IF NOT EXISTS supervision_log (
    id bigserial PRIMARY KEY, device_id text NOT NULL, type text NOT NULL, reason text NOT NULL,
    at double precision NOT NULL);
"""
_ALARM_COLUMNS = "alarm_id, device_id, type, sensor, ts, opened_at"


@dataclass(frozen=True)
class BatchResult:
    stored: int
    duplicates: int
    alarms: int


def connect(config: DatabaseConfig) -> "psycopg.Connection[Any]":
    """A connection; the password, if any, is read from its secret file, never logged."""
    password = None
    if config.password_file is not None:
        password = read_secret_file(config.password_file,
                                    what="database.password_file").decode("utf-8").strip()
    return psycopg.connect(host=config.host, port=config.port, dbname=config.dbname,
                           user=config.user, password=password, connect_timeout=10)


class Store:
    """One connection's worth of storage (one owner thread per Store)."""

    def __init__(self, conn: "psycopg.Connection[Any]", receiver: str) -> None:
        self.conn = conn
        self.receiver = receiver

    def create_schema(self) -> None:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            self.conn.execute(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def store_batch(self, batch: Sequence[Accepted], received_at: float) -> BatchResult:
        """Store each new event once and update its gateway; one transaction."""
        stored = duplicates = alarms = 0
        ordered = sorted(batch, key=lambda a: (a.device_id, a.claims["boot"], a.claims["seq"]))
        with self.conn.transaction():
            for item in ordered:
                new = self._insert_event(item, received_at)
                self._update_gateway(item, received_at, new)
                stored += new
                duplicates += not new
                if new and item.alarm:
                    alarms += self._open_alarm(item, received_at)
        return BatchResult(stored, duplicates, alarms)

    def _insert_event(self, item: Accepted, received_at: float) -> bool:
        c = item.claims
        row = self.conn.execute(
            "INSERT INTO events (jti, device_id, boot, seq, type, sensor, prio, ts, token, "
            "received_at, receiver) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
            "ON CONFLICT (jti) DO NOTHING RETURNING jti",
            (c["jti"], item.device_id, c["boot"], c["seq"], c["type"], c["sensor"], c["prio"],
             c["ts"], item.token, received_at, self.receiver)).fetchone()
        return row is not None

    def _update_gateway(self, item: Accepted, received_at: float, new: bool) -> None:
        self.conn.execute("INSERT INTO gateways (device_id) VALUES (%s) ON CONFLICT DO NOTHING",
                          (item.device_id,))
        row = self.conn.execute(
            "SELECT last_boot, last_seq FROM gateways WHERE device_id = %s FOR UPDATE",
            (item.device_id,)).fetchone()
        assert row is not None
        last = None if row[0] is None else (int(row[0]), int(row[1]))
        boot, seq = int(item.claims["boot"]), int(item.claims["seq"])
        step = classify_seq(last, boot, seq) if new else None
        boot_now, seq_now = advance_last(last, boot, seq) if new else (last or (boot, seq))
        self.conn.execute(
            "UPDATE gateways SET last_seen = GREATEST(COALESCE(last_seen, 0), %s), "
            "last_boot = %s, last_seq = %s, events = events + %s, duplicates = duplicates + %s, "
            "gaps = gaps + %s, missing = GREATEST(0, missing + %s) WHERE device_id = %s",
            (received_at, boot_now, seq_now, int(new), int(not new),
             int(step is not None and step.kind == "gap"), step.missing if step else 0,
             item.device_id))

    def _open_alarm(self, item: Accepted, received_at: float) -> int:
        c = item.claims
        row = self.conn.execute(
            f"INSERT INTO alarms ({_ALARM_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s) "
            "ON CONFLICT DO NOTHING RETURNING alarm_id",
            (c["jti"], item.device_id, c["type"], c["sensor"], c["ts"], received_at)).fetchone()
        return int(row is not None)

    def set_status(self, device_id: str, state: str, at: float) -> None:
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO gateways (device_id, status, status_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (device_id) DO UPDATE SET status = EXCLUDED.status, "
                "status_at = EXCLUDED.status_at", (device_id, state, at))

    # -- supervision
    def gateway_snapshot(self) -> List[Tuple[str, Optional[float], Optional[str], Optional[float]]]:
        rows = self.conn.execute(
            "SELECT device_id, last_seen, status, status_at FROM gateways").fetchall()
        self.conn.commit()
        return [(str(r[0]), r[1], r[2], r[3]) for r in rows]

    def silent_gateways(self) -> Set[str]:
        rows = self.conn.execute("SELECT device_id FROM alarms WHERE type = %s AND "
                                 "closed_at IS NULL", (SILENT,)).fetchall()
        self.conn.commit()
        return {str(r[0]) for r in rows}

    def record_change(self, change: Change, alarm_id: str) -> None:
        with self.conn.transaction():
            self.conn.execute("INSERT INTO supervision_log (device_id, type, reason, at) "
                              "VALUES (%s, %s, %s, %s)",
                              (change.device_id, change.type, change.reason, change.at))
            if change.type == SILENT:
                self.conn.execute(
                    f"INSERT INTO alarms ({_ALARM_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s)",
                    (alarm_id, change.device_id, SILENT, "receiver", "", change.at))
            else:
                self.conn.execute("UPDATE alarms SET closed_at = %s WHERE device_id = %s AND "
                                  "type = %s AND closed_at IS NULL",
                                  (change.at, change.device_id, SILENT))

    # -- alarms
    def open_alarms(self) -> List[Alarm]:
        rows = self.conn.execute(f"SELECT {_ALARM_COLUMNS} FROM alarms WHERE ack_at IS NULL "
                                 "AND closed_at IS NULL ORDER BY opened_at").fetchall()
        self.conn.commit()
        return [Alarm(*row) for row in rows]

    def open_alarm(self, alarm_id: str) -> Optional[Alarm]:
        row = self.conn.execute(f"SELECT {_ALARM_COLUMNS} FROM alarms WHERE alarm_id = %s AND "
                                "ack_at IS NULL AND closed_at IS NULL", (alarm_id,)).fetchone()
        self.conn.commit()
        return Alarm(*row) if row else None

    def acknowledge(self, alarm_id: str, *, at: float, latency_ms: int,
                    ack_jti: Optional[str], operator: str) -> bool:
        """True for the one acknowledgement that closed the alarm (a second one is refused)."""
        with self.conn.transaction():
            row = self.conn.execute(
                "UPDATE alarms SET ack_at = %s, ack_latency_ms = %s, ack_jti = %s, operator = %s "
                "WHERE alarm_id = %s AND ack_at IS NULL AND closed_at IS NULL RETURNING alarm_id",
                (at, latency_ms, ack_jti, operator, alarm_id)).fetchone()
        return row is not None

    def counts(self) -> Dict[str, int]:
        row = self.conn.execute("SELECT (SELECT count(*) FROM events), "
                                "(SELECT COALESCE(sum(duplicates), 0) FROM gateways)").fetchone()
        self.conn.commit()
        assert row is not None
        return {"events": int(row[0]), "duplicates": int(row[1])}
