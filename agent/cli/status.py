"""`homecare-agent status --config PATH`: what the gateway is doing, for the technician.

Reads, never writes: the outbox database (read-only, through
:func:`agent.outbox.readonly.read_only_summary`) for its depth per lane, the age of
the oldest event and the evictions so far, the free space of the state folder's file
system against ``buffer.min_free_mb`` (docs/spec.md §6: shown as LOW), and ``status.json``, which the running
daemon keeps current in its state folder (connection, last event per sensor, sensor
states). Works whether or not the daemon is running; says whether it is (the pid in
``status.json`` is alive and is a homecare-agent) and how old its information is.
The open alarms (docs/spec.md §11) come from ``status.json`` too.

A state folder the user may not read (``/var/lib/homecare-agent`` is the service
user's, mode 0700) is an :class:`~agent.errors.OutboxError` (exit 1) saying to run
``status`` as that user or with sudo, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Optional

from agent.app.status import STATUS_FILE
from agent.config.model import load_config
from agent.delivery.reasons import reason_name
from agent.errors import OutboxError
from agent.outbox.readonly import OUTBOX_FILE, UNREADABLE_HINT, read_only_summary


def disk_line(state: Path, min_free_mb: float) -> str:
    """Free space where the outbox lives, and LOW when under the floor (docs/spec.md §6)."""
    folder = state
    while not folder.exists() and folder != folder.parent:  # not made yet: where it will be
        folder = folder.parent
    floor = int(min_free_mb) if float(min_free_mb).is_integer() else min_free_mb
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        return f"disk:       free space unknown ({exc.strerror or exc})"
    line = f"disk:       {free / 2**20:.1f} MB free for {folder}, buffer.min_free_mb {floor}"
    if free < min_free_mb * 2**20:
        line += ("   LOW: normal events are being dropped, alarms kept (buffer.disk_low "
                 "reported); free some space")
    return line


def read_snapshot(path: Path) -> Dict[str, Any]:
    """What the daemon last wrote to ``status.json``; {} if it never did."""
    try:
        if not path.exists():
            return {}
        found = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OutboxError(f"cannot read {path} ({exc})", hint=UNREADABLE_HINT) from exc
    return found if isinstance(found, dict) else {}


def daemon_running(pid: Any) -> bool:
    """True if ``pid`` is alive and its command line is a homecare-agent (not a reused pid)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    words = cmdline.split(b"\0")
    return any(w.endswith(b"homecare-agent") for w in words) or b"agent" in words[1:3]


def _age(epoch: Optional[float], now: float) -> str:
    if epoch is None:
        return "-"
    seconds = max(0.0, now - epoch)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _print_refused(link: Dict[str, Any], now: float) -> None:
    """Publishes the broker refused (MQTT 5 reason >= 0x80): they stay in the outbox."""
    count, reason = link.get("rejected", 0), link.get("last_rejected_reason")
    if not count or not isinstance(reason, int):
        return
    print(f"refused:    {count} publishes refused by the broker in that run; last reason "
          f"0x{reason:02x} ({reason_name(reason)}) {_age(link.get('last_rejected_at'), now)} ago; "
          f"the events stay in the outbox: check the broker's ACL for this device's topics")


def _print_agent(snap: Dict[str, Any], now: float) -> None:
    """Whether the agent runs, and its broker link as it last wrote it."""
    link = snap["link"]
    written = _age(snap.get("updated"), now)
    if daemon_running(snap.get("pid")):
        alive = now - float(snap.get("updated", 0))
        print(f"agent:      running, pid {snap.get('pid')}, version {snap.get('version')}, "
              f"status written {written} ago"
              + (" (only rewritten when something changes)" if alive > 5 else ""))
    else:
        print(f"agent:      NOT running (pid {snap.get('pid')} has gone); what follows is "
              f"as it last wrote it, {written} ago")
    if link["connected"]:
        state_word = f"connected for {_age(link.get('since'), now)}"
    elif link.get("since") is not None:
        state_word = f"NOT connected, for {_age(link.get('since'), now)}"
    else:
        state_word = "NOT connected, never was in that run"
    print(f"broker:     {state_word}" + (f" ({link['endpoint']})" if link.get("endpoint") else "")
          + "; "
          f"{link['connects']} connects, {link['stalls']} stalls, "
          f"{link['delivered']} delivered, {link.get('rejected', 0)} refused in that run"
          + (f"; last error: {link['last_error']}" if link.get("last_error") else ""))
    _print_refused(link, now)


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    now = time.time()
    state = config.state_dir
    print(f"device {config.device.id}   broker {', '.join(map(str, config.mqtt.endpoints))}   state {state}")
    snap = read_snapshot(state / STATUS_FILE)
    if snap.get("link") is None:
        print("agent:      has not run with this state folder yet (no status.json): "
              "no connection or sensor information")
    else:
        _print_agent(snap, now)
    box = read_only_summary(state / OUTBOX_FILE)
    if box is None:
        print("outbox:     none yet (created at the agent's first start): 0 waiting")
    else:
        for name, lane in (("critical", box.critical), ("normal", box.normal)):
            print(f"outbox:     {name:8} {lane.rows:6d} waiting, oldest {_age(lane.oldest, now)}")
        ev = box.evicted
        print(f"evictions:  {ev.get('normal', 0)} normal, {ev.get('critical', 0)} critical so far")
    print(disk_line(state, config.buffer.min_free_mb))
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
    _print_alarms(snap, now)
    return 0


def _print_alarms(snap: Dict[str, Any], now: float) -> None:
    """The open alarms (docs/spec.md §11) as the daemon last wrote them."""
    alarms = snap.get("feedback", {}).get("alarms")
    if not isinstance(alarms, list):
        return
    if not alarms:
        print("alarms:     none open")
    for a in alarms:
        print(f"alarm:      {a.get('type')} from {a.get('sensor')}, {str(a.get('phase')).upper()} "
              f"(not acknowledged), {_age(a.get('ts'), now)} old, {a.get('reminders', 0)} "
              f"reminders sent (jti {a.get('jti')})")
