"""`homecare-agent run`: the daemon (docs/spec.md §§8 and 9).

SIGTERM (and Ctrl-C): stop taking edges, flush for a few seconds, close the outbox,
exit 0. SIGHUP: read the config again; if it is valid, rebuild the agent with it, else
log every problem and keep running with the old one. A rebuild keeps the pins claimed
and holds their edges for the new agent (docs/spec.md §9, :meth:`Agent.hand_over`). The signal handlers only leave a
note and wake the loop; all the work happens here, outside them.
"""
from __future__ import annotations

import argparse
import logging
import signal
from types import FrameType
from typing import TYPE_CHECKING, Optional

from agent.config.model import Config, load_config
from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.app.daemon import Agent

log = logging.getLogger("agent")

#: how long SIGTERM waits for unacknowledged events before closing the outbox
FLUSH_ON_STOP_S = 3.0
#: how long a reload waits for them: not at all. They stay in the outbox and the new
#: agent sends them at once; waiting would only hold back the edges seen meanwhile.
FLUSH_ON_RELOAD_S = 0.0


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    return serve(config, args.config)


class _Signals:
    """What the signal handlers asked for; they never do more than note it and wake."""

    def __init__(self) -> None:
        self.terminate = False
        self.agent: Optional["Agent"] = None

    def on_term(self, signum: int, frame: Optional[FrameType]) -> None:
        self.terminate = True
        if self.agent is not None:
            self.agent.loop.request_stop()

    def on_hup(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.agent is not None:
            self.agent.loop.request_stop(reload=True)


def serve(config: Config, path: str, *, pin_factory: object = None) -> int:
    from agent import __version__
    from agent.app.daemon import Agent

    signals = _Signals()
    signal.signal(signal.SIGTERM, signals.on_term)
    signal.signal(signal.SIGINT, signals.on_term)
    signal.signal(signal.SIGHUP, signals.on_hup)
    agent = Agent.build(config, pin_factory=pin_factory)
    while True:
        signals.agent = agent
        new_config: Optional[Config] = None
        try:
            if not signals.terminate:      # a SIGTERM during a reload still counts
                log.info("homecare-agent %s running: device %s, %d sensors, broker %s",
                         __version__, config.device.id, len(config.sensors),
                         ", ".join(map(str, config.mqtt.endpoints)))
                agent.start()
                new_config = _run_until_stop(agent, path, signals)
        except BaseException:
            signals.agent = None
            agent.close(flush_timeout_s=FLUSH_ON_STOP_S)
            raise
        signals.agent = None
        if new_config is None or signals.terminate:
            flushed = agent.close(flush_timeout_s=FLUSH_ON_STOP_S)
            log.info("stopped%s", "" if flushed else "; undelivered events stay in the outbox")
            return 0
        agent = agent.replace(new_config, flush_timeout_s=FLUSH_ON_RELOAD_S,
                              pin_factory=pin_factory)
        log.info("config reloaded from %s", path)
        config = new_config


def _run_until_stop(agent: "Agent", path: str, signals: _Signals) -> Optional[Config]:
    """Run the loop; returns a new config to rebuild with, or None to stop."""
    while True:
        stop = agent.loop.run()
        if not stop.reload or signals.terminate:
            return None
        try:
            return load_config(path)
        except ConfigError as exc:
            log.error("config reload refused, keeping the running config:\n%s", exc)
            # the old agent never stopped working: go back to its loop
