"""The typed, frozen shape of the one config file (docs/spec.md §10).

:func:`agent.config.model.load_config` builds these from YAML after checking every key;
the objects themselves trust their values. Every default of docs/spec.md §10 lives here,
once, in the ``DEFAULT_*`` tables and the dataclass defaults.

Units are in the names: ``*_ms`` are whole milliseconds (``int``), ``*_s`` are
seconds (``float``, except ``keepalive_s`` and ``heartbeat_s`` which are ``int``).
Every path is absolute: ``${VARS}`` expanded and relative paths resolved against
the config file's folder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

from agent.config.reader import Problem
from agent.alarms.feedback import Patterns

SENSOR_KINDS = ("sos_button", "door", "smoke")
GPIO_BACKENDS = ("auto", "lgpio", "rpigpio", "native", "mock")
PULLS = ("up", "down", "none")
LEVELS = ("low", "high")
MQTT_PROTOCOLS = ("3.1.1", "5")
ALGORITHMS = ("EdDSA", "HS256")
RESERVED_SENSOR_NAMES = ("agent",)
MAX_BCM_PIN = 27
#: longest device id or sensor name, and topic prefix (UTF-8 bytes). Both go into every
#: topic, ``{prefix}/events/{name}``: 128 + 8 + 64 = 200 bytes stays under the strictest
#: common broker limit (AWS IoT Core: 256-byte topics; MQTT itself allows 65,535), and a
#: name is shown to people in care-centre screens, where 64 characters is already long.
MAX_NAME_CHARS = 64
MAX_TOPIC_PREFIX_BYTES = 128

#: Keys every sensor has, whatever its kind.
COMMON_SENSOR_KEYS = ("name", "kind", "pin", "pull", "active", "flapping")

#: Each kind's own timing keys and their defaults (docs/spec.md §3 and §10).
KIND_DEFAULTS: Mapping[str, Mapping[str, float]] = {
    "sos_button": {"debounce_ms": 30, "hold_ms": 0},
    "door": {"open_ms": 500, "close_ms": 1000},
    "smoke": {"confirm_ms": 1000, "pulse_ms": 50, "pulses": 3, "pulse_window_s": 10.0,
              "clear_ms": 15000},
}

#: The level that means pressed / open / alarm when ``active:`` is omitted (docs/spec.md §10).
DEFAULT_ACTIVE = {"sos_button": "low", "door": "high", "smoke": "low"}
DEFAULT_PULL = "up"


@dataclass(frozen=True)
class FlappingConfig:
    """``max_edges`` raw edges within ``window_s`` seconds = flapping; over ``quiet_s`` after its last burst edge (docs/spec.md §3)."""

    max_edges: int
    window_s: float
    quiet_s: float


#: ``None`` = no flapping detection for that kind by default (smoke, docs/spec.md §3).
DEFAULT_FLAPPING: Mapping[str, Optional[FlappingConfig]] = {
    "sos_button": FlappingConfig(20, 10.0, 60.0),
    "door": FlappingConfig(16, 10.0, 60.0),
    "smoke": None,
}
#: What ``flapping: true`` or a partial mapping fills in for a kind whose default is off.
FLAPPING_FALLBACK = FlappingConfig(16, 10.0, 60.0)


@dataclass(frozen=True)
class SensorConfig:
    """One input. Fields that do not belong to the sensor's kind hold 0 (unused).

    ``active`` is the *pin* level ('low' or 'high') that means pressed / open / alarm.
    :meth:`timing` gives only the kind's own timing keys, ready to pass to a driver.
    """

    name: str
    kind: str
    pin: int
    pull: str = DEFAULT_PULL
    active: str = "low"
    debounce_ms: int = 0
    hold_ms: int = 0
    open_ms: int = 0
    close_ms: int = 0
    confirm_ms: int = 0
    pulse_ms: int = 0
    pulses: int = 0
    pulse_window_s: float = 0.0
    clear_ms: int = 0
    flapping: Optional[FlappingConfig] = None

    @property
    def active_high(self) -> bool:
        return self.active == "high"

    def timing(self) -> Dict[str, float]:
        """The kind's own timing keys and values, e.g. ``{'open_ms': 500, 'close_ms': 1000}``."""
        return {key: getattr(self, key) for key in KIND_DEFAULTS.get(self.kind, {})}


@dataclass(frozen=True)
class DeviceConfig:
    id: str
    #: IANA name for care rules; None = the system's local time zone.
    timezone: Optional[str] = None


