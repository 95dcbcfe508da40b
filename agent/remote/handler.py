"""Commands from the care centre, from payload to effect (docs/spec.md §7).

:class:`agent.remote.policy.CommandPolicy` decides (sans-IO); this module is the thin
shell around it that the loop calls: it persists the replay record *before* a command
takes effect, carries out ``ack`` / ``ping`` / ``locate`` / ``maintenance`` through :class:`Actions`, and
turns decisions into ``command.done`` / ``command.rejected`` agent events, with the
rejection rate limit of :class:`agent.remote.limiter.RejectionLimiter`.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence

from agent.remote.limiter import RejectionLimiter
from agent.remote.policy import CommandPolicy, SeenCommands
from agent.remote.seen import CommandStore
from agent.record.recognised import AgentEvent, Recognised

log = logging.getLogger("agent.commands")

#: how often the replay store is offered a clean-up (it forgets by count, not by the clock)
EXPIRE_EVERY_S = 3600.0


class Actions(Protocol):
    """What accepted commands do (local feedback and status)."""

    def ack(self, in_reply_to: Optional[str]) -> Sequence[Mapping[str, Any]]:
        """Close the alarms named; each closed one as ``{jti, type, latency_ms}``."""
        ...

    def locate(self) -> None: ...
    def maintenance(self, args: Mapping[str, Any], now: float) -> Sequence[Recognised]: ...
    def status(self) -> Dict[str, Any]: ...


class ModeSetter(Protocol):
    """The ``mode`` command's effect (agent.app.mode.HomeMode)."""

    def set(self, mode: str, now: float) -> List[AgentEvent]: ...


class CommandHandler:
    """Checks each command payload and carries out the allowed ones."""

    def __init__(self, policy: CommandPolicy, store: CommandStore, actions: Actions, *,
                 wall: Callable[[], float], limiter: Optional[RejectionLimiter] = None,
                 mode: Optional[ModeSetter] = None) -> None:
        self.policy = policy
        self.mode = mode
        self.store = store
        self.actions = actions
        self.wall = wall
        self.limiter = limiter or RejectionLimiter()
        self._next_expire: Optional[float] = None
        #: rejections so far, by reason (heartbeats report signature failures)
        self.rejections: Dict[str, int] = {}

    def policy_failures(self) -> int:
        """Commands refused for their signature: someone is trying to forge them."""
        return self.rejections.get("bad_signature", 0)

    @property
    def seen(self) -> SeenCommands:
        return self.policy.seen

    def handle(self, payload: bytes, now: float) -> List[Recognised]:
        try:
            decision = self.policy.check(payload, self.wall())
        except Exception:  # the policy never raises for bad input; a bug must not stop the loop
            log.exception("command check failed; treating the command as malformed")
            return self._rejected({"reason": "malformed"}, now)
        data = decision.event_data()
        if decision.remembered:
            self.store.save(self.seen)     # before it takes effect: a replay after a crash fails
        if not decision.accepted:
            log.warning("command rejected: %s (jti=%s cmd=%s)", data.get("reason"),
                        data.get("command_jti"), data.get("cmd"))
            return self._rejected(data, now)
        log.info("command %s accepted (jti=%s)", decision.cmd, decision.jti)
        if decision.cmd == "ack":
            closed = self.actions.ack(decision.in_reply_to)
            if decision.in_reply_to:
                data["in_reply_to"] = decision.in_reply_to
            # docs/spec.md §11: what it closed, with each alarm's latency (maybe none)
            data["acknowledged"] = [dict(a) for a in closed]
        elif decision.cmd == "ping":
            data["status"] = self.actions.status()
        elif decision.cmd == "locate":
            self.actions.locate()
        elif decision.cmd == "mode":
            return self._mode(decision.args, data, now)
        elif decision.cmd == "maintenance":
            return [AgentEvent("command.done", now, data),
                    *self.actions.maintenance(decision.args, now)]
        return [AgentEvent("command.done", now, data)]

    def _mode(self, args: Mapping[str, Any], data: Dict[str, Any],
              now: float) -> List[Recognised]:
        """``mode`` (args checked by the policy): done first, then ``agent.mode`` if it changed."""
        mode = str(args["mode"])
        data["mode"] = mode
        changed = self.mode.set(mode, now) if self.mode is not None else []
        return [AgentEvent("command.done", now, data), *changed]

    def _rejected(self, data: Dict[str, Any], now: float) -> List[Recognised]:
        reason = str(data.get("reason"))
        self.rejections[reason] = self.rejections.get(reason, 0) + 1
        if self.limiter.admit(str(data.get("reason")), now):
            return [AgentEvent("command.rejected", now, data)]
        return []

    def advance(self, now: float, *, final: bool = False) -> List[AgentEvent]:
        """Due work: the once-a-minute summary of suppressed rejections, id expiry."""
        out: List[AgentEvent] = []
        summary = self.limiter.poll(now, force=final)
        if summary is not None:
            out.append(AgentEvent("command.rejected", now, summary))
        if self._next_expire is None or now >= self._next_expire:
            self._next_expire = now + EXPIRE_EVERY_S
            if self.seen.expire(self.wall()):
                self.store.save(self.seen)
        return out

    def next_deadline(self) -> Optional[float]:
        deadlines = [d for d in (self.limiter.next_deadline(), self._next_expire) if d is not None]
        return min(deadlines) if deadlines else None
