"""`homecare-agent validate --config FILE`: check a config file without touching GPIO.

Valid: prints ``FILE: OK`` on stdout, exit 0. Not valid (or missing, unreadable):
every problem, one a line, as ``FILE:LINE:COL: field.path: message`` on *stderr*
(diagnostics go where compilers put them, so ``validate >/dev/null`` still shows
them), exit 2. Warnings (e.g. ``protocol: "3.1.1"``, docs/spec.md §6) are printed the
same way, their message starting ``warning:``; alone they leave the exit code 0. Key
files are not opened: the agent checks them when it starts.
"""
from __future__ import annotations

import argparse
import sys

from agent.config.model import ConfigProblems, load_config


def main(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigProblems as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    for warning in config.warnings:
        print(warning, file=sys.stderr)
    print(f"{args.config}: OK")
    return 0
