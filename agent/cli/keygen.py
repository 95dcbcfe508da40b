"""`homecare-agent keygen --out PATH [--algorithm EdDSA|HS256]`: make a device key.

EdDSA (the default) writes a new Ed25519 private key (PKCS#8 PEM) and prints
what the cloud needs to register the device: the public key PEM, its JWK (with
``kid``, ``alg`` and ``use``) as one JSON line, and the ``kid`` (the RFC 7638
thumbprint that every event's header carries).

HS256 writes a random secret (48 random bytes as base64url text, 64 characters)
and prints only a ``kid`` suggestion — never the secret. Copy the file itself to
the cloud over a secure channel, and put the ``kid`` in ``signing.kid``.

The file is created with mode 0600 whatever the umask, with O_CREAT|O_EXCL, so
an existing key is never overwritten (exit 1): the cloud knows the device by
that key.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import AgentError
from agent.record.signing import ed25519_thumbprint, public_jwk, secret_thumbprint


class KeyExistsError(AgentError, FileExistsError):
    """keygen was asked to write over an existing file."""


def write_new_secret_file(path: str, content: bytes) -> None:
    """Create ``path`` with mode 0600 (umask-independent) and write ``content``.

    Refuses an existing path (also a symlink) with :class:`KeyExistsError`. If
    writing fails half-way, the partial file is removed.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyExistsError(
            f"{path} already exists; keygen never overwrites a key, because the cloud knows "
            "this device by it",
            hint=f"to really replace it, first run: mv {shlex.quote(path)} "
                 f"{shlex.quote(path + '.old')}") from None
    except OSError as exc:
        raise AgentError(f"cannot create {path}: {exc.strerror}",
                         hint="check that the directory exists and is writable") from None
    try:
        os.fchmod(fd, 0o600)  # the umask may have taken bits away; never adds any
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


def main(args: argparse.Namespace) -> int:
    path = os.fspath(args.out)
    if args.algorithm == "HS256":
        secret = secrets.token_urlsafe(48)
        write_new_secret_file(path, (secret + "\n").encode("ascii"))
        print(f"HS256 secret written to {path} (mode 0600). It is not shown here: copy the "
              "file itself to the cloud over a secure channel.")
        print("In the config, set signing.algorithm: HS256 and signing.kid to a name the cloud "
              "knows this secret by, for example its RFC 7638 thumbprint:")
        print(f"kid: {secret_thumbprint(secret.encode('ascii'))}")
        return 0
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_new_secret_file(path, pem)
    public = key.public_key()
    kid = ed25519_thumbprint(public)
    jwk = dict(public_jwk(public), kid=kid, alg="EdDSA", use="sig")
    public_pem = public.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)
    print(f"Ed25519 device key written to {path} (mode 0600). Register this public key "
          "with the cloud:")
    print(public_pem.decode("ascii"), end="")
    print(f"JWK: {json.dumps(jwk, separators=(',', ':'))}")
    print(f"kid: {kid}")
    return 0
