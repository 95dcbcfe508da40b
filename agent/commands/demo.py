"""`homecare-agent demo`: a placeholder until the sensor, signing and delivery work lands."""
from __future__ import annotations

import argparse


def main(args: argparse.Namespace) -> int:
    print("homecare-agent demo: this version has no demo yet. The demonstration (mock pins,\n"
          "scripted SOS/door/smoke scenario, signed events, broker or buffer) arrives with\n"
          "the sensor, signing and delivery work; nothing was simulated.")
    return 0