@dataclass(frozen=True)
class GpioConfig:
    backend: str = "auto"
    #: lgpio's /dev/gpiochipN; None = gpiozero's choice (0, or 4 on a Pi 5)
    chip: Optional[int] = None
    #: Pi revision code to assume on a board without one (docs/spec.md §2); None = read it
    board_revision: Optional[int] = None


@dataclass(frozen=True)
class OutputConfig:
    pin: int
    active: str = "high"


@dataclass(frozen=True)
class OutputsConfig:
    buzzer: Optional[OutputConfig] = None
    led: Optional[OutputConfig] = None
    #: project-added: blink and beep timings (agent.alarms.feedback.Patterns has the defaults)
    patterns: Patterns = Patterns()


@dataclass(frozen=True)
class TlsConfig:
    #: None = the system's CA store.
    ca_file: Optional[Path] = None
    cert_file: Optional[Path] = None
    key_file: Optional[Path] = None
    #: project-added: no certificate or hostname check (loopback, or allow_insecure).
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class MqttConfig:
    host: str
    port: int
    protocol: str
    client_id: str
    keepalive_s: int
    topic_prefix: str
    #: None = plaintext MQTT (``tls: false``).
    tls: Optional[TlsConfig]
    username: Optional[str] = None
    password_file: Optional[Path] = None
    allow_insecure: bool = False
    ack_timeout_s: float = 20.0
    max_inflight: int = 20
    #: publishes per second; None = no limit.
    max_publish_rate: Optional[float] = None
    #: project-added key: the broker's largest accepted payload (default AWS IoT Core's
    #: 128 KB); an event signed larger is still stored and sent, and logged as an error.
    max_payload_bytes: int = 131072  # DEFAULT_MAX_PAYLOAD_BYTES


@dataclass(frozen=True)
class SigningConfig:
    algorithm: str = "EdDSA"
    key_file: Path = Path("/etc/homecare-agent/device-key.pem")
    #: None = RFC 7638 thumbprint of the public key (EdDSA only).
    kid: Optional[str] = None


@dataclass(frozen=True)
class BufferConfig:
    max_events: int = 100000
    max_mb: float = 64.0
    min_free_mb: float = 50.0


@dataclass(frozen=True)
class CommandsConfig:
    enabled: bool = True
    algorithm: str = "EdDSA"
    key_file: Path = Path("/etc/homecare-agent/cloud-public.pem")


@dataclass(frozen=True)
class NightDoorRule:
    enabled: bool = False
    from_: str = "22:00"
    to: str = "06:00"


@dataclass(frozen=True)
class InactivityRule:
    enabled: bool = False
    hours: float = 12.0
    from_: str = "07:00"
    to: str = "22:00"


@dataclass(frozen=True)
class CareConfig:
    night_door: NightDoorRule = field(default_factory=NightDoorRule)
    inactivity: InactivityRule = field(default_factory=InactivityRule)


@dataclass(frozen=True)
class Config:
    """The whole, checked config file. ``source`` is the file it came from."""

    device: DeviceConfig
    state_dir: Path
    gpio: GpioConfig
    sensors: Tuple[SensorConfig, ...]
    outputs: OutputsConfig
    mqtt: MqttConfig
    signing: SigningConfig
    buffer: BufferConfig
    commands: CommandsConfig
    care: CareConfig
    heartbeat_s: int
    source: Path
    #: choices that are valid but may surprise (``validate`` prints them, exit 0)
    warnings: Tuple[Problem, ...] = ()

    def sensor(self, name: str) -> SensorConfig:
        for s in self.sensors:
            if s.name == name:
                return s
        raise KeyError(name)

    def topic_events(self, sensor: str) -> str:
        """``{prefix}/events/{sensor}`` (docs/spec.md §5); ``sensor`` may be ``agent``."""
        return f"{self.mqtt.topic_prefix}/events/{sensor}"

    def topic_status(self) -> str:
        return f"{self.mqtt.topic_prefix}/status"

    def topic_commands(self) -> str:
        return f"{self.mqtt.topic_prefix}/commands"


DEFAULT_STATE_DIR = Path("/var/lib/homecare-agent")
DEFAULT_HEARTBEAT_S = 300
DEFAULT_KEEPALIVE_S = 30
DEFAULT_PROTOCOL = "5"
PORT_TLS = 8883
PORT_PLAIN = 1883
#: AWS IoT Core's payload limit (128 KB), the default of ``mqtt.max_payload_bytes``
DEFAULT_MAX_PAYLOAD_BYTES = 131072
#: the most an MQTT packet can carry (remaining length 268,435,455)
MQTT_MAX_PAYLOAD = 268435455
