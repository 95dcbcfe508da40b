"""Where each MiB of the daemon goes: VmRSS of a fresh interpreter as the layers are imported.

One fresh ``python`` imports the layers below in turn and reads its own VmRSS after each;
the figure per layer is what it adds on top of everything before it (so the order
matters: ``cryptography.x509`` is counted where it is listed, not inside PyJWT). The
layers follow the daemon's data path; our own modules come last, in the groups a lazy
import could leave out (commands, care rules). Median of ``BENCH_IMPORT_RUNS`` (default
3) interpreters. The baseline is the bare interpreter, in the same run. ``+anon`` is the part
of ``+MiB`` that is private memory (RssAnon: heap, byte code); the rest is pages of
shared libraries read from disk (RssFile), which VmRSS counts too. The last column
is the same under ``python -OO`` (no docstrings, no asserts; a first run writes the ``.opt-2.pyc``
files beside the others, as a service started with ``-OO`` would).

The running daemon adds its threads, the SQLite page cache and sockets on top (see
``bench daemon``'s VmRSS).

Run: ``python -m bench imports``.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent

LAYERS: Sequence[Tuple[str, Sequence[str]]] = (
    ("ssl (libssl, libcrypto)", ("ssl",)),
    ("urllib.request + http.client (paho imports them)", ("urllib.request", "http.client")),
    ("paho.mqtt.client", ("paho.mqtt.client",)),
    ("cryptography (Ed25519, serialization)", ("cryptography.hazmat.primitives.asymmetric.ed25519",
                                               "cryptography.hazmat.primitives.serialization")),
    ("cryptography.x509 (PyJWT needs it)", ("cryptography.x509",)),
    ("jwt (PyJWT itself)", ("jwt",)),
    ("yaml", ("yaml",)),
    ("sqlite3", ("sqlite3",)),
    ("gpiozero", ("gpiozero",)),
    ("gpiozero.pins.mock (the bench's backend)", ("gpiozero.pins.mock",)),
    ("drivers/ (sensors, pins, outputs)", ("drivers.pins", "drivers.sos", "drivers.door",
                                           "drivers.smoke", "drivers.outputs")),
    ("agent.config", ("agent.config.model",)),
    ("ctypes, concurrent.futures (agent.outbox)", ("ctypes", "ctypes.util", "concurrent.futures")),
    ("agent.record + agent.outbox", ("agent.record.recorder", "agent.outbox.store")),
    ("agent.delivery", ("agent.delivery.publisher",)),
    ("agent.remote (commands)", ("agent.remote.handler", "agent.remote.keys",
                                 "agent.remote.policy", "agent.remote.seen")),
    ("agent.rules + agent.alarms", ("agent.rules.care", "agent.alarms.feedback")),
    ("agent.app + agent.cli.run", ("agent.app.daemon", "agent.cli.main", "agent.cli.run")),
)

PROBE = """\
import importlib, json, sys, time
def rss():
    kb = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            kb[key] = int(value.split()[0])
    return kb["VmRSS"], kb["RssAnon"]
out = [("interpreter", *rss(), len(sys.modules), 0.0)]
for label, modules in json.loads(sys.stdin.readline()):
    t0 = time.perf_counter()
    for m in modules:
        importlib.import_module(m)
    out.append((label, *rss(), len(sys.modules), time.perf_counter() - t0))
print(json.dumps(out))
"""


Sample = Tuple[str, int, int, int, float]   # layer, VmRSS kB, RssAnon kB, modules, s
Row = Tuple[str, float, float, float, int, float]


def probe(flags: Sequence[str] = ()) -> List[Sample]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, *flags, "-c", PROBE], input=json.dumps(LAYERS) + "\n",
                          capture_output=True, text=True, env=env, cwd=str(REPO), check=True)
    return [(str(label), int(rss), int(anon), int(modules), float(seconds))
            for label, rss, anon, modules, seconds in json.loads(done.stdout)]


def breakdown(runs: int, flags: Sequence[str] = ()) -> List[Row]:
    """(layer, MiB added, MiB total, anonymous MiB added, modules added, ms), medians over
    ``runs`` interpreters."""
    probe(flags)   # writes any missing byte code; compiling is not what is measured
    samples = [probe(flags) for _ in range(runs)]

    def mib(i: int, field: int) -> float:   # field 1: VmRSS, 2: RssAnon
        if i < 0:
            return 0.0
        return statistics.median(int(s[i][field]) for s in samples) / 1024
    rows = []
    for i, (label, *_rest) in enumerate(samples[0]):
        modules = samples[0][i][3] - (samples[0][i - 1][3] if i else 0)
        ms = statistics.median(s[i][4] for s in samples) * 1000
        rows.append((label, mib(i, 1) - mib(i - 1, 1), mib(i, 1), mib(i, 2) - mib(i - 1, 2),
                     modules, ms))
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    runs = int(os.environ.get("BENCH_IMPORT_RUNS", "3"))
    rows = breakdown(runs)
    optimised = breakdown(runs, ("-OO",))   # docstrings and asserts left out
    interpreter = rows[0][2]
    print(f"VmRSS of a fresh interpreter as each layer is imported (median of {runs}); "
          f"Python {sys.version.split()[0]}; baseline: the bare interpreter")
    print(f"  {'layer':50} {'+MiB':>6} {'MiB':>6} {'x interp':>8} {'+anon':>6} {'+modules':>8}"
          f" {'ms':>5} {'-OO +MiB':>8}")
    for (label, added, total, anon, modules, ms), opt in zip(rows, optimised):
        print(f"  {label:50} {added:6.1f} {total:6.1f} {total / interpreter:8.2f} {anon:6.1f} "
              f"{modules:8d} {ms:5.0f} {opt[1]:8.1f}")
    print(f"  all imports: {rows[-1][2]:.1f} MiB; with -OO {optimised[-1][2]:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
