"""Putting the agent together from a config, and taking it apart again.

:meth:`Agent.build` checks everything that can be checked before touching GPIO (keys,
secret files, the command key), opens the state (counters, outbox), claims the pins,
and wires the pieces so that data flows one way:

    EdgeInput -> AgentLoop (state machines, care rules) -> Recorder (sign, commit)
      -> Publisher (MQTT) -> PUBACK -> outbox delete

:meth:`Agent.close` undoes it in the safe order: stop taking edges, let the publisher
flush for a few seconds, close the outbox cleanly.

A reload (SIGHUP) must lose no edge (docs/spec.md §9), so the pins are never let go
across it: :meth:`Agent.hand_over` (old agent, loop stopped) switches every input to
*holding* its edges and gives the pins whose wiring is unchanged, and the state machines
of sensors whose settings are unchanged, to the next :meth:`Agent.build`; the old agent
then closes (its outbox and counters must be free before the new one opens them), and
the new agent replays the held edges, in order and with their own timestamps, into its
loop. An edge during the reload is late by the rebuild, never lost.

A state directory that cannot be written (read-only card, I/O errors, a full disk) is a
degraded mode, at start as while running (docs/spec.md §6): the counters take a boot of
their own, an outbox that cannot be opened is tried again every few seconds, events go
out from memory, ``status.json`` is skipped; neither start nor stop raises for it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import queue
import time
from pathlib import Path
import threading
from typing import Any, Callable, Dict, List, Optional

from agent import __version__
from agent.app.assemble import care_rules, link_settings, state_machine
from agent.rules.care import CareRules
from agent.remote.handler import CommandHandler
from agent.remote.keys import load_command_verifier
from agent.remote.policy import CommandPolicy
from agent.remote.seen import CommandStore
from agent.config.model import Config
from agent.record.counters import UNWRITABLE, Counters
from agent.record.events import clock_synchronised
from agent.alarms.feedback import Feedback
from agent.app.loop import AgentLoop, Edge, StateMachine, Stop
from agent.errors import OutboxError
from agent.outbox.store import Outbox
from agent.record.recorder import AgentEvent, Clocks, Recorder
from agent.delivery.publisher import Publisher
from agent.app.sdnotify import Notifier
from agent.errors import ConfigError, SecretFileError
from agent.app.logs import register_secret
from agent.files.secrets import check_secret_file, read_secret_file
from agent.record.signing import Signer
from drivers.outputs import Buzzer, Led
from drivers.pins import EdgeInput, make_pin_factory
from drivers.events import SensorEvent

log = logging.getLogger("agent")

STATUS_FILE = "status.json"
OUTBOX_FILE = "outbox.sqlite3"


def config_digest(config: Config) -> str:
    try:
        return hashlib.sha256(Path(config.source).read_bytes()).hexdigest()[:16]
    except OSError:
        return "unknown"


class EdgeRelay:
    """The one sink of every input pin: forwards edges to a loop, or holds them.

    Between two agents of a reload there is no loop to take edges; the relay keeps them
    (in arrival order, each with its own timestamp) until the next loop is there. gpiozero
    calls it from its own threads, hence the lock; forwarding is one queue put.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sink: Optional[Callable[[Edge], None]] = None
        self._held: List[Edge] = []

    def __call__(self, edge: Edge) -> None:
        with self._lock:
            if self._sink is None:
                self._held.append(edge)
            else:
                self._sink(edge)

    def hold(self, earlier: List[Edge]) -> None:
        """Keep edges from now on; ``earlier`` ones (still queued for the old loop) go first."""
        with self._lock:
            self._sink = None
            self._held[:0] = earlier

    def forward_to(self, sink: Callable[[Edge], None]) -> int:
        """Hand the held edges to ``sink``, then forward; returns how many were held."""
        with self._lock:
            held, self._held = self._held, []
            for edge in held:
                sink(edge)
            self._sink = sink
            return len(held)


@dataclasses.dataclass
class PinHandover:
    """What a reloading agent gives the next one (see the module docstring)."""

    relay: EdgeRelay
    #: pins kept claimed, by sensor name (their wiring is unchanged)
    inputs: Dict[str, EdgeInput]
    #: state machines carried over, by sensor name (every setting unchanged)
    machines: Dict[str, StateMachine]
    #: the last level the old loop saw on each kept pin, and when: a new state machine on
    #: a kept pin starts from there, so that the held edges follow its start
    levels: Dict[str, bool]
    at: float

    def close(self) -> None:
        """Release the kept pins (the next agent could not be built)."""
        for pin in self.inputs.values():
            pin.close()
        self.inputs.clear()


