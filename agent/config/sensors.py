"""The ``sensors:`` and ``outputs:`` sections (docs/spec.md §10), and the pins they claim."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import yaml

from agent.alarms.feedback import COUNTED, MAX_PATTERN_COUNT, MAX_PATTERN_S, Patterns
from agent.config.fields import MS, SEC, as_name, as_pin, mapping, required_section, section
from agent.config.reader import (MapReader, Node, Sink, as_blink, as_bool, as_choice, as_int,
                                 as_number, describe)
from agent.config.schema import (COMMON_SENSOR_KEYS, DEFAULT_ACTIVE, DEFAULT_FLAPPING,
                                 DEFAULT_PULL, DEFAULT_WIRING_FAULT_MS, FLAPPING_FALLBACK,
                                 KIND_DEFAULTS, KIND_EXTRA_KEYS, KIND_PULL, LEVELS, NC_SUFFIX, PULLS,
                                 RESERVED_SENSOR_NAMES, SENSOR_KINDS, OutputConfig,
                                 OutputsConfig, SensorConfig)
from drivers.debounce import FlappingPolicy
from drivers.sos import STUCK_S

PATTERN_KEYS = ("pending", "sent", "chirp", "locate", "escalate", "warn")

#: (converter, for each timing key); upper bounds catch units mixed up (µs for ms, ms for s).
_TIMING = {
    "debounce_ms": as_int(1, 10000, MS),
    "hold_ms": as_int(0, STUCK_S * 1000 - 1, MS),  # a hold must end before the stuck alarm
    "open_ms": as_int(1, 600000, MS),
    "close_ms": as_int(1, 600000, MS),
    "confirm_ms": as_int(1, 60000, MS),
    "pulse_ms": as_int(1, 10000, MS),
    "pulses": as_int(1, 20),
    "pulse_window_s": as_number(hi=600, unit=SEC, above=0),
    "clear_ms": as_int(1, 3600000, MS),
    # docs/spec.md §13.1: a mains report delay of hours would hide an outage all day
    "report_delay_s": as_number(hi=3600, unit=SEC, above=0),
    "jitter_s": as_number(lo=0, hi=3600, unit=SEC),
    "restore_delay_s": as_number(hi=3600, unit=SEC, above=0),
    "low_ms": as_int(1, 3600000, MS),
    "ok_ms": as_int(1, 3600000, MS),
    "hold_s": as_number(hi=3600, unit=SEC, above=0),
    "report": as_bool,
    "report_every_s": as_number(lo=1, hi=86400, unit=SEC),
}
_WIRING_FAULT = as_int(1, 60000, MS)

PinUse = Tuple[int, str, Node]  # pin, field path of the owner, pin value node


def read_sensors(top: MapReader, sink: Sink) -> Tuple[Tuple[SensorConfig, ...], List[PinUse]]:
    node = required_section(top, "sensors", sink, "sensors: [{name: sos, kind: sos_button, pin: 17}]")
    if node is None:
        return (), []
    if not isinstance(node, yaml.SequenceNode):
        sink.add(node, "sensors", f"expected a list of sensors (each line starting with '- '), "
                 f"got {describe(node)}")
        return (), []
    if not node.value:
        sink.add(node, "sensors", "no sensors: a gateway needs at least one to raise any alarm")
    sensors: List[SensorConfig] = []
    pins: List[PinUse] = []
    names: Dict[str, Tuple[str, Node]] = {}
    for i, item in enumerate(node.value):
        path = f"sensors[{i}]"
        sensor, reader = _sensor(item, path, sink)
        sensors.append(sensor)
        pin_node = reader.value_node("pin")
        if pin_node is not None and sensor.pin >= 0:
            pins.append((sensor.pin, f"{path} ({sensor.name or 'unnamed'})", pin_node))
        nc_node = reader.value_node("pin_nc")
        if nc_node is not None and sensor.pin_nc is not None:
            pins.append((sensor.pin_nc, f"{path}.pin_nc ({sensor.name or 'unnamed'})", nc_node))
        name_node = reader.value_node("name")
        if name_node is None or not sensor.name:
            continue
        if sensor.name.endswith(NC_SUFFIX):
            sink.add(name_node, f"{path}.name", f"{sensor.name!r} ends in {NC_SUFFIX!r}, which "
                     f"names a smoke sensor's NC contact (pin_nc); choose another name")
        elif sensor.name in RESERVED_SENSOR_NAMES:
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
    all_timing = tuple(dict.fromkeys(k for kind in SENSOR_KINDS for k in _own_keys(kind)))
    keys = COMMON_SENSOR_KEYS + (_own_keys(kind) if kind else all_timing)

    def stranger(key: str) -> Optional[str]:
        if kind and key in all_timing:
            return f"{key} is not a key of a {kind} sensor; its keys are {', '.join(keys)}"
        return None

    r = mapping(node, path, sink, keys, stranger=stranger)
    r.require("kind", as_choice(SENSOR_KINDS), "")
    timing: Dict[str, Any] = {}
    for key, default in (KIND_DEFAULTS[kind].items() if kind else ()):
        timing[key] = r.get(key, _TIMING[key], default)
    if kind == "smoke" and timing["pulses"] * timing["pulse_ms"] >= timing["pulse_window_s"] * 1000:
        sink.add(r.node_or_self("pulse_window_s"), f"{path}.pulse_window_s",
                 f"{timing['pulses']} pulses of {timing['pulse_ms']} ms cannot fit in "
                 f"{timing['pulse_window_s']:g} s; lengthen pulse_window_s or shorten pulse_ms")
    sensor = SensorConfig(
        **_form_c(r, kind),
        name=r.require("name", as_name, ""),
        kind=kind or "",
        pin=r.require("pin", as_pin, -1, "the BCM GPIO number the sensor is wired to"),
        pull=r.get("pull", as_choice(PULLS), KIND_PULL.get(kind or "", DEFAULT_PULL)),
        active=r.get("active", as_choice(LEVELS), DEFAULT_ACTIVE.get(kind or "", "low")),
        flapping=_flapping(r, kind or "", sink),
        **timing,
    )
    return sensor, r


def _own_keys(kind: str) -> Tuple[str, ...]:
    return tuple(KIND_DEFAULTS[kind]) + KIND_EXTRA_KEYS.get(kind, ())


def _form_c(r: MapReader, kind: Optional[str]) -> Dict[str, Any]:
    """A smoke sensor's ``pin_nc`` and ``wiring_fault_ms`` (docs/spec.md §13.2)."""
    if kind != "smoke":
        return {}
    pin_nc = r.get("pin_nc", as_pin, None)
    fault_ms = r.get("wiring_fault_ms", _WIRING_FAULT, DEFAULT_WIRING_FAULT_MS)
    if pin_nc is None and r.value_node("wiring_fault_ms") is not None:
        r.sink.add(r.node_or_self("wiring_fault_ms"), r.sub("wiring_fault_ms"),
                   "wiring_fault_ms supervises a Form C relay's NC contact: add pin_nc "
                   "(the GPIO the NC terminal is wired to) or remove wiring_fault_ms")
    return {"pin_nc": pin_nc, "wiring_fault_ms": fault_ms}


