"""`homecare-agent keygen` (agent/cli/keygen.py), run as a real process."""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.record.signing import Signer, ed25519_thumbprint, load_signing_key, secret_thumbprint
from tests.helpers import cli_command, cli_env, run_cli


def test_eddsa_key_file_and_printed_public_parts(tmp_path: Path) -> None:
    out = tmp_path / "device-key.pem"
    result = run_cli("keygen", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = load_signing_key(out)
    assert isinstance(key, Ed25519PrivateKey)
    public_pem = re.search(r"-----BEGIN PUBLIC KEY-----\n.*?-----END PUBLIC KEY-----\n",
                           result.stdout, re.S)
    assert public_pem is not None
    printed = serialization.load_pem_public_key(public_pem.group(0).encode())
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert printed.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw
    kid = ed25519_thumbprint(key.public_key())
    jwk = json.loads(re.search(r"^JWK: (.*)$", result.stdout, re.M).group(1))  # type: ignore[union-attr]
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["kid"] == kid
    assert jwk["alg"] == "EdDSA" and "d" not in jwk
    assert re.search(r"^kid: (.*)$", result.stdout, re.M).group(1) == kid  # type: ignore[union-attr]
    assert "PRIVATE" not in result.stdout
    assert Signer.from_file(out).kid == kid


def test_mode_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    out = tmp_path / "k.pem"
    result = subprocess.run(["sh", "-c", 'umask 000 && exec "$@"', "sh",
                             *cli_command("keygen", "--out", str(out))],
                            env=cli_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "k.pem"
    out.write_text("the registered key")
    result = run_cli("keygen", "--out", str(out))
    assert result.returncode == 1
    assert "already exists" in result.stderr and "mv " in result.stderr
    assert out.read_text() == "the registered key"
    link = tmp_path / "dangling.pem"
    link.symlink_to(tmp_path / "elsewhere.pem")          # not followed either
    assert run_cli("keygen", "--out", str(link)).returncode == 1
    assert not (tmp_path / "elsewhere.pem").exists()


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("keygen", "--out", str(tmp_path / "no" / "k.pem"))
    assert result.returncode == 1 and "cannot create" in result.stderr


def test_hs256_secret_is_written_but_never_printed(tmp_path: Path) -> None:
    out = tmp_path / "hs.key"
    result = run_cli("keygen", "--out", str(out), "--algorithm", "HS256")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    secret = load_signing_key(out, "HS256")
    assert isinstance(secret, bytes) and len(secret) >= 32
    assert re.fullmatch(rb"[A-Za-z0-9_-]+", secret)
    assert secret.decode() not in result.stdout + result.stderr
    kid = re.search(r"^kid: (.*)$", result.stdout, re.M).group(1)  # type: ignore[union-attr]
    assert kid == secret_thumbprint(secret)
    assert os.stat(out).st_size == len(secret) + 1
