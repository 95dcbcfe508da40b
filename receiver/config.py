"""The receiver's YAML config -> frozen values; every problem as FILE:LINE:COL.

Uses the agent's reader (:mod:`agent.config.reader`): unknown keys with the nearest
known key suggested, every problem of the file reported at once. Every default of the
receiver is here. An example: docs/integrators.md, "The reference receiver".
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import yaml

from agent.config.reader import (ConfigProblems, MapReader, Node, Problem, Sink, as_choice,
                                 as_int, as_number, as_path, as_pattern, as_text,
                                 check_nesting, describe)
from receiver.registry import DeviceEntry
from receiver.supervision import DEFAULT_FACTOR, DEFAULT_HEARTBEAT_S

NAME = r"[A-Za-z0-9._-]{1,64}"
NAME_RULE = "may only use letters, digits, '.', '_' and '-' (1-64 characters)"
TOP_KEYS = ("instance", "database", "mqtt", "http", "commands", "supervision", "devices")
DB_KEYS = ("host", "port", "dbname", "user", "password_file")
MQTT_KEYS = ("host", "port", "username", "password_file", "ca_file", "group", "topic_root")
HTTP_KEYS = ("host", "port")
COMMAND_KEYS = ("algorithm", "key_file", "kid", "lifetime_s")
SUPERVISION_KEYS = ("heartbeat_s", "factor", "interval_s")
DEVICE_KEYS = ("id", "algorithm", "key_file", "kid", "heartbeat_s")
ALGORITHMS = ("EdDSA", "HS256")
SEC = "seconds"
PathConv = Callable[[Node], Path]


@dataclass(frozen=True)
class DatabaseConfig:
    host: str = "127.0.0.1"
    port: int = 5432
    dbname: str = "homecare"
    user: str = "homecare_receiver"
    password_file: Optional[Path] = None


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: Optional[str] = None
    password_file: Optional[Path] = None
    ca_file: Optional[Path] = None          # TLS (with hostname checking) when set
    group: str = "homecare-receivers"       # the $share group all instances join
    topic_root: str = "homecare"


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class CommandConfig:
    algorithm: str
    key_file: Path
    kid: Optional[str] = None
    lifetime_s: int = 300


@dataclass(frozen=True)
class SupervisionConfig:
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    factor: int = DEFAULT_FACTOR
    interval_s: float = 1.0                 # how often the supervising instance looks


@dataclass(frozen=True)
class ReceiverConfig:
    instance: str
    database: DatabaseConfig
    mqtt: MqttConfig
    http: HttpConfig
    commands: CommandConfig
    supervision: SupervisionConfig
    devices: Tuple[DeviceEntry, ...]

    def __post_init__(self) -> None:
        if not self.devices:
            raise ValueError("a receiver needs at least one registered device")


def load_receiver_config(path: Path, environ: Optional[Mapping[str, str]] = None) -> ReceiverConfig:
    """Read and check the whole file; :class:`ConfigProblems` lists every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigProblems([Problem(str(path), 0, 0, "", f"cannot read it: {exc}")]) from None
    return parse_receiver_config(text, Path(path), environ=environ)


def _compose(text: str, sink: Sink) -> Optional[Node]:
    if not check_nesting(text, sink):
        return None
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        sink.add(exc.problem_mark or exc.context_mark, "", f"YAML syntax error: {exc.problem}")
    except yaml.YAMLError as exc:
        sink.add(None, "", f"YAML error: {exc}")
    return None


def parse_receiver_config(text: str, source: Path, *,
                          environ: Optional[Mapping[str, str]] = None) -> ReceiverConfig:
    sink = Sink(str(source))
    root = _compose(text, sink)
    if root is None or not isinstance(root, yaml.MappingNode):
        if root is not None:
            sink.add(root, "", f"expected a mapping of settings, got {describe(root)}")
        raise ConfigProblems(sink.problems)
    paths = as_path(source.absolute().parent, os.environ if environ is None else environ)
    top = MapReader(root, "", sink, TOP_KEYS)
    supervision = _supervision(top)
    config = dict(
        instance=top.require("instance", as_pattern(NAME, NAME_RULE), "x",
                             "name this instance (unique among the receivers)"),
        database=_database(top, paths), mqtt=_mqtt(top, paths),
        http=_http(top), commands=_commands(top, paths), supervision=supervision,
        devices=_devices(top, sink, paths, supervision.heartbeat_s))
    if not config["devices"] and top.value_node("devices") is None:
        sink.add(top.node_or_self("devices"), "devices", "register at least one gateway")
    if sink.problems:
        raise ConfigProblems(sink.problems)
    return ReceiverConfig(**config)  # type: ignore[arg-type]


