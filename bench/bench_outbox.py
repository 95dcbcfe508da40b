"""Commit throughput of the outbox, against a raw ``sqlite3`` loop with the same PRAGMAs.

Every figure is the median, over interleaved rounds, of events committed per second (each commit fsynced: WAL,
``synchronous=FULL``), on the file system of ``--dir`` (default: a temporary folder).

- ``raw sqlite3, 1 event/commit``: the baseline, an INSERT + COMMIT loop on one
  connection, same schema and PRAGMAs, no thread.
- ``raw sqlite3, 100 events/commit``: the same loop, 100 INSERTs per transaction.
- ``outbox put(), one at a time``: each ``put([row])`` waits for its commit, as the loop
  does for an isolated event.
- ``outbox burst (group commit)``: ``submit_put([row])`` for every event of a burst, then
  wait; the owner thread commits whatever is queued in one transaction.
- ``outbox put(100 rows)``: batches handed over whole.

Run: ``python -m bench outbox`` (or ``python -m bench.bench_outbox --events 2000``).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from agent.outbox.store import Outbox, OutboxLimits, OutboxRow
from agent.outbox.file import SCHEMA

PAYLOAD = b"e" * 420  # about the size of a signed event (EdDSA JWT)


def rows(start: int, n: int) -> List[OutboxRow]:
    return [OutboxRow(seq=s, critical=s % 10 == 0, topic="homecare/gw-0001/events/front_door",
                      payload=PAYLOAD, jti=f"5b1e0c8a-0000-4000-8000-{s:012d}", sensor="front_door",
                      type="door.opened", created=1764339000.0 + s) for s in range(start, start + n)]


def raw(path: Path, events: int, per_commit: int) -> float:
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(SCHEMA)
    todo = rows(1, events)
    started = time.perf_counter()
    for i in range(0, events, per_commit):
        conn.execute("BEGIN IMMEDIATE")
        for r in todo[i:i + per_commit]:
            conn.execute("INSERT INTO outbox (seq, critical, topic, payload, jti, sensor, type,"
                         " created, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (r.seq, int(r.critical), r.topic, r.payload, r.jti, r.sensor, r.type,
                          r.created, r.size))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return events / elapsed


def outbox(path: Path, events: int, how: str) -> float:
    box = Outbox.open(path, OutboxLimits(max_events=10 * events, max_mb=1024, min_free_mb=1))
    todo = rows(1, events)
    try:
        started = time.perf_counter()
        if how == "single":
            for r in todo:
                box.put([r])
        elif how == "burst":
            futures = [box.submit_put([r]) for r in todo]
            for f in futures:
                f.result()
        else:
            for i in range(0, events, 100):
                box.put(todo[i:i + 100])
        elapsed = time.perf_counter() - started
    finally:
        box.close()
    return events / elapsed


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_outbox", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="events per burst figure")
    parser.add_argument("--single", type=int, default=300, help="events for one-at-a-time figures")
    parser.add_argument("--dir", default=None, help="folder for the database files")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds, cases interleaved; the median is shown (disks are noisy)")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-outbox-", dir=args.dir))
    cases: Dict[str, Callable[[Path], float]] = {
        "raw sqlite3, 1 event/commit": lambda p: raw(p, args.single, 1),
        "raw sqlite3, 100 events/commit": lambda p: raw(p, args.events, 100),
        "outbox put(), one at a time": lambda p: outbox(p, args.single, "single"),
        "outbox burst (group commit)": lambda p: outbox(p, args.events, "burst"),
        "outbox put(100 rows)": lambda p: outbox(p, args.events, "batch"),
    }
    try:
        print(f"files in {folder} ({os.uname().sysname}, sqlite {sqlite3.sqlite_version})")
        runs: Dict[str, List[float]] = {name: [] for name in cases}
        for round_ in range(args.rounds):
            for n, (name, run) in enumerate(cases.items()):
                runs[name].append(run(folder / f"r{round_}-case{n}.sqlite3"))
        figures = {name: statistics.median(values) for name, values in runs.items()}
        for name, value in figures.items():
            spread = f"{min(runs[name]):,.0f}..{max(runs[name]):,.0f}"
            print(f"  {name:<34} {value:>10,.0f} events/s  (median of {args.rounds}: {spread})")
        base = figures["raw sqlite3, 1 event/commit"]
        base100 = figures["raw sqlite3, 100 events/commit"]
        print(f"  ratio put()/raw 1-per-commit:        {figures['outbox put(), one at a time'] / base:.2f}")
        print(f"  ratio burst/raw 1-per-commit:        {figures['outbox burst (group commit)'] / base:.2f}")
        print(f"  ratio burst/raw 100-per-commit:      {figures['outbox burst (group commit)'] / base100:.2f}")
        print(f"  ratio put(100 rows)/raw 100-per-commit: {figures['outbox put(100 rows)'] / base100:.2f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
