"""Signing commands with the care centre's key (docs/spec.md §7).

The header is ``{"alg", "kid", "typ": "homecare-command+jwt"}``; the claims come from
:func:`receiver.alarms.ack_claims`. The key file is a secret file (Ed25519 PKCS#8 PEM or
an HS256 secret), checked as the agent checks its own.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Optional

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.record.signing import SigningKey, b64url, ed25519_thumbprint, load_signing_key
from receiver.alarms import COMMAND_TYP


class CommandSigner:
    """``sign(claims) -> token``; ``kid`` defaults to the RFC 7638 thumbprint for EdDSA."""

    def __init__(self, algorithm: str, key: SigningKey, *, kid: Optional[str] = None) -> None:
        if algorithm == "EdDSA" and isinstance(key, Ed25519PrivateKey):
            kid = kid or ed25519_thumbprint(key.public_key())
        elif not (algorithm == "HS256" and isinstance(key, bytes)):
            raise ValueError("a command signer needs EdDSA + an Ed25519 key or HS256 + a secret")
        self.algorithm = algorithm
        self.kid = kid
        self._alg = jwt.PyJWS().get_algorithm_by_name(algorithm)
        self._prepared = self._alg.prepare_key(key)
        header = {"alg": algorithm, "typ": COMMAND_TYP}
        if kid:
            header["kid"] = kid
        self._header_b64 = b64url(json.dumps(header, separators=(",", ":"),
                                             sort_keys=True).encode("ascii"))

    @classmethod
    def from_file(cls, path: Path, algorithm: str, kid: Optional[str] = None) -> "CommandSigner":
        return cls(algorithm, load_signing_key(path, algorithm, what="commands.key_file"), kid=kid)

    def __repr__(self) -> str:  # never shows the key
        return f"<CommandSigner {self.algorithm} kid={self.kid!r}>"

    def sign(self, claims: Mapping[str, Any]) -> str:
        payload = json.dumps(dict(claims), separators=(",", ":"), ensure_ascii=True).encode("ascii")
        signing_input = f"{self._header_b64}.{b64url(payload)}"
        signature = self._alg.sign(signing_input.encode("ascii"), self._prepared)
        return f"{signing_input}.{b64url(signature)}"
