"""Checking commands from the care centre (docs/spec.md §7), with no I/O.

Theory of operation
-------------------
The cloud publishes a command to ``{prefix}/commands`` as a compact JWS (a JWT) signed
with *its* key, which the gateway knows from ``commands.key_file``. The loop hands the
raw MQTT payload to :meth:`CommandPolicy.check` together with the agent's wall clock
(``now_epoch``, seconds since the epoch). The answer is a :class:`Decision`: either an
accepted command (``ack``, ``ping``, ``locate``, ``maintenance``) or a rejection whose
``reason`` is one of :data:`REASONS`. A rejected command does nothing except produce a
``command.rejected`` event (rate-limited by ``agent/remote/limiter.py``).

The checks run in this order; the first failure decides the reason::

    1. size        payload over 4096 bytes                     -> too_large
    2. structure   ASCII, three dot-separated segments, each
                   canonical unpadded base64url; header is a
                   JSON object without duplicate names; header
                   has a string ``alg``; no ``crit`` header     -> malformed
    3. algorithm   header ``alg`` != commands.algorithm
                   (``none``, RS256, ES256, HS256-vs-EdDSA ...) -> bad_signature
    4. signature   the injected verifier says no               -> bad_signature
    --- from here on the token is known to come from the care centre ---
    5. claims      payload is a JSON object without duplicate
                   names; aud str, jti non-empty str, iat/exp
                   int (not bool), cmd str, args object if
                   present, in_reply_to str if present         -> malformed
    6. typ         header typ is homecare-command+jwt          -> malformed
    7. lifetime    iat <= exp <= iat + 600                     -> malformed
    8. audience    aud == device id                            -> wrong_aud
    9. expiry      now_epoch < exp (agent's clock)             -> expired
   10. replay      jti not seen before, exp above the floor    -> replayed
    11. allow-list  cmd in ack/ping/locate/maintenance/mode     -> unknown_command
    12. arguments   args as the command needs (ARGS_CHECKS)     -> bad_args

Why this order: someone without the care centre's key can only ever learn
``too_large``, ``malformed`` (for things that are not a JWS at all) or
``bad_signature``. Only the header — needed to pick the algorithm — is parsed before
the signature is checked; the claims are parsed only once they are authentic. For the
same reason ``data.command_jti`` and ``data.cmd`` are reported only from an
authenticated, well-typed claim set: an attacker cannot make the gateway report a
rejection "of" a real command's ``jti``.

Choices where docs/spec.md is silent (also in docs/integrators.md):

- ``typ`` is compared as RFC 7515 says media types are: case-insensitively, with an
  optional ``application/`` prefix.
- ``iat`` is not compared with the clock (a Pi without an RTC may be far behind), and
  ``nbf`` is ignored for the same reason. Other unknown claims are ignored.
- ``aud`` must be a string; a JSON array of audiences is ``malformed``.
- ``kid``, ``jku``, ``jwk``, ``x5u`` headers are never used to find a key: there is
  exactly one configured key. A ``crit`` header is ``malformed`` (we support no
  extensions, RFC 7515 §4.1.11).
- No clock leeway: ``now_epoch >= exp`` is expired (RFC 7519 §4.1.4).

No-RTC note: ``exp`` is always checked against the agent's clock. A Pi has no real-time
clock and starts from its last saved time, which is behind the true time, so a
command can look unexpired for longer than it is: the check errs towards accepting.
That must never turn into a replay (docs/spec.md §7, version 2), whatever the clock
does, so the replay store does not forget by the clock at all: see :class:`SeenCommands`.
"""
from __future__ import annotations

import base64
import binascii
import types
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, FrozenSet, Iterable, List, Mapping,
                    Optional, Tuple)

from agent.alarms.maintenance import parse_maintenance_args
from agent.rules.mode import parse_mode_args
from agent.wire import ALGORITHMS, JsonRefused, strict_json

