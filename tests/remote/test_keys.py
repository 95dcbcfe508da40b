"""The care centre's key file: right kinds accepted, wrong kinds refused at start."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.remote.keys import CommandVerifier, load_command_verifier
from agent.errors import ConfigError, SecretFileError

KEY = Ed25519PrivateKey.generate()
PEM = serialization.Encoding.PEM
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
HEADER = {"alg": "EdDSA", "typ": "homecare-command+jwt"}


def write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_ed25519_public_key_verifies(tmp_path: Path) -> None:
    verify = load_command_verifier("EdDSA", write(tmp_path / "k.pem", KEY.public_key().public_bytes(PEM, SPKI)))
    assert verify(b"a.b", KEY.sign(b"a.b"), HEADER)
    assert not verify(b"a.c", KEY.sign(b"a.b"), HEADER)
    assert not verify(b"a.b", KEY.sign(b"a.b"), {"alg": "HS256"})
    assert not verify(b"a.b", KEY.sign(b"a.b")[:63], HEADER)
    assert not verify(b"a.b", b"", HEADER)
    assert "EdDSA" in repr(verify)


@pytest.mark.parametrize("make,word", [
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key(), "RSA-1024"),
    (lambda: ec.generate_private_key(ec.SECP256R1()).public_key(), r"EC \(secp256r1\)"),
])
def test_wrong_kind_of_public_key_is_refused(tmp_path: Path, make: object, word: str) -> None:
    path = write(tmp_path / "k.pem", make().public_bytes(PEM, SPKI))  # type: ignore[operator]
    with pytest.raises(ConfigError, match=f"commands.key_file: .* holds a {word}.*not Ed25519"):
        load_command_verifier("EdDSA", path)


def test_private_key_and_garbage_are_refused_for_eddsa(tmp_path: Path) -> None:
    private = KEY.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(ConfigError, match="private key"):
        load_command_verifier("EdDSA", write(tmp_path / "p.pem", private, 0o600))
    with pytest.raises(ConfigError, match="not a PEM public key"):
        load_command_verifier("EdDSA", write(tmp_path / "s.txt", b"x" * 40))
    with pytest.raises(ConfigError, match="cannot read"):
        load_command_verifier("EdDSA", tmp_path / "missing.pem")


def test_hs256_secret_is_stripped_and_compared(tmp_path: Path) -> None:
    secret = b"0123456789abcdef0123456789abcdef"
    verify = load_command_verifier("HS256", write(tmp_path / "s", b"  " + secret + b"\n", 0o600))
    import hashlib
    import hmac
    good = hmac.new(secret, b"x.y", hashlib.sha256).digest()
    assert verify(b"x.y", good, {"alg": "HS256"})
    assert not verify(b"x.y", good, {"alg": "EdDSA"})
    assert not verify(b"x.z", good, {"alg": "HS256"})
    assert secret.decode() not in repr(verify)


def test_hs256_refuses_short_pem_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="31 bytes, at least 32"):
        load_command_verifier("HS256", write(tmp_path / "a", b"x" * 31 + b"\n", 0o600))
    pem = KEY.public_key().public_bytes(PEM, SPKI)
    with pytest.raises(ConfigError, match="PEM/SSH key, not an HS256 secret"):
        load_command_verifier("HS256", write(tmp_path / "b", pem, 0o600))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_command_verifier("HS256", write(tmp_path / "c", b"\xff" * 40, 0o600))


def test_hs256_secret_file_permissions(tmp_path: Path) -> None:
    secret = write(tmp_path / "s", b"y" * 40, 0o640)
    with pytest.raises(SecretFileError, match="chmod 600"):
        load_command_verifier("HS256", secret)
    secret.chmod(0o600)
    link = tmp_path / "link"
    link.symlink_to(secret)
    with pytest.raises(SecretFileError, match="symlink"):
        load_command_verifier("HS256", link)
    assert load_command_verifier("HS256", secret).algorithm == "HS256"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_hs256_secret_owned_by_someone_else(tmp_path: Path) -> None:
    secret = write(tmp_path / "s", b"y" * 40, 0o600)
    os.chown(secret, 12345, -1)
    with pytest.raises(SecretFileError, match="is owned by .*chown"):
        load_command_verifier("HS256", secret)


def test_device_key_reused_for_commands_is_refused(tmp_path: Path) -> None:
    pem = write(tmp_path / "k.pem", KEY.public_key().public_bytes(PEM, SPKI))
    raw = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    with pytest.raises(ConfigError, match="device's own signing key"):
        load_command_verifier("EdDSA", pem, device_key_material=raw)
    assert load_command_verifier("EdDSA", pem, device_key_material=b"\0" * 32)


def test_unsupported_algorithm_and_bad_constructor() -> None:
    for alg in ("none", "RS256", "eddsa", "HS512"):
        with pytest.raises(ConfigError, match="not supported"):
            load_command_verifier(alg, "/nonexistent")
    with pytest.raises(ValueError):
        CommandVerifier("HS256", secret=b"short")
    with pytest.raises(ValueError):
        CommandVerifier("EdDSA", secret=b"x" * 32)
