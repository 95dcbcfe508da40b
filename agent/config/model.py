"""Load and check the one config file (docs/spec.md §10).

``load_config(path)`` returns a frozen :class:`Config` or raises
:class:`ConfigProblems` (an :class:`agent.errors.ConfigError`) listing *every*
problem as ``FILE:LINE:COL: field.path: message``. The checks run over PyYAML's
composed node tree, so each problem points at the key or value that causes it.

Choices where docs/spec.md §10 is silent (also in config/example.yaml and the README):

- Required: ``device.id``, ``mqtt.host``, and at least one sensor (a gateway
  without sensors can raise no alarm). Every other section may be left out and
  takes docs/spec.md §10's defaults.
- Paths may use ``$VAR``/``${VAR}`` (e.g. ``${CREDENTIALS_DIRECTORY}``); an unset
  or empty variable is an error naming it. A relative path is taken relative to
  the folder holding the config file. No ``~`` expansion. Files are not opened
  here: key files are checked when the agent starts.
- ``tls`` omitted, null or ``true``: TLS with the system CAs; ``false``: plaintext.
- ``flapping: true`` (or a partial mapping) on a smoke sensor fills 16/10/60.
- Times of day may be quoted or not (YAML would read unquoted 22:00 as 1320; the
  file's own text is used). ``protocol: 5`` and ``protocol: "5"`` are the same.
"""
from __future__ import annotations

import re
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import yaml
import yaml.reader
from yaml.error import Mark

from agent.alarms.book import MAX_REPEATS, MAX_S, MIN_S, AlarmSchedule
from agent.rules.testreport import MAX_EVERY_DAYS, TestReportSettings
from agent.config.fields import (SEC, SECRET_HINTS, as_name, as_timezone, mapping,
                                 required_section, section)
from agent.config.mqtt import read_mqtt
from agent.config.reader import (ConfigProblems, MapReader, Node, Problem, Sink, as_bool,
                                 as_choice, as_hhmm, as_int, as_number, as_path, as_text,
                                 check_nesting, describe, Bad)
from agent.config.schema import (DEFAULT_HEARTBEAT_S, DEFAULT_STATE_DIR, GPIO_BACKENDS,
                                 CommandsConfig, Config, DeviceConfig, GpioConfig, MqttConfig,
                                 OutputConfig, OutputsConfig, SensorConfig, SigningConfig,
                                 TlsConfig)
from agent.config.sensors import check_pins, read_outputs, read_sensors
from agent.outbox.policy import OutboxLimits
from agent.config.care import read_care
from agent.rules.care import CareSettings, InactivitySettings, NightDoorSettings
from agent.wire import ALGORITHMS
from drivers.debounce import FlappingPolicy

__all__ = [
    "load_config", "parse_config", "Problem", "ConfigProblems", "Config", "DeviceConfig",
    "GpioConfig", "SensorConfig", "FlappingPolicy", "OutputsConfig", "OutputConfig",
    "MqttConfig", "TlsConfig", "SigningConfig", "OutboxLimits", "CommandsConfig",
    "CareSettings", "NightDoorSettings", "InactivitySettings",
]

TOP_KEYS = ("device", "state_dir", "gpio", "sensors", "outputs", "mqtt", "signing", "buffer",
            "commands", "care", "heartbeat_s", "alarms", "test_report")


