"""``python -m bench [NAME ...]``: run every ``bench/bench_*.py`` module's ``main()``.

Modules are found by file name, so a new benchmark needs no registration here. Names on
the command line (``signing``, ``outbox``, ``delivery``, ``daemon``, ``imports``,
``instructions``) run only those; the other modules of ``bench/`` are their helpers.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    wanted = set(sys.argv[1:] if argv is None else argv)
    modules = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    status = 0
    for name in modules:
        if wanted and name[len("bench_"):] not in wanted and name not in wanted:
            continue
        print(f"=== {name} ===", flush=True)
        module = importlib.import_module(f"bench.{name}")
        result = module.main([])
        status = status or (result if isinstance(result, int) else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
