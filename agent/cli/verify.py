"""`homecare-agent verify --key PATH [--algorithm EdDSA|HS256] [--quiet]`.

Reads events (JWTs) from stdin, one a line, and checks each against the
device's public key (PEM) or the HS256 secret file: header (exactly ``alg``,
``kid``, ``typ``), signature, and every claim of docs/spec.md §4. For each good token
it prints the claims as one JSON line (nothing with ``--quiet``); for each bad
one it prints ``line N: why`` on stderr. Exit status 0 when every token is
good, 1 when any is bad or stdin held no token at all.

Blank lines are skipped. A line of several words (as ``mosquitto_sub -v``
prints: topic, then payload) is checked on its last word.

For EdDSA the expected ``kid`` is the key's RFC 7638 thumbprint (the default);
a device configured with its own ``signing.kid`` needs ``--kid`` where the
command line offers it.
"""
from __future__ import annotations

import argparse
import json
import sys

from agent.record.signing import TokenError, Verifier


def main(args: argparse.Namespace) -> int:
    verifier = Verifier.from_file(args.key, algorithm=args.algorithm,
                                  kid=args.kid)
    good = bad = 0
    for number, line in enumerate(sys.stdin, start=1):
        words = line.split()
        if not words:
            continue
        try:
            claims = verifier.verify(words[-1])
        except TokenError as exc:
            bad += 1
            print(f"line {number}: bad: {exc}", file=sys.stderr)
            continue
        good += 1
        if not args.quiet:
            print(json.dumps(claims, separators=(",", ":"), ensure_ascii=False), flush=True)
    if good + bad == 0:
        print("homecare-agent verify: no token on stdin (one JWT a line expected)",
              file=sys.stderr)
        return 1
    if bad:
        print(f"homecare-agent verify: {bad} of {good + bad} token(s) bad", file=sys.stderr)
        return 1
    return 0
