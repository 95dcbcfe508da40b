"""Prints the guest's pip pins: the project's runtime dependencies at the versions
installed here, plus lgpio as the ``pi`` extra pins it (the guest is a GPIO board).

The image cache is keyed by this list, so a dependency bump rebuilds the image.
"""
from __future__ import annotations

import re
import sys
from importlib import metadata


def pins(dist: str = "homecare-agent") -> list:
    out = []
    for req in metadata.requires(dist) or []:
        name = re.match(r"[A-Za-z0-9._-]+", req)
        assert name is not None, req
        if "extra ==" in req:
            if "extra == \"pi\"" in req and name.group(0).lower() == "lgpio":
                out.append(req.split(";")[0].strip())
            continue
        out.append(f"{name.group(0)}=={metadata.version(name.group(0))}")
    return sorted(out)


if __name__ == "__main__":
    sys.stdout.write("".join(line + "\n" for line in pins()))
