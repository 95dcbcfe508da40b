"""agent.arc.sender against pysiaalarm's real receiver (an independent DC-09 implementation,
its own CRC, AES via pycryptodome, its -40 s/+20 s timestamp check), on free loopback ports,
over TCP and UDP, encrypted and not (docs/spec.md §12.2, issue 13)."""
from __future__ import annotations

import queue
import time
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional, Tuple

import pytest

from agent.arc.codec import Codec, FrameSettings
from agent.arc.codes import CodeTable, message_for, zones
from agent.arc.link import Delivered, LinkEvent, LinkLost, LinkRestored, LinkSettings, Refused
from agent.arc.sender import ArcSender
from tests.helpers import wait_until

pysia = pytest.importorskip("pysiaalarm", reason="pysiaalarm 3.2 (the independent DC-09 receiver) needs Python 3.10 or later")
from pysiaalarm import CommunicationsProtocol, SIAAccount, SIAClient, SIAEvent  # noqa: E402

ACCOUNT = "1234AB"
ASCII_KEY = "0123456789ABCDEF"                   # pysiaalarm uses the key text's ASCII bytes
HEX_KEY = ASCII_KEY.encode().hex()               # the same 16 bytes, as key_encoding: hex gives
ZONES = zones(("sos", "door", "smoke"))
WAIT_S = 20.0


class Receiver:
    """pysiaalarm's SIAClient on a free loopback port; its accepted events in a queue."""

    def __init__(self, transport: str, key: Optional[str], port: int = 0) -> None:
        self.events: "queue.SimpleQueue[SIAEvent]" = queue.SimpleQueue()
        protocol = CommunicationsProtocol.TCP if transport == "tcp" else CommunicationsProtocol.UDP
        self.client = SIAClient("127.0.0.1", port, [SIAAccount(ACCOUNT, key)],
                                function=self.events.put, protocol=protocol)
        self.port: int = self.client.sia_server.server_address[1]
        self.client.start()

    def get(self) -> SIAEvent:
        return self.events.get(timeout=WAIT_S)

    def count(self, what: str) -> int:
        return int(self.client._counts.get(what) or 0)     # noqa: SLF001 - its only counter API

    def stop(self) -> None:
        self.client.stop()


@contextmanager
def link_to(receiver_port: int, transport: str, key: Optional[bytes], *, fmt: str = "ADM-CID",
            wall: Callable[[], float] = time.time, settings: Optional[LinkSettings] = None
            ) -> Iterator[Tuple[ArcSender, "queue.SimpleQueue[LinkEvent]"]]:
    events: "queue.SimpleQueue[LinkEvent]" = queue.SimpleQueue()
    codec = Codec(FrameSettings(ACCOUNT.lower(), fmt, key=key))
    sender = ArcSender("127.0.0.1", receiver_port, transport, codec,
                       settings or LinkSettings(ack_timeout_s=2.0, supervision_s=0),
                       on_event=events.put, wall=wall)
    sender.start()
    try:
        yield sender, events
    finally:
        sender.stop()


def submit(sender: ArcSender, key: object, event_type: str, sensor: str, fmt: str = "ADM-CID",
           occurred: Optional[float] = None) -> None:
    message = message_for(CodeTable(fmt), ZONES, type=event_type, sensor=sensor,
                          occurred=time.time() if occurred is None else occurred,
                          jti=f"jti-{key}")
    assert message is not None
    sender.submit(key, message)


def next_events(events: "queue.SimpleQueue[LinkEvent]", n: int) -> List[LinkEvent]:
    return [events.get(timeout=WAIT_S) for _ in range(n)]


