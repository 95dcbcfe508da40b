"""Putting the agent together from a config, and taking it apart again.

:meth:`Agent.build` checks everything that can be checked before touching GPIO (keys,
secret files, the command key), opens the state (counters, outbox), claims the pins,
and wires the pieces so that data flows one way:

    EdgeInput -> AgentLoop (state machines, care rules) -> Recorder (sign, commit)
      -> Publisher (MQTT) -> PUBACK -> outbox delete

:meth:`Agent.close` undoes it in the safe order: stop taking edges, let the publisher
flush for a few seconds, close the outbox cleanly.

The agent only assembles: the loop (agent.app.loop) owns the running state, the status
reader and ``status.json`` are agent.app.status, what commands do is agent.app.actions,
and a reload that keeps the pins claimed (docs/spec.md §9) is agent.app.reload.

A state directory that cannot be written (read-only card, I/O errors, a full disk) is a
degraded mode, at start as while running (docs/spec.md §6): the counters take a boot of
their own, an outbox that cannot be opened is tried again every few seconds, events go
out from memory, ``status.json`` is skipped; neither start nor stop raises for it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from agent.app.assemble import care_rules, link_settings, state_machine, time_zone
from agent.app.mode import HomeMode, load_mode
from agent.rules.mode import ModeGate
from agent.remote.handler import CommandHandler
from agent.config.model import Config
from agent.record.counters import UNWRITABLE, Counters
from agent.record.events import clock_synchronised
from agent.alarms.feedback import Feedback
from agent.alarms.book import AlarmBook
from agent.alarms.store import AlarmStore
from agent.app.maintenance import MaintenanceMode
from agent.app.testreport import TestReport
from agent.rules.testreport import TestReportSchedule, device_offset_s
from drivers.tamper import TamperSwitch
from agent.app.actions import Actions
from agent.app.checks import CommandChecks, command_policy, secrets
from agent.app.loop import AgentLoop, Stop
from agent.app.messages import Inbox
from agent.app.reload import EdgeRelay, PinHandover, Resumed, hand_over
from agent.app.sensors import Sensors, StateMachine
from agent.app.status import STATUS_FILE, AgentStatus, StatusFile
from agent.app.storage import OutboxSlot
from agent.errors import OutboxError
from agent.outbox.readonly import OUTBOX_FILE
from agent.outbox.store import Outbox
from agent.record.recorder import AgentEvent, Clocks, Recorder
from agent.delivery.publisher import Publisher
from agent.app.sdnotify import Notifier
from agent.record.signing import Signer
from drivers.outputs import Buzzer, Led
from drivers.pins import EdgeInput, make_pin_factory

log = logging.getLogger("agent")


def config_digest(config: Config) -> str:
    try:
        return hashlib.sha256(Path(config.source).read_bytes()).hexdigest()[:16]
    except OSError:
        return "unknown"


class Agent:
    """A running agent: pins, state machines, outbox, publisher and the loop that owns them."""

    def __init__(self) -> None:  # use Agent.build
        self.config: Config
        self.inbox = Inbox()
        self.loop: AgentLoop
        self.sensors: Sensors
        self.recorder: Recorder
        self.publisher: Publisher
        self.storage: OutboxSlot
        self.status: AgentStatus
        self.status_file: StatusFile
        self.counters: Counters
        self.inputs: Dict[str, EdgeInput] = {}
        self.relay = EdgeRelay()
        self.feedback: Feedback
        #: why the saved open alarms were set aside at start (None: read, or none saved)
        self.alarms_quarantined: Optional[str] = None
        self.commands: Optional[CommandHandler] = None
        self.commands_disabled_because: Optional[str] = None
        self.notifier: Notifier
        self._clock: Callable[[], float] = time.monotonic
        self._wall: Callable[[], float] = time.time
        self._synced: Callable[[], bool] = clock_synchronised
        self._closed = False

    @property
    def outbox(self) -> Optional[Outbox]:
        """The open outbox; None while it cannot be opened (docs/spec.md §6)."""
        return self.storage.current

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
        signer, password = secrets(config)
        policy, self.commands_disabled_because = command_policy(config, signer)
        care = care_rules(config, load_mode(config.state_dir))
        # 2. state on disk; an unwritable one is a degraded mode, not a refusal
        storage_failed = self._open_state(config)
        try:
            self._build_rest(config, signer, password, policy, care, pin_factory, synced,
                             handover, storage_failed)
        except BaseException:
            self.close(flush_timeout_s=0.0)
            raise
        return self

    def _open_state(self, config: Config) -> Optional[str]:
        """Outbox, then counters; returns why the outbox could not be opened, if it could not."""
        try:
            config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            if exc.errno not in UNWRITABLE:
                raise
        # the outbox first: what it holds and remembers floors the counters, so lost or
        # rolled-back counter files never reuse a seq or a boot (docs/spec.md §4)
        self.storage = OutboxSlot(lambda: open_outbox(config))
        storage_failed: Optional[str] = None
        try:
            self.storage.open()
        except (OutboxError, OSError) as exc:
            storage_failed = f"cannot open the outbox: {exc}"
            log.error("%s; events go out from memory until it can be opened", storage_failed)
        try:
            floor = self.outbox.counter_floor() if self.outbox is not None else (1, 0)
            self.counters = Counters(config.state_dir, floor=floor)
        except BaseException:
            self.storage.close()
            raise
        return storage_failed

    def _build_rest(self, config: Config, signer: Signer, password: Optional[str],
                    policy: Optional[CommandChecks], care: ModeGate, pin_factory: Any,
                    synced: Callable[[], bool], handover: Optional[PinHandover],
                    storage_failed: Optional[str]) -> None:
        clock, wall = self._clock, self._wall
        link = link_settings(config, password)
        if policy is None:
            link = dataclasses.replace(link, subscribe_commands=False)

        def wake(critical: bool) -> None:      # the publisher is made next, with the recorder's rows
            publisher.wake(critical=critical)
        self.recorder = Recorder(
            device_id=config.device.id, topic_prefix=config.mqtt.topic_prefix, signer=signer,
            counters=self.counters, outbox=self.outbox,
            clocks=Clocks(wall_of=lambda at: wall() - (clock() - at), now_epoch=wall,
                          synced=synced),
            wake=wake, max_payload_bytes=config.mqtt.max_payload_bytes,
            open_outbox=self.storage.open, storage_failed=storage_failed)
        publisher = self.publisher = Publisher(link, self.recorder.source,
                                               on_delivered=self.inbox.submit_delivered,
                                               on_command=self.inbox.submit_command)
        # 3. GPIO: outputs and inputs (the edge callbacks only enqueue)
        factory = pin_factory if pin_factory is not None else make_pin_factory(
            config.gpio.backend, chip=config.gpio.chip, board_revision=config.gpio.board_revision)
        self.feedback = self._feedback(config, factory)
        machines = self._state_machines(config, handover)
        self.sensors = Sensors(machines, self.inputs)
        self.maintenance = self._maintenance(config, machines)
        if policy is not None:
            actions = Actions(feedback=self.feedback, link=self.publisher, sensors=self.sensors,
                              maintenance=self.maintenance)
            self.commands = CommandHandler(policy[0], policy[1], actions, wall=wall,
                                           mode=HomeMode(care, config.state_dir, wall=wall,
                                                         synced=synced))
        self.status = AgentStatus(device_id=config.device.id, link=self.publisher,
                                  outbox=self.storage, recorder=self.recorder,
                                  sensors=self.sensors, feedback=self.feedback,
                                  counters=self.counters, commands=self.commands)
        self.status_file = StatusFile(config.state_dir / STATUS_FILE, self.status)
        # the loop exists before any pin is claimed, so no early edge has nowhere to go
        self.loop = AgentLoop(
            sensors=self.sensors, recorder=self.recorder, clock=clock, wall=wall, synced=synced,
            heartbeat_s=config.heartbeat_s, status=self.status.summary, inbox=self.inbox,
            care=care, commands=self.commands, feedback=self.feedback,
            watchdog=self.notifier, watchdog_s=self.notifier.watchdog_interval_s,
            on_turn=self.status_file.update, started_data=self._started_data(config),
            timers=[self.maintenance, *self._test_report(config)])
        self._claim_pins(config, handover, factory)

    def _maintenance(self, config: Config, machines: Mapping[str, Any]) -> MaintenanceMode:
        """The saved maintenance period (docs/spec.md §13.4), told to every tamper switch."""
        inner = [getattr(m, "inner", m) for m in machines.values()]   # a reload's Resumed
        return MaintenanceMode(config.state_dir, [m for m in inner if isinstance(m, TamperSwitch)],
                               clock=self._clock, wall=self._wall)

    def _test_report(self, config: Config) -> List[TestReport]:
        """``agent.test`` at ``test_report.at`` + this device's offset (docs/spec.md §13.3)."""
        if config.test_report is None:
            return []
        schedule = TestReportSchedule(config.test_report, time_zone(config.device.timezone),
                                      device_offset_s(config.device.id))
        return [TestReport(schedule, sensors=self.sensors, feedback=self.feedback,
                           clock=self._clock, wall=self._wall)]

    def _feedback(self, config: Config, factory: Any) -> Feedback:
        """The outputs, and the open alarms saved before (a restart, a power cut)."""
        clock, wall = self._clock, self._wall
        store = AlarmStore(config.state_dir)
        try:
            book, self.alarms_quarantined = store.load(config.alarms, now=clock(), wall=wall())
        except OSError as exc:  # an unreadable card: start with none, and say so
            book, self.alarms_quarantined = AlarmBook(config.alarms), f"cannot read: {exc}"
        outs = config.outputs
        return Feedback(
            buzzer=Buzzer(outs.buzzer.pin, active=outs.buzzer.active, pin_factory=factory)
            if outs.buzzer else None,
            led=Led(outs.led.pin, active=outs.led.active, pin_factory=factory) if outs.led else None,
            patterns=outs.patterns, book=book, store=store, clock=clock, wall=wall)

    def _state_machines(self, config: Config,
                        handover: Optional[PinHandover]) -> Dict[str, StateMachine]:
        kept = handover.inputs if handover is not None else {}
        machines: Dict[str, StateMachine] = {}
        for sensor in config.sensors:
            carried = handover.machines.get(sensor.name) if handover is not None else None
            if carried is not None:
                machines[sensor.name] = Resumed(carried, [])
                continue
            machine = state_machine(sensor)
            if handover is not None and sensor.name in kept:
                # new settings on a pin that stayed claimed: start where the old loop left
                # off, so that the held edges come after the start and count
                nc = handover.levels.get(sensor.nc_input or "")   # a Form C smoke's NC pin
                machines[sensor.name] = Resumed(machine, machine.start(
                    handover.levels[sensor.name], handover.at, **({} if nc is None else {"nc": nc})))
            else:
                machines[sensor.name] = machine
        return machines

    def _started_data(self, config: Config) -> Dict[str, Any]:
        started: Dict[str, Any] = {"boot": self.counters.boot,
                                   "config_digest": config_digest(config),
                                   "device": config.device.id}
        if self.counters.degraded is not None:
            started["counters"] = f"not saved: {self.counters.degraded}"
        if self.commands_disabled_because is not None:
            started["commands"] = f"disabled: {self.commands_disabled_because}"
        return started

    def _claim_pins(self, config: Config, handover: Optional[PinHandover], factory: Any) -> None:
        kept = handover.inputs if handover is not None else {}
        wanted = [(s.name, s.pin, s) for s in config.sensors] + [  # a Form C smoke's NC pin too
            (s.nc_input, s.pin_nc, s) for s in config.sensors if s.nc_input and s.pin_nc is not None]
        for name, _, _ in wanted:           # kept pins first: the loop reads every one at start
            if name in kept:
                self.inputs[name] = kept.pop(name)
        held = self.relay.forward_to(self.inbox.submit_edge)
        if held:
            log.info("reload: %d edge(s) seen during the reload go to the new loop", held)
        for name, pin, sensor in wanted:
            if name not in self.inputs:
                self.inputs[name] = EdgeInput(
                    name, pin, pull=sensor.pull, active=sensor.active,
                    sink=self.relay, clock=self._clock, pin_factory=factory)

    # --- running ------------------------------------------------------------------------------
    def start(self) -> None:
        """READY once the pins are claimed and the outbox is open; then go online."""
        self.notifier.ready(f"{len(self.inputs)} sensors, outbox open")
        self.loop.start()
        quarantined = self.outbox.quarantined if self.outbox is not None else None
        if quarantined is not None:
            log.error("outbox %s was corrupt (%s); moved to %s and started afresh",
                      quarantined.path, quarantined.reason, ", ".join(quarantined.moved_to))
            self.recorder.record([AgentEvent("buffer.quarantined", self._clock(),
                                             quarantined.as_data(), critical=True)])
        if self.alarms_quarantined is not None:    # the log line is the store's
            self.recorder.record([AgentEvent("alarms.quarantined", self._clock(),
                                             {"reason": self.alarms_quarantined[:200]},
                                             critical=True)])
        if self.commands is not None and self.commands.store.quarantined is not None:
            log.error("seen-commands file was corrupt; moved to %s", self.commands.store.quarantined)
        self.publisher.start()

    def run(self) -> Stop:
        self.start()
        return self.loop.run()

    def hand_over(self, config: Config) -> PinHandover:
        """Before a reload to ``config``, with this agent's loop stopped: hold every edge
        and give away the pins (and state machines) the next agent can keep
        (agent.app.reload). Call :meth:`close` next, then ``Agent.build(config, handover=...)``."""
        self.loop.accepting_edges = False
        return hand_over(relay=self.relay, inbox=self.inbox, inputs=self.inputs,
                         sensors=self.sensors, before=self.config.sensors,
                         after=config.sensors, at=self._clock())

    def replace(self, config: Config, *, flush_timeout_s: float,
                pin_factory: Any = None) -> "Agent":
        """The reload (docs/spec.md §9), with this agent's loop stopped: hand over, close
        (flushing for ``flush_timeout_s``), build the next agent on ``config``."""
        handover = self.hand_over(config)
        try:
            self.close(flush_timeout_s, stopping=False)   # the service goes on: not STOPPING=1
        except BaseException:
            handover.close()
            raise
        return Agent.build(config, pin_factory=pin_factory, clock=self._clock, wall=self._wall,
                           synced=self._synced, notifier=self.notifier, handover=handover)

    def close(self, flush_timeout_s: float = 3.0, *, stopping: bool = True) -> bool:
        """Stop taking edges, flush for up to ``flush_timeout_s``, close the outbox.
        ``stopping``: tell systemd the service is stopping (not when a reload replaces it).

        Returns True when everything stored was delivered."""
        if self._closed:
            return True
        self._closed = True
        if stopping:
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
            left = self.recorder.flush_to_disk()
            if left:
                flushed = False
                log.error("%d events could be neither stored nor delivered and are lost "
                          "with this stop (the state directory cannot be written)", left)
            self.status_file.update(self._clock(), force=True)
        self.storage.close()
        self.counters.close()
        return flushed


def open_outbox(config: Config) -> Outbox:
    return Outbox.open(
        config.state_dir / OUTBOX_FILE, config.buffer,
        quarantine_dir=config.state_dir / "quarantine")