#: largest MQTT payload looked at, in bytes (docs/spec.md §7)
MAX_PAYLOAD_BYTES = 4096
#: longest allowed ``exp - iat``, in seconds (docs/spec.md §7: 10 minutes)
MAX_LIFETIME_S = 600
#: how many accepted command ids the replay store keeps (about 70 KB on disk)
SEEN_CAPACITY = 1000
#: the header ``typ`` a command carries
COMMAND_TYP = "homecare-command+jwt"
#: commands the agent carries out (docs/spec.md §7)
ALLOWED_COMMANDS: FrozenSet[str] = frozenset({"ack", "ping", "locate", "maintenance", "mode"})
#: commands whose ``args`` are checked (ValueError -> ``bad_args``, docs/spec.md §7)
ARGS_CHECKS: Mapping[str, Callable[[Mapping[str, Any]], object]] = {
    "maintenance": parse_maintenance_args,
    "mode": parse_mode_args,
}

TOO_LARGE = "too_large"
MALFORMED = "malformed"
BAD_SIGNATURE = "bad_signature"
WRONG_AUD = "wrong_aud"
EXPIRED = "expired"
REPLAYED = "replayed"
UNKNOWN_COMMAND = "unknown_command"
BAD_ARGS = "bad_args"
#: every value ``data.reason`` of a ``command.rejected`` event can take (docs/spec.md §7)
REASONS: Tuple[str, ...] = (TOO_LARGE, MALFORMED, BAD_SIGNATURE, WRONG_AUD, EXPIRED,
                            REPLAYED, UNKNOWN_COMMAND, BAD_ARGS)

#: ``verify_signature(signing_input, signature, header) -> bool``; must not raise
SignatureVerifier = Callable[[bytes, bytes, Mapping[str, Any]], bool]

_B64URL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class Decision:
    """What to do with one command payload.

    ``reason`` is None for an accepted command, otherwise one of :data:`REASONS`.
    An accepted decision always has ``cmd``, ``jti`` and ``exp``; a rejected one has
    them only when they came from an authenticated, well-typed claim set.
    ``remembered`` is True when the ``jti`` was just added to the replay store: the
    caller must persist the store *before* acting on the command.
    """

    reason: Optional[str]
    cmd: Optional[str] = None
    jti: Optional[str] = None
    args: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))
    in_reply_to: Optional[str] = None
    exp: Optional[int] = None
    remembered: bool = False

    def __post_init__(self) -> None:
        if self.reason is not None and self.reason not in REASONS:
            raise ValueError(f"Decision.reason {self.reason!r} is not one of {REASONS}")
        if self.reason is None and (self.cmd is None or self.jti is None or self.exp is None):
            raise ValueError("an accepted Decision needs cmd, jti and exp")
        object.__setattr__(self, "args", types.MappingProxyType(dict(self.args)))

    @property
    def accepted(self) -> bool:
        return self.reason is None

    @property
    def event_type(self) -> str:
        """``command.done`` for an accepted command, else ``command.rejected``."""
        return "command.done" if self.accepted else "command.rejected"

    def event_data(self) -> Dict[str, Any]:
        """The ``data`` of the answering agent event (``ping`` adds ``status`` itself)."""
        data: Dict[str, Any] = {}
        if self.reason is not None:
            data["reason"] = self.reason
        if self.jti is not None:
            data["command_jti"] = self.jti
        if self.cmd is not None:
            data["cmd"] = self.cmd
        return data


def _reject(reason: str, claims: Optional[Mapping[str, Any]] = None) -> Decision:
    """A rejection, naming the command's jti/cmd only if the claims carry them typed right."""
    if claims is None:
        return Decision(reason)
    jti = claims.get("jti")
    cmd = claims.get("cmd")
    return Decision(reason,
                    jti=jti if isinstance(jti, str) and jti else None,
                    cmd=cmd if isinstance(cmd, str) else None)


class _Malformed(ValueError):
    """Internal: the payload is not a well-formed command token."""