def _flapping(r: MapReader, kind: str, sink: Sink) -> Optional[FlappingPolicy]:
    default = DEFAULT_FLAPPING.get(kind)
    node = r.value_node("flapping")
    if node is None:
        return default
    base = default or FLAPPING_FALLBACK
    if isinstance(node, yaml.ScalarNode):
        on = r.get("flapping", as_bool, True)
        return base if on else None
    f = mapping(node, r.sub("flapping"), sink, ("max_edges", "window_s", "quiet_s"))
    return FlappingPolicy(
        max_edges=f.get("max_edges", as_int(2, 1000), base.max_edges),
        window_s=f.get("window_s", as_number(hi=3600, unit=SEC, above=0), base.window_s),
        quiet_s=f.get("quiet_s", as_number(hi=86400, unit=SEC, above=0), base.quiet_s))


def read_outputs(top: MapReader, sink: Sink, pins: List[PinUse]) -> OutputsConfig:
    o = section(top, "outputs", ("buzzer", "led", "patterns"))
    found: Dict[str, Optional[OutputConfig]] = {}
    for name in ("buzzer", "led"):
        node = o.value_node(name)
        if node is None:
            found[name] = None
            continue
        r = mapping(node, o.sub(name), sink, ("pin", "active"))
        pin = r.require("pin", as_pin, -1)
        active = r.get("active", as_choice(LEVELS), OutputConfig.active)
        found[name] = OutputConfig(pin=pin, active=active)
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
    p = mapping(node, o.sub("patterns"), sink, PATTERN_KEYS)
    values = {key: p.get(key, as_blink(with_count=key in COUNTED, max_s=MAX_PATTERN_S,
                                       max_count=MAX_PATTERN_COUNT), getattr(default, key))
              for key in PATTERN_KEYS}
    return Patterns(**values)


def check_pins(pins: List[PinUse], sink: Sink) -> None:
    first: Dict[int, Tuple[str, Node]] = {}
    for pin, owner, node in pins:
        if pin in first:
            other, other_node = first[pin]
            path = owner.split(" ", 1)[0]
            path += "" if path.endswith(".pin_nc") else ".pin"
            sink.add(node, path, f"pin {pin} is already used by {other} (line "
                     f"{other_node.start_mark.line + 1}); each GPIO can serve one sensor or output")
        else:
            first[pin] = (owner, node)

