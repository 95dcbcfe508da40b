"""The command line parses every sub-command of docs/spec.md §8."""
from __future__ import annotations

import pytest

from agent.cli.main import build_parser
from tests.helpers import run_cli


@pytest.mark.parametrize("argv", [
    ["run", "--config", "x.yaml"],
    ["validate", "--config", "x.yaml"],
    ["simulate", "--config", "x.yaml", "--timeline", "t.yaml", "--timeout", "5", "--speed", "10"],
    ["demo"],
    ["keygen", "--out", "k.pem"],
    ["status", "--config", "x.yaml"],
    ["monitor", "--config", "x.yaml"],
    ["verify", "--key", "pub.pem"],
])
def test_every_spec_command_parses(argv: list) -> None:
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]


def test_run_defaults_to_etc_config() -> None:
    assert build_parser().parse_args(["run"]).config == "/etc/homecare-agent/config.yaml"


def test_python_dash_m_agent_prints_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("homecare-agent ")
