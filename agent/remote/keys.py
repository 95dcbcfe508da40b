"""The care centre's key: turns ``commands.algorithm`` + ``commands.key_file`` into a verifier.

This is the thin crypto shell around :mod:`agent.remote.policy`. It reads the key
once, at start, and refuses a key of the wrong kind with a :class:`ConfigError` that
says what to put in the file:

- ``EdDSA`` (default): ``commands.key_file`` is the care centre's **Ed25519 public key**
  as PEM (``-----BEGIN PUBLIC KEY-----``). An RSA or EC key, a certificate, or any
  private key is refused (a private key does not belong on the gateway at all).
- ``HS256``: ``commands.key_file`` holds the shared **secret** as text; the key is the
  UTF-8 bytes of the file's content with surrounding white space removed, at least 32
  bytes (docs/spec.md §4). Being a secret, the file must be ``chmod 600``, owned by the agent's
  user, and not a symlink. A file that looks like a PEM key is refused: using a public
  key as an HMAC secret is the classic "algorithm confusion" attack.

Example::

    verify = load_command_verifier("EdDSA", "/etc/homecare-agent/cloud-public.pem")
    ok = verify(signing_input, signature, {"alg": "EdDSA", "typ": "homecare-command+jwt"})

The verifier returns False (never raises) for a header ``alg`` other than the configured
one, a signature of the wrong length, or a signature that does not verify.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.wire import ALGORITHMS
from agent.files.secrets import read_secret_file
from agent.errors import ConfigError, SecretFileError

MIN_SECRET_BYTES = 32
_MAX_KEY_FILE_BYTES = 64 * 1024
_FIELD = "commands.key_file"


class CommandVerifier:
    """A ``verify_signature`` callable for :class:`agent.remote.policy.CommandPolicy`."""

    def __init__(self, algorithm: str, *, public_key: Optional[Ed25519PublicKey] = None,
                 secret: Optional[bytes] = None, source: str = "") -> None:
        if algorithm == "EdDSA" and public_key is not None and secret is None:
            pass
        elif algorithm == "HS256" and secret is not None and public_key is None:
            if len(secret) < MIN_SECRET_BYTES:
                raise ValueError(f"an HS256 secret needs at least {MIN_SECRET_BYTES} bytes")
        else:
            raise ValueError("CommandVerifier needs EdDSA + public_key or HS256 + secret")
        self.algorithm = algorithm
        self._public_key = public_key
        self._secret = secret
        self.source = source

    def __repr__(self) -> str:  # never shows the secret
        return f"<CommandVerifier {self.algorithm} from {self.source or '(memory)'}>"

    def __call__(self, signing_input: bytes, signature: bytes, header: Mapping[str, Any]) -> bool:
        if header.get("alg") != self.algorithm:
            return False
        if self._public_key is not None:
            if len(signature) != 64:
                return False
            try:
                self._public_key.verify(signature, signing_input)
            except InvalidSignature:
                return False
            return True
        assert self._secret is not None
        expected = hmac.new(self._secret, signing_input, hashlib.sha256).digest()
        return hmac.compare_digest(expected, signature)


def load_command_verifier(algorithm: str, key_file: Union[str, "os.PathLike[str]"], *,
                          device_key_material: Optional[bytes] = None) -> CommandVerifier:
    """Read ``commands.key_file`` for ``commands.algorithm``; ConfigError if it will not do.

    ``device_key_material``, if given, is the device's own raw Ed25519 public key (32
    bytes) or its HS256 signing secret: docs/spec.md §7 wants the cloud's key distinct from the
    device's, so a match is refused.
    """
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"commands.algorithm: {algorithm!r} is not supported",
                          hint="use EdDSA (an Ed25519 public key) or HS256 (a shared secret)")
    path = Path(key_file)
    if algorithm == "EdDSA":
        key = _load_ed25519_public(path)
        material = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        verifier = CommandVerifier("EdDSA", public_key=key, source=str(path))
    else:
        material = _load_hs256_secret(path)
        verifier = CommandVerifier("HS256", secret=material, source=str(path))
    if device_key_material is not None and hmac.compare_digest(material, device_key_material):
        raise ConfigError(f"{_FIELD}: {path} is the device's own signing key",
                          hint="commands must be signed with the care centre's key, "
                               "distinct from signing.key_file; ask the integrator for it")
    return verifier


def _read_limited(path: Path, data: bytes) -> bytes:
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise ConfigError(f"{_FIELD}: {path} is {len(data)} bytes, too large for a key file",
                          hint="point commands.key_file at the care centre's key")
    return data


def _load_ed25519_public(path: Path) -> Ed25519PublicKey:
    try:
        data = _read_limited(path, path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{_FIELD}: cannot read {path}: {exc.strerror or exc}",
                          hint="check the path and that the agent's user may read it") from None
    if b"PRIVATE KEY" in data:
        raise ConfigError(f"{_FIELD}: {path} holds a private key",
                          hint="the gateway needs only the care centre's Ed25519 PUBLIC key "
                               "(-----BEGIN PUBLIC KEY-----); remove the private key from the device")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ConfigError(f"{_FIELD}: {path} is not a PEM public key",
                          hint="commands.algorithm EdDSA needs the care centre's Ed25519 public key "
                               "as PEM (-----BEGIN PUBLIC KEY-----)") from None
    if not isinstance(key, Ed25519PublicKey):
        kind = _key_kind(key)
        raise ConfigError(f"{_FIELD}: {path} holds a {kind} public key, not Ed25519",
                          hint="commands.algorithm EdDSA needs an Ed25519 key; ask the integrator "
                               "for the right key, or set commands.algorithm to match theirs")
    return key


def _key_kind(key: object) -> str:
    """A technician-readable name for a public key that is not Ed25519."""
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC ({key.curve.name})"
    for name, cls in (("Ed448", ed448.Ed448PublicKey), ("X25519", x25519.X25519PublicKey),
                      ("DSA", dsa.DSAPublicKey)):
        if isinstance(key, cls):
            return name
    return type(key).__name__


def _load_hs256_secret(path: Path) -> bytes:
    data = _read_limited(path, _read_secret_file(path))
    try:
        secret = data.decode("utf-8").strip().encode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{_FIELD}: {path} is not UTF-8 text",
                          hint="an HS256 key file holds the shared secret as text") from None
    if b"-----BEGIN" in secret or secret.startswith(b"ssh-"):
        raise ConfigError(f"{_FIELD}: {path} holds a PEM/SSH key, not an HS256 secret",
                          hint="with commands.algorithm HS256 the file holds the shared secret as "
                               "text; for the care centre's public key set commands.algorithm: EdDSA")
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"{_FIELD}: the HS256 secret in {path} is {len(secret)} bytes, "
                          f"at least {MIN_SECRET_BYTES} are needed",
                          hint="ask the integrator for a longer secret (e.g. `openssl rand -hex 32`)")
    return secret


def _read_secret_file(path: Path) -> bytes:
    """Read a secret file, refusing symlinks, other owners and group/world access (docs/spec.md §4)."""
    return read_secret_file(path, what=_FIELD)
