"""The command.rejected rate limit (docs/spec.md §7)."""
from __future__ import annotations

import pytest

from agent.remote.limiter import RejectionLimiter
from tests.helpers import IO_MODULES, top_level_imports


def test_31st_rejection_in_a_minute_is_suppressed_and_summarised_once() -> None:
    limiter = RejectionLimiter()
    t = 1000.0
    admitted = [limiter.admit("bad_signature", t + i * 0.5) for i in range(30)]
    assert all(admitted) and limiter.next_deadline() is None
    assert not limiter.admit("bad_signature", t + 15.0)  # the 31st
    assert limiter.next_deadline() == t + 75.0
    for i in range(9):
        assert not limiter.admit("replayed" if i % 3 == 0 else "malformed", t + 16 + i)
    assert limiter.suppressed == 10
    assert limiter.poll(t + 74.9) is None
    assert limiter.poll(t + 75.0) == {"suppressed": 10,
                                      "reasons": {"bad_signature": 1, "malformed": 6, "replayed": 3}}
    assert limiter.poll(t + 75.1) is None and limiter.next_deadline() is None and limiter.suppressed == 0


def test_window_slides_so_rejections_flow_again_after_a_minute() -> None:
    limiter = RejectionLimiter()
    for i in range(30):
        assert limiter.admit("malformed", float(i))
    assert not limiter.admit("malformed", 59.9)
    assert limiter.admit("malformed", 60.0)  # the one sent at t=0 has left the window
    assert not limiter.admit("malformed", 60.5)


def test_summaries_come_at_most_once_a_minute_under_a_flood() -> None:
    limiter = RejectionLimiter()
    summaries = []
    now = 0.0
    while now < 600.0:  # 10 minutes of 20 bad commands a second
        limiter.admit("bad_signature", now)
        deadline = limiter.next_deadline()
        if deadline is not None and now >= deadline:
            summary = limiter.poll(now)
            assert summary is not None
            summaries.append((now, summary["suppressed"]))
        now = round(now + 0.05, 2)
    times = [at for at, _ in summaries]
    assert all(b - a >= 60.0 for a, b in zip(times, times[1:]))
    assert 8 <= len(summaries) <= 10
    sent = 12000 - sum(n for _, n in summaries) - limiter.suppressed
    assert sent <= 30 * 10 + 30  # never more than 30 per sliding minute


def test_forced_poll_at_shutdown_and_validation() -> None:
    limiter = RejectionLimiter(limit=1, window_s=60)
    assert limiter.poll(0.0, force=True) is None
    limiter.admit("expired", 0.0)
    limiter.admit("expired", 1.0)
    assert limiter.poll(2.0, force=True) == {"suppressed": 1, "reasons": {"expired": 1}}
    with pytest.raises(ValueError):
        RejectionLimiter(limit=0)
    with pytest.raises(ValueError):
        RejectionLimiter(window_s=0)


def test_the_limiter_stays_sans_io() -> None:
    import agent.remote.limiter as module
    imported = top_level_imports(module)
    assert imported and not imported & IO_MODULES, imported & IO_MODULES
