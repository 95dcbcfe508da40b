"""Cloud->device command checks (docs/spec.md §7): a table of hostile commands, accepted ones, fuzz."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.remote.keys import CommandVerifier, load_command_verifier
from agent.remote.policy import (ALLOWED_COMMANDS, REASONS, CommandPolicy, Decision,
                                  SeenCommands)
from tests.helpers import IO_MODULES, top_level_imports

DEVICE = "gw-0001"
NOW = 1_764_339_471  # the agent's clock in these tests
TYP = "homecare-command+jwt"

CLOUD_KEY = Ed25519PrivateKey.generate()
DEVICE_KEY = Ed25519PrivateKey.generate()  # the gateway's own signing key
CLOUD_PUBLIC_PEM = CLOUD_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
HS_SECRET = b"a-shared-secret-of-more-than-32-bytes!!"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims(**over: Any) -> Dict[str, Any]:
    base: Dict[str, Any] = {"aud": DEVICE, "jti": "c-1", "iat": NOW - 10, "exp": NOW + 290,
                            "cmd": "ping"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def pyjwt_token(payload: Dict[str, Any], key: Any = CLOUD_KEY, alg: str = "EdDSA",
                typ: Optional[str] = TYP) -> bytes:
    return jwt.encode(payload, key, algorithm=alg, headers={"typ": typ}).encode("ascii")


def raw_token(header_json: str, payload_json: str,
              sign: Optional[Callable[[bytes], bytes]] = None) -> bytes:
    """A hand-made compact JWS from JSON *text* (so duplicates survive), Ed25519 by default."""
    signing_input = f"{b64(header_json.encode())}.{b64(payload_json.encode())}".encode()
    signer = sign or CLOUD_KEY.sign
    return signing_input + b"." + b64(signer(signing_input)).encode()


def hs256(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


GOOD_PAYLOAD = json.dumps(claims())
GOOD_HEADER = json.dumps({"alg": "EdDSA", "typ": TYP})


@pytest.fixture
def verifier(tmp_path: Path) -> CommandVerifier:
    key_file = tmp_path / "cloud-public.pem"
    key_file.write_bytes(CLOUD_PUBLIC_PEM)
    return load_command_verifier("EdDSA", key_file)


@pytest.fixture
def policy(verifier: CommandVerifier) -> CommandPolicy:
    seen = SeenCommands()
    seen.remember("already-used", NOW + 100)
    return CommandPolicy(device_id=DEVICE, algorithm="EdDSA", verify_signature=verifier, seen=seen)


def _tampered_signature() -> bytes:
    token = pyjwt_token(claims())
    head, body, sig = token.split(b".")
    raw = bytearray(base64.urlsafe_b64decode(sig + b"=="))
    raw[0] ^= 1
    return head + b"." + body + b"." + b64(bytes(raw)).encode()


def _tampered_claims() -> bytes:
    head, _, sig = pyjwt_token(claims()).split(b".")
    return head + b"." + b64(json.dumps(claims(cmd="locate")).encode()).encode() + b"." + sig


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())

# (name, payload, reason, command_jti reported, cmd reported)
HOSTILE = [
    ("tampered signature", _tampered_signature(), "bad_signature", None, None),
    ("claims changed after signing", _tampered_claims(), "bad_signature", None, None),
    ("signed by the device's own key", pyjwt_token(claims(), key=DEVICE_KEY), "bad_signature", None, None),
    ("alg none", f"{b64(json.dumps({'alg': 'none', 'typ': TYP}).encode())}.{b64(GOOD_PAYLOAD.encode())}.".encode(),
     "bad_signature", None, None),
    ("alg None with a fake signature", raw_token(json.dumps({"alg": "None", "typ": TYP}), GOOD_PAYLOAD),
     "bad_signature", None, None),
    ("HS256 with the EdDSA public key as HMAC secret (alg confusion)",
     raw_token(json.dumps({"alg": "HS256", "typ": TYP}), GOOD_PAYLOAD, hs256(CLOUD_PUBLIC_PEM)),
     "bad_signature", None, None),
    ("RS256", pyjwt_token(claims(), key=RSA_KEY, alg="RS256"), "bad_signature", None, None),
    ("ES256", pyjwt_token(claims(), key=EC_KEY, alg="ES256"), "bad_signature", None, None),
    ("alg in lower case", raw_token(json.dumps({"alg": "eddsa", "typ": TYP}), GOOD_PAYLOAD),
     "bad_signature", None, None),
    ("empty signature", pyjwt_token(claims()).rsplit(b".", 1)[0] + b".", "bad_signature", None, None),
    ("duplicate claim, bad signature (signature is checked first)",
     raw_token(GOOD_HEADER, GOOD_PAYLOAD[:-1] + ', "cmd": "locate"}', hs256(HS_SECRET)),
     "bad_signature", None, None),
    ("wrong aud", pyjwt_token(claims(aud="gw-0002")), "wrong_aud", "c-1", "ping"),
    ("expired", pyjwt_token(claims(iat=NOW - 300, exp=NOW - 1)), "expired", "c-1", "ping"),
    ("expires at exactly now", pyjwt_token(claims(iat=NOW - 300, exp=NOW)), "expired", "c-1", "ping"),
    ("exp - iat over 10 minutes", pyjwt_token(claims(iat=NOW - 10, exp=NOW + 591)), "malformed", "c-1", "ping"),
    ("exp before iat", pyjwt_token(claims(iat=NOW + 100, exp=NOW + 50)), "malformed", "c-1", "ping"),
    ("replayed jti", pyjwt_token(claims(jti="already-used")), "replayed", "already-used", "ping"),
    ("unknown command", pyjwt_token(claims(cmd="reboot")), "unknown_command", "c-1", "reboot"),
    ("mode without args", pyjwt_token(claims(cmd="mode")), "bad_args", "c-1", "mode"),
    ("mode asleep", pyjwt_token(claims(cmd="mode", args={"mode": "asleep"})), "bad_args", "c-1", "mode"),
    ("mode with an extra key", pyjwt_token(claims(cmd="mode", args={"mode": "away", "for": 3})),
     "bad_args", "c-1", "mode"),
    ("maintenance minutes 241", pyjwt_token(claims(cmd="maintenance", args={"minutes": 241})),
     "bad_args", "c-1", "maintenance"),
    ("5 KiB payload", pyjwt_token(claims(pad="x" * 5120)), "too_large", None, None),
    ("5 KiB of garbage", b"\xff" * 5120, "too_large", None, None),
    ("not JSON, not JWS", b"hello gateway", "malformed", None, None),
    ("empty payload", b"", "malformed", None, None),
    ("JSON but not JWS", json.dumps({"cmd": "ack", "aud": DEVICE}).encode(), "malformed", None, None),
    ("four segments", pyjwt_token(claims()) + b".AAAA", "malformed", None, None),
    ("JWS JSON serialization", json.dumps({"payload": b64(GOOD_PAYLOAD.encode()), "signature": "x"}).encode(),
     "malformed", None, None),
    ("padding in a segment", pyjwt_token(claims()).replace(b".", b"=.", 1), "malformed", None, None),
    ("standard base64 alphabet", b"eyJ+.eyJ/.AAAA", "malformed", None, None),
    ("non-ASCII bytes", pyjwt_token(claims()) + "é".encode(), "malformed", None, None),
    ("trailing newline", pyjwt_token(claims()) + b"\n", "malformed", None, None),
    ("header not JSON", f"{b64(b'{alg:EdDSA}')}.{b64(GOOD_PAYLOAD.encode())}.AAAA".encode(), "malformed", None, None),
    ("header a JSON array", raw_token('["EdDSA"]', GOOD_PAYLOAD), "malformed", None, None),
    ("header without alg", raw_token(json.dumps({"typ": TYP}), GOOD_PAYLOAD), "malformed", None, None),
    ("header alg not a string", raw_token(json.dumps({"alg": 1, "typ": TYP}), GOOD_PAYLOAD), "malformed", None, None),
    ("header with crit", raw_token(json.dumps({"alg": "EdDSA", "typ": TYP, "crit": ["b64"], "b64": False}),
                                   GOOD_PAYLOAD), "malformed", None, None),
    ("duplicate names in header",
     raw_token('{"alg": "HS256", "typ": "homecare-command+jwt", "alg": "EdDSA"}', GOOD_PAYLOAD),
     "malformed", None, None),
    ("duplicate names in payload (validly signed)",
     raw_token(GOOD_HEADER, GOOD_PAYLOAD[:-1] + ', "cmd": "locate"}'), "malformed", None, None),
    ("claims not JSON (validly signed)", raw_token(GOOD_HEADER, "cmd=ping"), "malformed", None, None),
    ("claims a JSON list (validly signed)", raw_token(GOOD_HEADER, "[1, 2]"), "malformed", None, None),
    ("NaN in claims (validly signed)", raw_token(GOOD_HEADER, GOOD_PAYLOAD[:-1] + ', "x": NaN}'),
     "malformed", None, None),
    *[(f"missing {name}", pyjwt_token(claims(**{name: _DROP})), "malformed",
       None if name == "jti" else "c-1", None if name == "cmd" else "ping")
      for name in ("aud", "jti", "iat", "exp", "cmd")],
    ("iat as a string", pyjwt_token(claims(iat=str(NOW))), "malformed", "c-1", "ping"),
    ("exp as a bool", pyjwt_token(claims(exp=True)), "malformed", "c-1", "ping"),
    ("iat as a float", pyjwt_token(claims(iat=NOW - 10.5)), "malformed", "c-1", "ping"),
    ("aud as a list", pyjwt_token(claims(aud=[DEVICE])), "malformed", "c-1", "ping"),
    ("empty jti", pyjwt_token(claims(jti="")), "malformed", None, "ping"),
    ("jti a number", pyjwt_token(claims(jti=7)), "malformed", None, "ping"),
    ("cmd a list", pyjwt_token(claims(cmd=["ack"])), "malformed", "c-1", None),
    ("args a list", pyjwt_token(claims(args=[1])), "malformed", "c-1", "ping"),
    ("args null", pyjwt_token(claims(args=None)), "malformed", "c-1", "ping"),
    ("in_reply_to a number", pyjwt_token(claims(in_reply_to=12)), "malformed", "c-1", "ping"),
    ("wrong typ (an event)", pyjwt_token(claims(), typ="homecare-event+jwt"), "malformed", "c-1", "ping"),
    ("typ JWT", pyjwt_token(claims(), typ="JWT"), "malformed", "c-1", "ping"),
    ("missing typ", raw_token(json.dumps({"alg": "EdDSA"}), GOOD_PAYLOAD), "malformed", "c-1", "ping"),
]


@pytest.mark.parametrize("name,payload,reason,jti,cmd", HOSTILE, ids=[row[0] for row in HOSTILE])
def test_hostile_command_is_rejected_with_reason(policy: CommandPolicy, name: str, payload: bytes,
                                                 reason: str, jti: Optional[str], cmd: Optional[str]) -> None:
    before = policy.seen.to_records()
    decision = policy.check(payload, NOW)
    assert not decision.accepted
    assert decision.reason == reason
    assert decision.event_type == "command.rejected"
    expected: Dict[str, Any] = {"reason": reason}
    if jti is not None:
        expected["command_jti"] = jti
    if cmd is not None:
        expected["cmd"] = cmd
    assert decision.event_data() == expected
    if reason not in ("unknown_command", "bad_args"):   # these use up their jti (spec §7)
        assert policy.seen.to_records() == before, "a rejected command must not use up its jti"
        assert not decision.remembered


def test_mode_command_is_accepted_with_its_args(policy: CommandPolicy) -> None:
    decision = policy.check(pyjwt_token(claims(cmd="mode", args={"mode": "away"})), NOW)
    assert decision.accepted and decision.cmd == "mode" and dict(decision.args) == {"mode": "away"}


def test_table_covers_every_reason() -> None:
    assert {row[2] for row in HOSTILE} == set(REASONS)
    assert len(HOSTILE) >= 15


def test_size_limit_is_4096_bytes_inclusive(policy: CommandPolicy) -> None:
    assert policy.check(b"x" * 4096, NOW).reason == "malformed"  # looked at, then refused
    assert policy.check(b"x" * 4097, NOW).reason == "too_large"
    near = max((token for token in (pyjwt_token(claims(pad="x" * n)) for n in range(2800, 2900))
                if len(token) <= 4096), key=len)
    assert len(near) > 4090 and policy.check(near, NOW).accepted


def test_accepted_ack_with_in_reply_to(policy: CommandPolicy) -> None:
    token = pyjwt_token(claims(cmd="ack", jti="c-ack", in_reply_to="evt-42"))
    decision = policy.check(token, NOW)
    assert decision.accepted and decision.reason is None
    assert (decision.cmd, decision.jti, decision.in_reply_to, decision.exp) == ("ack", "c-ack", "evt-42", NOW + 290)
    assert decision.remembered
    assert decision.event_type == "command.done"
    assert decision.event_data() == {"command_jti": "c-ack", "cmd": "ack"}


@pytest.mark.parametrize("cmd", sorted(ALLOWED_COMMANDS))
def test_each_allowed_command_is_accepted(policy: CommandPolicy, cmd: str) -> None:
    args = {"mode": {"args": {"mode": "home"}},                     # the ones that need args
            "maintenance": {"args": {"minutes": 5}}}.get(cmd, {})
    decision = policy.check(pyjwt_token(claims(cmd=cmd, jti=f"j-{cmd}", **args)), NOW)
    assert decision.accepted and decision.cmd == cmd and decision.in_reply_to is None


def test_locate_args_are_passed_on_read_only(policy: CommandPolicy) -> None:
    decision = policy.check(pyjwt_token(claims(cmd="locate", args={"seconds": 5})), NOW)
    assert decision.accepted and dict(decision.args) == {"seconds": 5}
    with pytest.raises(TypeError):
        decision.args["seconds"] = 99  # type: ignore[index]


def test_second_delivery_is_replayed_and_unknown_commands_use_up_their_jti(policy: CommandPolicy) -> None:
    token = pyjwt_token(claims(cmd="locate", jti="once"))
    assert policy.check(token, NOW).accepted
    assert policy.check(token, NOW + 1).reason == "replayed"
    odd = pyjwt_token(claims(cmd="selfdestruct", jti="odd"))
    first = policy.check(odd, NOW)
    assert first.reason == "unknown_command" and first.remembered
    assert policy.check(odd, NOW).reason == "replayed"


def test_expired_replay_reports_expired_first(policy: CommandPolicy) -> None:
    token = pyjwt_token(claims(jti="already-used", iat=NOW - 600, exp=NOW - 5))
    assert policy.check(token, NOW).reason == "expired"


def test_exactly_ten_minutes_is_allowed_and_iat_may_be_ahead_of_the_clock(policy: CommandPolicy) -> None:
    assert policy.check(pyjwt_token(claims(jti="a", iat=NOW - 1, exp=NOW + 599)), NOW).accepted
    # a Pi with no RTC is behind the cloud: iat in the agent's future is fine
    assert policy.check(pyjwt_token(claims(jti="b", iat=NOW + 3600, exp=NOW + 3700)), NOW).accepted


def test_typ_compared_as_media_type(policy: CommandPolicy) -> None:
    for n, typ in enumerate(("application/homecare-command+jwt", "Homecare-Command+JWT")):
        assert policy.check(pyjwt_token(claims(jti=f"t{n}"), typ=typ), NOW).accepted


def test_header_kid_and_jwk_are_not_used_to_find_a_key(policy: CommandPolicy) -> None:
    attacker = Ed25519PrivateKey.generate()
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(attacker.public_key()))
    token = jwt.encode(claims(), attacker, algorithm="EdDSA",
                       headers={"typ": TYP, "jwk": jwk, "kid": "cloud-2026"}).encode()
    assert policy.check(token, NOW).reason == "bad_signature"


def test_hs256_policy(tmp_path: Path) -> None:
    secret_file = tmp_path / "cloud.secret"
    secret_file.write_bytes(HS_SECRET + b"\n")
    secret_file.chmod(0o600)
    verify = load_command_verifier("HS256", secret_file)
    policy = CommandPolicy(device_id=DEVICE, algorithm="HS256", verify_signature=verify, seen=SeenCommands())
    assert policy.check(pyjwt_token(claims(cmd="ack"), key=HS_SECRET, alg="HS256"), NOW).accepted
    assert policy.check(pyjwt_token(claims(jti="x"), key=HS_SECRET + b"!", alg="HS256"), NOW).reason == "bad_signature"
    # an EdDSA token (even from the right cloud) is refused under HS256
    assert policy.check(pyjwt_token(claims(jti="y")), NOW).reason == "bad_signature"


def test_policy_checks_alg_even_if_the_verifier_does_not(verifier: CommandVerifier) -> None:
    lax = CommandPolicy(device_id=DEVICE, algorithm="EdDSA",
                        verify_signature=lambda signing_input, signature, header: True, seen=SeenCommands())
    none_token = f"{b64(json.dumps({'alg': 'none', 'typ': TYP}).encode())}.{b64(GOOD_PAYLOAD.encode())}.".encode()
    assert lax.check(none_token, NOW).reason == "bad_signature"


def test_decision_validates_itself() -> None:
    with pytest.raises(ValueError):
        Decision("nope")
    with pytest.raises(ValueError):
        Decision(None, cmd="ack")
    with pytest.raises(ValueError):
        CommandPolicy(device_id=DEVICE, algorithm="none",
                      verify_signature=lambda a, b, c: True, seen=SeenCommands())


# ---------------------------------------------------------------- fuzzing

def _assert_decision(decision: object) -> None:
    assert isinstance(decision, Decision)
    if decision.accepted:
        assert decision.cmd in ALLOWED_COMMANDS
    else:
        assert decision.reason in REASONS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=6000))
def test_fuzz_random_bytes_always_give_a_decision(data: bytes) -> None:
    verify = CommandVerifier("EdDSA", public_key=CLOUD_KEY.public_key())
    policy = CommandPolicy(device_id=DEVICE, algorithm="EdDSA", verify_signature=verify, seen=SeenCommands())
    _assert_decision(policy.check(data, NOW))


_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                          st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
_json_values = st.recursive(_json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)
_good_claims = st.fixed_dictionaries(
    {"aud": st.sampled_from([DEVICE, DEVICE, "gw-0002"]), "jti": st.text(min_size=1, max_size=6),
     "iat": st.integers(NOW - 300, NOW + 10), "exp": st.integers(NOW - 10, NOW + 320),
     "cmd": st.sampled_from(["ack", "ping", "locate", "reboot"])},
    optional={"args": st.dictionaries(st.text(max_size=5), _json_values, max_size=3),
              "in_reply_to": st.text(max_size=8)})
_CLAIM_NAMES = ("aud", "jti", "iat", "exp", "cmd", "args", "in_reply_to")
_SIGNERS: Dict[str, Callable[[bytes], bytes]] = {
    "cloud": CLOUD_KEY.sign, "device": DEVICE_KEY.sign, "hs": hs256(HS_SECRET),
    "public-as-hmac": hs256(CLOUD_PUBLIC_PEM), "none": lambda data: b""}


@settings(max_examples=500, deadline=None)
@given(body=_good_claims, fault=st.sampled_from(["none", "header", "claim", "drop", "text", "signer", "cut"]),
       alg=st.one_of(st.sampled_from(["HS256", "none", "RS256", "eddsa"]), _json_values),
       typ=st.one_of(st.sampled_from(["JWT", "application/" + TYP, "homecare-event+jwt"]), _json_values),
       which=st.sampled_from(_CLAIM_NAMES), value=_json_values, signer=st.sampled_from(sorted(_SIGNERS)),
       where=st.integers(0, 10_000), junk=st.sampled_from(['"', ",", "}", '"aud": 1,', "\\", "\\ud800", "\\u00", "NaN", "1e999"]),
       cut=st.integers(-5, 5))
def test_fuzz_near_jws_always_give_a_decision(body: Dict[str, Any], fault: str, alg: Any, typ: Any, which: str,
                                              value: Any, signer: str, where: int, junk: str, cut: int) -> None:
    header: Dict[str, Any] = {"alg": "EdDSA", "typ": TYP}
    if fault == "header":
        header.update({"alg": alg} if where % 2 else {"typ": typ})
    elif fault == "claim":
        body[which] = value
    elif fault == "drop":
        body.pop(which, None)
    header_text, body_text = json.dumps(header), json.dumps(body)
    if fault == "text":
        at = where % (len(body_text) + 1)
        body_text = body_text[:at] + junk + body_text[at:]
    token = raw_token(header_text, body_text, _SIGNERS[signer if fault == "signer" else "cloud"])
    if fault == "cut":
        token = token[:cut] if cut < 0 else token + b"A" * cut
    policy = CommandPolicy(device_id=DEVICE, algorithm="EdDSA", seen=SeenCommands(),
                           verify_signature=CommandVerifier("EdDSA", public_key=CLOUD_KEY.public_key()))
    decision = policy.check(token, NOW)
    _assert_decision(decision)
    if decision.accepted:
        assert signer == "cloud" or fault != "signer"
        assert body.get("aud") == DEVICE and body.get("cmd") in ALLOWED_COMMANDS
    if fault == "signer" and signer != "cloud":
        assert decision.reason == "bad_signature"
    if fault == "none":  # a well-formed, authentic command: only the semantic checks can refuse it
        assert decision.reason in (None, "wrong_aud", "expired", "unknown_command", "malformed")
        lifetime = body["exp"] - body["iat"]
        assert (decision.reason == "malformed") == (not 0 <= lifetime <= 600)


def test_non_canonical_base64url_is_malformed(policy: CommandPolicy) -> None:
    """Another spelling of the same signature bytes (unused low bits set) is not accepted."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    token = pyjwt_token(claims(jti="canon")).decode()
    variant = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 1]
    assert base64.urlsafe_b64decode(variant.rsplit(".", 1)[1] + "==") == \
        base64.urlsafe_b64decode(token.rsplit(".", 1)[1] + "==")
    assert policy.check(variant.encode(), NOW).reason == "malformed"
    assert policy.check(token.encode(), NOW).accepted


def test_policy_module_stays_sans_io() -> None:
    import agent.remote.policy as module
    imported = top_level_imports(module)
    assert imported and not imported & IO_MODULES, imported & IO_MODULES


def test_a_command_the_full_store_forgot_is_still_refused_as_replayed(
        verifier: CommandVerifier) -> None:
    policy = CommandPolicy(device_id=DEVICE, algorithm="EdDSA", verify_signature=verifier,
                           seen=SeenCommands(capacity=1))
    first = pyjwt_token(claims(jti="first", exp=NOW + 100))
    assert policy.check(first, NOW).accepted
    assert policy.check(pyjwt_token(claims(jti="second", exp=NOW + 200)), NOW).accepted
    assert not policy.seen.seen("first")                 # forgotten to make room ...
    assert policy.check(first, NOW).reason == "replayed"  # ... and still refused
    assert policy.check(pyjwt_token(claims(jti="third", exp=NOW + 300)), NOW).accepted
