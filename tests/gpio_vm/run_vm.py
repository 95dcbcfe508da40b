"""Host side of the gpio-sim VM: one boot of the cached guest image with this checkout.

The image (``build-image.sh``) holds everything slow to make. Each run adds an
uncompressed cpio overlay to it (the kernel unpacks concatenated initramfs archives in
order): the project installed from the working tree with pip, the guest's ``/init``,
the guest driver and a throw-away cloud key pair the driver signs an ``ack`` with.

    python tests/gpio_vm/run_vm.py IMAGE_DIR [--log FILE]   # prints the report as JSON

Used by tests/gpio_vm/test_gpio_vm.py.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
#: what of the checkout pip needs to install the project
SOURCE_PARTS = ("agent", "drivers", "config", "setup.py", "pyproject.toml", "README.md")
#: the whole boot, from qemu's start to the guest's power-off (TCG emulation)
BOOT_TIMEOUT_S = {"x86_64": 900, "aarch64": 1800}


def read_image(image: Path) -> Dict[str, str]:
    return dict(line.split("=", 1) for line in (image / "ready").read_text().split())


def make_overlay(stage: Path) -> None:
    """The per-run part of the guest: the project from this checkout, init, driver, keys."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    src = stage.parent / "src"
    for part in SOURCE_PARTS:
        (shutil.copytree if (REPO / part).is_dir() else shutil.copy2)(
            REPO / part, src / part, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                       if (REPO / part).is_dir() else {}))
    site = stage / "usr/local/lib/python3.11/dist-packages"
    # pip, not a copy: what the guest runs is the project as it installs
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(src)], check=True, cwd=str(stage.parent))
    hc = stage / "hc"
    hc.mkdir(parents=True)
    for name in ("guest_driver.py", "lo_up.py"):
        shutil.copy2(HERE / name, hc / name)
    shutil.copy2(HERE / "guest-init", stage / "init")
    (stage / "init").chmod(0o755)
    key = Ed25519PrivateKey.generate()   # the test's cloud key: signs the guest's `ack`
    (hc / "cloud-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (hc / "cloud-public.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def pack(stage: Path, base: Path, into: Path) -> None:
    names = subprocess.run(["find", ".", "-mindepth", "1"], cwd=str(stage), check=True,
                           capture_output=True).stdout
    # the overlay first: after a zstd archive the kernel finds no next one; files do
    # not clash (/init, /hc are the overlay's only), directories merge
    with open(into, "wb") as f:
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"], cwd=str(stage),
                       input=names, stdout=f, check=True)
        with open(base, "rb") as b:
            shutil.copyfileobj(b, f)


def qemu_command(info: Dict[str, str], image: Path, initrd: Path) -> List[str]:
    common = ["-m", "1024", "-smp", "1", "-nographic", "-no-reboot",
              "-kernel", str(image / "kernel"), "-initrd", str(initrd)]
    if info["arch"] == "x86_64":
        # -cpu max: lgpio's wheel uses SSE4.1, which qemu's default CPU lacks. One vCPU:
        # with two, gpio-sim's simulated interrupts coalesce and back-to-back edges are lost.
        return ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-nodefaults",
                "-serial", "stdio", *common, "-append", "console=ttyS0 quiet panic=-1"]
    return ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", *common,
            "-append", "console=ttyAMA0 quiet panic=-1"]


def parse(lines: List[str]) -> List[Dict[str, Any]]:
    report = []
    for line in lines:
        at = line.find("HCVM {")
        if at >= 0:
            try:
                report.append(json.loads(line[at + 5:]))
            except ValueError:   # a kernel message cut into the line: counted as missing
                report.append({"kind": "garbled", "line": line[:200]})
    return report


def boot(image: Path, log: Optional[Path] = None) -> Dict[str, Any]:
    """Boots the guest once; the report: its HCVM records, timings, the serial log path."""
    info = read_image(image)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hc-gpio-vm-") as tmp:
        stage = Path(tmp) / "stage"
        stage.mkdir()
        make_overlay(stage)
        initrd = Path(tmp) / "initrd"
        pack(stage, image / "base.cpio.zst", initrd)
        t_boot = time.monotonic()
        log = log or Path(tmp).parent / f"hc-gpio-vm-{info['arch']}.log"
        with open(log, "wb") as f:   # streamed, so a slow boot can be watched
            try:
                rc: Optional[int] = subprocess.run(
                    qemu_command(info, image, initrd), stdin=subprocess.DEVNULL, stdout=f,
                    stderr=subprocess.STDOUT, timeout=BOOT_TIMEOUT_S[info["arch"]]).returncode
            except subprocess.TimeoutExpired:
                rc = None                  # the records so far still tell what hung
        text = log.read_text(errors="replace")
    lines = text.splitlines()
    return {"arch": info["arch"], "kernel": info["kernel"], "qemu_rc": rc,
            "prepare_s": round(t_boot - t0, 1), "boot_s": round(time.monotonic() - t_boot, 1),
            "log": str(log), "exit": next((l for l in lines if "HCVM-EXIT" in l), None),
            "records": parse(lines)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--log", type=Path)
    args = parser.parse_args()
    json.dump(boot(args.image, args.log), sys.stdout)


if __name__ == "__main__":
    main()
