"""Drivers for tests (like h11's ConnectionPair): run the CLI, wait for things."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

REPO = Path(__file__).resolve().parent.parent


def cli_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for running ``python -m agent`` from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("JOURNAL_STREAM", None)
    if extra:
        env.update(extra)
    return env


def cli_command(*args: str) -> List[str]:
    return [sys.executable, "-m", "agent", *args]


def run_cli(*args: str, input: Optional[str] = None, timeout: float = 60.0,
            env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None) -> "subprocess.CompletedProcess[str]":
    """Run ``homecare-agent ARGS`` as a subprocess and capture its output."""
    return subprocess.run(cli_command(*args), input=input, capture_output=True, text=True,
                          timeout=timeout, env=cli_env(env), cwd=str(cwd or REPO))


def popen_cli(*args: str, env: Optional[Dict[str, str]] = None,
              **kwargs: object) -> "subprocess.Popen[str]":
    return subprocess.Popen(cli_command(*args), env=cli_env(env), text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def lines(text: str) -> Sequence[str]:
    return [line for line in text.splitlines() if line.strip()]


def wait_until(predicate: "Callable[[], bool]", timeout: float = 5.0, what: str = "condition",
               interval: float = 0.005) -> None:
    """Poll ``predicate`` until it holds; AssertionError naming ``what`` after ``timeout``.

    For state that has no event to wait on (another thread's status snapshot).
    """
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def npm_ready(folder: Path, module: str) -> Path:
    """Install ``folder``'s Node packages once (``npm ci`` from its lock file; kept as a
    cache in node_modules); skip the test where node/npm are missing."""
    import shutil

    import pytest

    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed (apt-get install nodejs npm)")
    if not (folder / "node_modules" / module).is_dir():
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=str(folder),
                              capture_output=True, text=True, timeout=110)
        if done.returncode != 0:
            pytest.fail(f"npm ci in {folder} failed:\n{done.stdout}\n{done.stderr}")
    return folder


def assert_unique_boot_seq(claims: "Sequence[Mapping[str, Any]]") -> None:
    """No two different events may carry the same (``boot``, ``seq``) (docs/spec.md §4).

    ``claims`` are decoded event claims, as a test collected them (from the broker, the
    outbox or both). The same event seen twice (same ``jti``: a QoS 1 repeat, or an event
    read from two places) is fine; two ``jti`` under one pair is a reused counter.
    """
    owner: Dict[Tuple[int, int], str] = {}
    clashes: List[str] = []
    for c in claims:
        key = (int(c["boot"]), int(c["seq"]))
        seen = owner.setdefault(key, str(c["jti"]))
        if seen != c["jti"]:
            clashes.append(f"boot={key[0]} seq={key[1]}: {seen} and {c['jti']} ({c.get('type')})")
    assert not clashes, "(boot, seq) reused:\n" + "\n".join(clashes)


#: what a sans-IO core must not import (docs/ARCHITECTURE.md "Rules every module keeps")
IO_MODULES = frozenset({"gpiozero", "paho", "jwt", "cryptography", "sqlite3", "socket",
                        "threading", "time", "os"})


def top_level_imports(module: ModuleType) -> Set[str]:
    """The top-level package of everything ``module``'s source imports, wherever it does."""
    tree = ast.parse(Path(str(module.__file__)).read_text())
    found = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    found |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom)}
    return found
