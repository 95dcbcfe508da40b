"""agent.arc.codec: DC-09 framing, CRC, sequence numbers, encryption and responses.

pysiaalarm's parser (an independent implementation, pycryptodome for AES) reads our
frames back; the socket tests are in tests/integration/test_arc_sia.py.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Optional

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from agent.arc.codec import (LATE_S, MAX_SEQ, Codec, FrameSettings, FrameSplitter, ResponseError,
                             crc16_arc, dc09_time, next_seq, parse_dc09_time)
from agent.arc.codes import ArcMessage, Code

pysia = pytest.importorskip("pysiaalarm", reason="pysiaalarm 3.2 (the independent DC-09 receiver) needs Python 3.10 or later")
from pysiaalarm import SIAAccount  # noqa: E402
from pysiaalarm.event import SIAEvent  # noqa: E402

#: 2026-12-01 12:00:00 UTC
T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()
JTI = "0b7e9c1a-5d2f-4e39-9a61-3f0c2d4b8e17"
SOS = ArcMessage(Code("ADM-CID", "101", "1"), zone=1, occurred=T0, jti=JTI)
KEY16 = b"0123456789ABCDEF"


def frame_text(frame: bytes) -> str:
    assert frame.startswith(b"\n") and frame.endswith(b"\r") and frame.count(b"\r") == 1
    return frame[1:-1].decode("ascii")


def parsed(frame: bytes, key: Optional[bytes] = None, account: str = "1234AB") -> SIAEvent:
    acc = SIAAccount(account, key.decode("ascii") if key else None, allowed_timeband=None)
    return SIAEvent.from_line(frame_text(frame), {account: acc})


@pytest.mark.parametrize("data, crc", [(b"123456789", 0xBB3D), (b"", 0x0000), (b"A", 0x30C0),
                                       (b'"NULL"0000L0#1234[]', None)])
def test_crc16_arc_vectors_and_pysiaalarm_agree(data: bytes, crc: Optional[int]) -> None:
    if crc is not None:
        assert crc16_arc(data) == crc          # CRC-16/ARC check value and two hand vectors
    assert f"{crc16_arc(data):04X}" == SIAEvent._crc_calc(data.decode())


def test_unencrypted_adm_cid_frame_is_exactly_dc09() -> None:
    codec = Codec(FrameSettings("1234ab", "ADM-CID", line="0"))
    frame = codec.event_frame(7, SOS, sent_at=T0 + 3)
    body = '"ADM-CID"0007L0#1234AB[#1234AB|1101 01 001]_12:00:03,12-01-2026'
    assert frame_text(frame) == f"{crc16_arc(body.encode()):04X}{len(body):04X}{body}"
    event = parsed(frame)
    assert event.valid_message      # (its valid_length reads the hex length as decimal)
    assert (event.code, event.event_qualifier, event.event_type, event.partition, event.ri) == \
        ("QA", "1", "101", "01", "001")
    assert event.account == "1234AB" and event.sequence == "0007"


def test_receiver_field_and_upper_case_account() -> None:
    codec = Codec(FrameSettings("abc", "ADM-CID", line="1F", receiver="12"))
    text = frame_text(codec.null_frame(1, T0))
    assert '"NULL"0001R12L1F#ABC[]_12:00:00,12-01-2026' in text


def test_late_event_carries_its_time_of_occurrence_once() -> None:
    codec = Codec(FrameSettings("1234AB"))
    assert "[H" not in frame_text(codec.event_frame(1, SOS, T0 + LATE_S))
    late = frame_text(codec.event_frame(1, SOS, T0 + LATE_S + 1, offset=60))
    assert late.count("[") == 2                 # the data and one extended-data block
    assert "][H12:01:00,12-01-2026]_12:01:21,12-01-2026" in late   # both on the receiver's clock
    event = parsed(codec.event_frame(1, SOS, T0 + 300))
    assert [(x.identifier, x.value) for x in event.extended_data or []] == [("H", "12:00:00,12-01-2026")]


def test_sia_dcs_frame_carries_code_zone_and_jti() -> None:
    codec = Codec(FrameSettings("1234AB", "SIA-DCS"))
    message = ArcMessage(Code("SIA-DCS", "FA"), zone=2, occurred=T0, jti=JTI)
    text = frame_text(codec.event_frame(3, message, T0 + 1))
    assert f'"SIA-DCS"0003L0#1234AB[#1234AB|Nri1/FA002][Ijti={JTI}]_12:00:01,12-01-2026' in text
    event = parsed(codec.event_frame(3, message, T0 + 1))
    assert event.code == "FA" and event.message == "002"
    assert [(x.identifier, x.value) for x in event.extended_data or []] == [("I", f"jti={JTI}")]


def test_a_code_of_the_other_format_is_refused() -> None:
    with pytest.raises(ValueError, match="SIA-DCS code on a ADM-CID link"):
        Codec(FrameSettings("1234AB")).event_frame(1, ArcMessage(Code("SIA-DCS", "FA"), 1, T0), T0)


@pytest.mark.parametrize("key", [KEY16, b"0123456789ABCDEF01234567", b"0123456789ABCDEF" * 2])
@pytest.mark.parametrize("kind", ["event", "null"])
def test_encryption_round_trip_with_pad_and_zero_iv(key: bytes, kind: str) -> None:
    codec = Codec(FrameSettings("1234AB", key=key))
    frame = codec.event_frame(9, SOS, T0) if kind == "event" else codec.null_frame(9, T0)
    text = frame_text(frame)
    head, _, sealed = text.partition("[")
    assert head.endswith(f'"*{"ADM-CID" if kind == "event" else "NULL"}"0009L0#1234AB')
    assert re.fullmatch(r"[0-9A-F]+", sealed) and len(sealed) % 32 == 0
    decryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor()
    plain = (decryptor.update(bytes.fromhex(sealed)) + decryptor.finalize()).decode("ascii")
    pad, bar, rest = plain.partition("|")
    assert bar and 1 <= len(pad) <= 16 and not set(pad) & set("|[]")
    expected = "#1234AB|1101 01 001]" if kind == "event" else "]"
    assert rest == expected + "_12:00:00,12-01-2026"
    event = parsed(frame, key)                  # and pycryptodome, via pysiaalarm, agrees
    assert event.valid_message and event.code == ("QA" if kind == "event" else "RP")


def test_pad_is_fresh_per_frame() -> None:
    codec = Codec(FrameSettings("1234AB", key=KEY16))
    assert codec.event_frame(1, SOS, T0) != codec.event_frame(1, SOS, T0)
    fixed = Codec(FrameSettings("1234AB", key=KEY16), pad=lambda n: bytes(n))
    assert fixed.event_frame(1, SOS, T0) == fixed.event_frame(1, SOS, T0)


def test_sequence_numbers_wrap_from_9999_to_0001() -> None:
    assert [next_seq(s) for s in (0, 1, 9998, MAX_SEQ)] == [1, 2, 9999, 1]
    codec = Codec(FrameSettings("1234AB"))
    assert '"NULL"9999L0' in frame_text(codec.null_frame(MAX_SEQ, T0))
    for bad in (0, 10000):
        with pytest.raises(ValueError, match="outside 1-9999"):
            codec.null_frame(bad, T0)


@pytest.mark.parametrize("settings", [dict(account="12"), dict(account="12345678901234567"),
                                      dict(account="12G4"), dict(account="1234", line=""),
                                      dict(account="1234", receiver="1234567"),
                                      dict(account="1234", key=b"short"),
                                      dict(account="1234", format="CID")])
def test_frame_settings_refuse_what_dc09_cannot_carry(settings: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        FrameSettings(**settings)


def response(body: str) -> bytes:
    return b"\n%04X%04X%s\r" % (crc16_arc(body.encode()), len(body), body.encode())


def test_ack_nak_duh_are_parsed_and_nak_carries_the_receiver_time() -> None:
    codec = Codec(FrameSettings("1234AB"))
    ack = codec.parse_response(response('"ACK"0042NoneL0#1234AB[]'))   # pysiaalarm's "None"
    assert (ack.kind, ack.seq, ack.encrypted, ack.receiver_time) == ("ACK", 42, False, None)
    nak = codec.parse_response(response('"NAK"0000R0L0A0[]_12:05:00,12-01-2026'))
    assert (nak.kind, nak.seq, nak.receiver_time) == ("NAK", 0, T0 + 300)
    assert codec.parse_response(response('"DUH"0003L0#1234AB[]')).kind == "DUH"


def test_encrypted_ack_is_decrypted_for_its_time() -> None:
    settings = FrameSettings("1234AB", key=KEY16)
    account = SIAAccount("1234AB", KEY16.decode(), allowed_timeband=None)
    event = SIAEvent.from_line(frame_text(Codec(settings).event_frame(5, SOS, T0)),
                               {"1234AB": account})
    answer = Codec(settings).parse_response(event.create_response())
    assert answer.kind == "ACK" and answer.seq == 5 and answer.encrypted
    assert answer.receiver_time is not None and abs(
        answer.receiver_time - datetime.now(timezone.utc).timestamp()) < 5


@pytest.mark.parametrize("raw", [b"\n\r", b'"ACK"', response('"ACK"0001L0[]')[:-3] + b"X]\r",
                                 b"\n0000" + response('"ACK"0001L0[]')[5:],
                                 response('"HELLO"0001L0[]'), response('"ACK"0001L0[]_99:99:99,13-45-2026')])
def test_bad_responses_raise(raw: bytes) -> None:
    with pytest.raises(ResponseError):
        Codec(FrameSettings("1234AB")).parse_response(raw)


def test_dc09_time_round_trip() -> None:
    assert dc09_time(T0 + 0.9) == "12:00:00,12-01-2026"
    assert parse_dc09_time("12:00:00,12-01-2026") == T0


def test_frame_splitter_cuts_a_stream_and_bounds_garbage() -> None:
    splitter = FrameSplitter()
    one, two = response('"ACK"0001L0[]'), response('"ACK"0002L0[]')
    assert splitter.feed(one[:5]) == []
    assert splitter.feed(one[5:] + two + b"\n\r") == [one[1:-1], two[1:-1]]
    assert splitter.feed(b"x" * 5000) == [] and splitter.feed(one) == [one[1:-1]]
