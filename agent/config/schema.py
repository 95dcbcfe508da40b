"""The typed, frozen shape of the one config file (docs/spec.md §10).

:func:`agent.config.model.load_config` builds these from YAML after checking every key;
the objects themselves trust their values. Every default of docs/spec.md §10 is defined
once: here (the ``DEFAULT_*`` tables and the dataclass defaults), or, for a section the
runtime takes as it is, in that runtime value, which the config then holds:
``buffer`` is the outbox's :class:`OutboxLimits`, ``care`` the rules' :class:`CareSettings`,
``outputs.patterns`` the feedback's :class:`Patterns`, a sensor's ``flapping`` the drivers'
:class:`FlappingPolicy`; the delivery window's defaults come from :class:`WindowSettings`.

Units are in the names: ``*_ms`` are whole milliseconds (``int``), ``*_s`` are
seconds (``float``, except ``keepalive_s`` and ``heartbeat_s`` which are ``int``).
Every path is absolute: ``${VARS}`` expanded and relative paths resolved against
the config file's folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

from agent.alarms.book import AlarmSchedule
from agent.rules.testreport import TestReportSettings
from agent.alarms.feedback import Patterns
from agent.config.reader import Problem
from agent.delivery.endpoints import Endpoint
from agent.delivery.window import WindowSettings
from agent.outbox.policy import OutboxLimits
from agent.rules.care import CareSettings
from agent.rules.settings import CareRulesV2
from agent.wire import commands_topic, events_topic, status_topic
from drivers.debounce import DOOR_FLAPPING, SOS_FLAPPING, FlappingPolicy
from drivers.door import DEFAULTS as DOOR_DEFAULTS
from drivers.motion import DEFAULTS as MOTION_DEFAULTS
from drivers.power import BATTERY_DEFAULTS, MAINS_DEFAULTS
from drivers.smoke import DEFAULTS as SMOKE_DEFAULTS
from drivers.smoke import WIRING_FAULT_MS
from drivers.sos import DEFAULTS as SOS_DEFAULTS
from drivers.tamper import DEFAULTS as TAMPER_DEFAULTS

SENSOR_KINDS = ("sos_button", "door", "smoke", "tamper", "mains", "battery", "motion")
GPIO_BACKENDS = ("auto", "lgpio", "rpigpio", "native", "mock")
PULLS = ("up", "down", "none")
LEVELS = ("low", "high")
MQTT_PROTOCOLS = ("3.1.1", "5")
RESERVED_SENSOR_NAMES = ("agent",)
MAX_BCM_PIN = 27
#: longest device id or sensor name, and topic prefix (UTF-8 bytes). Both go into every
#: topic, ``{prefix}/events/{name}``: 128 + 8 + 64 = 200 bytes stays under the strictest
#: common broker limit (AWS IoT Core: 256-byte topics; MQTT itself allows 65,535), and a
#: name is shown to people in care-centre screens, where 64 characters is already long.
MAX_NAME_CHARS = 64
MAX_TOPIC_PREFIX_BYTES = 128

#: AWS IoT Core's payload limit (128 KB), the default of ``mqtt.max_payload_bytes``
DEFAULT_MAX_PAYLOAD_BYTES = 131072

#: Keys every sensor has, whatever its kind.
COMMON_SENSOR_KEYS = ("name", "kind", "pin", "pull", "active", "flapping")

#: Each kind's own timing keys and their defaults (docs/spec.md §3 and §10).
#: The drivers own them: a driver used on its own has the same defaults as the config.
KIND_DEFAULTS: Mapping[str, Mapping[str, float]] = {
    "sos_button": SOS_DEFAULTS,
    "door": DOOR_DEFAULTS,
    "smoke": SMOKE_DEFAULTS,
    "tamper": TAMPER_DEFAULTS,
    "mains": MAINS_DEFAULTS,
    "battery": BATTERY_DEFAULTS,
    "motion": MOTION_DEFAULTS,
}
#: Keys of one kind that are not its driver's timing (docs/spec.md §13.2: Form C smoke).
KIND_EXTRA_KEYS: Mapping[str, Tuple[str, ...]] = {"smoke": ("pin_nc", "wiring_fault_ms")}
#: ``wiring_fault_ms`` when omitted (the driver's default)
DEFAULT_WIRING_FAULT_MS = WIRING_FAULT_MS
#: The NC contact of a Form C smoke sensor is the input ``{name}{NC_SUFFIX}`` (its edges,
#: its pin, a timeline's ``sensor:``); no sensor may be named so.
NC_SUFFIX = ".nc"

#: The level that means pressed / open / alarm when ``active:`` is omitted (docs/spec.md §10,
#: §13.1: a UPS output or a tamper loop is high = gone / low / open, so a cut wire reports).
DEFAULT_ACTIVE = {"sos_button": "low", "door": "high", "smoke": "low",
                  "tamper": "high", "mains": "high", "battery": "high",
                  "motion": "high"}
DEFAULT_PULL = "up"
#: kinds whose pull differs (a PIR module drives its output high on motion)
KIND_PULL = {"motion": "down"}


#: ``None`` = no flapping detection for that kind by default (smoke, docs/spec.md §3).
DEFAULT_FLAPPING: Mapping[str, Optional[FlappingPolicy]] = {
    "sos_button": SOS_FLAPPING,
    "door": DOOR_FLAPPING,
    "smoke": None,
    "tamper": None,
    "mains": None,
    "battery": None,
    "motion": None,  # a PIR pulses by nature; flapping is opt-in
}
#: What ``flapping: true`` or a partial mapping fills in for a kind whose default is off.
FLAPPING_FALLBACK = DOOR_FLAPPING


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
    report_delay_s: float = 0.0
    jitter_s: float = 0.0
    restore_delay_s: float = 0.0
    low_ms: int = 0
    ok_ms: int = 0
    hold_s: float = 0.0
    report: bool = False
    report_every_s: float = 0.0
    flapping: Optional[FlappingPolicy] = None
    #: smoke only: the Form C relay's NC contact (docs/spec.md §13.2); None = not supervised
    pin_nc: Optional[int] = None
    wiring_fault_ms: int = 0

    @property
    def active_high(self) -> bool:
        return self.active == "high"

    @property
    def nc_input(self) -> Optional[str]:
        """The NC contact's input name (``kitchen_smoke.nc``), or None without ``pin_nc``."""
        return None if self.pin_nc is None else self.name + NC_SUFFIX

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
    #: the first endpoint of ``mqtt.host``: its host, and its own port or ``mqtt.port``
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
    ack_timeout_s: float = WindowSettings.ack_timeout_s
    max_inflight: int = WindowSettings.max_inflight
    #: publishes per second; None = no limit.
    max_publish_rate: Optional[float] = None
    #: project-added key: the broker's largest accepted payload (default AWS IoT Core's
    #: 128 KB); an event signed larger is still stored and sent, and logged as an error.
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    #: the other entries of a ``mqtt.host`` list, in order (docs/spec.md §12.1)
    more_endpoints: Tuple[Endpoint, ...] = ()

    @property
    def endpoints(self) -> Tuple[Endpoint, ...]:
        """Every broker endpoint, in the order the agent tries them."""
        return (Endpoint(self.host, self.port),) + self.more_endpoints


