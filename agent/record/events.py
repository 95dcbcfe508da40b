"""The event: every claim of docs/spec.md §4, made in one place.

Theory of operation
-------------------
A sensor change (or an agent event such as ``buffer.evicted``) becomes an
:class:`Event` exactly once, in :func:`make_event`. That is where the event gets
its identity (``jti``, a fresh UUID4), its place in the device's sequence
(``seq`` and ``boot`` from :class:`agent.record.counters.Counters`), its times (``ts``
when it was recognised, ``iat`` when it is signed — the same moment as this
call, since an event is signed as soon as it is made) and whether the clock
could be trusted (``ts_sync``).

:class:`Event` is a frozen dataclass that checks every claim on construction,
so an invalid event cannot exist; :meth:`Event.claims` gives the JWT payload
with the claims in the order of docs/spec.md §4. :meth:`Event.from_claims` is the reverse, used by
the verifier to check a received payload just as strictly.

``data`` is deep-frozen (mappings become read-only, lists become tuples), so
nobody can change an event after it was made; ``claims()`` hands out a fresh
plain-``dict`` copy.

:func:`clock_synchronised` answers ``ts_sync``: a Raspberry Pi has no RTC and
starts from the last time it saved, so ``ts`` is only trustworthy once NTP has
synchronised the clock.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Callable, Dict, Mapping, Optional, Protocol, Union

from drivers.events import is_event_type, is_name

#: the schema version of the claims below (docs/spec.md §4 ``v``)
SCHEMA_VERSION = 1

#: the claims, in the order docs/spec.md §4 lists them (and the JSON payload keeps)
CLAIM_NAMES = ("v", "iss", "jti", "seq", "boot", "iat", "ts", "ts_sync",
               "type", "sensor", "prio", "data")

PRIORITIES = ("critical", "normal")

#: the sensor name of the agent's own events (``buffer.evicted``, ``command.done`` ...)
AGENT_SENSOR = "agent"

_TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\Z")

#: systemd-timesyncd creates this file once it has synchronised the clock
TIMESYNC_MARKER = "/run/systemd/timesync/synchronized"


class EventError(ValueError):
    """An event (or a received payload) breaks the docs/spec.md §4 schema.

    A programming error when raised while making an event; for a received
    token it means the sender is not a conforming homecare-agent.
    """


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _freeze(value: Any, where: str) -> Any:
    """A deep read-only copy of a JSON value; raises EventError for non-JSON values."""
    if value is None or isinstance(value, (bool, str)) or _is_int(value):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EventError(f"{where} is {value!r}; JSON has no NaN or infinity")
        return value
    if isinstance(value, Mapping):
        frozen: Dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise EventError(f"{where} has key {key!r}; JSON object keys are strings")
            frozen[key] = _freeze(item, f"{where}.{key}")
        return MappingProxyType(frozen)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(item, f"{where}[{i}]") for i, item in enumerate(value))
    raise EventError(f"{where} is a {type(value).__name__}, which JSON cannot carry")


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value


def _check_name(value: object, claim: str) -> None:
    if not is_name(value):
        raise EventError(f"claim {claim!r} is {value!r}; it must be a non-empty string of "
                         "letters, digits, '.', '_' and '-'")


def _check_int(value: object, claim: str, minimum: int) -> None:
    if not _is_int(value) or value < minimum:  # type: ignore[operator]
        raise EventError(f"claim {claim!r} is {value!r}; it must be an integer >= {minimum}")


@dataclass(frozen=True)
class Event:
    """One signed-to-be event; every field is a claim of docs/spec.md §4.

    Make events with :func:`make_event`, which fills identity, counters and
    times; construct directly only in tests and in :meth:`from_claims`.
    """

    iss: str                     #: device id
    jti: str                     #: UUID, canonical lower-case text; the cloud de-duplicates on it
    seq: int                     #: per-device counter, strictly increasing, >= 1
    boot: int                    #: agent start counter, >= 1
    iat: int                     #: whole seconds since the epoch when signed
    ts: str                      #: when recognised, ``YYYY-MM-DDTHH:MM:SS.mmmZ``
    ts_sync: bool                #: the clock was known to be synchronised
    type: str                    #: e.g. ``sos.pressed``
    sensor: str                  #: configured sensor name, or ``agent``
    prio: str                    #: ``critical`` or ``normal``
    data: Mapping[str, Any] = field(default_factory=dict, hash=False)
    v: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not _is_int(self.v) or self.v != SCHEMA_VERSION:
            raise EventError(f"claim 'v' is {self.v!r}; this agent knows schema version "
                             f"{SCHEMA_VERSION} only")
        _check_name(self.iss, "iss")
        try:
            canonical = str(uuid.UUID(self.jti)) if isinstance(self.jti, str) else None
        except ValueError:
            canonical = None
        if canonical != self.jti:
            raise EventError(f"claim 'jti' is {self.jti!r}; it must be a UUID in canonical "
                             "lower-case text form")
        _check_int(self.seq, "seq", 1)
        _check_int(self.boot, "boot", 1)
        _check_int(self.iat, "iat", 0)
        _check_ts(self.ts)
        if not isinstance(self.ts_sync, bool):
            raise EventError(f"claim 'ts_sync' is {self.ts_sync!r}; it must be true or false")
        if not is_event_type(self.type):
            raise EventError(f"claim 'type' is {self.type!r}; it must look like 'sos.pressed' "
                             "(lower-case words joined by dots)")
        _check_name(self.sensor, "sensor")
        if self.prio not in PRIORITIES:
            raise EventError(f"claim 'prio' is {self.prio!r}; it must be 'critical' or 'normal'")
        if not isinstance(self.data, Mapping):
            raise EventError(f"claim 'data' is {self.data!r}; it must be a JSON object")
        object.__setattr__(self, "data", _freeze(self.data, "data"))

    @property
    def critical(self) -> bool:
        return self.prio == "critical"

    def claims(self) -> Dict[str, Any]:
        """The JWT payload: a fresh dict, claims in docs/spec.md §4 order."""
        return {
            "v": self.v, "iss": self.iss, "jti": self.jti, "seq": self.seq,
            "boot": self.boot, "iat": self.iat, "ts": self.ts, "ts_sync": self.ts_sync,
            "type": self.type, "sensor": self.sensor, "prio": self.prio,
            "data": _thaw(self.data),
        }

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> "Event":
        """Check a received payload: exactly the docs/spec.md §4 claims, each valid."""
        if not isinstance(claims, Mapping):
            raise EventError("the payload is not a JSON object")
        missing = [name for name in CLAIM_NAMES if name not in claims]
        extra = sorted(set(claims) - set(CLAIM_NAMES))
        if missing:
            raise EventError(f"missing claim(s): {', '.join(missing)}")
        if extra:
            raise EventError(f"unknown claim(s): {', '.join(extra)}")
        return cls(**{name: claims[name] for name in CLAIM_NAMES})


def _check_ts(ts: object) -> None:
    if not isinstance(ts, str) or not _TS_RE.match(ts):
        raise EventError(f"claim 'ts' is {ts!r}; it must be RFC 3339 UTC with milliseconds, "
                         "like 2026-11-28T14:07:51.123Z")
    try:
        datetime.fromisoformat(ts[:-1])
    except ValueError:
        raise EventError(f"claim 'ts' is {ts!r}, which is not a real date and time") from None


def format_ts(when: Union[datetime, float, int]) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-28T14:07:51.123Z``.

    ``when`` is an aware datetime or seconds since the epoch. Sub-millisecond
    parts are truncated (never rounded up into the next second). A naive
    datetime is refused: it would silently mean local time.
    """
    if isinstance(when, datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise EventError(f"time {when!r} has no time zone; pass an aware datetime "
                             "(e.g. datetime.now(timezone.utc)) or epoch seconds")
        moment = when.astimezone(timezone.utc)
    elif isinstance(when, (int, float)) and not isinstance(when, bool) and math.isfinite(when):
        # Round to whole microseconds first so 1764339671.123 is .123, not .122999.
        micros = round(when * 1_000_000)
        moment = datetime.fromtimestamp(micros // 1_000_000, timezone.utc).replace(
            microsecond=micros % 1_000_000)
    else:
        raise EventError(f"time {when!r} is neither a datetime nor epoch seconds")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class SeqSource(Protocol):
    """What :func:`make_event` needs from :class:`agent.record.counters.Counters`."""

    @property
    def boot(self) -> int: ...

    def next_seq(self) -> int: ...


def _new_jti() -> str:
    return str(uuid.uuid4())


def make_event(*, device_id: str, type: str, sensor: str, critical: bool,
               data: Optional[Mapping[str, Any]] = None,
               recognised_at: Union[datetime, float], counters: SeqSource,
               clock_synced: bool, now_epoch: float,
               new_jti: Callable[[], str] = _new_jti) -> Event:
    """Make the one :class:`Event` for a recognised change.

    ``recognised_at`` is when the agent recognised it (for a debounced change:
    when its window completed), as an aware datetime or epoch seconds; it
    becomes ``ts``. ``now_epoch`` is the wall clock now; its whole seconds
    become ``iat``, since the event is signed straight after. ``clock_synced``
    becomes ``ts_sync`` (see :func:`clock_synchronised`). A ``seq`` is drawn
    from ``counters`` only after every other argument has been checked, so a
    bad call does not use one up: the event is built and checked with a
    placeholder ``seq``, which is then replaced by the real one (checking it
    too) — the only place an :class:`Event` is changed after construction.
    """
    if not isinstance(critical, bool):
        raise EventError(f"critical is {critical!r}; it must be True or False")
    if not isinstance(now_epoch, (int, float)) or isinstance(now_epoch, bool) \
            or not math.isfinite(now_epoch) or now_epoch < 0:
        raise EventError(f"now_epoch is {now_epoch!r}; it must be epoch seconds >= 0")
    ts = format_ts(recognised_at)
    fields: Dict[str, Any] = dict(
        iss=device_id, jti=new_jti(), boot=counters.boot, iat=int(now_epoch), ts=ts,
        ts_sync=clock_synced, type=type, sensor=sensor,
        prio="critical" if critical else "normal", data={} if data is None else data)
    event = Event(seq=1, **fields)      # every claim checked before a seq is used up
    seq = counters.next_seq()
    _check_int(seq, "seq", 1)
    object.__setattr__(event, "seq", seq)
    return event


# --- is the clock synchronised? ------------------------------------------------

_TIME_ERROR = 5  # adjtimex(2): "clock not synchronised"
_adjtimex_fn: Optional[Callable[[Any], int]] = None
_adjtimex_loaded = False


def _adjtimex_state() -> Optional[int]:
    """adjtimex(2) clock state (read-only call), or None where unavailable."""
    global _adjtimex_fn, _adjtimex_loaded
    if not _adjtimex_loaded:
        _adjtimex_loaded = True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            _adjtimex_fn = libc.adjtimex
        except (OSError, AttributeError):
            _adjtimex_fn = None
    if _adjtimex_fn is None:
        return None
    # struct timex is ~208 bytes on 64-bit Linux; a zeroed, larger buffer has
    # modes = 0, which makes the call read-only and needs no privilege.
    buf = ctypes.create_string_buffer(512)
    state = int(_adjtimex_fn(buf))
    return None if state < 0 else state


def clock_synchronised(*, marker: Optional[str] = TIMESYNC_MARKER,
                       use_adjtimex: bool = True) -> bool:
    """True only when the system clock is known to be synchronised (``ts_sync``).

    Checks, cheapest first: the file systemd-timesyncd creates once synchronised
    (``marker``; pass None to skip), then the kernel's own flag via adjtimex(2),
    which chrony and ntpd also maintain. Anything unknown counts as false.
    A stat and a syscall, so it is cheap enough to call for every event.
    """
    if marker is not None and os.path.exists(marker):
        return True
    if use_adjtimex:
        state = _adjtimex_state()
        return state is not None and state != _TIME_ERROR
    return False
