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

import ipaddress
import re
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import yaml
import yaml.reader
from yaml.error import Mark

from agent.config.reader import (Bad, ConfigProblems, MapReader, Node, Problem, Sink, as_blink,
                                 as_bool, as_choice, as_hhmm, as_int, as_number, as_path, as_pattern,
                                 as_text, check_nesting, describe)
from agent.config.schema import (MAX_NAME_CHARS, MAX_TOPIC_PREFIX_BYTES, ALGORITHMS, COMMON_SENSOR_KEYS, DEFAULT_ACTIVE,
                                 DEFAULT_FLAPPING, DEFAULT_HEARTBEAT_S, DEFAULT_KEEPALIVE_S,
                                 DEFAULT_MAX_PAYLOAD_BYTES, MQTT_MAX_PAYLOAD,
                                 DEFAULT_PROTOCOL, DEFAULT_PULL, DEFAULT_STATE_DIR,
                                 FLAPPING_FALLBACK, GPIO_BACKENDS, KIND_DEFAULTS, LEVELS,
                                 MAX_BCM_PIN, MQTT_PROTOCOLS, PORT_PLAIN, PORT_TLS, PULLS,
                                 RESERVED_SENSOR_NAMES, SENSOR_KINDS, BufferConfig, CareConfig,
                                 CommandsConfig, Config, DeviceConfig, FlappingConfig,
                                 GpioConfig, InactivityRule, MqttConfig, NightDoorRule,
                                 OutputConfig, OutputsConfig, SensorConfig, SigningConfig,
                                 TlsConfig)
from agent.alarms.feedback import MAX_PATTERN_COUNT, MAX_PATTERN_S, Patterns

__all__ = [
    "load_config", "parse_config", "Problem", "ConfigProblems", "Config", "DeviceConfig",
    "GpioConfig", "SensorConfig", "FlappingConfig", "OutputsConfig", "OutputConfig",
    "MqttConfig", "TlsConfig", "SigningConfig", "BufferConfig", "CommandsConfig",
    "CareConfig", "NightDoorRule", "InactivityRule",
]

TOP_KEYS = ("device", "state_dir", "gpio", "sensors", "outputs", "mqtt", "signing", "buffer",
            "commands", "care", "heartbeat_s")
MQTT_KEYS = ("host", "port", "protocol", "client_id", "keepalive_s", "topic_prefix", "tls",
             "username", "password_file", "allow_insecure", "ack_timeout_s", "max_inflight",
             "max_publish_rate", "max_payload_bytes")
TLS_KEYS = ("ca_file", "cert_file", "key_file", "insecure_skip_verify")
PATTERN_KEYS = ("pending", "sent", "chirp", "locate")

_PASSWORD = ("passwords must come from a file: use password_file: (e.g. "
             "${CREDENTIALS_DIRECTORY}/mqtt-password, mode 0600) and remove this key")
_KEY = ("keys and secrets must come from a file: use key_file: (mode 0600) and remove "
        "this key")
SECRET_HINTS = {"password": _PASSWORD, "passwd": _PASSWORD, "pass": _PASSWORD,
                "key": _KEY, "secret": _KEY, "private_key": _KEY, "token": _KEY,
                "hs256_secret": _KEY}

NAME_PATTERN = r"[A-Za-z0-9._-]+"
NAME_RULE = "may contain only letters, digits, '.', '_' and '-'"
MS = "milliseconds"
SEC = "seconds"
#: (converter, for each timing key); upper bounds catch units mixed up (µs for ms, ms for s).
_TIMING = {
    "debounce_ms": as_int(1, 10000, MS),
    "hold_ms": as_int(0, 59999, MS),  # the stuck alarm comes at 60 s: a hold must be shorter
    "open_ms": as_int(1, 600000, MS),
    "close_ms": as_int(1, 600000, MS),
    "confirm_ms": as_int(1, 60000, MS),
    "pulse_ms": as_int(1, 10000, MS),
    "pulses": as_int(1, 20),
    "pulse_window_s": as_number(hi=600, unit=SEC, above=0),
    "clear_ms": as_int(1, 3600000, MS),
}


