"""Events as JWTs (docs/spec.md §4): :class:`Signer` on the device, :class:`Verifier`
for ``homecare-agent verify`` and the tests.

Theory of operation
-------------------
An event is signed once, when it is made, and the compact JWS is stored and
sent byte for byte. The token is three base64url parts (no padding):

* header — exactly ``{"alg": ..., "kid": ..., "typ": "homecare-event+jwt"}``
  (PyJWT writes the keys sorted, no white space);
* payload — :meth:`agent.record.events.Event.claims`, compact JSON, ASCII-only;
* signature — Ed25519 (``alg`` ``EdDSA``, the default) or HMAC-SHA-256
  (``HS256``).

``kid`` defaults, for EdDSA, to the RFC 7638 JWK thumbprint of the public key:
base64url (no padding) of SHA-256 over
``{"crv":"Ed25519","kty":"OKP","x":"<base64url public key>"}`` — the members
in that order, no white space. Any JOSE library computes the same value, so
the cloud can look the key up without a registry of names. HS256 has no public
key: the config must name its ``kid`` (``keygen`` suggests the RFC 7638
thumbprint of the secret, ``{"k":...,"kty":"oct"}``, which reveals nothing).

Key files: an Ed25519 private key is PKCS#8 PEM (unencrypted); an HS256 key file
holds the secret as text, and the key is the UTF-8 bytes of its content with
surrounding white space removed, at least 32 bytes. Both are secret files,
checked by :mod:`agent.files.secrets` before they are read.

The :class:`Verifier` is strict, as an integrator should be: exact header
members, the one configured ``alg`` (``none`` and the other algorithm are
refused), ``typ``, ``kid``, the signature, then every claim of docs/spec.md §4 with
its type (duplicate JSON members are refused).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from typing import Any, Dict, Optional, Tuple, Union

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.errors import AgentError, ConfigError
from agent.record.events import Event, EventError
from agent.files.secrets import PathLike, read_secret_file
from agent.wire import ALGORITHMS, JsonRefused, strict_json

TYP = "homecare-event+jwt"
MIN_SECRET_BYTES = 32

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*\Z")
SigningKey = Union[Ed25519PrivateKey, bytes]
VerifyKey = Union[Ed25519PublicKey, bytes]


class TokenError(AgentError, ValueError):
    """A token failed verification; the message says which check and why."""


# --- keys and kids ---------------------------------------------------------------

def b64url(raw: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str, part: str) -> bytes:
    if not _B64URL_RE.match(text) or len(text) % 4 == 1:
        raise TokenError(f"the {part} is not base64url without padding")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError(f"the {part} is not base64url") from None


def public_jwk(public_key: Ed25519PublicKey) -> Dict[str, str]:
    """The required members of the public key's JWK (RFC 8037), in RFC 7638 order."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}


def _thumbprint(members: Dict[str, str]) -> str:
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def ed25519_thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) — the default ``kid``."""
    return _thumbprint(public_jwk(public_key))


def secret_thumbprint(secret: bytes) -> str:
    """RFC 7638 thumbprint of an HS256 secret as an ``oct`` JWK (a safe ``kid`` hint)."""
    return _thumbprint({"k": b64url(secret), "kty": "oct"})


def _check_kid(kid: object) -> str:
    if not isinstance(kid, str) or not kid or len(kid) > 256 or not kid.isprintable() \
            or not kid.isascii():
        raise ConfigError(f"signing.kid is {kid!r}; it must be 1-256 printable ASCII characters")
    return kid


def _check_secret(secret: bytes, where: str) -> bytes:
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"the HS256 secret in {where} is {len(secret)} bytes; at least {MIN_SECRET_BYTES} "
            "are required", hint="make one with: homecare-agent keygen --algorithm HS256 --out PATH")
    if secret.startswith(b"-----BEGIN"):
        raise ConfigError(f"{where} holds a PEM key, not an HS256 secret",
                          hint="use algorithm: EdDSA with a PEM key")
    return secret


def _secret_from_bytes(raw: bytes, where: str) -> bytes:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text; an HS256 key file holds the secret as "
                          "text") from None
    return _check_secret(text.strip().encode("utf-8"), where)


def _check_algorithm(algorithm: str) -> str:
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"signing algorithm {algorithm!r} is not supported; use EdDSA or HS256")
    return algorithm


def load_signing_key(path: PathLike, algorithm: str = "EdDSA", *,
                     what: str = "signing.key_file") -> SigningKey:
    """The device's signing key from its (secret-checked) file."""
    _check_algorithm(algorithm)
    where = os.fspath(path)
    raw = read_secret_file(path, what=what)
    if algorithm == "HS256":
        return _secret_from_bytes(raw, where)
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except TypeError:
        raise ConfigError(f"{what} {where} is encrypted; the agent needs an unencrypted "
                          "PKCS#8 key", hint="make one with: homecare-agent keygen --out PATH") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{what} {where} is not a PEM private key",
                          hint="make one with: homecare-agent keygen --out PATH") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{what} {where} holds a {type(key).__name__.lstrip('_')}, not an "
                          "Ed25519 key", hint="make one with: homecare-agent keygen --out PATH")
    return key


