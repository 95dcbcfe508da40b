"""agent.record.signing: header, kid, key loading, and the strict Verifier."""
from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import ConfigError, SecretFileError
from agent.record.events import Event
from agent.record.signing import (TYP, Signer, TokenError, Verifier, b64url, ed25519_thumbprint,
                           load_signing_key, load_verify_key, secret_thumbprint)

SECRET = b"s" * 20 + b"0123456789abcdef"     # 36 bytes


def an_event(**overrides: Any) -> Event:
    fields: Dict[str, Any] = dict(
        iss="gw-0001", jti="0b6b1b1e-4c1e-4f43-9d43-2b7a9f1c2d3e", seq=7, boot=2,
        iat=1795879214, ts="2026-11-28T14:07:51.123Z", ts_sync=True, type="sos.pressed",
        sensor="sos", prio="critical", data={"initial": True, "note": "caf\u00e9"})
    fields.update(overrides)
    return Event(**fields)


def part(token: str, index: int) -> Dict[str, Any]:
    raw = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))  # type: ignore[no-any-return]


def write_secret(path: Path, content: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content)
    os.chmod(path, mode)
    return path


def test_eddsa_header_is_exactly_alg_kid_typ_and_token_is_ascii() -> None:
    key = Ed25519PrivateKey.generate()
    token = Signer("EdDSA", key).sign(an_event())
    assert token.isascii() and token.count(".") == 2 and "=" not in token
    assert token.split(".")[0] == b64url(json.dumps(
        {"alg": "EdDSA", "kid": ed25519_thumbprint(key.public_key()), "typ": TYP},
        separators=(",", ":")).encode())
    assert part(token, 1) == an_event().claims()
    assert list(part(token, 1)) == list(an_event().claims())


def test_default_kid_is_the_rfc7638_thumbprint() -> None:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    canonical = '{"crv":"Ed25519","kty":"OKP","x":"%s"}' % x
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    assert Signer("EdDSA", key).kid == expected
    assert Signer("EdDSA", key, kid="gw-0001-2026").kid == "gw-0001-2026"


def test_rfc7638_example_for_oct_keys_matches_a_known_shape() -> None:
    # secret_thumbprint is the RFC 7638 construction over {"k":..,"kty":"oct"}
    expected = b64url(hashlib.sha256(b'{"k":"%s","kty":"oct"}' % b64url(SECRET).encode()).digest())
    assert secret_thumbprint(SECRET) == expected


def test_hs256_needs_a_kid_and_a_long_secret() -> None:
    with pytest.raises(ConfigError, match="kid is required"):
        Signer("HS256", SECRET)
    with pytest.raises(ConfigError, match="at least 32"):
        Signer("HS256", b"x" * 31, kid="k")
    token = Signer("HS256", SECRET, kid="hs-1").sign(an_event())
    assert part(token, 0) == {"alg": "HS256", "kid": "hs-1", "typ": TYP}
    assert Verifier("HS256", SECRET, kid="hs-1").verify(token) == an_event().claims()


def test_unknown_algorithm_and_wrong_key_kind_are_refused() -> None:
    with pytest.raises(ConfigError, match="not supported"):
        Signer("RS256", SECRET, kid="k")
    with pytest.raises(ConfigError):
        Signer("EdDSA", SECRET)
    with pytest.raises(ConfigError):
        Signer("HS256", Ed25519PrivateKey.generate(), kid="k")  # type: ignore[arg-type]


def test_repr_never_shows_the_key() -> None:
    assert "s" * 20 not in repr(Signer("HS256", SECRET, kid="k"))


# --- key files ----------------------------------------------------------------------