def load_config(path: Union[str, Path], *, environ: Optional[Mapping[str, str]] = None) -> Config:
    """Read and check ``path``; raises :class:`ConfigProblems` with every problem found.

    ``environ`` (default ``os.environ``) supplies ``${VARS}`` in paths; the demo
    passes its own.
    """
    name = str(path)
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigProblems([Problem(name, 0, 0, "", "no such file; give the config's "
                                      "path with --config PATH")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigProblems([Problem(name, 0, 0, "", f"is not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise ConfigProblems([Problem(name, 0, 0, "", f"cannot read it: {exc.strerror or exc}")]) from None
    return parse_config(text, source, environ=environ, file_name=name)


def parse_config(text: str, source: Path, *, environ: Optional[Mapping[str, str]] = None,
                 file_name: Optional[str] = None) -> Config:
    """Check the YAML ``text`` as if read from ``source`` (relative paths use its folder)."""
    sink = Sink(file_name or str(source))
    root = _compose(text, sink)
    if root is None:
        raise ConfigProblems(sink.problems)
    env = os.environ if environ is None else environ
    top = MapReader(root, "", sink, TOP_KEYS, hints=SECRET_HINTS)
    if not isinstance(root, yaml.MappingNode):
        raise ConfigProblems(sink.problems)
    paths = as_path(source.absolute().parent, env)
    device = _device(top, sink)
    sensors, pins = read_sensors(top, sink)
    outputs = read_outputs(top, sink, pins)
    check_pins(pins, sink)
    care, care_v2 = read_care(top, sink, sensors)
    config = Config(
        device=device,
        state_dir=top.get("state_dir", paths, DEFAULT_STATE_DIR),
        gpio=_gpio(top),
        sensors=sensors,
        outputs=outputs,
        mqtt=read_mqtt(top, sink, device, paths),
        signing=_signing(top, sink, paths),
        buffer=_buffer(top),
        commands=_commands(top, paths),
        care=care,
        heartbeat_s=top.get("heartbeat_s", as_int(10, 86400, SEC), DEFAULT_HEARTBEAT_S),
        source=source.absolute(),
        warnings=tuple(sink.warnings),
        alarms=_alarms(top),
        care_v2=care_v2,
        test_report=_test_report(top, sink),
    )
    if sink.problems:
        raise ConfigProblems(sink.problems)  # warnings wait until the file is valid
    return config


def _compose(text: str, sink: Sink) -> Optional[Node]:
    if not check_nesting(text, sink):
        return None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = str(exc.problem or exc.context)
        if exc.context and exc.problem:
            what += f" ({exc.context})"
        if "\\t" in what or "'\\t'" in what:
            what += " (indent with spaces, not tabs)"
        sink.add(mark, "", f"YAML syntax error: {what}")
        return None
    except yaml.reader.ReaderError as exc:    # a character YAML forbids, e.g. a NUL byte
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or " ")
        name = " (a NUL byte)" if char == 0 else ""
        sink.add(_mark_at(text, exc.position), "", f"character #x{char:04x}{name} is not "
                 f"allowed in a YAML file; remove it")
        return None
    except yaml.YAMLError as exc:
        sink.add(None, "", f"YAML error: {exc}")
        return None
    if root is None:
        sink.add(None, "", "the file is empty; start from config/example.yaml")
    return root


def _mark_at(text: str, position: int) -> Mark:
    """The line and column of a character offset (PyYAML's reader gives only the offset)."""
    line = text.count("\n", 0, position)
    column = position - (text.rfind("\n", 0, position) + 1)
    return Mark("", position, line, column, "", 0)


#: highest lgpio chip number accepted (/dev/gpiochipN)
MAX_GPIO_CHIP = 63


def _gpio(top: MapReader) -> GpioConfig:
    """``gpio``: the backend, and the override for boards without a Pi revision code."""
    gpio = section(top, "gpio", ("backend", "chip", "board_revision"))
    backend = gpio.get("backend", as_choice(GPIO_BACKENDS), GpioConfig.backend)
    chip = gpio.optional("chip", as_int(0, MAX_GPIO_CHIP))
    if chip is not None and backend not in ("lgpio", "auto"):
        gpio.sink.add(gpio.value_node("chip"), gpio.sub("chip"),
                      f"only the lgpio backend (or auto) opens a chosen chip, not {backend}; "
                      f"remove gpio.chip or use backend: lgpio")
        chip = None
    return GpioConfig(backend=backend, chip=chip,
                      board_revision=gpio.optional("board_revision", as_board_revision))


def as_board_revision(node: Node) -> int:
    """A Raspberry Pi revision code in hex (``a02082`` or ``0xa02082``); the file's own
    text is read, since YAML 1.1 turns an unquoted 0x... into a decimal integer."""
    text = str(node.value).strip() if isinstance(node, yaml.ScalarNode) else ""
    digits = text[2:] if text.lower().startswith("0x") else text
    if not re.fullmatch(r"[0-9A-Fa-f]{4,8}", digits):
        raise Bad(f"{text or describe(node)!r} is not a revision code: give the Pi's code in "
                  f"hexadecimal, e.g. a02082 (Pi 3B), as /proc/cpuinfo shows it on a Pi")
    return int(digits, 16)


def _device(top: MapReader, sink: Sink) -> DeviceConfig:
    node = required_section(top, "device", sink, "device: {id: gw-0001}")
    if node is None:
        return DeviceConfig("")
    d = mapping(node, "device", sink, ("id", "timezone"))
    return DeviceConfig(
        id=d.require("id", as_name, "", "the gateway's name in topics and in every event"),
        timezone=d.optional("timezone", as_timezone))


# --- signing, buffer, commands ---------------------------------------------------

def _signing(top: MapReader, sink: Sink, paths: Any) -> SigningConfig:
    s = section(top, "signing", ("algorithm", "key_file", "kid"))
    signing = SigningConfig(algorithm=s.get("algorithm", as_choice(ALGORITHMS), SigningConfig.algorithm),
                            key_file=s.get("key_file", paths, SigningConfig.key_file),
                            kid=s.optional("kid", as_text))
    if signing.algorithm == "HS256" and s.value_node("kid") is None:
        sink.add(s.node_or_self("algorithm"), "signing.kid", "is required with HS256 (there is "
                 "no public key to take a thumbprint of): set kid: to the name the cloud knows "
                 "this secret by")
    return signing


def _buffer(top: MapReader) -> OutboxLimits:
    b = section(top, "buffer", ("max_events", "max_mb", "min_free_mb"))
    return OutboxLimits(
        max_events=b.get("max_events", as_int(1, 100_000_000), OutboxLimits.max_events),
        max_mb=b.get("max_mb", as_number(unit="MB", above=0), OutboxLimits.max_mb),
        min_free_mb=b.get("min_free_mb", as_number(lo=0, unit="MB"), OutboxLimits.min_free_mb))


def _alarms(top: MapReader) -> AlarmSchedule:
    a = section(top, "alarms", ("ack_timeout_s", "repeat_s", "max_repeats"))
    seconds = as_number(MIN_S, MAX_S, SEC)
    return AlarmSchedule(
        ack_timeout_s=a.get("ack_timeout_s", seconds, AlarmSchedule.ack_timeout_s),
        repeat_s=a.get("repeat_s", seconds, AlarmSchedule.repeat_s),
        max_repeats=a.get("max_repeats", as_int(0, MAX_REPEATS), AlarmSchedule.max_repeats))


def _test_report(top: MapReader, sink: Sink) -> Optional[TestReportSettings]:
    """``test_report: {at, every_days}``, or ``false`` (off) / ``true`` (the defaults)."""
    node = top.value_node("test_report")
    if isinstance(node, yaml.ScalarNode):
        return TestReportSettings() if top.get("test_report", as_bool, True) else None
    t = section(top, "test_report", ("at", "every_days"))
    d = TestReportSettings
    return TestReportSettings(at=t.get("at", as_hhmm, d.at),
                              every_days=t.get("every_days", as_int(1, MAX_EVERY_DAYS, "days"),
                                               d.every_days))


def _commands(top: MapReader, paths: Any) -> CommandsConfig:
    c = section(top, "commands", ("enabled", "algorithm", "key_file"))
    return CommandsConfig(enabled=c.get("enabled", as_bool, CommandsConfig.enabled),
                          algorithm=c.get("algorithm", as_choice(ALGORITHMS), CommandsConfig.algorithm),
                          key_file=c.get("key_file", paths, CommandsConfig.key_file))