@pytest.fixture(params=["tcp", "udp"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("key_text, key", [(None, None), (ASCII_KEY, ASCII_KEY.encode()),
                                           (ASCII_KEY, bytes.fromhex(HEX_KEY))],
                         ids=["plain", "aes-ascii", "aes-hex"])
def test_sos_and_smoke_arrive_as_contact_id(transport: str, key_text: Optional[str],
                                            key: Optional[bytes]) -> None:
    receiver = Receiver(transport, key_text)
    try:
        with link_to(receiver.port, transport, key) as (sender, events):
            submit(sender, 1, "sos.pressed", "sos")
            submit(sender, 2, "smoke.alarm", "smoke")
            submit(sender, 3, "smoke.cleared", "smoke")
            assert next_events(events, 3) == [Delivered(1, 1), Delivered(2, 2), Delivered(3, 3)]
            # one frame in flight at a time: the ACKs above came in order; pysiaalarm's own
            # callbacks may overtake each other (its tasks), so read them in frame order
            got = sorted((receiver.get() for _ in range(3)), key=lambda e: int(e.sequence))
            assert sender.status.last_ack_wall is not None and sender.status.pending == 0
    finally:
        receiver.stop()
    assert [(e.account, e.event_qualifier, e.event_type, e.ri, e.partition) for e in got] == [
        (ACCOUNT, "1", "101", "001", "01"), (ACCOUNT, "1", "111", "003", "01"),
        (ACCOUNT, "3", "111", "003", "01")]
    assert [e.code for e in got] == ["QA", "FA", "FH"]     # its SIA reading of the codes
    for e in got:               # pysiaalarm calls back only for ACKed events: CRC, account, time ok
        assert e.valid_message and e.valid_timestamp and e.encrypted == (key is not None)
        assert isinstance(e.timestamp, object) and abs(e.timestamp.timestamp() - time.time()) < 5  # type: ignore[union-attr]
    assert [e.sequence for e in got] == ["0001", "0002", "0003"]
    assert receiver.count("crc") == 0 and receiver.count("timestamp") == 0


def test_sia_dcs_carries_zone_jti_and_time_of_occurrence(transport: str) -> None:
    receiver = Receiver(transport, ASCII_KEY)
    try:
        with link_to(receiver.port, transport, ASCII_KEY.encode(), fmt="SIA-DCS") as (sender, events):
            submit(sender, "s", "sos.pressed", "sos", fmt="SIA-DCS", occurred=time.time() - 90)
            assert next_events(events, 1) == [Delivered("s", 1)]
            got = receiver.get()
    finally:
        receiver.stop()
    assert got.code == "QA" and got.message == "001"
    xdata = {x.identifier: x.value for x in got.extended_data or []}
    assert xdata["I"] == "jti=jti-s" and "H" in xdata


def test_a_clock_5_minutes_behind_is_naked_then_resent_with_the_offset(transport: str) -> None:
    receiver = Receiver(transport, ASCII_KEY)
    try:
        with link_to(receiver.port, transport, ASCII_KEY.encode(),
                     wall=lambda: time.time() - 300) as (sender, events):
            submit(sender, "sos", "sos.pressed", "sos")
            assert next_events(events, 1) == [Delivered("sos", 1)]
            got = receiver.get()
            assert sender.status.offset is not None and abs(sender.status.offset - 300) <= 1
    finally:
        receiver.stop()
    assert receiver.count("timestamp") == 1                # the first try was refused
    assert got.sequence == "0001" and abs(got.timestamp.timestamp() - time.time()) < 5  # type: ignore[union-attr]


def test_a_code_the_receiver_does_not_know_is_duh_and_not_sent_again(transport: str) -> None:
    # pysiaalarm ACKs an unknown Contact ID code (as "YN", invalid data) but answers DUH to
    # an unknown SIA code: an arc.codes override gives one
    receiver = Receiver(transport, None)
    table = CodeTable("SIA-DCS", {"care.inactivity": "QC"})
    try:
        with link_to(receiver.port, transport, None, fmt="SIA-DCS") as (sender, events):
            for key, event_type, sensor in (("quiet", "care.inactivity", "agent"),
                                            ("sos", "sos.pressed", "sos")):
                message = message_for(table, ZONES, type=event_type, sensor=sensor,
                                      occurred=time.time(), jti=key)
                assert message is not None
                sender.submit(key, message)
            assert next_events(events, 2) == [Refused("quiet", 1), Delivered("sos", 2)]
            assert receiver.get().code == "QA"
            assert sender.status.duh_count == 1
    finally:
        receiver.stop()
    assert receiver.count("code") == 1


def test_receiver_down_loses_the_link_and_back_up_delivers_in_order(transport: str) -> None:
    receiver = Receiver(transport, None)
    port = receiver.port
    receiver.stop()
    settings = LinkSettings(ack_timeout_s=0.5, supervision_s=0, max_backoff_s=0.5)
    with link_to(port, transport, None, settings=settings) as (sender, events):
        submit(sender, 1, "sos.pressed", "sos")
        submit(sender, 2, "smoke.alarm", "smoke")
        assert isinstance(events.get(timeout=WAIT_S), LinkLost) and sender.status.lost
        receiver = Receiver(transport, None, port)
        try:
            assert next_events(events, 3) == [Delivered(1, 1), LinkRestored(), Delivered(2, 2)]
            assert [receiver.get().event_type for _ in range(2)] == ["101", "111"]
        finally:
            receiver.stop()


def test_null_link_tests_are_acked_while_idle(transport: str) -> None:
    receiver = Receiver(transport, ASCII_KEY)
    try:
        settings = LinkSettings(ack_timeout_s=2.0, supervision_s=0.2)
        with link_to(receiver.port, transport, ASCII_KEY.encode(), settings=settings) as (sender, _):
            wait_until(lambda: receiver.count("valid_events") >= 3, WAIT_S, "three NULLs ACKed")
            assert not sender.status.lost and receiver.count("crc") == 0
            assert sender.status.last_ack_wall is not None
    finally:
        receiver.stop()
