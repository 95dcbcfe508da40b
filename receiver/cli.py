"""``homecare-receiver run|validate --config FILE``."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import List, Optional

from agent.config.reader import ConfigProblems
from agent.errors import AgentError
from receiver.config import ReceiverConfig, load_receiver_config


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="homecare-receiver",
                                     description="the reference receiver (docs/integrators.md)")
    parser.add_argument("command", choices=("run", "validate"))
    parser.add_argument("--config", required=True, type=Path, help="the receiver's YAML file")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_receiver_config(args.config)
    except ConfigProblems as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.command == "validate":
        print(f"{args.config}: OK ({len(config.devices)} devices)")
        return 0
    return _run(config)


def _run(config: ReceiverConfig) -> int:
    import psycopg                              # only needed to run

    from receiver.service import Receiver
    from receiver.web import WebServer
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        receiver = Receiver(config)
    except (AgentError, OSError, psycopg.Error) as exc:
        print(f"homecare-receiver: {exc}", file=sys.stderr)
        return 1
    web = WebServer(receiver, receiver.config.http.host, receiver.config.http.port)
    web.start()
    logging.getLogger("homecare.receiver").info(
        "instance %s: http on %s:%s", receiver.config.instance, receiver.config.http.host, web.port)
    try:
        receiver.run(stop)
    finally:
        web.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
