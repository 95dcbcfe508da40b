"""`homecare-agent run`: the daemon (SPEC.md sections 8 and 9).

SIGTERM (and Ctrl-C): stop taking edges, flush for a few seconds, close the outbox,
exit 0. SIGHUP: read the config again; if it is valid, rebuild the agent with it, else
log every problem and keep running with the old one.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType
from typing import Dict, Optional

from agent.config import Config, load_config
from agent.errors import ConfigError

log = logging.getLogger("agent")

#: how long SIGTERM waits for unacknowledged events before closing the outbox
FLUSH_ON_STOP_S = 3.0


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    return serve(config, args.config)


def serve(config: Config, path: str, *, pin_factory: object = None) -> int:
    from agent.daemon import Agent

    while True:
        agent = Agent.build(config, pin_factory=pin_factory)
        pending: Dict[str, Config] = {}

        def on_term(signum: int, frame: Optional[FrameType]) -> None:
            agent.loop.request_stop()

        def on_hup(signum: int, frame: Optional[FrameType]) -> None:
            try:
                pending["config"] = load_config(path)
            except ConfigError as exc:
                log.error("config reload refused, keeping the running config:\n%s", exc)
                return
            agent.loop.request_stop(reload=True)

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        signal.signal(signal.SIGHUP, on_hup)
        try:
            log.info("homecare-agent %s running: device %s, %d sensors, broker %s:%d",
                     _version(), config.device.id, len(config.sensors), config.mqtt.host,
                     config.mqtt.port)
            stop = agent.run()
        finally:
            flushed = agent.close(flush_timeout_s=FLUSH_ON_STOP_S)
        if stop.reload and "config" in pending:
            log.info("config reloaded from %s", path)
            config = pending["config"]
            continue
        log.info("stopped%s", "" if flushed else "; undelivered events stay in the outbox")
        return 0


def _version() -> str:
    from agent import __version__
    return __version__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(argparse.Namespace(config=sys.argv[1])))
