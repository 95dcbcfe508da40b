"""agent.files.secrets: secret files others could read, symlinks and foreign files are refused."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.errors import SecretFileError
from agent.files.secrets import MAX_SECRET_BYTES, check_secret_file, read_secret_file


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "device-key.pem"
    path.write_bytes(b"top secret")
    os.chmod(path, 0o600)
    return path


def test_private_file_passes_and_is_read(secret: Path) -> None:
    check_secret_file(secret, what="signing.key_file")
    assert read_secret_file(secret, what="signing.key_file") == b"top secret"
    os.chmod(secret, 0o400)
    check_secret_file(secret, what="signing.key_file")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o660, 0o644, 0o610])
def test_group_or_world_access_is_refused_with_the_chmod_to_run(secret: Path, mode: int) -> None:
    os.chmod(secret, mode)
    for check in (check_secret_file, read_secret_file):
        with pytest.raises(SecretFileError) as info:
            check(secret, what="signing.key_file")
        assert f"run: chmod 600 {secret}" in str(info.value)
        assert f"{mode:04o}" in str(info.value) and "signing.key_file" in str(info.value)
        assert info.value.exit_status == 1


def test_symlink_is_refused_even_to_a_good_file(secret: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.pem"
    link.symlink_to(secret)
    for check in (check_secret_file, read_secret_file):
        with pytest.raises(SecretFileError, match="symlink") as info:
            check(link, what="mqtt.password_file")
        assert "cp --remove-destination" in str(info.value)


def test_missing_file_says_so(tmp_path: Path) -> None:
    for check in (check_secret_file, read_secret_file):
        with pytest.raises(SecretFileError, match="does not exist"):
            check(tmp_path / "nope", what="signing.key_file")


def test_directory_is_refused(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o700)
    with pytest.raises(SecretFileError, match="not a regular file"):
        check_secret_file(tmp_path, what="signing.key_file")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_file_of_another_user_is_refused_with_the_chown_to_run(secret: Path) -> None:
    os.chown(secret, 65534, 65534)
    for check in (check_secret_file, read_secret_file):
        with pytest.raises(SecretFileError, match="owned by") as info:
            check(secret, what="signing.key_file")
        assert f"run: chown root {secret}" in str(info.value)


def test_path_with_spaces_is_quoted_in_the_hint(tmp_path: Path) -> None:
    path = tmp_path / "my key.pem"
    path.write_text("x")
    os.chmod(path, 0o644)
    with pytest.raises(SecretFileError) as info:
        check_secret_file(path, what="signing.key_file")
    assert f"run: chmod 600 '{path}'" in str(info.value)


def test_systemd_credentials_directory_is_trusted_for_owner_and_mode(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    creds = tmp_path / "credentials"
    creds.mkdir()
    secret = creds / "mqtt-password"
    secret.write_text("s3cret-password")
    secret.chmod(0o440)                       # how an ACL grant looks in the mode bits
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    from agent.files.secrets import read_secret_file
    assert read_secret_file(secret, what="mqtt.password_file") == b"s3cret-password"
    outside = tmp_path / "loose"
    outside.write_text("x" * 40)
    outside.chmod(0o644)
    from agent.errors import SecretFileError
    import pytest as _pytest
    with _pytest.raises(SecretFileError, match="chmod 600"):
        read_secret_file(outside, what="mqtt.password_file")


@pytest.mark.parametrize("size", [MAX_SECRET_BYTES + 1, 512 * 1024 * 1024])
def test_an_oversized_secret_file_is_refused_without_reading_it(tmp_path: Path, size: int) -> None:
    big = tmp_path / "mqtt-password"
    with open(big, "wb") as f:
        f.truncate(size)                    # sparse: no real disk space for 512 MB
    os.chmod(big, 0o600)
    for check in (check_secret_file, read_secret_file):
        with pytest.raises(SecretFileError) as info:
            check(big, what="mqtt.password_file")
        assert f"{size} bytes" in info.value.message and "at most" in info.value.message
        assert "mqtt.password_file" in info.value.message


def test_a_secret_file_of_the_largest_size_is_read(tmp_path: Path) -> None:
    path = tmp_path / "tls-key.pem"
    path.write_bytes(b"k" * MAX_SECRET_BYTES)
    os.chmod(path, 0o600)
    assert len(read_secret_file(path, what="mqtt.tls.key_file")) == MAX_SECRET_BYTES