def load_verify_key(path: PathLike, algorithm: Optional[str] = None, *,
                    what: str = "key file") -> Tuple[str, VerifyKey]:
    """``(algorithm, key)`` for checking tokens: an Ed25519 public (or private) PEM,
    or an HS256 secret file. ``algorithm`` None means EdDSA for PEM, else HS256."""
    where = os.fspath(path)
    try:
        with open(where, "rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise ConfigError(f"{what} {where} cannot be read: {exc.strerror}") from None
    is_pem = head.lstrip().startswith(b"-----BEGIN")
    algorithm = _check_algorithm(algorithm or ("EdDSA" if is_pem else "HS256"))
    if algorithm == "HS256":
        if is_pem:
            raise ConfigError(f"{what} {where} holds a PEM key, not an HS256 secret",
                              hint="leave out --algorithm, or use EdDSA with a PEM key")
        return algorithm, _secret_from_bytes(read_secret_file(path, what=what), where)
    if not is_pem:
        raise ConfigError(f"{what} {where} is not a PEM key; EdDSA needs the device's public "
                          "key (PEM)")
    if b"PRIVATE KEY" in head:
        private = load_signing_key(path, "EdDSA", what=what)
        assert isinstance(private, Ed25519PrivateKey)
        return algorithm, private.public_key()
    with open(where, "rb") as handle:
        raw = handle.read()
    try:
        public = serialization.load_pem_public_key(raw)
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{what} {where} is not a PEM public key") from None
    if not isinstance(public, Ed25519PublicKey):
        raise ConfigError(f"{what} {where} is not an Ed25519 public key")
    return algorithm, public


# --- signing ---------------------------------------------------------------------

class Signer:
    """Signs events as compact JWS with the device key.

    >>> signer = Signer.from_file("/etc/homecare-agent/device-key.pem")
    >>> token = signer.sign(event)      # ASCII str, the whole MQTT payload

    ``algorithm`` is ``EdDSA`` (key: Ed25519PrivateKey) or ``HS256`` (key: the
    secret bytes, >= 32). ``kid`` defaults to the RFC 7638 thumbprint for EdDSA
    and is required for HS256.
    """

    def __init__(self, algorithm: str, key: SigningKey, *, kid: Optional[str] = None) -> None:
        self.algorithm = _check_algorithm(algorithm)
        if algorithm == "EdDSA":
            if not isinstance(key, Ed25519PrivateKey):
                raise ConfigError("EdDSA signing needs an Ed25519 private key")
            self.kid = _check_kid(kid) if kid is not None else \
                ed25519_thumbprint(key.public_key())
        else:
            if not isinstance(key, bytes):
                raise ConfigError("HS256 signing needs the secret as bytes")
            _check_secret(key, "the key")
            if kid is None:
                raise ConfigError("signing.kid is required with HS256 (there is no public key "
                                  "to derive it from)",
                                  hint="`homecare-agent keygen --algorithm HS256` suggests one")
            self.kid = _check_kid(kid)
        self._key = key
        # PyJWT's algorithm object does the signing; the compact serialization
        # around it is fixed, so the header part is encoded once. A test checks
        # that tokens are byte-for-byte what jwt.encode() makes.
        self._alg = jwt.PyJWS().get_algorithm_by_name(algorithm)
        self._prepared = self._alg.prepare_key(key)
        header = json.dumps({"alg": algorithm, "kid": self.kid, "typ": TYP},
                            separators=(",", ":"), sort_keys=True, ensure_ascii=True)
        self._header_b64 = b64url(header.encode("ascii"))

    @classmethod
    def from_file(cls, path: PathLike, *, algorithm: str = "EdDSA",
                  kid: Optional[str] = None) -> "Signer":
        """Load the key file (refused if group/world readable, a symlink, or not ours)."""
        return cls(algorithm, load_signing_key(path, algorithm), kid=kid)

    def key_material(self) -> bytes:
        """The raw public key (EdDSA) or the secret (HS256): to refuse a command key
        that is the device's own."""
        if isinstance(self._key, Ed25519PrivateKey):
            return self._key.public_key().public_bytes(serialization.Encoding.Raw,
                                                       serialization.PublicFormat.Raw)
        return self._key

    @property
    def public_key(self) -> Optional[Ed25519PublicKey]:
        return self._key.public_key() if isinstance(self._key, Ed25519PrivateKey) else None

    def sign(self, event: Event) -> str:
        """The event as a compact JWS (ASCII)."""
        payload = json.dumps(event.claims(), separators=(",", ":"), ensure_ascii=True,
                             allow_nan=False).encode("ascii")
        signing_input = f"{self._header_b64}.{b64url(payload)}"
        signature = self._alg.sign(signing_input.encode("ascii"), self._prepared)
        return f"{signing_input}.{b64url(signature)}"

    def __repr__(self) -> str:  # never shows the key
        return f"<Signer {self.algorithm} kid={self.kid!r}>"


# --- verifying ---------------------------------------------------------------------

def _strict_json(raw: bytes, part: str) -> Any:
    try:
        return strict_json(raw)
    except JsonRefused as exc:
        raise TokenError(f"the {part} {exc}") from None


class Verifier:
    """Checks tokens made by :class:`Signer`; returns their claims.

    ``kid`` is the expected key id; by default the RFC 7638 thumbprint for
    EdDSA and any non-empty kid for HS256.
    """

    def __init__(self, algorithm: str, key: VerifyKey, *, kid: Optional[str] = None) -> None:
        self.algorithm = _check_algorithm(algorithm)
        if algorithm == "EdDSA":
            if isinstance(key, Ed25519PrivateKey):
                key = key.public_key()
            if not isinstance(key, Ed25519PublicKey):
                raise ConfigError("EdDSA verification needs an Ed25519 public key")
            self.kid: Optional[str] = kid if kid is not None else ed25519_thumbprint(key)
        else:
            if not isinstance(key, bytes):
                raise ConfigError("HS256 verification needs the secret as bytes")
            _check_secret(key, "the key")
            self.kid = kid
        self._key = key
        self._jws = jwt.PyJWS()

    @classmethod
    def from_file(cls, path: PathLike, *, algorithm: Optional[str] = None,
                  kid: Optional[str] = None) -> "Verifier":
        algorithm, key = load_verify_key(path, algorithm)
        return cls(algorithm, key, kid=kid)

    def verify(self, token: str) -> Dict[str, Any]:
        """The claims of a good token; :class:`TokenError` saying why otherwise."""
        if not isinstance(token, str) or not token.isascii():
            raise TokenError("the token is not ASCII text")
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError(f"a JWS has 3 dot-separated parts, this has {len(parts)}")
        header = _strict_json(_b64url_decode(parts[0], "header"), "header")
        self._check_header(header)
        signature = _b64url_decode(parts[2], "signature")
        if not signature:
            raise TokenError("the signature is empty")
        payload_raw = _b64url_decode(parts[1], "payload")
        try:
            self._jws.decode_complete(token, self._key, algorithms=[self.algorithm])
        except jwt.InvalidSignatureError:
            raise TokenError("bad signature (wrong key, or the token was changed)") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"rejected by the JWS check: {exc}") from None
        claims = _strict_json(payload_raw, "payload")
        try:
            return Event.from_claims(claims).claims()
        except (EventError, TypeError) as exc:
            raise TokenError(f"bad claims: {exc}") from None

    def _check_header(self, header: Any) -> None:
        if not isinstance(header, dict):
            raise TokenError("the header is not a JSON object")
        if set(header) != {"alg", "kid", "typ"}:
            raise TokenError(f"the header has members {sorted(header)}; expected exactly "
                             "alg, kid, typ")
        if header["alg"] != self.algorithm:
            raise TokenError(f"alg is {header['alg']!r}; only {self.algorithm!r} is accepted "
                             "with this key")
        if header["typ"] != TYP:
            raise TokenError(f"typ is {header['typ']!r}; expected {TYP!r}")
        if not isinstance(header["kid"], str) or not header["kid"]:
            raise TokenError("kid is missing or not a string")
        if self.kid is not None and header["kid"] != self.kid:
            raise TokenError(f"kid is {header['kid']!r}; this key's kid is {self.kid!r}")
