"""`homecare-agent verify` (agent/cli/verify.py), run as a real process."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.record.signing import Signer
from tests.helpers import lines, run_cli
from tests.record.test_signing import SECRET, an_event


@pytest.fixture
def ed_setup(tmp_path: Path) -> Tuple[Path, Signer]:
    key = Ed25519PrivateKey.generate()
    pub = tmp_path / "device.pub.pem"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    os.chmod(pub, 0o644)
    return pub, Signer("EdDSA", key)


def tokens(signer: Signer, n: int) -> List[str]:
    return [signer.sign(an_event(seq=i + 1)) for i in range(n)]


def test_good_tokens_print_their_claims(ed_setup: Tuple[Path, Signer]) -> None:
    pub, signer = ed_setup
    result = run_cli("verify", "--key", str(pub), input="\n".join(tokens(signer, 3)) + "\n\n")
    assert result.returncode == 0, result.stderr
    printed: List[Dict[str, Any]] = [json.loads(line) for line in lines(result.stdout)]
    assert [c["seq"] for c in printed] == [1, 2, 3]
    assert printed[0] == an_event(seq=1).claims()


def test_bad_line_is_named_and_exit_is_1(ed_setup: Tuple[Path, Signer]) -> None:
    pub, signer = ed_setup
    good = tokens(signer, 2)
    tampered = good[1][:-3] + ("A" if good[1][-3] != "A" else "B") + good[1][-2:]
    other = Signer("EdDSA", Ed25519PrivateKey.generate()).sign(an_event())
    result = run_cli("verify", "--key", str(pub), "--quiet",
                     input=f"{good[0]}\n{tampered}\n\nnot-a-token\n{other}\n")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "line 2: bad: bad signature" in result.stderr
    assert "line 4: bad:" in result.stderr and "line 5: bad: kid" in result.stderr
    assert "line 1" not in result.stderr and "3 of 4" in result.stderr


def test_mosquitto_sub_dash_v_lines_are_accepted(ed_setup: Tuple[Path, Signer]) -> None:
    pub, signer = ed_setup
    line = f"homecare/gw-0001/events/sos {tokens(signer, 1)[0]}\n"
    assert run_cli("verify", "--key", str(pub), "--quiet", input=line).returncode == 0


def test_empty_input_is_an_error(ed_setup: Tuple[Path, Signer]) -> None:
    result = run_cli("verify", "--key", str(ed_setup[0]), input="\n")
    assert result.returncode == 1 and "no token" in result.stderr


def test_hs256_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "hs.key"
    secret.write_bytes(SECRET + b"\n")
    os.chmod(secret, 0o600)
    token = Signer("HS256", SECRET, kid="hs-1").sign(an_event())
    result = run_cli("verify", "--key", str(secret), input=token + "\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["jti"] == an_event().jti
    wrong = Signer("HS256", SECRET + b"x", kid="hs-1").sign(an_event())
    assert run_cli("verify", "--key", str(secret), input=wrong + "\n").returncode == 1


def test_hs256_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "hs.key"
    secret.write_bytes(SECRET)
    os.chmod(secret, 0o644)
    result = run_cli("verify", "--key", str(secret), input="x\n")
    assert result.returncode == 1 and f"run: chmod 600 {secret}" in result.stderr


def test_algorithm_mismatch_with_key_kind_is_exit_2(ed_setup: Tuple[Path, Signer]) -> None:
    result = run_cli("verify", "--key", str(ed_setup[0]), "--algorithm", "HS256", input="x\n")
    assert result.returncode == 2 and "PEM" in result.stderr


def test_verify_takes_the_kid_a_device_was_configured_with(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.record.events import make_event
    from agent.record.signing import Signer
    from tests.helpers import run_cli

    key = Ed25519PrivateKey.generate()
    (tmp_path / "pub.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    class Seq:
        boot = 1

        def next_seq(self) -> int:
            return 7

    token = Signer("EdDSA", key, kid="gw-0001-2026").sign(make_event(
        device_id="gw-0001", type="sos.pressed", sensor="sos", critical=True, data={},
        recognised_at=1.8e9, counters=Seq(), clock_synced=True, now_epoch=1.8e9))
    without = run_cli("verify", "--key", str(tmp_path / "pub.pem"), input=token + "\n")
    assert without.returncode == 1 and "kid" in without.stderr
    ok = run_cli("verify", "--key", str(tmp_path / "pub.pem"), "--kid", "gw-0001-2026",
                 input=token + "\n")
    assert ok.returncode == 0, ok.stderr
