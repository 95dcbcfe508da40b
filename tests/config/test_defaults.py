"""config/example.yaml shows the defaults: every value it does not mark "example" is the default.

The defaults themselves are defined once (agent/config/schema.py and the runtime values the
config holds); the example is documentation, so this test keeps it from drifting.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from agent.config.model import load_config, parse_config
from agent.config.schema import Config
from tests.helpers import REPO

EXAMPLE = REPO / "config" / "example.yaml"

#: only the values config/example.yaml marks "example" (they have no default)
EXAMPLE_ONLY = """\
device: {id: gw-0001, timezone: Asia/Shanghai}
sensors:
  - {name: sos, kind: sos_button, pin: 17}
  - {name: front_door, kind: door, pin: 27}
  - {name: kitchen_smoke, kind: smoke, pin: 22}
  - {name: enclosure, kind: tamper, pin: 23}
  - {name: mains, kind: mains, pin: 25}
  - {name: ups_battery, kind: battery, pin: 26}
  - {name: hall, kind: motion, pin: 16}
outputs:
  buzzer: {pin: 5}
  led: {pin: 6}
mqtt:
  host: broker.example.org
  tls: {ca_file: /etc/homecare-agent/ca.pem}
"""


def _without_source(config: Config) -> Config:
    return dataclasses.replace(config, source=Path("/"), warnings=())


def test_example_yaml_values_are_the_defaults() -> None:
    shown = load_config(EXAMPLE, environ={})
    defaults = parse_config(EXAMPLE_ONLY, EXAMPLE, environ={})
    for name in (f.name for f in dataclasses.fields(Config)):
        assert getattr(_without_source(shown), name) == getattr(_without_source(defaults), name), name


def test_the_example_check_can_fail() -> None:
    """A value changed in the example is caught (the comparison above is not vacuous)."""
    text = EXAMPLE.read_text().replace("max_events: 100000", "max_events: 99999")
    shown = parse_config(text, EXAMPLE, environ={})
    defaults = parse_config(EXAMPLE_ONLY, EXAMPLE, environ={})
    assert shown.buffer != defaults.buffer