def pem_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_signer_from_files(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    ed = write_secret(tmp_path / "k.pem", pem_private(key))
    hs = write_secret(tmp_path / "hs", b"  \n" + SECRET + b"\n\n")
    assert Signer.from_file(ed).kid == ed25519_thumbprint(key.public_key())
    signer = Signer.from_file(hs, algorithm="HS256", kid="hs-1")
    assert Verifier("HS256", SECRET).verify(signer.sign(an_event()))["seq"] == 7


def test_key_files_are_secret_checked(tmp_path: Path) -> None:
    ed = write_secret(tmp_path / "k.pem", pem_private(Ed25519PrivateKey.generate()), 0o640)
    with pytest.raises(SecretFileError, match="chmod 600"):
        Signer.from_file(ed)


@pytest.mark.parametrize("content, match", [
    (b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n", "not a PEM private key"),
    (b"hello", "not a PEM private key"),
])
def test_bad_eddsa_key_files(tmp_path: Path, content: bytes, match: str) -> None:
    path = write_secret(tmp_path / "k.pem", content)
    with pytest.raises(ConfigError, match=match):
        load_signing_key(path)


def test_encrypted_and_non_ed25519_keys_are_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    enc = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(ConfigError, match="encrypted"):
        load_signing_key(write_secret(tmp_path / "enc.pem", enc))
    ecpem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(ConfigError, match="not an Ed25519 key"):
        load_signing_key(write_secret(tmp_path / "ec.pem", ecpem))


def test_hs256_secret_file_rules(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="31 bytes"):
        load_signing_key(write_secret(tmp_path / "short", b" " + b"x" * 31 + b" \n"), "HS256")
    with pytest.raises(ConfigError, match="PEM key"):
        load_signing_key(write_secret(tmp_path / "pem", pem_private(Ed25519PrivateKey.generate())),
                         "HS256")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_signing_key(write_secret(tmp_path / "bin", b"\xff" * 40), "HS256")
    # the key is the UTF-8 bytes of the stripped text, so non-ASCII counts in bytes
    assert load_signing_key(write_secret(tmp_path / "u", "\u00e9".encode() * 16), "HS256") == \
        "\u00e9".encode() * 16


def test_load_verify_key_guesses_the_algorithm(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pub = tmp_path / "pub.pem"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    os.chmod(pub, 0o644)                           # public keys are not secret
    assert load_verify_key(pub)[0] == "EdDSA"
    assert load_verify_key(write_secret(tmp_path / "hs", SECRET)) == ("HS256", SECRET)
    assert load_verify_key(write_secret(tmp_path / "k.pem", pem_private(key)))[0] == "EdDSA"
    with pytest.raises(ConfigError):
        load_verify_key(pub, "HS256")              # a PEM is not an HS256 secret
    with pytest.raises(ConfigError, match="not a PEM key"):
        load_verify_key(tmp_path / "hs", "EdDSA")


# --- the verifier ---------------------------------------------------------------------

@pytest.fixture
def ed_pair() -> Any:
    key = Ed25519PrivateKey.generate()
    return Signer("EdDSA", key), Verifier("EdDSA", key.public_key())


def forge(header: Dict[str, Any], payload: Any, key: Ed25519PrivateKey) -> str:
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(payload).encode() if not isinstance(payload, bytes) else payload))
    return signing_input + "." + b64url(key.sign(signing_input.encode()))


def test_verifier_returns_claims(ed_pair: Any) -> None:
    signer, verifier = ed_pair
    assert verifier.verify(signer.sign(an_event())) == an_event().claims()


def test_verifier_refuses_other_keys_algs_and_kids(ed_pair: Any) -> None:
    signer, verifier = ed_pair
    other = Signer("EdDSA", Ed25519PrivateKey.generate(), kid=signer.kid)
    with pytest.raises(TokenError, match="bad signature"):
        verifier.verify(other.sign(an_event()))
    with pytest.raises(TokenError, match="kid"):
        verifier.verify(Signer("EdDSA", Ed25519PrivateKey.generate()).sign(an_event()))
    with pytest.raises(TokenError, match="alg"):
        verifier.verify(Signer("HS256", SECRET, kid=signer.kid).sign(an_event()))
    none_token = jwt.encode(an_event().claims(), None, algorithm="none",
                            headers={"kid": signer.kid, "typ": TYP})
    with pytest.raises(TokenError, match="alg"):
        verifier.verify(none_token)


def test_verifier_checks_header_members_and_typ() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = Verifier("EdDSA", key.public_key())
    kid = verifier.kid
    claims = an_event().claims()
    with pytest.raises(TokenError, match="typ"):
        verifier.verify(forge({"alg": "EdDSA", "kid": kid, "typ": "JWT"}, claims, key))
    with pytest.raises(TokenError, match="exactly"):
        verifier.verify(forge({"alg": "EdDSA", "kid": kid, "typ": TYP, "crit": ["x"]}, claims, key))
    good = forge({"alg": "EdDSA", "kid": kid, "typ": TYP}, claims, key)
    assert verifier.verify(good) == claims


def test_verifier_checks_claims_strictly() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = Verifier("EdDSA", key.public_key())
    header = {"alg": "EdDSA", "kid": verifier.kid, "typ": TYP}
    claims = an_event().claims()
    with pytest.raises(TokenError, match="bad claims.*seq"):
        verifier.verify(forge(header, dict(claims, seq="7"), key))
    with pytest.raises(TokenError, match="unknown claim"):
        verifier.verify(forge(header, dict(claims, exp=1), key))
    dup = json.dumps(claims)[:-1] + ', "seq": 8}'
    with pytest.raises(TokenError, match="duplicate"):
        verifier.verify(forge(header, dup.encode(), key))


@pytest.mark.parametrize("token, match", [
    ("abc", "3 dot-separated"),
    ("a.b.c.d", "3 dot-separated"),
    ("e30=.e30.AA", "base64url"),
    ("\u00e9.b.c", "ASCII"),
    ("bm90IGpzb24.e30.AA", "not JSON"),
])
def test_verifier_malformed_tokens(ed_pair: Any, token: str, match: str) -> None:
    with pytest.raises(TokenError, match=match):
        ed_pair[1].verify(token)


@pytest.mark.parametrize("alg", ["EdDSA", "HS256"])
def test_tokens_are_byte_for_byte_what_pyjwt_encode_makes(alg: str) -> None:
    key: Any = Ed25519PrivateKey.generate() if alg == "EdDSA" else SECRET
    signer = Signer(alg, key, kid="the-kid")
    event = an_event()
    reference = jwt.encode(event.claims(), key, algorithm=alg,
                           headers={"kid": "the-kid", "typ": TYP})
    assert signer.sign(event) == reference   # Ed25519 and HMAC are deterministic