def _b64url_decode(segment: bytes) -> bytes:
    """Strict RFC 7515 base64url: alphabet only, no padding, canonical trailing bits."""
    if not _B64URL.issuperset(segment) or len(segment) % 4 == 1:
        raise _Malformed("not base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _Malformed("not base64url") from exc
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != segment:
        raise _Malformed("non-canonical base64url")
    return raw


def _json_object(raw: bytes) -> Dict[str, Any]:
    """A JSON object from UTF-8 bytes; duplicates, NaN/Infinity and non-objects refused."""
    try:
        value = strict_json(raw)
    except JsonRefused as exc:
        raise _Malformed("not a JSON object") from exc
    if not isinstance(value, dict):
        raise _Malformed("not a JSON object")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _claims_well_typed(claims: Mapping[str, Any]) -> bool:
    return (isinstance(claims.get("aud"), str)
            and isinstance(claims.get("jti"), str) and claims["jti"] != ""
            and _is_int(claims.get("iat")) and _is_int(claims.get("exp"))
            and isinstance(claims.get("cmd"), str)
            and ("args" not in claims or isinstance(claims["args"], dict))
            and ("in_reply_to" not in claims or isinstance(claims["in_reply_to"], str)))


def _typ_ok(header: Mapping[str, Any]) -> bool:
    typ = header.get("typ")
    if not isinstance(typ, str):
        return False
    typ = typ.lower()
    return typ in (COMMAND_TYP, "application/" + COMMAND_TYP)


class SeenCommands:
    """The replay store: accepted commands' ``jti`` with their ``exp``, and a floor.

    Sans-IO; :mod:`agent.remote.seen` saves and loads it. Why not forget by the clock:
    a Pi without an RTC may start 30 days behind (an old command looks unexpired again)
    or once at 2099 (everything looks expired, and is forgotten, before the clock is put
    right). So the wall clock never makes the store forget (docs/spec.md §7, version 2).
    Instead it keeps up to ``capacity`` ids; when full, it forgets those with the lowest
    ``exp`` and raises ``floor`` to the highest ``exp`` forgotten, and a command whose
    ``exp`` is at or below the floor counts as replayed: it may be one forgotten. The
    floor is made of the care centre's own ``exp`` values, never of the device's clock,
    so no device clock trouble moves it, and a new command (``exp`` = the care centre's
    now plus up to 10 minutes) is above it unless a thousand newer commands came first.
    """

    def __init__(self, *, capacity: int = SEEN_CAPACITY, floor: int = 0) -> None:
        if capacity < 1 or not _is_int(floor):
            raise ValueError(f"capacity must be >= 1 and floor an int, not {capacity!r}, {floor!r}")
        self.capacity = capacity
        #: the highest ``exp`` ever forgotten: commands expiring no later are refused
        self.floor = floor
        self._exp: Dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._exp)

    def __repr__(self) -> str:
        return f"<SeenCommands {len(self._exp)}/{self.capacity} jti(s), floor {self.floor}>"

    def seen(self, jti: str, exp: Optional[int] = None) -> bool:
        """True if ``jti`` was accepted before, or (given its ``exp``) may have been."""
        return jti in self._exp or (exp is not None and exp <= self.floor)

    def remember(self, jti: str, exp: int) -> None:
        """Record ``jti``; if it is already known, the later ``exp`` wins. Over capacity,
        the lowest ``exp`` values are forgotten and the floor rises to them."""
        if not isinstance(jti, str) or not jti or not _is_int(exp):
            raise ValueError(f"remember() needs a non-empty str jti and an int exp, got {jti!r}, {exp!r}")
        self._exp[jti] = max(exp, self._exp.get(jti, exp))
        if len(self._exp) > self.capacity:
            ordered = sorted(self._exp.items(), key=lambda item: (item[1], item[0]))
            for old, old_exp in ordered[:len(self._exp) - self.capacity]:
                del self._exp[old]
                self.floor = max(self.floor, old_exp)

    def expire(self, now_epoch: float) -> int:
        """Forgets nothing: the clock is not trusted for it (class docstring); returns 0.

        Kept for callers that prune periodically (agent.remote.handler)."""
        return 0

    def to_records(self) -> List[Dict[str, Any]]:
        """JSON-ready ``[{"jti": ..., "exp": ...}]``, sorted by exp then jti."""
        return [{"jti": jti, "exp": exp}
                for jti, exp in sorted(self._exp.items(), key=lambda item: (item[1], item[0]))]

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], *,
                     capacity: int = SEEN_CAPACITY, floor: int = 0) -> "SeenCommands":
        """The inverse of :meth:`to_records`; raises ValueError on a bad record."""
        store = cls(capacity=capacity, floor=floor)
        for record in records:
            if not isinstance(record, Mapping):
                raise ValueError(f"replay-store record {record!r} is not an object")
            store.remember(record.get("jti"), record.get("exp"))  # type: ignore[arg-type]
        return store