#: docs/spec.md §6: on 3.1.1 the agent deletes an event on a PUBACK that proves nothing
PROTOCOL_311_WARNING = (
    "MQTT 3.1.1 has no PUBACK reason codes, and some brokers (mosquitto among them) "
    "acknowledge a publish their ACL refused: the agent then deletes an event the cloud "
    "never got. Use protocol: \"5\" unless the broker speaks only 3.1.1 (docs/brokers.md)")


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
    sensors, pins = _sensors(top, sink)
    outputs = _outputs(top, sink, pins)
    _check_pins(pins, sink)
    config = Config(
        device=device,
        state_dir=top.get("state_dir", paths, DEFAULT_STATE_DIR),
        gpio=_gpio(top),
        sensors=sensors,
        outputs=outputs,
        mqtt=_mqtt(top, sink, device, paths),
        signing=_signing(top, sink, paths),
        buffer=_buffer(top),
        commands=_commands(top, paths),
        care=_care(top, sink),
        heartbeat_s=top.get("heartbeat_s", as_int(10, 86400, SEC), DEFAULT_HEARTBEAT_S),
        source=source.absolute(),
        warnings=tuple(sink.warnings),
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


def _map(node: Node, path: str, sink: Sink, keys: Tuple[str, ...], **kw: Any) -> MapReader:
    return MapReader(node, path, sink, keys, hints=SECRET_HINTS, **kw)


def _section(top: MapReader, key: str, keys: Tuple[str, ...]) -> MapReader:
    return top.section(key, keys, hints=SECRET_HINTS)


#: highest lgpio chip number accepted (/dev/gpiochipN)
MAX_GPIO_CHIP = 63


def _gpio(top: MapReader) -> GpioConfig:
    """``gpio``: the backend, and the override for boards without a Pi revision code."""
    gpio = _section(top, "gpio", ("backend", "chip", "board_revision"))
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


def _required_section(top: MapReader, key: str, sink: Sink, example: str) -> Optional[Node]:
    node = top.value_node(key)
    if node is None:
        sink.add(top.node, key, f"missing: the {key} section is required, e.g. {example}")
    return node


def as_name(node: Node) -> str:
    name = as_pattern(NAME_PATTERN, NAME_RULE)(node)
    if len(name) > MAX_NAME_CHARS:
        raise Bad(f"is {len(name)} characters long; a name has at most {MAX_NAME_CHARS} "
                  f"(it is part of every event's topic and claims)")
    return name


def as_pin(node: Node) -> int:
    value = as_int()(node)
    if not 0 <= value <= MAX_BCM_PIN:
        raise Bad(f"{value} is not a BCM GPIO (0-{MAX_BCM_PIN}); use the GPIO number, "
                  f"not the header pin number")
    return value


def as_timezone(node: Node) -> str:
    name = as_text(node)
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    except ImportError:  # pragma: no cover - Python < 3.9
        return name
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise Bad(f"{name!r} is not a known IANA time zone name (e.g. Asia/Shanghai, "
                  f"Europe/London; `timedatectl list-timezones` lists them)") from None
    return name


def _device(top: MapReader, sink: Sink) -> DeviceConfig:
    node = _required_section(top, "device", sink, "device: {id: gw-0001}")
    if node is None:
        return DeviceConfig("")
    d = _map(node, "device", sink, ("id", "timezone"))
    return DeviceConfig(
        id=d.require("id", as_name, "", "the gateway's name in topics and in every event"),
        timezone=d.optional("timezone", as_timezone))


# --- sensors and outputs ---------------------------------------------------------------

_PinUse = Tuple[int, str, Node]  # pin, field path of the owner, pin value node


def _sensors(top: MapReader, sink: Sink) -> Tuple[Tuple[SensorConfig, ...], List[_PinUse]]:
    node = _required_section(top, "sensors", sink, "sensors: [{name: sos, kind: sos_button, pin: 17}]")
    if node is None:
        return (), []
    if not isinstance(node, yaml.SequenceNode):
        sink.add(node, "sensors", f"expected a list of sensors (each line starting with '- '), "
                 f"got {describe(node)}")
        return (), []
    if not node.value:
        sink.add(node, "sensors", "no sensors: a gateway needs at least one to raise any alarm")
    sensors: List[SensorConfig] = []
    pins: List[_PinUse] = []
    names: Dict[str, Tuple[str, Node]] = {}
    for i, item in enumerate(node.value):
        path = f"sensors[{i}]"
        sensor, reader = _sensor(item, path, sink)
        sensors.append(sensor)
        pin_node = reader.value_node("pin")
        if pin_node is not None and sensor.pin >= 0:
            pins.append((sensor.pin, f"{path} ({sensor.name or 'unnamed'})", pin_node))
        name_node = reader.value_node("name")
        if name_node is None or not sensor.name:
            continue
        if sensor.name in RESERVED_SENSOR_NAMES:
            sink.add(name_node, f"{path}.name", f"{sensor.name!r} is reserved for the agent's "
                     f"own events; choose another name")
        elif sensor.name in names:
            other, other_node = names[sensor.name]
            sink.add(name_node, f"{path}.name", f"duplicate sensor name {sensor.name!r}: "
                     f"{other} (line {other_node.start_mark.line + 1}) has it; names must be unique")
        else:
            names[sensor.name] = (path, name_node)
    return tuple(sensors), pins


def _peek_kind(node: Node) -> Optional[str]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "kind" \
                    and isinstance(value, yaml.ScalarNode) and value.value in SENSOR_KINDS:
                return str(value.value)
    return None


def _sensor(node: Node, path: str, sink: Sink) -> Tuple[SensorConfig, MapReader]:
    kind = _peek_kind(node)
    all_timing = tuple(k for kind_keys in KIND_DEFAULTS.values() for k in kind_keys)
    keys = COMMON_SENSOR_KEYS + (tuple(KIND_DEFAULTS[kind]) if kind else all_timing)

    def stranger(key: str) -> Optional[str]:
        if kind and key in all_timing:
            return f"{key} is not a key of a {kind} sensor; its keys are {', '.join(keys)}"
        return None

    r = _map(node, path, sink, keys, stranger=stranger)
    r.require("kind", as_choice(SENSOR_KINDS), "")
    timing: Dict[str, Any] = {}
    for key, default in (KIND_DEFAULTS[kind].items() if kind else ()):
        timing[key] = r.get(key, _TIMING[key], default)
    if kind == "smoke" and timing["pulses"] * timing["pulse_ms"] >= timing["pulse_window_s"] * 1000:
        sink.add(r.node_or_self("pulse_window_s"), f"{path}.pulse_window_s",
                 f"{timing['pulses']} pulses of {timing['pulse_ms']} ms cannot fit in "
                 f"{timing['pulse_window_s']:g} s; lengthen pulse_window_s or shorten pulse_ms")
    sensor = SensorConfig(
        name=r.require("name", as_name, ""),
        kind=kind or "",
        pin=r.require("pin", as_pin, -1, "the BCM GPIO number the sensor is wired to"),
        pull=r.get("pull", as_choice(PULLS), DEFAULT_PULL),
        active=r.get("active", as_choice(LEVELS), DEFAULT_ACTIVE.get(kind or "", "low")),
        flapping=_flapping(r, kind or "", sink),
        **timing,
    )
    return sensor, r


def _flapping(r: MapReader, kind: str, sink: Sink) -> Optional[FlappingConfig]:
    default = DEFAULT_FLAPPING.get(kind)
    node = r.value_node("flapping")
    if node is None:
        return default
    base = default or FLAPPING_FALLBACK
    if isinstance(node, yaml.ScalarNode):
        on = r.get("flapping", as_bool, True)
        return base if on else None
    f = _map(node, r.sub("flapping"), sink, ("max_edges", "window_s", "quiet_s"))
    return FlappingConfig(
        max_edges=f.get("max_edges", as_int(2, 1000), base.max_edges),
        window_s=f.get("window_s", as_number(hi=3600, unit=SEC, above=0), base.window_s),
        quiet_s=f.get("quiet_s", as_number(hi=86400, unit=SEC, above=0), base.quiet_s))


def _outputs(top: MapReader, sink: Sink, pins: List[_PinUse]) -> OutputsConfig:
    o = _section(top, "outputs", ("buzzer", "led", "patterns"))
    found: Dict[str, Optional[OutputConfig]] = {}
    for name in ("buzzer", "led"):
        node = o.value_node(name)
        if node is None:
            found[name] = None
            continue
        r = _map(node, o.sub(name), sink, ("pin", "active"))
        pin = r.require("pin", as_pin, -1)
        found[name] = OutputConfig(pin=pin, active=r.get("active", as_choice(LEVELS), "high"))
        pin_node = r.value_node("pin")
        if pin_node is not None and pin >= 0:
            pins.append((pin, o.sub(name), pin_node))
    return OutputsConfig(buzzer=found["buzzer"], led=found["led"],
                         patterns=_patterns(o, sink))


def _patterns(o: MapReader, sink: Sink) -> Patterns:
    """``outputs.patterns``: [on_s, off_s] (pending, sent) or [on_s, off_s, count]."""
    default = Patterns()
    node = o.value_node("patterns")
    if node is None:
        return default
    p = _map(node, o.sub("patterns"), sink, PATTERN_KEYS)
    values = {key: p.get(key, as_blink(with_count=key in ("chirp", "locate"), max_s=MAX_PATTERN_S,
                                       max_count=MAX_PATTERN_COUNT), getattr(default, key))
              for key in PATTERN_KEYS}
    return Patterns(**values)


def _check_pins(pins: List[_PinUse], sink: Sink) -> None:
    first: Dict[int, Tuple[str, Node]] = {}
    for pin, owner, node in pins:
        if pin in first:
            other, other_node = first[pin]
            path = owner.split(" ", 1)[0] + ".pin"
            sink.add(node, path, f"pin {pin} is already used by {other} (line "
                     f"{other_node.start_mark.line + 1}); each GPIO can serve one sensor or output")
        else:
            first[pin] = (owner, node)


# --- mqtt ------------------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    """True for localhost names and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def as_host(node: Node) -> str:
    host = as_text(node).strip()
    if "://" in host or "/" in host or " " in host:
        raise Bad(f"{host!r} is not a host name; give only the name or address (e.g. "
                  f"broker.example.org), without mqtts:// or a path; the port goes in port:")
    if host.count(":") == 1:
        raise Bad(f"{host!r} includes a port; put the port in port: and only the name in host:")
    return host


def as_topic_prefix(node: Node) -> str:
    prefix = as_text(node)
    if any(c in prefix for c in "+#\0") or prefix.startswith(("/", "$")) or prefix.endswith("/") \
            or "//" in prefix:
        raise Bad(f"{prefix!r} is not a usable topic prefix: no '+', '#', empty levels, or "
                  f"leading '/' or '$' (e.g. homecare/gw-0001)")
    size = len(prefix.encode("utf-8"))
    if size > MAX_TOPIC_PREFIX_BYTES:
        raise Bad(f"is {size} bytes long; a topic prefix has at most {MAX_TOPIC_PREFIX_BYTES} "
                  f"(with /events/ and a sensor name it must fit brokers' topic limits)")
    return prefix


def _tls(m: MapReader, sink: Sink, paths: Any) -> Optional[TlsConfig]:
    node = m.value_node("tls")
    if node is None:
        return TlsConfig()
    if isinstance(node, yaml.ScalarNode):
        return TlsConfig() if m.get("tls", as_bool, True) else None
    t = _map(node, m.sub("tls"), sink, TLS_KEYS)
    tls = TlsConfig(ca_file=t.optional("ca_file", paths), cert_file=t.optional("cert_file", paths),
                    key_file=t.optional("key_file", paths),
                    insecure_skip_verify=t.get("insecure_skip_verify", as_bool, False))
    if (t.value_node("cert_file") is None) != (t.value_node("key_file") is None):
        have, need = ("cert_file", "key_file") if t.value_node("key_file") is None \
            else ("key_file", "cert_file")
        sink.add(t.node_or_self(have), t.sub(need), f"{have} is set without {need}; a client "
                 f"certificate needs both files (or neither)")
    return tls


def _mqtt(top: MapReader, sink: Sink, device: DeviceConfig, paths: Any) -> MqttConfig:
    node = _required_section(top, "mqtt", sink, "mqtt: {host: broker.example.org}")
    m = _map(node, "mqtt", sink, MQTT_KEYS) if node is not None else _section(top, "mqtt", MQTT_KEYS)
    host = m.require("host", as_host, "", "the broker's name or address") if node is not None else ""
    tls = _tls(m, sink, paths)
    mqtt = MqttConfig(
        host=host,
        port=m.get("port", as_int(1, 65535), PORT_TLS if tls else PORT_PLAIN),
        protocol=m.get("protocol", as_choice(MQTT_PROTOCOLS), DEFAULT_PROTOCOL),
        client_id=m.get("client_id", as_text, device.id),
        keepalive_s=m.get("keepalive_s", as_int(5, 65535, SEC), DEFAULT_KEEPALIVE_S),
        topic_prefix=m.get("topic_prefix", as_topic_prefix, f"homecare/{device.id}"),
        tls=tls,
        username=m.optional("username", as_text),
        password_file=m.optional("password_file", paths),
        allow_insecure=m.get("allow_insecure", as_bool, False),
        ack_timeout_s=m.get("ack_timeout_s", as_number(hi=3600, unit=SEC, above=0), 20.0),
        max_inflight=m.get("max_inflight", as_int(1, 65535), 20),
        max_publish_rate=m.optional("max_publish_rate", as_number(unit="publishes per second", above=0)),
        max_payload_bytes=m.get("max_payload_bytes", as_int(1, MQTT_MAX_PAYLOAD, "bytes"),
                                DEFAULT_MAX_PAYLOAD_BYTES),
    )
    if host and not is_loopback(host) and not mqtt.allow_insecure:
        if tls is None:
            sink.add(m.node_or_self("tls"), "mqtt.tls", f"plaintext MQTT to {host} is refused: "
                     f"events and passwords would cross the network unencrypted. Remove "
                     f"`tls: false`, or set allow_insecure: true if this network is trusted")
        elif tls.insecure_skip_verify:
            t_node = m.value_node("tls")
            where = t_node if t_node is not None else m.node
            sink.add(where, "mqtt.tls.insecure_skip_verify", f"an unverified TLS connection to "
                     f"{host} is refused: anyone on the path could pose as the broker. Give "
                     f"ca_file: instead, or set allow_insecure: true if you accept the risk")
    if mqtt.protocol == "3.1.1":
        sink.warn(m.value_node("protocol"), "mqtt.protocol", PROTOCOL_311_WARNING)
    if mqtt.password_file and not mqtt.username and mqtt.protocol == "3.1.1":
        sink.add(m.node_or_self("password_file"), "mqtt.username", "MQTT 3.1.1 sends a "
                 "password only with a user name: set username: (or use protocol: \"5\")")
    return mqtt


# --- signing, buffer, commands, care ---------------------------------------------------

def _signing(top: MapReader, sink: Sink, paths: Any) -> SigningConfig:
    s = _section(top, "signing", ("algorithm", "key_file", "kid"))
    signing = SigningConfig(algorithm=s.get("algorithm", as_choice(ALGORITHMS), "EdDSA"),
                            key_file=s.get("key_file", paths, SigningConfig.key_file),
                            kid=s.optional("kid", as_text))
    if signing.algorithm == "HS256" and s.value_node("kid") is None:
        sink.add(s.node_or_self("algorithm"), "signing.kid", "is required with HS256 (there is "
                 "no public key to take a thumbprint of): set kid: to the name the cloud knows "
                 "this secret by")
    return signing


def _buffer(top: MapReader) -> BufferConfig:
    b = _section(top, "buffer", ("max_events", "max_mb", "min_free_mb"))
    return BufferConfig(max_events=b.get("max_events", as_int(1, 100_000_000), 100000),
                        max_mb=b.get("max_mb", as_number(unit="MB", above=0), 64.0),
                        min_free_mb=b.get("min_free_mb", as_number(lo=0, unit="MB"), 50.0))


def _commands(top: MapReader, paths: Any) -> CommandsConfig:
    c = _section(top, "commands", ("enabled", "algorithm", "key_file"))
    return CommandsConfig(enabled=c.get("enabled", as_bool, True),
                          algorithm=c.get("algorithm", as_choice(ALGORITHMS), "EdDSA"),
                          key_file=c.get("key_file", paths, CommandsConfig.key_file))


def _care(top: MapReader, sink: Sink) -> CareConfig:
    c = _section(top, "care", ("night_door", "inactivity"))
    n = c.section("night_door", ("enabled", "from", "to"), hints=SECRET_HINTS)
    before = len(sink.problems)
    night = NightDoorRule(enabled=n.get("enabled", as_bool, False),
                          from_=n.get("from", as_hhmm, "22:00"), to=n.get("to", as_hhmm, "06:00"))
    if night.from_ == night.to and n.value_node("to") is not None and len(sink.problems) == before:
        sink.add(n.node_or_self("to"), n.sub("to"), f"from and to are both {night.to}: the "
                 f"night would be empty; e.g. from: \"22:00\", to: \"06:00\"")
    i = c.section("inactivity", ("enabled", "hours", "from", "to"), hints=SECRET_HINTS)
    inactivity = InactivityRule(enabled=i.get("enabled", as_bool, False),
                                hours=i.get("hours", as_number(hi=168, unit="hours", above=0), 12.0),
                                from_=i.get("from", as_hhmm, "07:00"), to=i.get("to", as_hhmm, "22:00"))
    return CareConfig(night_door=night, inactivity=inactivity)
