"""`homecare-agent status --config PATH`: what the gateway is doing, for the technician.

Reads, never writes: the outbox database (read-only) for its depth per lane, the age of
the oldest event and the evictions so far, and ``status.json``, which the running
daemon keeps current in its state folder (connection, last event per sensor, sensor
states). Works whether or not the daemon is running; says how old its information is.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Dict, Optional

from agent.config import load_config
from agent.daemon import OUTBOX_FILE, STATUS_FILE


def outbox_summary(path: Path) -> Optional[Dict[str, Any]]:
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        lanes = {bool(c): (n, oldest) for c, n, oldest in conn.execute(
            "SELECT critical, count(*), min(created) FROM outbox GROUP BY critical")}
        found = conn.execute("SELECT value FROM meta WHERE key = 'outbox.evicted_totals'").fetchone()
        evicted = json.loads(found[0]) if found else {"normal": 0, "critical": 0}
    finally:
        conn.close()
    return {"critical": lanes.get(True, (0, None)), "normal": lanes.get(False, (0, None)),
            "evicted": evicted}


def _age(epoch: Optional[float], now: float) -> str:
    if epoch is None:
        return "-"
    seconds = max(0.0, now - epoch)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    now = time.time()
    state = config.state_dir
    print(f"device {config.device.id}   broker {config.mqtt.host}:{config.mqtt.port}   state {state}")
    snap: Dict[str, Any] = {}
    status_file = state / STATUS_FILE
    if status_file.exists():
        snap = json.loads(status_file.read_text())
    link = snap.get("link")
    if link is None:
        print("agent:      no status.json yet (has the daemon run with this config?)")
    else:
        alive = now - float(snap.get("updated", 0))
        state_word = "connected" if link["connected"] else "NOT connected"
        print(f"broker:     {state_word} since {_age(link.get('since'), now)} ago; "
              f"{link['connects']} connects, {link['stalls']} stalls, "
              f"{link['delivered']} delivered this run"
              + (f"; last error: {link['last_error']}" if link.get("last_error") else ""))
        print(f"agent:      pid {snap.get('pid')}, version {snap.get('version')}, "
              f"status written {_age(snap.get('updated'), now)} ago"
              + (" (only rewritten when something changes)" if alive > 5 else ""))
    box = outbox_summary(state / OUTBOX_FILE)
    if box is None:
        print("outbox:     none yet")
    else:
        for lane in ("critical", "normal"):
            rows, oldest = box[lane]
            print(f"outbox:     {lane:8} {rows:6d} waiting, oldest {_age(oldest, now)}")
        ev = box["evicted"]
        print(f"evictions:  {ev.get('normal', 0)} normal, {ev.get('critical', 0)} critical so far")
    sensors = snap.get("sensors", {})
    last = snap.get("last_events", {})
    for sensor in config.sensors:
        s = sensors.get(sensor.name, {})
        e = last.get(sensor.name)
        raw = "-" if "raw" not in s else ("active" if s["raw"] else "inactive")
        last_text = f"{e['type']} at {e['ts']} (seq {e['seq']})" if e else "none yet"
        print(f"sensor:     {sensor.name:14} {sensor.kind:10} GPIO{sensor.pin:<3} "
              f"state {s.get('state', '-'):9} raw {raw:8} last {last_text}")
    agent_last = last.get("agent")
    if agent_last:
        print(f"agent event: last {agent_last['type']} at {agent_last['ts']}")
    return 0
