"""`homecare-agent run`: not built yet (see the issue that delivers it)."""
from __future__ import annotations

import argparse
import sys


def main(args: argparse.Namespace) -> int:
    print("homecare-agent run: not implemented yet in this version", file=sys.stderr)
    return 1
