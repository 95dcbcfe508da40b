"""agent.config.arc: the ``arc`` section of docs/spec.md §12.2, problems with their lines,
and the AES key file read as a secret file with its length checked."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
import yaml

from agent.config.arc import ArcConfig, load_arc_key, read_arc
from agent.config.reader import MapReader, Problem, Sink, as_path
from agent.errors import ConfigError, SecretFileError

# Lines: 1 arc / 2 host / 3 port / 4 account
BASE = """\
arc:
  host: 127.0.0.1
  port: 12345
  account: "1234ab"
"""


def read(text: str) -> Tuple[Optional[ArcConfig], List[Problem], List[Problem]]:
    sink = Sink("config.yaml")
    top = MapReader(yaml.compose(text, Loader=yaml.SafeLoader), "", sink, ("arc", "device"))
    config = read_arc(top, sink, as_path(Path("/etc/hc"), {"CREDENTIALS_DIRECTORY": "/run/creds"}))
    return config, sink.problems, sink.warnings


def test_defaults_are_the_spec_s() -> None:
    config, problems, warnings = read(BASE)
    assert problems == [] and warnings == []
    assert config == ArcConfig(host="127.0.0.1", port=12345, account="1234AB")
    assert (config.transport, config.format, config.events, config.line, config.receiver,
            config.key_file, config.key_encoding, config.ack_timeout_s, config.supervision_s,
            config.ack_closes_alarms) == ("tcp", "ADM-CID", "alarms", "0", None, None, "ascii",
                                          10.0, 600.0, True)
    assert config.link_settings().ack_timeout_s == 10.0
    assert config.frame_settings(None).account == "1234AB"


def test_absent_or_null_section_is_no_arc_path() -> None:
    assert read("device: {id: a}\n")[0] is None
    assert read("arc:\n")[0] is None


def test_everything_set() -> None:
    config, problems, _ = read(BASE + """\
  transport: udp
  receiver: 12
  line: 0012
  key_file: ${CREDENTIALS_DIRECTORY}/arc-key
  key_encoding: hex
  format: SIA-DCS
  events: critical
  ack_timeout_s: 5
  supervision_s: 0
  ack_closes_alarms: false
  codes: {care.inactivity: UA}