def _database(top: MapReader, paths: PathConv) -> DatabaseConfig:
    s = top.section("database", DB_KEYS)
    d = DatabaseConfig()
    return DatabaseConfig(host=s.get("host", as_text, d.host),
                          port=s.get("port", as_int(1, 65535), d.port),
                          dbname=s.get("dbname", as_text, d.dbname),
                          user=s.get("user", as_text, d.user),
                          password_file=s.optional("password_file", paths))


def _mqtt(top: MapReader, paths: PathConv) -> MqttConfig:
    s = top.section("mqtt", MQTT_KEYS)
    d = MqttConfig()
    return MqttConfig(host=s.get("host", as_text, d.host),
                      port=s.get("port", as_int(1, 65535), d.port),
                      username=s.optional("username", as_text),
                      password_file=s.optional("password_file", paths),
                      ca_file=s.optional("ca_file", paths),
                      group=s.get("group", as_pattern(NAME, NAME_RULE), d.group),
                      topic_root=s.get("topic_root", as_pattern(NAME, NAME_RULE), d.topic_root))


def _http(top: MapReader) -> HttpConfig:
    s = top.section("http", HTTP_KEYS)
    d = HttpConfig()
    return HttpConfig(host=s.get("host", as_text, d.host),
                      port=s.get("port", as_int(0, 65535), d.port))


def _commands(top: MapReader, paths: PathConv) -> CommandConfig:
    s = top.section("commands", COMMAND_KEYS)
    return CommandConfig(
        algorithm=s.get("algorithm", as_choice(ALGORITHMS), "EdDSA"),
        key_file=s.require("key_file", paths, Path("."),
                           "the care centre's private key that signs the ack commands"),
        kid=s.optional("kid", as_text),
        lifetime_s=s.get("lifetime_s", as_int(10, 600, SEC), 300))


def _supervision(top: MapReader) -> SupervisionConfig:
    s = top.section("supervision", SUPERVISION_KEYS)
    d = SupervisionConfig()
    return SupervisionConfig(heartbeat_s=s.get("heartbeat_s", as_number(1, 86400, SEC), d.heartbeat_s),
                             factor=s.get("factor", as_int(1, 100), d.factor),
                             interval_s=s.get("interval_s", as_number(0.05, 60, SEC), d.interval_s))


def _devices(top: MapReader, sink: Sink, paths: PathConv,
             heartbeat_s: float) -> Tuple[DeviceEntry, ...]:
    node = top.value_node("devices")
    if node is None:
        return ()
    if not isinstance(node, yaml.SequenceNode):
        sink.add(node, "devices", f"expected a list of gateways, got {describe(node)}")
        return ()
    entries: List[DeviceEntry] = []
    seen: Dict[str, int] = {}
    for index, item in enumerate(node.value):
        s = MapReader(item, f"devices[{index}]", sink, DEVICE_KEYS)
        device_id = s.require("id", as_pattern(NAME, NAME_RULE), "")
        if device_id in seen:
            sink.add(s.node_or_self("id"), f"devices[{index}].id",
                     f"{device_id!r} is already registered at devices[{seen[device_id]}]; keep one")
        seen.setdefault(device_id, index)
        entries.append(DeviceEntry(
            device_id=device_id or "x",
            algorithm=s.get("algorithm", as_choice(ALGORITHMS), "EdDSA"),
            key_file=s.require("key_file", paths, Path("."),
                               "the gateway's public key (EdDSA) or shared secret (HS256)"),
            kid=s.optional("kid", as_text),
            heartbeat_s=s.get("heartbeat_s", as_number(1, 86400, SEC), heartbeat_s)))
    return tuple(entries)
