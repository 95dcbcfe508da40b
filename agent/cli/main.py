"""The ``homecare-agent`` command line (docs/spec.md §8).

This module only parses arguments; each sub-command lives in
``agent/cli/<name>.py`` as ``main(args) -> int`` and is imported lazily, so
that ``homecare-agent verify`` does not pay for paho and gpiozero imports.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from agent import __version__
from agent.errors import USER_ERRORS

DEFAULT_CONFIG = "/etc/homecare-agent/config.yaml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="homecare-agent",
        description="Home-care gateway: debounced sensors, signed events, durable MQTT delivery.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", default=DEFAULT_CONFIG, metavar="PATH",
                       help=f"config file (default {DEFAULT_CONFIG})")
        return p

    with_config("run", "run the daemon")
    with_config("validate", "check a config file; exit 0 if valid, 2 with every error otherwise")
    p = with_config("simulate", "run the full agent on mock pins driven by a timeline")
    p.add_argument("--timeline", required=True, metavar="FILE", help="YAML list of {at, sensor, level}")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="give up after S wall-clock seconds (exit 3 if events are still buffered)")
    p.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="run the virtual clock X times faster than the wall clock")
    p = sub.add_parser("demo", help="a self-contained demonstration on mock pins")
    p.add_argument("--broker", default="localhost:1883", metavar="HOST:PORT",
                   help="plain MQTT broker to try (default localhost:1883)")
    p.add_argument("--speed", type=float, default=4.0, metavar="X",
                   help="run the scripted scenario X times faster than real time")
    p = sub.add_parser("keygen", help="make a device signing key")
    p.add_argument("--out", required=True, metavar="PATH", help="where to write the private key (mode 0600)")
    p.add_argument("--algorithm", choices=["EdDSA", "HS256"], default="EdDSA")
    with_config("status", "connection, buffer depth, last event per sensor")
    with_config("monitor", "live raw and debounced level of each sensor (commissioning)")
    p = sub.add_parser("verify", help="check events (JWTs, one a line) from stdin")
    p.add_argument("--key", required=True, metavar="PATH",
                   help="the device's public key (PEM) or the HS256 secret file")
    p.add_argument("--algorithm", choices=["EdDSA", "HS256"], default=None,
                   help="expected alg (default: EdDSA for a PEM key, HS256 otherwise)")
    p.add_argument("--kid", default=None, metavar="KID",
                   help="expected kid (default: the key's RFC 7638 thumbprint; needed for "
                        "HS256 and for a device with its own signing.kid)")
    p.add_argument("--quiet", action="store_true", help="print nothing for good tokens")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from agent.app.logs import setup_logging

    setup_logging(verbose=args.verbose)
    module = importlib.import_module(f"agent.cli.{args.command}")
    try:
        return int(module.main(args))
    except USER_ERRORS as exc:
        print(f"homecare-agent {args.command}: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