class _Resumed:
    """A state machine that is already running: the new loop's ``start()`` only collects
    what it reported at hand-over (nothing, for one carried over unchanged)."""

    def __init__(self, machine: StateMachine, reported: List[SensorEvent]) -> None:
        self.inner = machine
        self._reported = reported

    def start(self, level: bool, now: float) -> List[SensorEvent]:
        out, self._reported = self._reported, []
        return out

    def edge(self, level: bool, now: float) -> List[SensorEvent]:
        return self.inner.edge(level, now)

    def advance(self, now: float) -> List[SensorEvent]:
        return self.inner.advance(now)

    def next_deadline(self) -> Optional[float]:
        return self.inner.next_deadline()

    @property
    def raw(self) -> bool:
        return self.inner.raw

    @property
    def state(self) -> str:
        return self.inner.state

    def __getattr__(self, name: str) -> Any:   # flapping, name, ... of the real machine
        return getattr(self.inner, name)


def _unwrapped(machine: StateMachine) -> StateMachine:
    return machine.inner if isinstance(machine, _Resumed) else machine


class Agent:
    """A running agent: pins, state machines, outbox, publisher and the loop that owns them."""

    def __init__(self) -> None:  # use Agent.build
        self.config: Config
        self.loop: AgentLoop
        self.publisher: Publisher
        self.outbox: Optional[Outbox] = None
        self.counters: Counters
        self.inputs: Dict[str, EdgeInput] = {}
        self.relay = EdgeRelay()
        self.feedback: Feedback
        self.commands: Optional[CommandHandler] = None
        self.commands_disabled_because: Optional[str] = None
        self.notifier: Notifier
        self._clock: Callable[[], float] = time.monotonic
        self._wall: Callable[[], float] = time.time
        self._synced: Callable[[], bool] = clock_synchronised
        self._status_written = ""
        self._status_due = 0.0
        self._status_failed = False
        self._closed = False

    @classmethod
    def build(cls, config: Config, *, pin_factory: Any = None,
              clock: Callable[[], float] = time.monotonic,
              wall: Callable[[], float] = time.time,
              synced: Callable[[], bool] = clock_synchronised,
              notifier: Optional[Notifier] = None,
              handover: Optional[PinHandover] = None) -> "Agent":
        """``handover``: from the agent being replaced (:meth:`hand_over`); its pins,
        state machines and held edges are taken over. If the build fails, its pins are
        released."""
        try:
            return cls._build(config, pin_factory=pin_factory, clock=clock, wall=wall,
                              synced=synced, notifier=notifier, handover=handover)
        except BaseException:
            if handover is not None:
                handover.close()
            raise

    @classmethod
    def _build(cls, config: Config, *, pin_factory: Any, clock: Callable[[], float],
               wall: Callable[[], float], synced: Callable[[], bool],
               notifier: Optional[Notifier], handover: Optional[PinHandover]) -> "Agent":
        self = cls()
        if handover is not None:
            self.relay = handover.relay
        self.config = config
        self.notifier = notifier or Notifier.from_environ()
        self._clock, self._wall, self._synced = clock, wall, synced
        # 1. everything that can be refused, before any GPIO is touched
        signer = Signer.from_file(config.signing.key_file, algorithm=config.signing.algorithm,
                                  kid=config.signing.kid)
        password = None
        if config.mqtt.password_file is not None:
            password = read_secret_file(config.mqtt.password_file,
                                        what="mqtt.password_file").decode("utf-8").strip()
            register_secret(password)       # a second guard: masked if it ever reached a log
        if config.mqtt.tls is not None and config.mqtt.tls.key_file is not None:
            check_secret_file(config.mqtt.tls.key_file, what="mqtt.tls.key_file")
        if signer.algorithm == "HS256":
            register_secret(signer.key_material().decode("utf-8", "replace"))
        policy = None
        self.commands_disabled_because = None
        if config.commands.enabled:
            try:
                verifier = load_command_verifier(config.commands.algorithm,
                                                 config.commands.key_file,
                                                 device_key_material=signer.key_material())
            except SecretFileError:
                raise               # docs/spec.md §4: a secret others can read is refused at start
            except ConfigError as exc:
                # An alarm gateway must not stay down for want of the *command* key: run
                # without commands, say so loudly, and report it in agent.started.
                log.error("commands disabled: %s", exc)
                self.commands_disabled_because = exc.message
            else:
                store = CommandStore(config.state_dir)
                policy = (CommandPolicy(device_id=config.device.id,
                                        algorithm=config.commands.algorithm,
                                        verify_signature=verifier, seen=store.load()), store)
        care = care_rules(config)
        # 2. state on disk; an unwritable one is a degraded mode, not a refusal
        try:
            config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            if exc.errno not in UNWRITABLE:
                raise
        # the outbox first: what it holds and remembers floors the counters, so lost or
        # rolled-back counter files never reuse a seq or a boot (docs/spec.md §4)
        storage_failed: Optional[str] = None
        try:
            self.outbox = self._open_outbox()
        except (OutboxError, OSError) as exc:
            storage_failed = f"cannot open the outbox: {exc}"
            log.error("%s; events go out from memory until it can be opened", storage_failed)
        try:
            floor = self.outbox.counter_floor() if self.outbox is not None else (1, 0)
            self.counters = Counters(config.state_dir, floor=floor)
        except BaseException:
            if self.outbox is not None:
                self.outbox.close()
            raise
        try:
            self._build_rest(config, signer, password, policy, care, pin_factory, synced,
                             handover, storage_failed)
        except BaseException:
            self.close(flush_timeout_s=0.0)
            raise
        return self

    def _open_outbox(self) -> Outbox:
        config = self.config
        outbox = Outbox.open(
            config.state_dir / OUTBOX_FILE, config.buffer,
            quarantine_dir=config.state_dir / "quarantine")
        self.outbox = outbox
        return outbox

    def _build_rest(self, config: Config, signer: Signer, password: Optional[str],
                    policy: Any, care: Optional[CareRules], pin_factory: Any,
                    synced: Callable[[], bool], handover: Optional[PinHandover],
                    storage_failed: Optional[str]) -> None:
        clock, wall = self._clock, self._wall
        link = link_settings(config, password)
        if policy is None:
            link = dataclasses.replace(link, subscribe_commands=False)
        recorder = Recorder(device_id=config.device.id, topic_prefix=config.mqtt.topic_prefix,
                            signer=signer, counters=self.counters, outbox=self.outbox,
                            clocks=Clocks(wall_of=lambda at: wall() - (clock() - at),
                                          now_epoch=wall, synced=synced),
                            wake=lambda critical: self.publisher.wake(critical=critical),
                            max_payload_bytes=config.mqtt.max_payload_bytes,
                            open_outbox=self._open_outbox, storage_failed=storage_failed)
        self.publisher = Publisher(link, recorder.source,
                                   on_delivered=lambda ids: self.loop.submit_delivered(ids),
                                   on_command=lambda payload: self.loop.submit_command(payload))
        # 3. GPIO: outputs and inputs (the edge callbacks only enqueue)
        factory = pin_factory if pin_factory is not None else make_pin_factory(config.gpio.backend)
        outs = config.outputs
        self.feedback = Feedback(
            buzzer=Buzzer(outs.buzzer.pin, active=outs.buzzer.active, pin_factory=factory)
            if outs.buzzer else None,
            led=Led(outs.led.pin, active=outs.led.active, pin_factory=factory) if outs.led else None,
            patterns=outs.patterns)
        kept = handover.inputs if handover is not None else {}
        machines: Dict[str, StateMachine] = {}
        for sensor in config.sensors:
            carried = handover.machines.get(sensor.name) if handover is not None else None
            if carried is not None:
                machines[sensor.name] = _Resumed(carried, [])
                continue
            machine = state_machine(sensor)
            if handover is not None and sensor.name in kept:
                # new settings on a pin that stayed claimed: start where the old loop left
                # off, so that the held edges come after the start and count
                machines[sensor.name] = _Resumed(machine, machine.start(
                    handover.levels[sensor.name], handover.at))
            else:
                machines[sensor.name] = machine
        if policy is not None:
            self.commands = CommandHandler(policy[0], policy[1], _Actions(self), wall=wall)
        started: Dict[str, Any] = {"boot": self.counters.boot,
                                   "config_digest": config_digest(config),
                                   "device": config.device.id}
        if self.counters.degraded is not None:
            started["counters"] = f"not saved: {self.counters.degraded}"
        if self.commands_disabled_because is not None:
            started["commands"] = f"disabled: {self.commands_disabled_because}"
        # the loop exists before any pin is claimed, so no early edge has nowhere to go
        self.loop = AgentLoop(
            machines=machines, pins=self.inputs, recorder=recorder, clock=clock, wall=wall,
            synced=synced, heartbeat_s=config.heartbeat_s, status=self.status_summary,
            care=care, commands=self.commands, feedback=self.feedback,
            watchdog=self.notifier, watchdog_s=self.notifier.watchdog_interval_s,
            on_turn=self._write_status, started_data=started)
        for sensor in config.sensors:       # kept pins first: the loop reads every one at start
            if sensor.name in kept:
                self.inputs[sensor.name] = kept.pop(sensor.name)
        held = self.relay.forward_to(self.loop.submit_edge)
        if held:
            log.info("reload: %d edge(s) seen during the reload go to the new loop", held)
        for sensor in config.sensors:
            if sensor.name not in self.inputs:
                self.inputs[sensor.name] = EdgeInput(
                    sensor.name, sensor.pin, pull=sensor.pull, active=sensor.active,
                    sink=self.relay, clock=clock, pin_factory=factory)

    # --- running ------------------------------------------------------------------------------
    def start(self) -> None:
        """READY once the pins are claimed and the outbox is open; then go online."""
        self.notifier.ready(f"{len(self.inputs)} sensors, outbox open")
        self.loop.start()
        quarantined = self.outbox.quarantined if self.outbox is not None else None
        if quarantined is not None:
            log.error("outbox %s was corrupt (%s); moved to %s and started afresh",
                      quarantined.path, quarantined.reason, ", ".join(quarantined.moved_to))
            self.loop.recorder.record([AgentEvent("buffer.quarantined", self._clock(),
                                                  quarantined.as_data(), critical=True)])
        if self.commands is not None and self.commands.store.quarantined is not None:
            log.error("seen-commands file was corrupt; moved to %s", self.commands.store.quarantined)
        self.publisher.start()

    def run(self) -> Stop:
        self.start()
        return self.loop.run()

    def hand_over(self, config: Config) -> PinHandover:
        """Before a reload to ``config``, with this agent's loop stopped: hold every edge
        and give away the pins (and state machines) the next agent can keep (module
        docstring). Call :meth:`close` next, then ``Agent.build(config, handover=...)``."""
        loop = self.loop
        queued: List[Edge] = []
        while True:          # edges that reached the old loop's queue after its last turn
            try:
                kind, body = loop.inbox.get_nowait()
            except queue.Empty:
                break
            if kind == "edge":
                queued.append(body)
        self.relay.hold(queued)
        loop.accepting_edges = False
        old = {s.name: s for s in self.config.sensors}
        handover = PinHandover(self.relay, {}, {}, {}, self._clock())
        for sensor in config.sensors:
            before = old.get(sensor.name)
            if before is None or sensor.name not in self.inputs or \
                    (before.pin, before.pull, before.active) != \
                    (sensor.pin, sensor.pull, sensor.active):
                continue       # new or rewired: this agent releases it, the next claims it
            handover.inputs[sensor.name] = self.inputs.pop(sensor.name)
            machine = loop.machines[sensor.name]
            handover.levels[sensor.name] = machine.raw
            if before == sensor:
                handover.machines[sensor.name] = _unwrapped(machine)
        return handover

    def replace(self, config: Config, *, flush_timeout_s: float,
                pin_factory: Any = None) -> "Agent":
        """The reload (docs/spec.md §9), with this agent's loop stopped: hand over, close
        (flushing for ``flush_timeout_s``), build the next agent on ``config``."""
        handover = self.hand_over(config)
        try:
            self.close(flush_timeout_s)
        except BaseException:
            handover.close()
            raise
        return Agent.build(config, pin_factory=pin_factory, clock=self._clock, wall=self._wall,
                           synced=self._synced, notifier=self.notifier, handover=handover)

    def close(self, flush_timeout_s: float = 3.0) -> bool:
        """Stop taking edges, flush for up to ``flush_timeout_s``, close the outbox.

        Returns True when everything stored was delivered."""
        if self._closed:
            return True
        self._closed = True
        self.notifier.stopping()
        for pin in self.inputs.values():
            pin.close()
        loop = getattr(self, "loop", None)
        if loop is not None:
            loop.accepting_edges = False
            if self.commands is not None:
                try:
                    loop.record(self.commands.advance(self._clock(), final=True))
                except OSError as exc:  # e.g. the seen-commands file on a read-only card
                    log.warning("stopping: could not finish the command bookkeeping: %s", exc)
        flushed = False
        publisher = getattr(self, "publisher", None)
        if publisher is not None:
            flushed = publisher.stop(flush_timeout_s)
        feedback = getattr(self, "feedback", None)
        if feedback is not None:
            feedback.close()
        if loop is not None:
            # what memory still holds: one last try to store it (docs/spec.md §6)
            left = loop.recorder.flush_to_disk()
            if left:
                flushed = False
                log.error("%d events could be neither stored nor delivered and are lost "
                          "with this stop (the state directory cannot be written)", left)
            self._write_status(self._clock(), force=True)
        if self.outbox is not None:
            self.outbox.close()
        self.counters.close()
        return flushed

    # --- status ---------------------------------------------------------------------------------
    def buffered(self) -> int:
        """Events not yet delivered: in the outbox (as far as it can be read) and in memory."""
        depth = self.loop.recorder.source.memory_depth()
        if self.outbox is not None:
            try:
                depth += self.outbox.stats().depth
            except (OutboxError, OSError):
                pass
        return depth

    def status_summary(self) -> Dict[str, Any]:
        link = self.publisher.status
        depth = critical = None
        if self.outbox is not None:
            try:
                stats = self.outbox.stats()
                depth, critical = stats.depth, stats.critical.rows
            except (OutboxError, OSError):
                pass    # a failing card: the heartbeat still goes out, without the depth
        summary: Dict[str, Any] = {
            "connected": link.connected, "reconnects": link.reconnects,
            "outbox_depth": depth, "outbox_critical": critical,
            "delivered": link.delivered, "inflight": link.inflight,
            "signature_failures": (self.commands.policy_failures()
                                   if self.commands is not None else 0)}
        recorder = self.loop.recorder
        if recorder.storage_failed is not None or recorder.source.memory_depth():
            summary["storage_failed"] = recorder.storage_failed
            summary["memory_depth"] = recorder.source.memory_depth()
            summary["memory_evicted"] = sum(recorder.source.memory_evicted())
        return summary

    def snapshot(self) -> Dict[str, Any]:
        link = self.publisher.status
        return {
            "pid": os.getpid(), "version": __version__, "device": self.config.device.id,
            "updated": time.time(),   # real time, also under simulate's virtual clock
            "link": {"connected": link.connected, "since": link.since,
                     "connects": link.connects, "reconnects": link.reconnects,
                     "stalls": link.stalls, "last_error": link.last_error,
                     "delivered": link.delivered, "rejected": link.rejected,
                     "last_rejected_reason": link.last_rejected_reason,
                     "last_rejected_at": link.last_rejected_at},
            "sensors": {name: {"state": m.state, "raw": m.raw}
                        for name, m in self.loop.machines.items()},
            "last_events": {name: {"type": e.type, "ts": e.ts, "seq": e.seq}
                            for name, e in self.loop.recorder.last_by_sensor.items()},
            "feedback": self.feedback.snapshot(),
            "storage": {"failed": self.loop.recorder.storage_failed,
                        "memory_depth": self.loop.recorder.source.memory_depth(),
                        "counters_saved": self.counters.degraded is None},
        }

    def _write_status(self, now: float, *, force: bool = False) -> None:
        """Keep ``status.json`` in the state folder current, at most once a second."""
        if now < self._status_due and not force:
            return
        self._status_due = now + 1.0
        snap = self.snapshot()
        key = json.dumps({k: v for k, v in snap.items() if k != "updated"}, sort_keys=True)
        if key == self._status_written and not force:
            return
        self._status_written = key
        path = self.config.state_dir / STATUS_FILE
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(snap, indent=1, sort_keys=True))
            os.replace(tmp, path)
        except OSError as exc:  # an unwritable state folder: said once, not every second
            if not self._status_failed:
                log.warning("cannot write %s (%s); status shows the last one written",
                            path, exc.strerror)
            self._status_failed = True
        else:
            self._status_failed = False


class _Actions:
    """What accepted commands do, on this agent's outputs."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def ack(self, in_reply_to: Optional[str]) -> None:
        self._agent.feedback.ack(in_reply_to)

    def locate(self) -> None:
        self._agent.feedback.locate()

    def status(self) -> Dict[str, Any]:
        snap = self._agent.snapshot()
        return {"link": snap["link"], "sensors": snap["sensors"], "feedback": snap["feedback"]}
