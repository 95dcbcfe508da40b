"""DeliveryWindow: PUBACK bookkeeping, stall detection and rate cap on a virtual clock."""
from __future__ import annotations

import pytest

from agent.delivery import DeliveryWindow, WindowSettings


def window(**kw: object) -> DeliveryWindow:
    return DeliveryWindow(WindowSettings(**kw))  # type: ignore[arg-type]


def test_room_shrinks_as_publishes_go_out_and_grows_on_puback() -> None:
    w = window(max_inflight=3)
    assert w.room(0.0) == 3
    w.sent(1, 101, 0.0)
    w.sent(2, 102, 0.0)
    assert w.room(0.0) == 1
    assert w.busy_rows(0.0) == {101, 102}
    result = w.acked(1, 0x00, 0.5)
    assert (result.row_id, result.delivered) == (101, True)
    assert w.room(0.5) == 2


@pytest.mark.parametrize("reason,delivered", [
    (0x00, True), (0x10, True),   # 0x10 "no matching subscribers" is a success
    (0x7F, True), (0x80, False), (0x87, False), (0x97, False),
])
def test_reason_codes_below_0x80_are_success(reason: int, delivered: bool) -> None:
    w = window()
    w.sent(7, 70, 0.0)
    assert w.acked(7, reason, 1.0).delivered is delivered


def test_a_refused_row_is_held_back_then_offered_again() -> None:
    w = window(retry_rejected_s=30.0)
    w.sent(1, 10, 0.0)
    w.acked(1, 0x87, 1.0)
    assert 10 in w.busy_rows(2.0)
    assert w.next_deadline(2.0) == 31.0
    assert 10 not in w.busy_rows(31.0)
    assert w.rejected_total == 1


def test_unknown_mid_is_ignored() -> None:
    w = window()
    result = w.acked(99, 0, 0.0)
    assert result.row_id is None and not result.delivered


def test_stall_needs_outstanding_publishes_and_no_progress_for_the_timeout() -> None:
    w = window(ack_timeout_s=20.0)
    assert not w.stalled(1000.0)              # nothing outstanding: never stalled
    w.sent(1, 1, 0.0)
    w.sent(2, 2, 5.0)                          # a second publish does not restart the clock
    assert not w.stalled(19.999)
    assert w.next_deadline(10.0) == 20.0
    assert w.stalled(20.0)                     # the timeout completing exactly counts
    w.acked(1, 0, 20.0)                        # progress restarts it
    assert not w.stalled(39.9)
    assert w.stalled(40.0)


def test_reset_forgets_mids_and_returns_their_rows() -> None:
    w = window()
    w.sent(1, 11, 0.0)
    w.sent(2, 12, 0.0)
    assert sorted(w.reset()) == [11, 12]
    assert w.inflight == 0 and not w.stalled(100.0)
    assert w.acked(1, 0, 1.0).row_id is None   # a late PUBACK of the old connection


def test_rate_cap_is_a_token_bucket() -> None:
    w = window(max_inflight=1000, max_publish_rate=100.0)
    assert w.room(0.0) == 100                  # one second's burst
    for mid in range(100):
        w.sent(mid + 1, mid, 0.0)
    assert w.room(0.0) == 0
    assert w.next_deadline(0.0) == pytest.approx(0.01)
    assert w.room(0.5) == 50
    for mid in range(100):
        w.acked(mid + 1, 0, 0.5)
    assert w.room(10.0) == 100                 # never more than the burst


@pytest.mark.parametrize("kw", [{"max_inflight": 0}, {"ack_timeout_s": 0},
                                {"max_publish_rate": -1.0}])
def test_settings_are_validated(kw: dict) -> None:
    with pytest.raises(ValueError):
        WindowSettings(**kw)
