"""agent.app.messages: the loop's typed messages and its queue."""
from __future__ import annotations

import math
import threading

import pytest

from agent.app.messages import (CallMsg, CommandMsg, DeliveredMsg, EdgeMsg, Inbox, StopMsg)


def test_each_submit_puts_its_typed_message_in_order() -> None:
    inbox = Inbox()
    done = threading.Event()
    inbox.submit_edge(("sos", True, 1.5))
    inbox.submit_command(b"jwt")
    inbox.submit_delivered([3, 4])
    inbox.submit_call(done.set)
    inbox.request_stop(reload=True)
    assert inbox.get(timeout=0) == [EdgeMsg("sos", True, 1.5), CommandMsg(b"jwt"),
                                    DeliveredMsg((3, 4)), CallMsg(done.set), StopMsg(reload=True)]
    assert inbox.get(timeout=0) == []


def test_take_edges_keeps_only_the_edges_in_arrival_order() -> None:
    inbox = Inbox()
    inbox.submit_edge(("sos", True, 1.0))
    inbox.submit_delivered([1])
    inbox.submit_edge(("door", False, 2.0))
    inbox.request_stop()
    assert inbox.take_edges() == [("sos", True, 1.0), ("door", False, 2.0)]
    assert inbox.drain() == []


def test_messages_validate() -> None:
    with pytest.raises(ValueError, match="level must be a bool"):
        EdgeMsg("sos", 1, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        EdgeMsg("sos", True, math.nan)
    with pytest.raises(TypeError, match="callable"):
        CallMsg("not a function")  # type: ignore[arg-type]
