"""What can refuse a start, checked before any GPIO is touched (docs/spec.md §4).

The device key, the broker password and the TLS client key are refused if others can
read them. A missing or unusable *command* key only disables commands: an alarm gateway
must not stay down for want of it.
"""
from __future__ import annotations

import logging
from typing import Optional, Tuple

from agent.app.logs import register_secret
from agent.config.model import Config
from agent.errors import ConfigError, SecretFileError
from agent.files.secrets import check_secret_file, read_secret_file
from agent.record.signing import Signer
from agent.remote.keys import load_command_verifier
from agent.remote.policy import CommandPolicy
from agent.remote.seen import CommandStore

log = logging.getLogger("agent")


def secrets(config: Config) -> Tuple[Signer, Optional[str]]:
    """The device key and the broker password, each refused if others can read it."""
    signer = Signer.from_file(config.signing.key_file, algorithm=config.signing.algorithm,
                              kid=config.signing.kid)
    password = None
    if config.mqtt.password_file is not None:
        password = read_secret_file(config.mqtt.password_file,
                                    what="mqtt.password_file").decode("utf-8").strip()
        register_secret(password)       # a second guard: masked if it ever reached a log
    if config.mqtt.tls is not None and config.mqtt.tls.key_file is not None:
        check_secret_file(config.mqtt.tls.key_file, what="mqtt.tls.key_file")
    if signer.algorithm == "HS256":
        register_secret(signer.key_material().decode("utf-8", "replace"))
    return signer, password


CommandChecks = Tuple[CommandPolicy, CommandStore]


def command_policy(config: Config,
                   signer: Signer) -> Tuple[Optional[CommandChecks], Optional[str]]:
    """(policy, seen-commands store), or None and why commands are disabled (None: not
    enabled)."""
    if not config.commands.enabled:
        return None, None
    try:
        verifier = load_command_verifier(config.commands.algorithm,
                                         config.commands.key_file,
                                         device_key_material=signer.key_material())
    except SecretFileError:
        raise               # docs/spec.md §4: a secret others can read is refused at start
    except ConfigError as exc:
        # An alarm gateway must not stay down for want of the *command* key: run
        # without commands, say so loudly, and report it in agent.started.
        log.error("commands disabled: %s", exc)
        return None, exc.message
    store = CommandStore(config.state_dir)
    return (CommandPolicy(device_id=config.device.id, algorithm=config.commands.algorithm,
                          verify_signature=verifier, seen=store.load()), store), None
