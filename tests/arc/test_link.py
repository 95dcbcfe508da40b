"""agent.arc.link on a virtual clock: ACK, NAK with time, DUH, resend and back-off,
NULL supervision, link lost / restored. Responses are real DC-09 frames (our codec's
framing checked against pysiaalarm in test_codec.py)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import List, Optional

import pytest

from agent.arc.codec import Codec, FrameSettings, crc16_arc, dc09_time, next_seq
from agent.arc.codes import ArcMessage, Code
from agent.arc.link import (BACKOFF, IDLE, TRANSITIONS, WAITING, ArcLink, Delivered, LinkLost,
                            LinkRestored, LinkSettings, Outgoing, Refused)

WALL0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()
SOS = ArcMessage(Code("ADM-CID", "101", "1"), zone=1, occurred=WALL0, jti="j1")
KEY = b"0123456789ABCDEF"


def answer(kind: str, seq: int, *, at: Optional[float] = None, codec: Optional[Codec] = None) -> bytes:
    if codec is not None and codec.settings.key:       # an encrypted ACK, as receivers send it
        tail = "|]" + (f"_{dc09_time(at)}" if at is not None else "")
        tail = "0" * (-len(tail) % 16) + tail
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        enc = Cipher(algorithms.AES(codec.settings.key), modes.CBC(bytes(16))).encryptor()
        body = f'"*{kind}"{seq:04d}L0#1234AB[' + (enc.update(tail.encode()) + enc.finalize()).hex().upper()
    else:
        body = f'"{kind}"{seq:04d}L0#1234AB[]' + (f"_{dc09_time(at)}" if at is not None else "")
    return b"\n%04X%04X%s\r" % (crc16_arc(body.encode()), len(body), body.encode())


class Rig:
    """A link, its virtual clocks, and the frames it wrote."""

    def __init__(self, supervision_s: float = 600.0, key: Optional[bytes] = None) -> None:
        self.now, self.wall = 0.0, WALL0
        self.codec = Codec(FrameSettings("1234AB", key=key))
        self.link = ArcLink(self.codec, LinkSettings(10.0, supervision_s), self.now)
        self.sent: List[Outgoing] = []
        self.synced = True

    def at(self, now: float) -> None:
        self.wall += now - self.now
        self.now = now

    def poll(self) -> Optional[Outgoing]:
        out = self.link.next_frame(self.now, self.wall, self.synced)
        if out is not None:
            self.sent.append(out)
        return out

    def reply(self, kind: str, seq: Optional[int] = None, at: Optional[float] = None) -> list:  # type: ignore[type-arg]
        return self.link.received(answer(kind, self.sent[-1].seq if seq is None else seq, at=at,
                                         codec=self.codec if kind == "ACK" else None),
                                  self.now, self.wall)


def test_transition_table_covers_the_states() -> None:
    assert set(TRANSITIONS) == {IDLE, WAITING, BACKOFF}


def test_ack_delivers_and_the_next_event_goes_at_once_in_order() -> None:
    rig = Rig()
    rig.link.submit("a", SOS, 0.0)
    rig.link.submit("b", SOS, 0.0)
    first = rig.poll()
    assert first is not None and first.key == "a" and first.seq == 1
    assert rig.poll() is None                          # one frame in flight
    assert rig.reply("ACK") == [Delivered("a", 1)]
    second = rig.poll()
    assert second is not None and (second.key, second.seq) == ("b", 2)
    assert rig.link.pending == 1 and rig.link.state == WAITING


def test_no_answer_resends_the_same_number_with_backoff_up_to_60_s() -> None:
    rig = Rig()
    rig.link.submit("a", SOS, 0.0)
    rig.poll()
    tries = [0.0]
    for _ in range(8):
        deadline = rig.link.next_deadline()
        assert deadline is not None
        rig.at(deadline)
        rig.link.advance(rig.now)                      # no answer within ack_timeout_s
        retry = rig.link.next_deadline()
        assert retry is not None
        rig.at(retry)
        assert rig.poll() is not None
        tries.append(rig.now)
    gaps = [b - a - 10.0 for a, b in zip(tries, tries[1:])]
    assert gaps == [2, 4, 8, 16, 32, 60, 60, 60]
    assert {o.seq for o in rig.sent} == {1}            # a retransmission keeps its number
    assert len({o.frame for o in rig.sent}) == len(rig.sent)   # ... with a fresh timestamp
    assert rig.reply("ACK") == [Delivered("a", 1), LinkRestored()]


def test_three_misses_raise_link_lost_once_and_the_next_ack_restores() -> None:
    rig = Rig()
    rig.link.submit("a", SOS, 0.0)
    events = []
    for _ in range(4):
        rig.poll()
        rig.at(rig.link.next_deadline() or 0)
        events += rig.link.advance(rig.now)
        rig.at(rig.link.next_deadline() or 0)
    assert events == [LinkLost(3)] and rig.link.lost
    rig.poll()
    assert rig.reply("ACK") == [Delivered("a", 1), LinkRestored()]
    assert not rig.link.lost and rig.link.misses == 0


def test_nak_with_receiver_time_retries_at_once_with_the_offset() -> None:
    rig = Rig()
    rig.synced = True
    rig.link.submit("a", SOS, 0.0)
    rig.poll()
    assert "_12:00:00,12-01-2026" in rig.sent[-1].frame.decode()
    assert rig.reply("NAK", seq=0, at=WALL0 + 300) == []       # pysiaalarm's NAK: seq 0000
    assert rig.link.offset == 300 and rig.link.next_deadline() == rig.now
    again = rig.poll()
    assert again is not None and again.seq == 1
    assert "_12:05:00,12-01-2026" in again.frame.decode()      # the receiver's clock
    assert rig.reply("ACK") == [Delivered("a", 1)]
    rig.link.submit("b", SOS, rig.now)
    later = rig.poll()                                  # the offset stays in use after a NAK
    assert later is not None and "_12:05:00" in later.frame.decode()


def test_repeated_nak_with_the_same_time_backs_off() -> None:
    rig = Rig()
    rig.link.submit("a", SOS, 0.0)
    rig.poll()
    rig.reply("NAK", seq=0, at=WALL0 + 300)
    rig.poll()
    rig.reply("NAK", seq=0, at=WALL0 + 300)              # the offset did not move: back off
    assert rig.link.next_deadline() == rig.now + 4.0


def test_offset_is_used_while_the_clock_is_not_synchronised() -> None:
    rig = Rig(key=KEY)
    rig.link.submit("a", SOS, 0.0)
    rig.poll()
    rig.reply("ACK", at=WALL0 + 120)                     # an encrypted ACK carries its time
    assert rig.link.offset == 120 and not rig.link.nak_seen
    rig.link.submit("b", SOS, 0.0)
    synced = rig.poll()
    assert synced is not None
    rig.reply("ACK", at=WALL0 + 120)
    rig.synced = False
    rig.link.submit("c", SOS, 0.0)
    unsynced = rig.poll()
    assert unsynced is not None
    plain = [rig.codec.decrypt(o.frame.decode().split("[", 1)[1][:-1]) for o in (synced, unsynced)]
    assert plain[0].endswith("_12:00:00,12-01-2026") and plain[1].endswith("_12:02:00,12-01-2026")


def test_unencrypted_ack_on_an_encrypted_link_is_not_a_delivery() -> None:
    rig = Rig(key=KEY)
    rig.link.submit("a", SOS, 0.0)
    rig.poll()
    forged = answer("ACK", 1)
    assert rig.link.received(forged, rig.now, rig.wall) == [] and rig.link.bad_responses == 1
    assert rig.reply("ACK") == [Delivered("a", 1)]


def test_duh_is_counted_and_never_sent_again() -> None:
    rig = Rig()
    rig.link.submit("a", SOS, 0.0)
    rig.link.submit("b", SOS, 0.0)
    rig.poll()
    assert rig.reply("DUH") == [Refused("a", 1)] and rig.link.duh_count == 1
    nxt = rig.poll()
    assert nxt is not None and nxt.key == "b"
    assert rig.link.misses == 0


def test_stale_and_garbage_answers_are_ignored() -> None:
    rig = Rig()
    rig.link.submit("a", SOS, 0.0)
    rig.poll()
    assert rig.reply("ACK", seq=7) == []
    assert rig.link.received(b"\n\r", rig.now, rig.wall) == []
    assert rig.link.received(b"\nFFFF0004junk\r", rig.now, rig.wall) == [] and rig.link.bad_responses == 2
    assert rig.link.state == WAITING


def test_late_ack_during_the_backoff_still_delivers() -> None:
    rig = Rig()
    rig.link.submit("a", SOS, 0.0)
    rig.poll()
    rig.at(10.0)
    rig.link.advance(rig.now)
    assert rig.link.state == BACKOFF
    rig.at(11.0)
    assert rig.reply("ACK", seq=1) == [Delivered("a", 1)]


def test_write_failure_is_a_miss_and_a_new_event_ends_the_wait() -> None:
    rig = Rig()
    rig.link.submit("a", SOS, 0.0)
    rig.poll()
    rig.link.write_failed(rig.now)
    assert rig.link.next_deadline() == 2.0
    rig.at(1.0)
    rig.link.submit("b", SOS, rig.now)
    assert rig.link.next_deadline() == 1.0
    out = rig.poll()
    assert out is not None and out.key == "a"          # order kept: the head goes first


def test_null_supervision_while_idle_takes_its_own_numbers() -> None:
    rig = Rig(supervision_s=600.0)
    assert rig.link.next_deadline() == 600.0
    rig.at(599.0)
    assert rig.poll() is None
    rig.at(600.0)
    null = rig.poll()
    assert null is not None and null.key is None and b'"NULL"0001' in null.frame
    assert rig.reply("ACK") == []
    assert rig.link.next_deadline() == 1200.0
    rig.link.submit("a", SOS, rig.now)
    event = rig.poll()
    assert event is not None and event.seq == 2
    rig.reply("ACK")
    assert rig.link.next_deadline() == 1200.0           # "while nothing else was sent"


def test_missed_nulls_lose_the_link() -> None:
    rig = Rig(supervision_s=600.0)
    events = []
    seqs = []
    for _ in range(3):
        rig.at(rig.link.next_deadline() or 0)
        out = rig.poll()
        assert out is not None and out.key is None
        seqs.append(out.seq)
        rig.at(rig.link.next_deadline() or 0)
        events += rig.link.advance(rig.now)
    assert events == [LinkLost(3)] and seqs == [1, 2, 3]
    rig.at(rig.link.next_deadline() or 0)
    rig.poll()
    assert rig.reply("ACK") == [LinkRestored()]


def test_supervision_off_means_no_nulls() -> None:
    rig = Rig(supervision_s=0)
    assert rig.link.next_deadline() is None
    rig.at(10_000.0)
    assert rig.poll() is None


def test_sequence_wraps_after_9999() -> None:
    rig = Rig(supervision_s=0)
    rig.link._seq = 9998                                 # noqa: SLF001 - start near the end
    seqs = []
    for key in range(3):
        rig.link.submit(key, SOS, rig.now)
        out = rig.poll()
        assert out is not None
        seqs.append(out.seq)
        rig.reply("ACK")
    assert seqs == [9999, 1, 2] and next_seq(9999) == 1


@pytest.mark.parametrize("bad", [dict(ack_timeout_s=0), dict(supervision_s=-1)])
def test_settings_refuse_nonsense(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        LinkSettings(**bad)


@pytest.mark.parametrize("module", ["codes", "codec", "link"])
def test_sans_io_modules_import_no_io(module: str) -> None:
    import ast
    import importlib

    path = importlib.import_module(f"agent.arc.{module}").__file__
    assert path is not None
    tree = ast.parse(open(path, encoding="utf-8").read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert not imported & {"time", "threading", "socket", "select", "paho", "gpiozero",
                           "sqlite3", "jwt", "asyncio"}
