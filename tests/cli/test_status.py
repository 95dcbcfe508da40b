"""agent.cli.status: what it loads (the technician runs it next to a busy daemon)."""
from __future__ import annotations

import subprocess
import sys

from tests.helpers import cli_env


def test_status_imports_neither_paho_nor_gpiozero_nor_jwt() -> None:
    probe = ("import sys, agent.cli.status; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'paho', 'gpiozero', 'jwt'}))")
    result = subprocess.run([sys.executable, "-c", probe], env=cli_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