""")
    assert problems == [] and config is not None
    assert (config.transport, config.receiver, config.line, config.key_file, config.format,
            config.events, config.supervision_s, config.ack_closes_alarms, config.codes) == (
        "udp", "12", "0012", Path("/run/creds/arc-key"), "SIA-DCS", "critical", 0.0, False,
        (("care.inactivity", "UA"),))
    assert config.code_table().code("care.inactivity").code == "UA"  # type: ignore[union-attr]


# (extra lines after BASE or a replacement, line, field path, phrase)
BROKEN = [
    (BASE + "  transprot: udp\n", 5, "arc.transprot", "did you mean 'transport'?"),
    (BASE + "  transport: sctp\n", 5, "arc.transport", "not one of tcp, udp"),
    (BASE.replace('"1234ab"', '"12"'), 4, "arc.account", "3-16 hex digits"),
    (BASE.replace('"1234ab"', "12G4"), 4, "arc.account", "not an account"),
    (BASE.replace("  account: \"1234ab\"\n", ""), 2, "arc.account", "missing: account is required"),
    (BASE.replace("  port: 12345\n", "  port: 70000\n"), 3, "arc.port", "most allowed is 65535"),
    (BASE.replace("  host: 127.0.0.1\n", ""), 2, "arc.host", "missing: host is required"),
    (BASE + "  line: G\n", 5, "arc.line", "not a line prefix"),
    (BASE + "  receiver: 1234567\n", 5, "arc.receiver", "1-6 hex digits"),
    (BASE + "  key_encoding: base64\n", 5, "arc.key_encoding", "not one of ascii, hex"),
    (BASE + "  format: CID\n", 5, "arc.format", "not one of ADM-CID, SIA-DCS"),
    (BASE + "  events: everything\n", 5, "arc.events", "not one of alarms, critical, all"),
    (BASE + "  ack_timeout_s: 0\n", 5, "arc.ack_timeout_s", "least allowed is 1"),
    (BASE + "  supervision_s: 5\n", 5, "arc.supervision_s", "or 0 for none"),
    (BASE + "  key: 0123456789ABCDEF\n", 5, "arc.key", "must come from a file: use key_file"),
    (BASE + "  codes: {care.inactivity: \"1150\"}\n", 5, "arc.codes.care.inactivity",
     "e.g. \"1 150\""),
    (BASE + "  format: SIA-DCS\n  codes:\n    care.inactivity: \"1 150\"\n", 7,
     "arc.codes.care.inactivity", "two capital letters"),
    (BASE + "  codes: {alarm.unacknowledged: \"1 110\"}\n", 5, "arc.codes.alarm.unacknowledged",
     "never sent to the ARC"),
    (BASE + "  codes: {Inactivity: \"1 110\"}\n", 5, "arc.codes", "not an event type"),
    (BASE + "  codes: [a]\n", 5, "arc.codes", "expected a mapping"),
    ("arc: [1]\n", 1, "arc", "expected a mapping"),
]


@pytest.mark.parametrize("text, line, path, phrase", BROKEN, ids=[b[2] + ":" + b[3][:12] for b in BROKEN])
def test_problems_point_at_the_line(text: str, line: int, path: str, phrase: str) -> None:
    _, problems, _ = read(text)
    assert any(p.line == line and p.field_path == path and phrase in p.message
               for p in problems), problems
    assert all(str(p).startswith(f"config.yaml:{p.line}:{p.col}: ") for p in problems)


def test_unencrypted_to_a_remote_receiver_is_a_warning() -> None:
    _, problems, warnings = read(BASE.replace("127.0.0.1", "arc.example.org"))
    assert problems == [] and len(warnings) == 1
    assert "unencrypted" in warnings[0].message and warnings[0].field_path == "arc.key_file"


def key_config(tmp_path: Path, content: bytes, encoding: str = "ascii", mode: int = 0o600) -> ArcConfig:
    path = tmp_path / "arc-key"
    path.write_bytes(content)
    os.chmod(path, mode)
    return ArcConfig(host="h", port=1, account="1234", key_file=path, key_encoding=encoding)


@pytest.mark.parametrize("content, encoding, key", [
    (b"0123456789ABCDEF\n", "ascii", b"0123456789ABCDEF"),
    (b"0123456789ABCDEF01234567", "ascii", b"0123456789ABCDEF01234567"),
    (b"x" * 32 + b"\r\n", "ascii", b"x" * 32),
    (b"00112233445566778899aabbccddeeff\n", "hex", bytes.fromhex("00112233445566778899aabbccddeeff")),
    (b"ab" * 32, "hex", b"\xab" * 32),
])
def test_key_file_is_read_for_its_encoding(tmp_path: Path, content: bytes, encoding: str, key: bytes) -> None:
    assert load_arc_key(key_config(tmp_path, content, encoding)) == key


@pytest.mark.parametrize("content, encoding, phrase", [
    (b"0123456789ABCDE", "ascii", "16, 24 or 32 printable"),
    (b"0123456789ABCDEF" * 2 + b"0", "ascii", "16, 24 or 32 printable"),
    (b"0123456789ABCDEF", "hex", "32, 48 or 64 hex digits"),
    (b"zz" * 16, "hex", "32, 48 or 64 hex digits"),
])
def test_key_of_the_wrong_length_says_what_to_do_without_quoting_it(
        tmp_path: Path, content: bytes, encoding: str, phrase: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_arc_key(key_config(tmp_path, content, encoding))
    assert phrase in str(info.value) and "arc.key_file" in str(info.value)
    assert content.decode() not in str(info.value) and info.value.hint


def test_key_file_is_a_secret_file(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match="chmod 600"):
        load_arc_key(key_config(tmp_path, b"0123456789ABCDEF", mode=0o644))
    assert load_arc_key(ArcConfig(host="h", port=1, account="1234")) is None


def test_arc_config_refuses_bad_values_when_built_in_code() -> None:
    with pytest.raises(ValueError):
        ArcConfig(host="h", port=1, account="12")
    with pytest.raises(ValueError):
        ArcConfig(host="h", port=1, account="1234", transport="sctp")
    with pytest.raises(ValueError):
        ArcConfig(host="h", port=1, account="1234", codes=(("care.inactivity", "x"),))
