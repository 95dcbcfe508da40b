"""Config, keys and secrets for running the real agent in a test (files in a tmp folder)."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass
class AgentFiles:
    folder: Path
    config: Path
    state_dir: Path
    device_key: Ed25519PrivateKey
    cloud_key: Ed25519PrivateKey

    def rewrite(self, **changes: Any) -> None:
        """Change top-level keys of the config (e.g. heartbeat_s=30) and write it again."""
        data = yaml.safe_load(self.config.read_text())
        data.update(changes)
        self.config.write_text(yaml.safe_dump(data, sort_keys=False))


def secret_file(path: Path, content: bytes) -> Path:
    """Write a new file readable by its owner only (0600 from the start, never widened)."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    return path


def private_pem(key: Ed25519PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM (what the agent and the receiver load)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key: Ed25519PrivateKey) -> bytes:
    """The key's public half as SubjectPublicKeyInfo PEM."""
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def write_keys(folder: Path, *, password: Optional[str] = None
               ) -> "tuple[Ed25519PrivateKey, Ed25519PrivateKey]":
    """A device key (``device-key.pem``, 0600), the care centre's public key
    (``cloud-public.pem``) and, if given, ``mqtt-password`` (0600) in ``folder``.
    Returns (device key, cloud key)."""
    folder.mkdir(parents=True, exist_ok=True)
    device_key = Ed25519PrivateKey.generate()
    cloud_key = Ed25519PrivateKey.generate()
    secret_file(folder / "device-key.pem", private_pem(device_key))
    (folder / "cloud-public.pem").write_bytes(public_pem(cloud_key))
    if password is not None:
        secret_file(folder / "mqtt-password", password.encode())
    return device_key, cloud_key


def write_agent_files(folder: Path, *, host: str = "127.0.0.1", port: int = 1,
                      device_id: str = "gw-test", username: Optional[str] = None,
                      password: Optional[str] = None, heartbeat_s: int = 300,
                      commands: bool = True, extra: Optional[dict] = None) -> AgentFiles:  # type: ignore[type-arg]
    """A complete config for mock pins and a plaintext loopback broker at ``host:port``.

    Sensors: ``sos`` on GPIO17 (pull up, active low), ``front_door`` on GPIO27 (pull up,
    active high), ``kitchen_smoke`` on GPIO22 (pull up, active low); buzzer GPIO5, LED GPIO6.
    """
    device_key, cloud_key = write_keys(folder, password=password if username else None)
    mqtt: dict = {"host": host, "port": port, "tls": False, "keepalive_s": 5,  # type: ignore[type-arg]
                  "ack_timeout_s": 2}
    if username is not None:
        mqtt["username"] = username
        mqtt["password_file"] = str(folder / "mqtt-password")
    data = {
        "device": {"id": device_id, "timezone": "UTC"},
        "state_dir": str(folder / "state"),
        "gpio": {"backend": "mock"},
        "sensors": [
            {"name": "sos", "kind": "sos_button", "pin": 17, "pull": "up", "active": "low"},
            {"name": "front_door", "kind": "door", "pin": 27, "pull": "up", "active": "high"},
            {"name": "kitchen_smoke", "kind": "smoke", "pin": 22, "pull": "up", "active": "low"},
        ],
        "outputs": {"buzzer": {"pin": 5, "active": "high"}, "led": {"pin": 6, "active": "high"}},
        "mqtt": mqtt,
        "signing": {"algorithm": "EdDSA", "key_file": str(folder / "device-key.pem")},
        "commands": {"enabled": commands, "algorithm": "EdDSA",
                     "key_file": str(folder / "cloud-public.pem")},
        "heartbeat_s": heartbeat_s,
    }
    data.update(extra or {})
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return AgentFiles(folder, config, folder / "state", device_key, cloud_key)


def files_for_broker(folder: Path, broker: Any, **kw: Any) -> AgentFiles:
    """:func:`write_agent_files` for a test MosquittoBroker's plain listener, as ``device``."""
    return write_agent_files(folder, host=broker.host, port=broker.plain_port,
                             username="device", password=broker.users["device"], **kw)


def run_simulate(files: AgentFiles, timeline: str, *, speed: float = 10.0,
                 timeout: float = 30.0) -> "subprocess.CompletedProcess[str]":
    """Write ``timeline`` beside the config and run ``homecare-agent simulate`` on it."""
    from tests.helpers import run_cli

    path = files.folder / "timeline.yaml"
    path.write_text(timeline)
    return run_cli("simulate", "--config", str(files.config), "--timeline", str(path),
                   "--speed", f"{speed:g}", "--timeout", f"{timeout:g}",
                   timeout=timeout + 30)
