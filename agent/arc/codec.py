"""SIA DC-09 frames out, responses in (docs/spec.md §12.2; sans-IO).

Theory of operation
-------------------
A frame is ``LF crc 0LLL "id" seq [Rrrr] Lppp #acct [data][xdata]_timestamp CR``:

- ``crc``: CRC-16/ARC (polynomial 0x8005 reflected, initial value 0) of everything from
  the first ``"`` up to the CR, as 4 upper-case hex digits; ``0LLL``: the length of that
  same part, 4 hex digits.
- ``"id"``: ``ADM-CID``, ``SIA-DCS`` or ``NULL`` (the link test), with ``*`` in front when
  encrypted; ``seq``: 0001-9999, the caller's (:func:`next_seq` wraps 9999 to 0001).
- data: ADM-CID ``#ACCT|QEEE PP ZZZ`` (qualifier, event, partition, zone); SIA-DCS
  ``#ACCT|Nri<partition>/<code><zone>``; NULL: empty.
- extended data: ``[H<time of occurrence>]`` when the event is sent more than
  :data:`LATE_S` after its ``ts``; SIA-DCS also ``[Ijti=<jti>]`` (the ``I``, alarm text,
  block: an operator's screen shows it, and a receiver that logs it keeps our id).
- ``_HH:MM:SS,MM-DD-YYYY``: the transmission time, UTC, on the receiver's clock when the
  caller passes an ``offset``.
- encrypted (a key of 16, 24 or 32 bytes): everything after ``[`` is
  ``pad|data]xdata_timestamp``, with 1-16 pad characters (random, never ``|[]``) making
  the length a multiple of 16, AES-CBC with a zero IV, sent as upper-case hex.

A response is ``"ACK"``, ``"NAK"``, ``"DUH"`` or ``"RSP"`` in the same framing; a NAK
carries the receiver's time (its sequence number is 0000), an encrypted ACK carries it
encrypted. :meth:`Codec.parse_response` checks CRC and length and returns a
:class:`Response`; anything else raises :class:`ResponseError`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, List, Optional

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from agent.arc.codes import FORMATS, ArcMessage

#: an event sent later than this after its ``ts`` carries its time of occurrence (``H``)
LATE_S = 20.0
MAX_SEQ = 9999
#: a response frame longer than this is no DC-09 response (bounds the TCP read buffer)
MAX_RESPONSE_BYTES = 2048
KEY_SIZES = (16, 24, 32)
_ZERO_IV = bytes(16)
_TIME_FORMAT = "%H:%M:%S,%m-%d-%Y"
#: printable ASCII without the delimiters ``|``, ``[`` and ``]``, for the pad
_PAD_ALPHABET = bytes(c for c in range(0x21, 0x7F) if c not in b"|[]")
_HEX_RE = re.compile(r"[0-9A-Fa-f]+\Z")
_RESPONSE_RE = re.compile(
    r'"(?P<star>\*?)(?P<kind>ACK|NAK|DUH|RSP)"(?P<seq>[0-9]{4})(?P<head>[^#\[]*)'
    r"(?:#(?P<account>[0-9A-Fa-f]{3,16}))?\[(?P<rest>.*)\Z", re.S)
_TIME_RE = re.compile(r"_([0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{2}-[0-9]{2}-[0-9]{4})\Z")


class ResponseError(ValueError):
    """Bytes from the receiver that are no valid DC-09 response (ignored, counted)."""


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC, as DC-09 specifies: ``crc16_arc(b"123456789") == 0xBB3D``."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def dc09_time(unix_s: float) -> str:
    """``HH:MM:SS,MM-DD-YYYY`` in UTC, as DC-09 writes times."""
    return datetime.fromtimestamp(int(unix_s), tz=timezone.utc).strftime(_TIME_FORMAT)


def parse_dc09_time(text: str) -> float:
    """Unix seconds of a DC-09 time; ValueError for anything else."""
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=timezone.utc).timestamp()


def next_seq(seq: int) -> int:
    """The sequence number after ``seq``: 1, 2, ... 9999, 1 (0000 is the receiver's NAK)."""
    return 1 if seq >= MAX_SEQ else seq + 1


@dataclass(frozen=True)
class FrameSettings:
    """What every frame of one ARC link carries (``arc`` section of docs/spec.md §12.2)."""

    account: str
    format: str = "ADM-CID"
    line: str = "0"
    receiver: Optional[str] = None
    key: Optional[bytes] = None

    def __post_init__(self) -> None:
        if not (3 <= len(self.account) <= 16 and _HEX_RE.match(self.account)):
            raise ValueError(f"account {self.account!r} must be 3-16 hex digits")
        if self.format not in FORMATS:
            raise ValueError(f"format {self.format!r} is not one of {', '.join(FORMATS)}")
        for name, value in (("line", self.line), ("receiver", self.receiver)):
            if value is not None and not (len(value) <= 6 and _HEX_RE.match(value)):
                raise ValueError(f"{name} {value!r} must be 1-6 hex digits")
        if self.key is not None and len(self.key) not in KEY_SIZES:
            raise ValueError(f"an AES key has 16, 24 or 32 bytes, not {len(self.key)}")


@dataclass(frozen=True)
class Response:
    """One answer of the receiver; ``receiver_time`` in Unix seconds when it carried one."""

    kind: str
    seq: int
    encrypted: bool
    receiver_time: Optional[float] = None


class Codec:
    """Builds the frames of one ARC link and reads its responses.

    ``pad`` gives random bytes for the encryption pad (``os.urandom``; tests pass their own).
    """

    def __init__(self, settings: FrameSettings, *,
                 pad: Callable[[int], bytes] = os.urandom) -> None:
        self.settings = settings
        self._pad = pad
        self._account = settings.account.upper()   # DC-09 receivers match it in upper case

    def event_frame(self, seq: int, message: ArcMessage, sent_at: float,
                    offset: float = 0.0) -> bytes:
        """The frame of ``message``; ``sent_at`` is our clock, ``offset`` the receiver's minus ours."""
        data = f"#{self._account}|{self._event_data(message)}]"
        xdata = ""
        if sent_at - message.occurred > LATE_S:
            xdata += f"[H{dc09_time(message.occurred + offset)}]"
        if self.settings.format == "SIA-DCS" and message.jti:
            xdata += f"[Ijti={message.jti}]"
        return self._frame(self.settings.format, seq, data + xdata, sent_at + offset)

    def null_frame(self, seq: int, sent_at: float, offset: float = 0.0) -> bytes:
        """A link test (``"NULL"``), acknowledged like an event."""
        return self._frame("NULL", seq, "]", sent_at + offset)

    def _event_data(self, m: ArcMessage) -> str:
        if m.code.format != self.settings.format:
            raise ValueError(f"a {m.code.format} code on a {self.settings.format} link")
        if self.settings.format == "ADM-CID":
            return f"{m.code.qualifier}{m.code.code} {m.partition:02d} {m.zone:03d}"
        return f"Nri{m.partition}/{m.code.code}{m.zone:03d}"

    def _frame(self, kind: str, seq: int, body: str, stamp: float) -> bytes:
        if not 1 <= seq <= MAX_SEQ:
            raise ValueError(f"sequence number {seq} is outside 1-{MAX_SEQ}")
        s = self.settings
        head = f'"{"*" if s.key else ""}{kind}"{seq:04d}'
        head += (f"R{s.receiver}" if s.receiver is not None else "") + f"L{s.line}#{self._account}["
        tail = f"{body}_{dc09_time(stamp)}"
        if s.key:
            tail = self._encrypt(tail)
        text = (head + tail).encode("ascii")
        return b"\n%04X%04X%s\r" % (crc16_arc(text), len(text), text)

    def _encrypt(self, tail: str) -> str:
        assert self.settings.key is not None
        plain = "|" + tail
        count = 16 - len(plain) % 16           # 1-16 characters: at least one pad character
        noise = self._pad(count)
        pad = bytes(_PAD_ALPHABET[b % len(_PAD_ALPHABET)] for b in noise[:count])
        encryptor = Cipher(algorithms.AES(self.settings.key), modes.CBC(_ZERO_IV)).encryptor()
        sealed = encryptor.update(pad + plain.encode("ascii")) + encryptor.finalize()
        return sealed.hex().upper()

    def decrypt(self, hex_text: str) -> str:
        """The plain text of an encrypted part (responses; tests)."""
        if self.settings.key is None:
            raise ResponseError("an encrypted response on a link without a key")
        if len(hex_text) % 32 or not _HEX_RE.match(hex_text):
            raise ResponseError("the encrypted part is not whole AES blocks of hex digits")
        decryptor = Cipher(algorithms.AES(self.settings.key), modes.CBC(_ZERO_IV)).decryptor()
        plain = decryptor.update(bytes.fromhex(hex_text)) + decryptor.finalize()
        return plain.decode("ascii", errors="replace")

    def parse_response(self, frame: bytes) -> Response:
        """A response frame (with or without its LF and CR) -> :class:`Response`."""
        raw = frame.strip(b"\r\n")
        if len(raw) < 9 or len(raw) > MAX_RESPONSE_BYTES:
            raise ResponseError(f"a response of {len(raw)} bytes is no DC-09 frame")
        try:
            crc, length, text = int(raw[:4], 16), int(raw[4:8], 16), raw[8:]
        except ValueError:
            raise ResponseError("the response does not start with CRC and length") from None
        if crc != crc16_arc(text) or length != len(text):
            raise ResponseError("the response's CRC or length does not match its content")
        match = _RESPONSE_RE.match(text.decode("ascii", errors="replace"))
        if match is None:
            raise ResponseError("the response is not ACK, NAK, DUH or RSP")
        encrypted = bool(match.group("star"))
        rest = match.group("rest")
        if encrypted:
            rest = self.decrypt(rest)
        stamp = _TIME_RE.search(rest)
        when = None
        if stamp is not None:
            try:
                when = parse_dc09_time(stamp.group(1))
            except ValueError:
                raise ResponseError(f"the response's time {stamp.group(1)!r} is no date") from None
        return Response(match.group("kind"), int(match.group("seq")), encrypted, when)


class FrameSplitter:
    """Cuts a TCP byte stream into ``LF ... CR`` frames; bounded."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> List[bytes]:
        self._buffer += data
        frames = []
        while b"\r" in self._buffer:
            frame, _, self._buffer = self._buffer.partition(b"\r")
            start = frame.rfind(b"\n")
            frame = frame[start + 1:] if start >= 0 else frame
            if frame:
                frames.append(frame)
        if len(self._buffer) > MAX_RESPONSE_BYTES:    # no CR in sight: not a receiver
            self._buffer = b""
        return frames
