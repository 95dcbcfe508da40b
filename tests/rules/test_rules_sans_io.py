"""The version-2 care rules are sans-IO cores (STYLE.md pattern 1)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

BANNED = {"time", "threading", "socket", "paho", "gpiozero", "sqlite3", "jwt", "os", "zoneinfo",
          "asyncio"}


@pytest.mark.parametrize("module", ["activity", "inactivity", "checkin", "doors", "mode"])
def test_rule_module_is_sans_io(module: str) -> None:
    path = Path(__file__).parents[2] / "agent" / "rules" / f"{module}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert not imported & BANNED
    assert len(path.read_text(encoding="utf-8").splitlines()) < 400