class CommandPolicy:
    """Decides, for each MQTT payload on ``{prefix}/commands``, whether to obey it.

    Example::

        policy = CommandPolicy(device_id="gw-0001", algorithm="EdDSA",
                               verify_signature=load_command_verifier("EdDSA", path),
                               seen=SeenCommands())
        decision = policy.check(payload, now_epoch=time.time())

    Parameters: ``device_id`` is the expected ``aud``; ``algorithm`` is
    ``commands.algorithm`` (``EdDSA`` or ``HS256``) and the header ``alg`` must equal it
    exactly; ``verify_signature`` checks the signature with the care centre's key
    (:func:`agent.remote.keys.load_command_verifier`); ``seen`` is the replay store,
    to which accepted (and ``unknown_command``) jtis are added.
    """

    def __init__(self, *, device_id: str, algorithm: str, verify_signature: SignatureVerifier,
                 seen: SeenCommands, allowed: Iterable[str] = ALLOWED_COMMANDS) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"commands.algorithm must be one of {sorted(ALGORITHMS)}, not {algorithm!r}")
        if not device_id:
            raise ValueError("device_id must not be empty")
        self.device_id = device_id
        self.algorithm = algorithm
        self.verify_signature = verify_signature
        self.seen = seen
        self.allowed = frozenset(allowed)

    def check(self, payload: bytes, now_epoch: float) -> Decision:
        """Run every check of the module docstring in order; never raises for bad input."""
        if len(payload) > MAX_PAYLOAD_BYTES:
            return _reject(TOO_LARGE)
        try:
            header, signing_input, signature, payload_b64 = _split(payload)
        except _Malformed:
            return _reject(MALFORMED)
        if header["alg"] != self.algorithm:
            return _reject(BAD_SIGNATURE)
        if not self.verify_signature(signing_input, signature, types.MappingProxyType(header)):
            return _reject(BAD_SIGNATURE)
        try:
            claims = _json_object(_b64url_decode(payload_b64))
        except _Malformed:
            return _reject(MALFORMED)
        return self._check_claims(header, claims, now_epoch)

    def _check_claims(self, header: Mapping[str, Any], claims: Mapping[str, Any],
                      now_epoch: float) -> Decision:
        if not _claims_well_typed(claims) or not _typ_ok(header):
            return _reject(MALFORMED, claims)
        jti: str = claims["jti"]
        cmd: str = claims["cmd"]
        iat: int = claims["iat"]
        exp: int = claims["exp"]
        if not iat <= exp <= iat + MAX_LIFETIME_S:
            return _reject(MALFORMED, claims)
        if claims["aud"] != self.device_id:
            return _reject(WRONG_AUD, claims)
        if not now_epoch < exp:
            return _reject(EXPIRED, claims)
        if self.seen.seen(jti, exp):
            return _reject(REPLAYED, claims)
        self.seen.remember(jti, exp)
        if cmd not in self.allowed:
            return Decision(UNKNOWN_COMMAND, cmd=cmd, jti=jti, exp=exp, remembered=True)
        if not _args_ok(cmd, claims.get("args", {})):
            return Decision(BAD_ARGS, cmd=cmd, jti=jti, exp=exp, remembered=True)
        return Decision(None, cmd=cmd, jti=jti, args=claims.get("args", {}),
                        in_reply_to=claims.get("in_reply_to"), exp=exp, remembered=True)


def _args_ok(cmd: str, args: Mapping[str, Any]) -> bool:
    check = ARGS_CHECKS.get(cmd)
    if check is None:
        return True
    try:
        check(args)
    except ValueError:
        return False
    return True


def _split(payload: bytes) -> Tuple[Dict[str, Any], bytes, bytes, bytes]:
    """Steps 1-2: (header, signing input, signature bytes, payload segment)."""
    if not payload.isascii():
        raise _Malformed("not ASCII")
    parts = payload.split(b".")
    if len(parts) != 3:
        raise _Malformed("not three segments")
    header_b64, payload_b64, signature_b64 = parts
    header = _json_object(_b64url_decode(header_b64))
    _b64url_decode(payload_b64)  # structure only; parsed once authentic
    signature = _b64url_decode(signature_b64)
    if not isinstance(header.get("alg"), str) or "crit" in header:
        raise _Malformed("header needs a string alg and no crit")
    return header, header_b64 + b"." + payload_b64, signature, payload_b64

