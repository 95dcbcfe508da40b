"""Tokens made by the agent verify with other JOSE implementations (docs/spec.md §4: "verifiable
with any JOSE/JWT library"): jwcrypto in Python and the `jose` package in Node.js.

For each library, a token with one changed byte in its header, payload or signature
must fail, and the kid must equal the library's own RFC 7638 thumbprint.
"""
from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest

from tests.helpers import npm_ready
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwcrypto import jwk, jws

from agent.record.signing import TYP, Signer, b64url
from tests.record.test_signing import an_event

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SECRET_TEXT = "interop-secret-0123456789-abcdefghijklmnop"   # 42 bytes


def flipped(token: str, part_index: int) -> str:
    """The token with one character changed in the middle of one part.

    A middle character carries 6 full bits, so the decoded bytes really change
    (the last character of a part may only carry padding bits).
    """
    parts = token.split(".")
    text = parts[part_index]
    i = len(text) // 2
    parts[part_index] = text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:]
    return ".".join(parts)


def payload_digit_changed(token: str) -> str:
    """Still valid JSON and base64url, one claim changed (seq 7 -> 8), same signature."""
    header, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert b'"seq":7' in raw
    return ".".join([header, b64url(raw.replace(b'"seq":7', b'"seq":8')), signature])


def bad_variants(token: str) -> Dict[str, str]:
    return {"header": flipped(token, 0), "payload": flipped(token, 1),
            "signature": flipped(token, 2), "claim": payload_digit_changed(token)}


@pytest.fixture(scope="module")
def ed_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def public_pem(ed_key: Ed25519PrivateKey) -> str:
    return ed_key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def ed_token(ed_key: Ed25519PrivateKey) -> str:
    return Signer("EdDSA", ed_key).sign(an_event())


@pytest.fixture(scope="module")
def hs_token() -> str:
    return Signer("HS256", SECRET_TEXT.encode(), kid="hs-interop").sign(an_event())


# --- jwcrypto ------------------------------------------------------------------------

def jwcrypto_verify(token: str, key: jwk.JWK, alg: str) -> Dict[str, Any]:
    obj = jws.JWS()
    obj.deserialize(token)
    obj.verify(key, alg=alg)
    header = obj.jose_header
    assert header == {"alg": alg, "kid": header["kid"], "typ": TYP}
    return json.loads(obj.payload)  # type: ignore[no-any-return]


def test_jwcrypto_verifies_eddsa_and_kid_is_its_thumbprint(ed_key: Ed25519PrivateKey,
                                                           public_pem: str, ed_token: str) -> None:
    key = jwk.JWK.from_pem(public_pem.encode())
    assert jwcrypto_verify(ed_token, key, "EdDSA") == an_event().claims()
    assert Signer("EdDSA", ed_key).kid == key.thumbprint()


def test_jwcrypto_verifies_hs256(hs_token: str) -> None:
    key = jwk.JWK(kty="oct", k=b64url(SECRET_TEXT.encode()))
    assert jwcrypto_verify(hs_token, key, "HS256") == an_event().claims()


@pytest.mark.parametrize("which", ["header", "payload", "signature", "claim"])
@pytest.mark.parametrize("alg", ["EdDSA", "HS256"])
def test_jwcrypto_rejects_a_changed_byte(which: str, alg: str, public_pem: str,
                                         ed_token: str, hs_token: str) -> None:
    if alg == "EdDSA":
        key, token = jwk.JWK.from_pem(public_pem.encode()), ed_token
    else:
        key, token = jwk.JWK(kty="oct", k=b64url(SECRET_TEXT.encode())), hs_token
    bad = bad_variants(token)[which]
    assert bad != token
    with pytest.raises(Exception):
        jwcrypto_verify(bad, key, alg)


# --- Node.js jose --------------------------------------------------------------------

@pytest.fixture(scope="module")
def node_verify() -> Any:
    npm_ready(NODE_DIR, "jose")

    def run(requests: List[Dict[str, str]]) -> List[Dict[str, Any]]:
        done = subprocess.run(["node", str(NODE_DIR / "verify.mjs")], cwd=str(NODE_DIR),
                              input="".join(json.dumps(r) + "\n" for r in requests),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    return run


@pytest.mark.node
def test_node_jose_verifies_both_algorithms(node_verify: Any, public_pem: str, ed_token: str,
                                            hs_token: str) -> None:
    results = node_verify([{"token": ed_token, "alg": "EdDSA", "key": public_pem},
                           {"token": hs_token, "alg": "HS256", "key": SECRET_TEXT}])
    assert [r["ok"] for r in results] == [True, True], results
    for result, alg, kid in zip(results, ["EdDSA", "HS256"],
                                [json.loads(base64.urlsafe_b64decode(ed_token.split(".")[0] + "=="))["kid"],
                                 "hs-interop"]):
        assert result["claims"] == an_event().claims()
        assert result["header"] == {"alg": alg, "kid": kid, "typ": TYP}


@pytest.mark.node
def test_node_jose_rejects_changed_bytes(node_verify: Any, public_pem: str, ed_token: str,
                                         hs_token: str) -> None:
    requests = []
    for alg, token, key in (("EdDSA", ed_token, public_pem), ("HS256", hs_token, SECRET_TEXT)):
        for which, bad in bad_variants(token).items():
            requests.append({"token": bad, "alg": alg, "key": key, "which": which})
    results = node_verify(requests)
    assert len(results) == len(requests) == 8
    accepted = [(r["alg"], r["which"]) for r, res in zip(requests, results) if res["ok"]]
    assert accepted == []


@pytest.mark.node
def test_node_jose_refuses_our_token_under_the_wrong_typ_or_alg(node_verify: Any, public_pem: str,
                                                                hs_token: str) -> None:
    # the reference consumer really checks alg: an HS256 token against an EdDSA key fails
    results = node_verify([{"token": hs_token, "alg": "EdDSA", "key": public_pem}])
    assert results[0]["ok"] is False


def test_the_example_in_the_integrators_doc_verifies() -> None:
    import re

    from agent.record.signing import Verifier

    doc = (Path(__file__).resolve().parents[2] / "docs" / "integrators.md").read_text()
    pem = re.search(r"-----BEGIN PUBLIC KEY-----\n.*?-----END PUBLIC KEY-----\n", doc, re.S)
    token = re.search(r"^(eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$", doc, re.M)
    kid = re.search(r"^kid: (\S+)$", doc, re.M)
    assert pem and token and kid
    key = jwk.JWK.from_pem(pem.group(0).encode())
    assert key.thumbprint() == kid.group(1)
    claims = jwcrypto_verify(token.group(1), key, "EdDSA")
    public = serialization.load_pem_public_key(pem.group(0).encode())
    assert Verifier("EdDSA", public).verify(token.group(1)) == claims  # type: ignore[arg-type]
    assert json.dumps(claims, separators=(",", ":")) in doc
