"""A thin driver of the real delivery path, for the kill -9 test (test_delivery_e2e.py).

It wires the REAL classes exactly as the agent does — ``Counters`` and ``Outbox`` in
``--state``, an Ed25519 ``Signer`` from ``--key``, ``Recorder`` -> outbox -> ``Publisher``
(through ``OutboxSource``) — and makes events at a steady rate. Right after each
``Recorder.record()`` returns (the event is committed), it prints ``JTI SEQ BOOT`` and
flushes: a printed line is a promise that the event is durable.

``--count N``: make N events, then wait until the outbox is empty, stop cleanly, print
``drained`` and exit 0. Without it, it runs until killed. The broker password is read
from ``--password-file`` (never on the command line).

    python tests/integration/stream_agent.py --state DIR --key KEY.pem --port 1883 \
        --password-file PW [--rate 100] [--count N]
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from agent.record.counters import Counters  # noqa: E402
from agent.delivery.window import WindowSettings  # noqa: E402
from agent.outbox.store import Outbox  # noqa: E402
from agent.outbox.policy import OutboxLimits  # noqa: E402
from agent.outbox.source import OutboxSource  # noqa: E402
from agent.record.recorder import Clocks, Recorder  # noqa: E402
from agent.delivery.publisher import LinkSettings, Publisher  # noqa: E402
from agent.record.signing import Signer  # noqa: E402
from drivers.events import SensorEvent  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--key", type=Path, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--password-file", type=Path, required=True)
    ap.add_argument("--device-id", default="gw-test")
    ap.add_argument("--rate", type=float, default=100.0, help="events per second")
    ap.add_argument("--count", type=int, default=None, help="make this many, drain, exit")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    counters = Counters(args.state)
    outbox = Outbox.open(args.state / "outbox.sqlite3", OutboxLimits(min_free_mb=0))
    settings = LinkSettings(
        host=args.host, port=args.port, client_id=args.device_id,
        topic_prefix=f"homecare/{args.device_id}", keepalive_s=5,
        username="device", password=args.password_file.read_text().strip(),
        subscribe_commands=False, window=WindowSettings(max_inflight=20, ack_timeout_s=2.0),
        connect_timeout_s=2.0, backoff_base_s=0.05, backoff_max_s=0.3, healthy_after_s=0.5)
    publisher = Publisher(settings, OutboxSource(outbox))
    offset = time.time() - time.monotonic()
    recorder = Recorder(device_id=args.device_id, topic_prefix=settings.topic_prefix,
                        signer=Signer.from_file(args.key), counters=counters, outbox=outbox,
                        clocks=Clocks(wall_of=lambda at: offset + at, now_epoch=time.time,
                                      synced=lambda: True),
                        wake=publisher.wake)
    publisher.start()

    period = 1.0 / args.rate
    next_at = time.monotonic()
    i = 0
    while args.count is None or i < args.count:
        now = time.monotonic()
        if now < next_at:
            time.sleep(next_at - now)          # the steady rate of a sensor feed
        next_at += period
        critical = i % 3 == 0
        made = SensorEvent("sos.pressed" if critical else "door.opened",
                           "sos" if critical else "front_door", time.monotonic(), {"i": i},
                           critical)
        event = recorder.record([made])[0]
        print(f"{event.jti} {event.seq} {event.boot}", flush=True)
        i += 1

    while outbox.stats().depth:
        time.sleep(0.02)
    publisher.stop(2.0)
    outbox.close()
    counters.close()
    print("drained", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
