"""agent.config.model: docs/spec.md §10 keys and defaults, and every problem reported with its line."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import pytest

from agent.alarms.book import AlarmSchedule
from agent.config.model import Config, ConfigProblems, Problem, load_config, parse_config
from drivers.debounce import FlappingPolicy
from agent.errors import ConfigError
from tests.helpers import REPO, run_cli

# Lines:  1 device / 2 id / 3 sensors / 4 sos / 5 mqtt / 6 host
BASE = """\
device:
  id: gw-1
sensors:
  - {name: sos, kind: sos_button, pin: 17}
mqtt:
  host: localhost
"""


def problems(text: str, env: Optional[Dict[str, str]] = None) -> List[Problem]:
    with pytest.raises(ConfigProblems) as info:
        parse_config(text, Path("/etc/hc/config.yaml"), environ=env or {},
                     file_name="config.yaml")
    return list(info.value.problems)


def ok(text: str, env: Optional[Dict[str, str]] = None, source: str = "/etc/hc/config.yaml") -> Config:
    return parse_config(text, Path(source), environ=env or {})


# (id, config text, line, field path, phrase in the message)
BROKEN = [
    ("yaml-syntax", BASE + "buffer: {max_events: 5\n", 8, "", "YAML syntax error"),
    ("tab-indent", BASE + "buffer:\n\tmax_mb: 3\n", 8, "", "not tabs"),
    ("duplicate-yaml-key", BASE + "  host: other\n", 7, "mqtt.host", "duplicate key"),
    ("empty-file", "", 0, "", "the file is empty"),
    ("top-not-mapping", "- a\n- b\n", 1, "", "expected a mapping"),
    ("wrong-type-bool-as-int", BASE + "heartbeat_s: true\n", 7, "heartbeat_s", "whole number"),
    ("wrong-type-text-as-int", BASE + "buffer: {max_events: lots}\n", 7, "buffer.max_events",
     "'lots' (text)"),
    ("float-ms", BASE.replace("pin: 17}", "pin: 17, debounce_ms: 30.5}"), 4,
     "sensors[0].debounce_ms", "whole number of milliseconds"),
    ("unknown-top-key", BASE + "heartbeats: 30\n", 7, "heartbeats", "did you mean 'heartbeat_s'?"),
    ("unknown-mqtt-key", BASE + "  keepalive: 30\n", 7, "mqtt.keepalive", "did you mean 'keepalive_s'?"),
    ("pin-out-of-range", BASE.replace("pin: 17", "pin: 41"), 4, "sensors[0].pin",
     "41 is not a BCM GPIO (0-27)"),
    ("negative-pin", BASE.replace("pin: 17", "pin: -1"), 4, "sensors[0].pin", "not a BCM GPIO"),
    ("duplicate-pin-sensors", BASE.replace("mqtt:", "  - {name: door, kind: door, pin: 17}\nmqtt:"),
     5, "sensors[1].pin", "pin 17 is already used by sensors[0] (sos) (line 4)"),
    ("duplicate-pin-output", BASE + "outputs:\n  led: {pin: 17}\n", 8, "outputs.led.pin",
     "already used by sensors[0]"),
    ("duplicate-name", BASE.replace("mqtt:", "  - {name: sos, kind: door, pin: 18}\nmqtt:"),
     5, "sensors[1].name", "duplicate sensor name 'sos'"),
    ("reserved-name", BASE.replace("name: sos", "name: agent"), 4, "sensors[0].name",
     "reserved"),
    ("bad-name-chars", BASE.replace("name: sos", "name: 'front door'"), 4, "sensors[0].name",
     "may contain only letters"),
    ("bad-device-id", BASE.replace("id: gw-1", "id: gw/1"), 2, "device.id", "'gw/1' may contain only"),
    ("missing-device", BASE.replace("device:\n  id: gw-1\n", ""), 1, "device",
     "the device section is required"),
    ("missing-device-id", BASE.replace("  id: gw-1\n", "  timezone: UTC\n"), 2, "device.id",
     "missing: id is required"),
    ("missing-sensors", "device: {id: a}\nmqtt: {host: localhost}\n", 1, "sensors", "required"),
    ("no-sensors", "device: {id: a}\nsensors: []\nmqtt: {host: localhost}\n", 2, "sensors",
     "at least one"),
    ("missing-mqtt-host", BASE.replace("  host: localhost\n", "  port: 1883\n"), 6, "mqtt.host",
     "missing: host is required"),
    ("missing-pin", BASE.replace(", pin: 17", ""), 4, "sensors[0].pin", "missing: pin is required"),
    ("inline-password", BASE + "  password: hunter2\n", 7, "mqtt.password",
     "passwords must come from a file: use password_file"),
    ("inline-key", BASE + "signing:\n  key: abc\n", 8, "signing.key", "use key_file"),
    ("plaintext-remote", "device: {id: a}\nsensors: [{name: s, kind: door, pin: 4}]\n"
     "mqtt:\n  host: broker.example.org\n  tls: false\n", 5, "mqtt.tls", "plaintext MQTT to broker.example.org"),
    ("unverified-remote", "device: {id: a}\nsensors: [{name: s, kind: door, pin: 4}]\n"
     "mqtt:\n  host: 10.0.0.5\n  tls: {insecure_skip_verify: true}\n", 5,
     "mqtt.tls.insecure_skip_verify", "unverified TLS connection to 10.0.0.5"),
    ("bad-backend", BASE + "gpio: {backend: pigpio}\n", 7, "gpio.backend", "did you mean 'rpigpio'?"),
    ("bad-chip", BASE + "gpio: {backend: lgpio, chip: -1}\n", 7, "gpio.chip", "too small"),
    ("chip-not-lgpio", BASE + "gpio: {backend: rpigpio, chip: 1}\n", 7, "gpio.chip",
     "only the lgpio backend"),
    ("bad-board-revision", BASE + "gpio: {backend: lgpio, board_revision: pi3}\n", 7,
     "gpio.board_revision", "hexadecimal"),
    ("bad-kind", BASE.replace("kind: sos_button", "kind: button"), 4, "sensors[0].kind",
     "not one of sos_button, door, smoke"),
    ("bad-pull", BASE.replace("pin: 17}", "pin: 17, pull: no}"), 4, "sensors[0].pull",
     "'no' (a boolean)"),
    ("bad-active", BASE.replace("pin: 17}", "pin: 17, active: 0}"), 4, "sensors[0].active",
     "not one of low, high"),
    ("bad-protocol", BASE + "  protocol: 3\n", 7, "mqtt.protocol", "not one of 3.1.1, 5"),
    ("bad-algorithm", BASE + "signing: {algorithm: RS256}\n", 7, "signing.algorithm",
     "not one of EdDSA, HS256"),
    ("hs256-without-kid", BASE + "signing:\n  algorithm: HS256\n", 8, "signing.kid",
     "required with HS256"),
    ("undefined-env-var", BASE + "state_dir: ${STATE}/x\n", 7, "state_dir",
     "environment variable STATE is not set"),
    ("kind-specific-key", BASE.replace("pin: 17}", "pin: 17, open_ms: 5}"), 4,
     "sensors[0].open_ms", "open_ms is not a key of a sos_button sensor; its keys are"),
    ("max-inflight-zero", BASE + "  max_inflight: 0\n", 7, "mqtt.max_inflight", "least allowed is 1"),
    ("keepalive-low", BASE + "  keepalive_s: 2\n", 7, "mqtt.keepalive_s", "least allowed is 5"),
    ("zero-window", BASE.replace("pin: 17}", "pin: 17, debounce_ms: 0}"), 4,
     "sensors[0].debounce_ms", "too small"),
    ("flapping-window", BASE.replace("pin: 17}", "pin: 17, flapping: {window_s: 0}}"), 4,
     "sensors[0].flapping.window_s", "must be more than 0"),
    ("flapping-bad", BASE.replace("pin: 17}", "pin: 17, flapping: sometimes}"), 4,
     "sensors[0].flapping", "expected true or false"),
    ("hold-beyond-stuck", BASE.replace("pin: 17}", "pin: 17, hold_ms: 60000}"), 4,
     "sensors[0].hold_ms", "most allowed is 59999"),
    ("smoke-pulses-dont-fit", BASE.replace("kind: sos_button, pin: 17}",
     "kind: smoke, pin: 17,\n     pulse_ms: 5000, pulse_window_s: 10}"), 5, "sensors[0].pulse_window_s",
     "cannot fit"),
    ("infinite-rate", BASE + "  max_publish_rate: .inf\n", 7, "mqtt.max_publish_rate", "expected a number"),
    ("bad-timezone", BASE.replace("  id: gw-1\n", "  id: gw-1\n  timezone: Mars/Base\n"), 3,
     "device.timezone", "not a known IANA time zone"),
    ("host-with-scheme", BASE.replace("host: localhost", "host: mqtts://b.example.org"), 6,
     "mqtt.host", "without mqtts://"),
    ("topic-wildcard", BASE + "  topic_prefix: homecare/#\n", 7, "mqtt.topic_prefix",
     "not a usable topic prefix"),
    ("cert-without-key", BASE + "  tls: {cert_file: c.pem}\n", 7, "mqtt.tls.key_file",
     "needs both files"),
    ("sensors-not-list", BASE.replace("sensors:\n  - {name: sos, kind: sos_button, pin: 17}\n",
                                      "sensors: {name: sos}\n"), 3, "sensors", "expected a list"),
    ("password-3.1.1-no-user", BASE + "  protocol: 3.1.1\n  password_file: /p\n", 8, "mqtt.username",
     "MQTT 3.1.1 sends a password only with a user name"),
    ("night-empty", BASE + "care:\n  night_door: {from: \"06:00\", to: \"06:00\"}\n", 8,
     "care.night_door.to", "the night would be empty"),
    # values PyYAML itself cannot build, or builds too big (issue 11: these were tracebacks)
    ("400-digit-int", BASE + "heartbeat_s: " + "9" * 400 + "\n", 7, "heartbeat_s",
     "400 digits is far too large"),
    ("400-digit-number", BASE + "buffer: {max_mb: " + "9" * 400 + "}\n", 7, "buffer.max_mb",
     "400 digits"),
    ("int-tag-on-text", BASE + "heartbeat_s: !!int abc\n", 7, "heartbeat_s",
     "cannot read 'abc' as a whole number"),
    ("impossible-date", BASE + "state_dir: 2021-02-30\n", 7, "state_dir",
     "cannot read '2021-02-30' as a date"),
    ("hour-25-timestamp", BASE + "state_dir: 2021-02-01 25:00:00\n", 7, "state_dir",
     "hour must be in 0..23"),
    ("hour-25-care-time", BASE + "care:\n  night_door: {from: \"25:00\"}\n", 8,
     "care.night_door.from", "is not a time of day"),
    ("10000-nested-lists", BASE + "bogus: " + "[" * 10000 + "]" * 10000 + "\n", 7, "",
     "nested more than 32 levels"),
    ("10000-nested-maps", BASE + "bogus: " + "{a: " * 10000 + "1" + "}" * 10000 + "\n", 7, "",
     "nested more than 32 levels"),
    ("nul-byte", BASE + "heartbeat_s: 30\x00\n", 7, "", "#x0000 (a NUL byte) is not allowed"),
    # names go into every topic: bounded so that an event can always be delivered
    ("70000-char-sensor-name", BASE.replace("name: sos", "name: " + "s" * 70000), 4,
     "sensors[0].name", "a name has at most 64"),
    ("65-char-device-id", BASE.replace("id: gw-1", "id: " + "g" * 65), 2, "device.id",
     "is 65 characters long"),
    ("long-topic-prefix", BASE + "  topic_prefix: " + "p" * 129 + "\n", 7, "mqtt.topic_prefix",
     "is 129 bytes long; a topic prefix has at most 128"),
    ("alarms-timeout-too-short", BASE + "alarms: {ack_timeout_s: 5}\n", 7, "alarms.ack_timeout_s",
     "10"),
    ("alarms-repeat-too-long", BASE + "alarms:\n  repeat_s: 90000\n", 8, "alarms.repeat_s",
     "86400"),
    ("alarms-repeats-negative", BASE + "alarms: {max_repeats: -1}\n", 7, "alarms.max_repeats",
     "the least allowed is 0"),
    ("alarms-unknown-key", BASE + "alarms: {repeat: 3}\n", 7, "alarms.repeat",
     "did you mean 'repeat_s'?"),
    ("escalate-without-count", BASE + "outputs:\n  patterns: {escalate: [0.5, 0.5]}\n", 8,
     "outputs.patterns.escalate", "count"),
]


@pytest.mark.parametrize("text,line,path,phrase", [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_config_reports_line_path_and_reason(text: str, line: int, path: str, phrase: str) -> None:
    found = problems(text)
    matching = [p for p in found if p.field_path == path and phrase in p.message]
    assert matching, f"no problem at {path!r} containing {phrase!r}; got:\n" + "\n".join(map(str, found))
    assert matching[0].line == line, str(matching[0])
    assert len(found) == 1, "one mistake, one problem; got:\n" + "\n".join(map(str, found))
    assert matching[0].file == "config.yaml"


def test_at_least_25_broken_cases() -> None:
    assert len(BROKEN) >= 25


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    text = BASE.replace("pin: 17", "pin: 99").replace("id: gw-1", "id: 'gw 1'") + \
        "  password: x\nheartbeat_s: 1\nbogus: 2\n"
    found = problems(text)
    assert [(p.line, p.field_path) for p in found] == [
        (2, "device.id"), (4, "sensors[0].pin"), (7, "mqtt.password"), (8, "heartbeat_s"),
        (9, "bogus")]


def test_config_error_str_is_every_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + "heartbeat_s: 1\nbogus: 2\n", Path("/x/c.yaml"), environ={},
                     file_name="c.yaml")
    assert str(info.value).splitlines() == [
        "c.yaml:7:14: heartbeat_s: 1 is too small: the least allowed is 10 seconds",
        "c.yaml:8:1: bogus: unknown key 'bogus'; the keys here are device, state_dir, gpio, "
        "sensors, outputs, mqtt, signing, buffer, commands, care, heartbeat_s, alarms, test_report",
    ]


def test_a_secret_value_never_appears_in_messages() -> None:
    text = BASE + "  password: s3cr3t-Value\nsigning: {secret: 0th3r-s3cret}\n"
    assert not any("s3cr3t-Value" in str(p) or "0th3r-s3cret" in str(p) for p in problems(text))


SPEC_EXAMPLE = (REPO / "config" / "example.yaml")


@pytest.mark.parametrize("text", ["a02082", "'a02082'", "0xa02082", "\"0xA02082\""])
def test_gpio_override_for_boards_without_a_pi_revision(text: str) -> None:
    """The override a technician gives on a Compute Module carrier or a non-Pi board;
    the file's own text is read, so YAML's 0x... integers mean the same hex code."""
    c = ok(BASE + f"gpio: {{backend: lgpio, chip: 1, board_revision: {text}}}\n")
    assert (c.gpio.backend, c.gpio.chip, c.gpio.board_revision) == ("lgpio", 1, 0xa02082)


def test_defaults_are_spec_section_10() -> None:
    c = ok(BASE.replace("host: localhost", "host: broker.example.org"))
    assert c.device.timezone is None
    assert c.state_dir == Path("/var/lib/homecare-agent")
    assert c.gpio.backend == "auto"
    assert (c.gpio.chip, c.gpio.board_revision) == (None, None)
    s = c.sensors[0]
    assert (s.pull, s.active, s.debounce_ms, s.hold_ms) == ("up", "low", 30, 0)
    assert s.flapping == FlappingPolicy(20, 10, 60)
    assert s.timing() == {"debounce_ms": 30, "hold_ms": 0}
    assert c.outputs.buzzer is None and c.outputs.led is None
    m = c.mqtt
    assert (m.port, m.protocol, m.client_id, m.keepalive_s, m.topic_prefix) == \
        (8883, "5", "gw-1", 30, "homecare/gw-1")
    assert m.tls is not None and m.tls.ca_file is None and m.tls.cert_file is None \
        and m.tls.key_file is None and m.tls.insecure_skip_verify is False
    assert (m.username, m.password_file, m.allow_insecure, m.ack_timeout_s, m.max_inflight,
            m.max_publish_rate) == (None, None, False, 20, 20, None)
    assert (c.signing.algorithm, c.signing.key_file, c.signing.kid) == \
        ("EdDSA", Path("/etc/homecare-agent/device-key.pem"), None)
    assert (c.buffer.max_events, c.buffer.max_mb, c.buffer.min_free_mb) == (100000, 64, 50)
    assert (c.commands.enabled, c.commands.algorithm, c.commands.key_file) == \
        (True, "EdDSA", Path("/etc/homecare-agent/cloud-public.pem"))
    n, i = c.care.night_door, c.care.inactivity
    assert (n.enabled, n.from_, n.to) == (False, "22:00", "06:00")
    assert (i.enabled, i.hours, i.from_, i.to) == (False, 12, "07:00", "22:00")
    assert c.heartbeat_s == 300
    assert c.topic_events("sos") == "homecare/gw-1/events/sos"
    assert c.topic_status() == "homecare/gw-1/status"
    assert c.topic_commands() == "homecare/gw-1/commands"


def test_kind_defaults_door_and_smoke() -> None:
    text = BASE.replace("mqtt:", "  - {name: d, kind: door, pin: 27}\n"
                        "  - {name: k, kind: smoke, pin: 22}\nmqtt:")
    door, smoke = ok(text).sensors[1:]
    assert (door.active, door.open_ms, door.close_ms) == ("high", 500, 1000)
    assert door.flapping == FlappingPolicy(16, 10, 60)
    assert door.timing() == {"open_ms": 500, "close_ms": 1000}
    assert (smoke.active, smoke.confirm_ms, smoke.pulse_ms, smoke.pulses, smoke.pulse_window_s,
            smoke.clear_ms) == ("low", 1000, 50, 3, 10, 15000)
    assert smoke.flapping is None


@pytest.mark.parametrize("value,expected", [
    ("false", None),
    ("true", FlappingPolicy(20, 10, 60)),
    ("{max_edges: 5}", FlappingPolicy(5, 10, 60)),
    ("{quiet_s: 2.5}", FlappingPolicy(20, 10, 2.5)),
    ("null", FlappingPolicy(20, 10, 60)),
])
def test_flapping_forms(value: str, expected: Optional[FlappingPolicy]) -> None:
    c = ok(BASE.replace("pin: 17}", f"pin: 17, flapping: {value}}}"))
    assert c.sensors[0].flapping == expected


def test_smoke_flapping_true_uses_fallback() -> None:
    c = ok(BASE.replace("kind: sos_button", "kind: smoke").replace("pin: 17}", "pin: 17, flapping: true}"))
    assert c.sensors[0].flapping == FlappingPolicy(16, 10, 60)


def test_plaintext_port_and_loopback_and_allow_insecure() -> None:
    assert ok(BASE + "  tls: false\n").mqtt.port == 1883
    assert ok(BASE + "  tls: false\n").mqtt.tls is None
    remote = BASE.replace("localhost", "broker.lan")
    assert ok(remote + "  tls: false\n  allow_insecure: true\n").mqtt.tls is None
    tls = ok(BASE.replace("localhost", "::1") + "  tls: {insecure_skip_verify: true}\n").mqtt.tls
    assert tls is not None and tls.insecure_skip_verify is True
    assert ok(BASE.replace("localhost", "127.0.0.2") + "  tls: false\n").mqtt.tls is None


def test_unquoted_times_and_numeric_protocol_read_as_written() -> None:
    c = ok(BASE + "  protocol: 5\ncare:\n  night_door: {enabled: yes, from: 21:30, to: 05:00}\n")
    assert c.mqtt.protocol == "5"
    assert (c.care.night_door.from_, c.care.night_door.to) == ("21:30", "05:00")


def test_env_vars_and_relative_paths() -> None:
    env = {"CREDENTIALS_DIRECTORY": "/run/credentials/homecare-agent.service", "KEYS": "/k"}
    text = BASE + "  username: gw\n  password_file: ${CREDENTIALS_DIRECTORY}/mqtt-password\n" \
        "  tls: {ca_file: ca.pem}\nsigning: {key_file: $KEYS/device.pem}\n" \
        "commands: {key_file: ../cloud.pem}\nstate_dir: state\n"
    c = ok(text, env, source="/etc/hc/config.yaml")
    assert c.mqtt.password_file == Path("/run/credentials/homecare-agent.service/mqtt-password")
    assert c.mqtt.tls is not None and c.mqtt.tls.ca_file == Path("/etc/hc/ca.pem")
    assert c.signing.key_file == Path("/k/device.pem")
    assert c.commands.key_file == Path("/etc/cloud.pem")
    assert c.state_dir == Path("/etc/hc/state")


def test_credentials_directory_unset_says_how_to_validate_by_hand() -> None:
    [p] = problems(BASE + "signing: {key_file: \"${CREDENTIALS_DIRECTORY}/k\"}\n")
    assert "CREDENTIALS_DIRECTORY is not set" in p.message and "LoadCredential" in p.message


def test_problem_format() -> None:
    p = Problem("path/to/config.yaml", 12, 10, "sensors[1].pin", "41 is not a BCM GPIO (0-27)")
    assert str(p) == "path/to/config.yaml:12:10: sensors[1].pin: 41 is not a BCM GPIO (0-27)"


def test_example_and_spec_three_sensors_validate() -> None:
    c = load_config(SPEC_EXAMPLE, environ={})
    assert [(s.name, s.kind, s.pin) for s in c.sensors] == \
        [("sos", "sos_button", 17), ("front_door", "door", 27), ("kitchen_smoke", "smoke", 22),
         ("enclosure", "tamper", 23), ("mains", "mains", 25), ("ups_battery", "battery", 26),
         ("hall", "motion", 16)]
    assert c.mqtt.tls is not None and c.mqtt.tls.ca_file == Path("/etc/homecare-agent/ca.pem")


def test_demo_config_validates(tmp_path: Path) -> None:
    c = load_config(REPO / "config" / "demo.yaml", environ={"HOMECARE_DEMO_DIR": str(tmp_path)})
    assert c.gpio.backend == "mock" and c.mqtt.tls is None and c.mqtt.port == 1883
    assert c.signing.key_file == tmp_path / "device-key.pem"
    assert c.state_dir == tmp_path / "state"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigProblems) as info:
        load_config(tmp_path / "nope.yaml")
    assert "no such file" in str(info.value)


def test_validate_cli_ok_and_errors(tmp_path: Path) -> None:
    good = run_cli("validate", "--config", str(SPEC_EXAMPLE))
    assert (good.returncode, good.stdout.strip(), good.stderr) == (0, f"{SPEC_EXAMPLE}: OK", "")
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(BASE + "heartbeat_s: true\nbogus: 1\n")
    bad = run_cli("validate", "--config", str(bad_file))
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines() == [
        f"{bad_file}:7:14: heartbeat_s: expected a whole number of seconds, got 'true' (a boolean)",
        f"{bad_file}:8:1: bogus: unknown key 'bogus'; the keys here are device, state_dir, gpio, "
        "sensors, outputs, mqtt, signing, buffer, commands, care, heartbeat_s, alarms, test_report",
    ]
    missing = run_cli("validate", "--config", str(tmp_path / "none.yaml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


@pytest.mark.parametrize("tail", ["heartbeat_s: " + "9" * 400, "heartbeat_s: !!int abc",
                                  "state_dir: 2021-02-30", "bogus: " + "[" * 10000 + "]" * 10000,
                                  "heartbeat_s: 30\x00"])
def test_validate_cli_reports_unreadable_values_with_file_line_col(tmp_path: Path,
                                                                   tail: str) -> None:
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(BASE + tail + "\n")
    bad = run_cli("validate", "--config", str(bad_file))
    assert bad.returncode == 2, bad.stderr
    assert "Traceback" not in bad.stderr
    assert bad.stderr.startswith(f"{bad_file}:7:"), bad.stderr
    assert len(bad.stderr.splitlines()) == 1, bad.stderr



PROTOCOL_311 = BASE + '  protocol: "3.1.1"\n'


def test_protocol_3_1_1_is_a_warning_with_its_line_not_a_problem() -> None:
    c = ok(PROTOCOL_311)          # docs/spec.md §6: valid, but a 3.1.1 PUBACK proves nothing
    assert c.mqtt.protocol == "3.1.1"
    [w] = c.warnings
    assert (w.line, w.col, w.field_path) == (7, 13, "mqtt.protocol")
    assert w.message.startswith("warning: ") and "ACL" in w.message and 'protocol: "5"' in w.message
    assert ok(BASE).warnings == () and ok(BASE + "  protocol: 5\n").warnings == ()


def test_validate_cli_warns_on_3_1_1_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(PROTOCOL_311)
    done = run_cli("validate", "--config", str(path))
    assert done.returncode == 0 and done.stdout.strip() == f"{path}: OK"
    [line] = done.stderr.splitlines()
    assert line.startswith(f"{path}:7:13: mqtt.protocol: warning: MQTT 3.1.1")


def test_output_patterns_default_and_configured() -> None:
    from agent.alarms.feedback import Patterns

    assert ok(BASE).outputs.patterns == Patterns()
    c = ok(BASE + "outputs:\n  led: {pin: 6}\n  patterns:\n    pending: [0.05, 0.2]\n"
                  "    chirp: [0.1, 0.1, 5]\n")
    assert c.outputs.patterns.pending == (0.05, 0.2)
    assert c.outputs.patterns.chirp == (0.1, 0.1, 5)
    assert c.outputs.patterns.sent == Patterns().sent and c.outputs.patterns.locate == Patterns().locate
    # patterns alone (no outputs wired) are allowed: they just have nothing to drive
    assert ok(BASE + "outputs: {patterns: {sent: [1, 1]}}\n").outputs.led is None


@pytest.mark.parametrize("value,phrase", [
    ("pending: [0.1]", "expected [on_s, off_s]"),
    ("pending: 0.1", "expected [on_s, off_s]"),
    ("sent: [0.1, 0.1, 3]", "expected [on_s, off_s]"),
    ("chirp: [0.1, 0.1]", "expected [on_s, off_s, count]"),
    ("pending: [0, 0.1]", "must be more than 0"),
    ("sent: [0.1, 61]", "too large"),
    ("chirp: [0.1, 0.1, 0]", "too small"),
    ("locate: [0.1, 0.1, 2.5]", "whole number"),
    ("locate: [0.1, fast, 2]", "expected a number"),
    ("blink: [0.1, 0.1]", "unknown key 'blink'"),
])
def test_bad_output_patterns_are_reported_with_line(value: str, phrase: str) -> None:
    found = problems(BASE + "outputs:\n  patterns:\n    " + value + "\n")
    assert len(found) == 1, found
    assert found[0].line == 9 and found[0].field_path.startswith("outputs.patterns.")
    assert phrase in found[0].message, found[0].message


def test_alarms_section_takes_the_smallest_allowed_values() -> None:
    config = ok(BASE + "alarms: {ack_timeout_s: 10, repeat_s: 10, max_repeats: 0}\n"
                "outputs:\n  patterns: {escalate: [0.2, 0.3, 4]}\n")
    assert (config.alarms.ack_timeout_s, config.alarms.repeat_s, config.alarms.max_repeats) == (10, 10, 0)
    assert config.outputs.patterns.escalate == (0.2, 0.3, 4)
    assert ok(BASE).alarms == AlarmSchedule()
