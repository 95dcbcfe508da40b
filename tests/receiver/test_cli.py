"""``homecare-receiver validate``, and the sans-IO rule for the receiver's cores."""
import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, cli_env

SANS_IO = ("intake.py", "supervision.py", "alarms.py")
FORBIDDEN = {"paho", "jwt", "psycopg", "sqlite3", "socket", "threading", "time", "gpiozero"}


def _validate(path: Path) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "receiver.cli", "validate", "--config",
                           str(path)], capture_output=True, text=True, env=cli_env(),
                          cwd=str(REPO), timeout=60)


def test_validate_says_ok_or_lists_the_problems(tmp_path):
    good = tmp_path / "rx.yaml"
    good.write_text("instance: r1\ncommands: {key_file: k.pem}\n"
                    "devices: [{id: gw-1, key_file: gw-1.pem}]\n")
    result = _validate(good)
    assert result.returncode == 0 and "OK (1 devices)" in result.stdout, result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("instance: r1\ncommands: {key_file: k.pem}\ndevises: []\n")
    result = _validate(bad)
    assert result.returncode == 1
    assert f"{bad}:3:1: devises: unknown key 'devises'; did you mean 'devices'?" in result.stderr


def test_the_cores_do_no_io():
    for name in SANS_IO:
        tree = ast.parse((REPO / "receiver" / name).read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert not imported & FORBIDDEN, f"{name} imports {imported & FORBIDDEN}"


def test_agent_never_imports_the_receiver():
    for path in (REPO / "agent").rglob("*.py"):
        assert "receiver" not in {
            (n.module or "").split(".")[0] for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.ImportFrom)} | {
            a.name.split(".")[0] for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Import) for a in n.names}, path
