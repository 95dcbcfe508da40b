"""The service unit passes `systemd-analyze verify` silently and scores <= 2.0 exposure."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO

UNIT = REPO / "systemd" / "homecare-agent.service"
INSTALLED_EXEC = "/opt/homecare-agent/venv/bin/homecare-agent"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze is not installed")


def unit_settings() -> dict:
    settings: dict = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_verify_prints_nothing(tmp_path: Path) -> None:
    # The venv under /opt exists only on an installed gateway; verify the same unit
    # with ExecStart pointing at a program that exists here.
    text = UNIT.read_text()
    assert INSTALLED_EXEC in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(INSTALLED_EXEC, shutil.which("true") or "/bin/true"))
    result = subprocess.run(["systemd-analyze", "verify", str(copy)],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_security_exposure_at_most_2_0() -> None:
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNIT)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    assert float(match.group(1)) <= 2.0


def test_the_contract_of_spec_section_9() -> None:
    s = unit_settings()
    assert s["Type"] == ["notify"]
    assert s["Restart"] == ["always"]
    assert s["WatchdogSec"] and s["StateDirectory"] == ["homecare-agent"]
    assert s["ConfigurationDirectory"] == ["homecare-agent"]
    assert "gpio" in s["SupplementaryGroups"][0].split()
    assert any(v.startswith("char-gpiochip") for v in s["DeviceAllow"])
    assert "GPIOZERO_PIN_FACTORY=lgpio" in s["Environment"]
    assert all(":" in v for v in s["LoadCredential"])
    assert "DynamicUser" not in s   # a static user, so the gpio group applies
