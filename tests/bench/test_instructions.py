"""Instructions per live event stay under a generous bound (callgrind: immune to load).

``bench/bench_instructions.py`` counts them; this test runs its live path with few
events and fails on a large regression (an import or a loop on the per-event path, a
second fsync does not count: the kernel's instructions are not the process's).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.bench_instructions import instructions, live_path, valgrind_missing
from tests.broker import MosquittoBroker

# Measured 2.5 M per event (x86-64, Python 3.11, 2026-12); raw paho publish + PUBACK of
# the same token 0.37 M. 3x leaves room for other Pythons and library versions.
MAX_INSTRUCTIONS_PER_EVENT = 7_500_000


@pytest.mark.slow
@pytest.mark.broker
@pytest.mark.timeout(900)
def test_live_path_instructions_per_event_are_bounded(broker: MosquittoBroker,
                                                      tmp_path: Path) -> None:
    if valgrind_missing():
        pytest.skip(valgrind_missing() or "")
    per_event = live_path(broker, tmp_path, "ours", n=20, warmup=5)
    # the floor proves callgrind counted the events (a zero or a tiny count is a bench bug)
    assert 200_000 < per_event < MAX_INSTRUCTIONS_PER_EVENT, f"{per_event:,.0f} per event"


def test_instructions_reads_the_summary_of_a_dump(tmp_path: Path) -> None:
    dump = tmp_path / "cg.1"
    dump.write_text("version: 1\ncreator: callgrind-3.19.0\nevents: Ir\n"
                    "fn=(1) main\n1 10\n\nsummary: 1234567\ntotals: 1234567\n")
    assert instructions(dump) == 1234567
    (tmp_path / "empty").write_text("events: Ir\n")
    with pytest.raises(RuntimeError, match="no summary"):
        instructions(tmp_path / "empty")