@dataclass(frozen=True)
class SigningConfig:
    algorithm: str = "EdDSA"
    key_file: Path = Path("/etc/homecare-agent/device-key.pem")
    #: None = RFC 7638 thumbprint of the public key (EdDSA only).
    kid: Optional[str] = None


@dataclass(frozen=True)
class CommandsConfig:
    enabled: bool = True
    algorithm: str = "EdDSA"
    key_file: Path = Path("/etc/homecare-agent/cloud-public.pem")


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
    buffer: OutboxLimits
    commands: CommandsConfig
    care: CareSettings
    heartbeat_s: int
    source: Path
    #: choices that are valid but may surprise (``validate`` prints them, exit 0)
    warnings: Tuple[Problem, ...] = ()
    #: escalation of unacknowledged alarms (docs/spec.md §11; AlarmSchedule has the defaults)
    alarms: AlarmSchedule = AlarmSchedule()
    #: the version-2 care rules (docs/spec.md §14); all off by default
    care_v2: CareRulesV2 = CareRulesV2()
    #: the periodic test report (docs/spec.md §13.3); None = ``test_report: false``
    test_report: Optional[TestReportSettings] = TestReportSettings()

    def sensor(self, name: str) -> SensorConfig:
        for s in self.sensors:
            if s.name == name:
                return s
        raise KeyError(name)

    def topic_events(self, sensor: str) -> str:
        """``{prefix}/events/{sensor}`` (docs/spec.md §5); ``sensor`` may be ``agent``."""
        return events_topic(self.mqtt.topic_prefix, sensor)

    def topic_status(self) -> str:
        return status_topic(self.mqtt.topic_prefix)

    def topic_commands(self) -> str:
        return commands_topic(self.mqtt.topic_prefix)


DEFAULT_STATE_DIR = Path("/var/lib/homecare-agent")
DEFAULT_HEARTBEAT_S = 300
DEFAULT_KEEPALIVE_S = 30
DEFAULT_PROTOCOL = "5"
PORT_TLS = 8883
PORT_PLAIN = 1883
#: the most an MQTT packet can carry (remaining length 268,435,455)
MQTT_MAX_PAYLOAD = 268435455
