"""mqtt.max_payload_bytes (project-added key): default 128 KB, a positive whole number."""
from __future__ import annotations

from pathlib import Path

import pytest

from agent.config.model import ConfigProblems, load_config

REPO = Path(__file__).resolve().parents[2]


def config_with(tmp_path: Path, extra: str) -> Path:
    text = (REPO / "config" / "example.yaml").read_text()
    text = text.replace("  max_payload_bytes: 131072", "  max_payload_bytes: " + extra)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_example_and_default_are_aws_iot_cores_128_kb(tmp_path: Path) -> None:
    text = (REPO / "config" / "example.yaml").read_text()
    assert "  max_payload_bytes: 131072" in text
    path = tmp_path / "config.yaml"
    path.write_text(text.replace("  max_payload_bytes: 131072", "  # (omitted)"))
    assert load_config(path).mqtt.max_payload_bytes == 131072


def test_a_set_value_is_kept(tmp_path: Path) -> None:
    assert load_config(config_with(tmp_path, "4096")).mqtt.max_payload_bytes == 4096


@pytest.mark.parametrize("value, message", [("0", "least allowed is 1"),
                                            ("-5", "least allowed is 1"),
                                            ("1.5", "expected a whole number"),
                                            ("big", "expected a whole number")])
def test_bad_values_are_errors(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigProblems) as err:
        load_config(config_with(tmp_path, value))
    assert "mqtt.max_payload_bytes" in str(err.value) and message in str(err.value)
