"""Cost of making and signing an event, against the raw signature primitive.

For EdDSA and HS256: microseconds per ``make_event`` + ``Signer.sign`` (with real
``Counters`` on disk, block 1000, so the block write is amortised as in the agent)
versus ``hmac.new(...).digest()`` / cryptography's Ed25519 ``sign()`` over the same
signing-input bytes, in the same run; best of several repeats. Then the import
cost of the signing stack (fresh interpreters) against importing cryptography's
Ed25519 module alone and an empty interpreter.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.record.counters import Counters
from agent.record.events import make_event
from agent.record.signing import Signer

ROOT = Path(__file__).resolve().parent.parent
SECRET = b"bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"


def per_op_us(fns: List[Callable[[], object]], n: int, repeats: int = 7) -> List[float]:
    """Best-of-``repeats`` µs per call of each function, measured interleaved so that
    load from other processes on the machine hits them alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return [b / n * 1e6 for b in best]


def bench_events(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        counters = Counters(tmp)
        ed_key = Ed25519PrivateKey.generate()
        signers = {"EdDSA": Signer("EdDSA", ed_key), "HS256": Signer("HS256", SECRET, kid="hs")}

        def event_and_sign(signer: Signer) -> str:
            now = time.time()
            event = make_event(device_id="gw-0001", type="door.opened", sensor="front_door",
                               critical=False, data={"state": "open", "initial": False},
                               recognised_at=now, counters=counters, clock_synced=True,
                               now_epoch=now)
            return signer.sign(event)

        sample = event_and_sign(signers["EdDSA"])
        signing_input = sample.rsplit(".", 1)[0].encode("ascii")
        baselines = {
            "EdDSA": lambda: ed_key.sign(signing_input),
            "HS256": lambda: hmac.new(SECRET, signing_input, hashlib.sha256).digest(),
        }
        print(f"event + sign, {n} events per repeat, best of 7, interleaved "
              f"(token {len(sample)} bytes, signing input {len(signing_input)} bytes):")
        print(f"  {'alg':6} {'make_event+sign':>16} {'raw primitive':>14} {'ratio':>7} {'overhead':>9}")
        for alg, signer in signers.items():
            ours, base = per_op_us([lambda: event_and_sign(signer), baselines[alg]], n)
            print(f"  {alg:6} {ours:13.1f} µs {base:11.1f} µs {ours / base:6.1f}x "
                  f"{ours - base:6.1f} µs")
        counters.close()


def import_ms(code: str, runs: int = 7) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def bench_imports() -> None:
    rows: List[Tuple[str, str]] = [
        ("python -c pass", "pass"),
        ("import cryptography ed25519", "import cryptography.hazmat.primitives.asymmetric.ed25519"),
        ("import jwt", "import jwt"),
        ("import agent.record.signing", "import agent.record.signing"),
    ]
    print("start-up + import, fresh interpreter, best of 7:")
    empty = None
    for label, code in rows:
        ms = import_ms(code)
        empty = ms if empty is None else empty
        print(f"  {label:30} {ms:7.1f} ms  (+{ms - empty:5.1f} ms over empty)")


def main(argv: Optional[List[str]] = None) -> int:
    n = int(os.environ.get("BENCH_EVENTS", "2000"))
    bench_events(n)
    bench_imports()
    return 0


if __name__ == "__main__":
    sys.exit(main())
