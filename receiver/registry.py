"""The device registry: device id -> algorithm, key, ``kid``, heartbeat (docs/spec.md §15).

Each gateway's tokens are checked with the agent's own strict
:class:`agent.record.signing.Verifier`: exactly its registered ``alg`` (never ``none``
or the other one), ``typ``, its ``kid``, the signature, then every claim.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional

from agent.record.signing import Verifier, load_verify_key


@dataclass(frozen=True)
class DeviceEntry:
    """One registered gateway, as the config names it."""

    device_id: str
    algorithm: str
    key_file: Path
    kid: Optional[str]
    heartbeat_s: float

    def __post_init__(self) -> None:
        if self.algorithm not in ("EdDSA", "HS256"):
            raise ValueError(f"device {self.device_id}: algorithm {self.algorithm!r} is not "
                             "EdDSA or HS256")
        if not self.heartbeat_s > 0:
            raise ValueError(f"device {self.device_id}: heartbeat_s must be > 0")


class Registry:
    """Verifiers for the registered gateways; keys are read once, at start."""

    def __init__(self, entries: Iterable[DeviceEntry]) -> None:
        self.entries: Dict[str, DeviceEntry] = {}
        self._verifiers: Dict[str, Verifier] = {}
        for entry in entries:
            algorithm, key = load_verify_key(entry.key_file, entry.algorithm,
                                             what=f"devices[{entry.device_id}].key_file")
            self._verifiers[entry.device_id] = Verifier(algorithm, key, kid=entry.kid)
            self.entries[entry.device_id] = entry

    def __repr__(self) -> str:
        return f"<Registry {len(self.entries)} devices>"

    def known(self, device_id: str) -> bool:
        return device_id in self._verifiers

    def verify(self, device_id: str, token: str) -> Dict[str, Any]:
        """The claims of a good token of ``device_id``; TokenError (a ValueError) otherwise."""
        return self._verifiers[device_id].verify(token)

    def heartbeats(self) -> Mapping[str, float]:
        return {d: e.heartbeat_s for d, e in self.entries.items()}
