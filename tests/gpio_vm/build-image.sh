#!/usr/bin/env bash
# Builds (or finds in the cache) the guest image of the real-GPIO tests: a Debian
# kernel, the gpio-sim module built out of tree (Debian ships it off), and a minimal
# Debian rootfs with python3, mosquitto and the project's runtime dependencies, packed
# as one zstd initramfs. The project itself is NOT in the image: run-vm.py adds it
# from the working tree on every run.
#
#   build-image.sh ARCH DEPS_FILE     ARCH: x86_64 | aarch64; DEPS_FILE: "name==version" lines
#
# Prints the image folder on its last line of stdout. Exit 77 (with one line on stderr
# saying why) when this machine cannot build or boot it: the caller skips, loudly.
# Cache: ${HOMECARE_GPIO_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/homecare-agent/gpio-vm}
set -euo pipefail
ARCH=${1:?usage: build-image.sh x86_64|aarch64 DEPS_FILE}
DEPS_FILE=${2:?usage: build-image.sh x86_64|aarch64 DEPS_FILE}
CACHE=${HOMECARE_GPIO_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/homecare-agent/gpio-vm}
SUITE=bookworm
T0=$(date +%s)
say() { echo "[gpio-vm build +$(( $(date +%s) - T0 ))s] $*" >&2; }
skip() { echo "gpio VM tests skipped: $*" >&2; exit 77; }

case "$ARCH" in
  x86_64)  DEB=amd64; QEMU=qemu-system-x86_64; QPKG=qemu-system-x86 ;;
  aarch64) DEB=arm64; QEMU=qemu-system-aarch64; QPKG=qemu-system-arm ;;
  *) echo "unknown ARCH $ARCH (x86_64 | aarch64)" >&2; exit 2 ;;
esac
[ "$(uname -m)" = x86_64 ] || skip "the image build runs on an x86-64 Debian host (this is $(uname -m))"
command -v apt-get >/dev/null || skip "no apt-get: the image is built from Debian packages"

# the apt mirror this machine is set up with (first main and security URIs)
apt_uri() {  # $1: 1 = main, 2 = security
  { sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
    awk '$1=="deb"{print $2}' /etc/apt/sources.list 2>/dev/null || true; } | sed -n "${1}p"
}
MIRROR=$(apt_uri 1); SECURITY=$(apt_uri 2)
[ -n "$MIRROR" ] || skip "no Debian mirror found in /etc/apt/sources.list*"
export DEBIAN_FRONTEND=noninteractive

# Kernel of the guest: Debian's current one for $SUITE. With a private apt state for
# arm64, so the host's dpkg architectures are never touched.
HOSTKV=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-//p' | head -1 || true)
if [ -z "$HOSTKV" ]; then
  [ "$(id -u)" = 0 ] || skip "apt knows no linux-image-amd64; run 'sudo apt-get update'"
  apt-get update -qq
  HOSTKV=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: linux-image-//p' | head -1)
fi
APTW=$CACHE/apt-$DEB
if [ "$DEB" = arm64 ]; then
  mkdir -p "$APTW/lists/partial" "$APTW/cache" "$APTW/etc"
  cat > "$APTW/etc/sources.list" <<EOS
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $SECURITY $SUITE-security main
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main
EOS
  cat > "$APTW/apt.conf" <<EOS
Dir::Etc::SourceList "$APTW/etc/sources.list";
Dir::Etc::SourceParts "/nonexistent";
Dir::State::Lists "$APTW/lists";
Dir::Cache "$APTW/cache";
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
EOS
  aptc() { APT_CONFIG=$APTW/apt.conf "$@"; }
  ls "$APTW/lists/"*Packages* >/dev/null 2>&1 || aptc apt-get update -qq
else
  aptc() { "$@"; }
fi
KV=$(aptc apt-cache depends linux-image-$DEB | sed -n 's/.*Depends: linux-image-//p' | head -1)
PKGVER=$(aptc apt-cache show "linux-image-$KV" | sed -n 's/^Version: //p' | head -1)
MM=${KV%%.0-*}

# The cache key: kernel, dependency pins, and this script (a changed recipe rebuilds).
KEY=$( { echo "$ARCH $SUITE $KV $PKGVER"; sort "$DEPS_FILE"; cat "$0"; } | sha256sum | cut -c1-16)
IMG=$CACHE/$ARCH-$KV-$KEY
if [ -f "$IMG/ready" ]; then   # warm: only what boots it (a cache restored onto a fresh box)
  if ! command -v "$QEMU" >/dev/null || ! command -v cpio >/dev/null; then
    [ "$(id -u)" = 0 ] || skip "$QEMU or cpio is missing (run 'sudo apt-get install $QPKG cpio')"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "$QPKG" cpio >/dev/null
  fi
  echo "$IMG"; exit 0
fi

# --- cold build ----------------------------------------------------------------
HOSTPKGS=("$QPKG" debootstrap cpio zstd make gcc kmod ca-certificates "linux-headers-$HOSTKV")
[ "$DEB" = arm64 ] && HOSTPKGS+=(gcc-aarch64-linux-gnu "linux-kbuild-$MM" python3-pip)
missing=()
for p in "${HOSTPKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || skip "building the guest needs root or: sudo apt-get install ${missing[*]}"
  say "apt: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ "$(id -u)" = 0 ] || skip "building the guest rootfs (debootstrap) needs root; run 'sudo make test-gpio' once to fill the cache"

W=$CACHE/build-$ARCH; rm -rf "$W"; mkdir -p "$W"; cd "$W"
say "kernel $KV ($PKGVER): download"
aptc apt-get download -qq "linux-image-$KV=$PKGVER"
[ "$DEB" = arm64 ] && aptc apt-get download -qq "linux-headers-$KV=$PKGVER"
apt-get download -qq "linux-source-$MM=$PKGVER" 2>/dev/null || apt-get download -qq "linux-source-$MM"
mkdir kimg src mod
dpkg-deb -x linux-image-${KV}_*_$DEB.deb kimg
dpkg-deb --fsys-tarfile linux-source-${MM}_*_all.deb | tar -xO ./usr/src/linux-source-$MM.tar.xz \
  | tar -xJ -C src --strip-components=1 linux-source-$MM/drivers/gpio/gpio-sim.c \
      linux-source-$MM/drivers/gpio/gpiolib.h linux-source-$MM/kernel/irq/irq_sim.c

say "gpio-sim.ko out of tree (Debian builds CONFIG_GPIO_SIM and CONFIG_IRQ_SIM off)"
cp src/drivers/gpio/gpio-sim.c mod/gpio-sim-main.c
cp src/drivers/gpio/gpiolib.h src/kernel/irq/irq_sim.c mod/
# irq_to_desc() is not exported to modules; generic_handle_irq() is
sed -i 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' mod/irq_sim.c
printf 'obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-main.o irq_sim.o\n' > mod/Makefile
if [ "$DEB" = arm64 ]; then
  mkdir hdr; dpkg-deb -x linux-headers-${KV}_*_arm64.deb hdr
  H=$W/hdr/usr/src/linux-headers-$KV
  ln -sfn /usr/lib/linux-kbuild-$MM/scripts "$H/scripts"   # the amd64 build tools, same version
  ln -sfn /usr/lib/linux-kbuild-$MM/tools "$H/tools"
  make -s -C "$H" M="$W/mod" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- modules 2>&1 | grep -v 'Skipping BTF' || true
else
  make -s -C "/lib/modules/$KV/build" M="$W/mod" modules 2>&1 | grep -v 'Skipping BTF' || true
fi
test -f mod/gpio-sim.ko

say "debootstrap $SUITE $DEB (minbase, python3, mosquitto)"
PKGS=python3,kmod,mosquitto,libpython3.11
if [ "$DEB" = amd64 ]; then
  debootstrap --variant=minbase --include=$PKGS,python3-pip $SUITE rootfs "$MIRROR" >debootstrap.log
  say "pip: project dependencies and lgpio into the rootfs"
  cp /etc/resolv.conf rootfs/etc/resolv.conf
  cp /etc/ssl/certs/ca-certificates.crt rootfs/tmp/host-ca.crt   # the host's CAs (TLS proxies)
  cp "$DEPS_FILE" rootfs/tmp/deps.txt
  chroot rootfs env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root PIP_CERT=/tmp/host-ca.crt \
    python3 -m pip install -q --break-system-packages --root-user-action=ignore --no-warn-script-location \
      --only-binary=:all: -r /tmp/deps.txt
  rm -f rootfs/tmp/host-ca.crt rootfs/etc/resolv.conf rootfs/tmp/deps.txt
else
  # --foreign + dpkg-deb -x: no qemu-user/binfmt needed on the host
  debootstrap --foreign --arch=arm64 --variant=minbase --include=$PKGS $SUITE rootfs "$MIRROR" >debootstrap.log
  for d in rootfs/var/cache/apt/archives/*.deb; do dpkg-deb -x "$d" rootfs; done
  rm -f rootfs/var/cache/apt/archives/*.deb
  cp rootfs/usr/share/base-passwd/passwd.master rootfs/etc/passwd
  cp rootfs/usr/share/base-passwd/group.master rootfs/etc/group
  say "pip: aarch64 wheels of the project dependencies unpacked into the rootfs"
  python3 -m pip download -q --only-binary=:all: --platform manylinux_2_34_aarch64 \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 \
    --python-version 3.11 --implementation cp -d wheels -r "$DEPS_FILE"
  SP=rootfs/usr/local/lib/python3.11/dist-packages; mkdir -p $SP
  for w in wheels/*.whl; do python3 -m zipfile -e "$w" $SP; done
fi

say "modules + initramfs"
M=rootfs/lib/modules/$KV; rm -rf "$M"; mkdir -p "$M/kernel/fs/configfs" "$M/extra"
cp kimg/lib/modules/$KV/modules.builtin* kimg/lib/modules/$KV/modules.order "$M/"
cp kimg/lib/modules/$KV/kernel/fs/configfs/configfs.ko "$M/kernel/fs/configfs/"
cp mod/gpio-sim.ko "$M/extra/"
depmod -b rootfs "$KV"
mkdir -p "$IMG.tmp"
cp kimg/boot/vmlinuz-$KV "$IMG.tmp/kernel"
( cd rootfs && find . -xdev \( -path ./usr/share/doc -o -path ./usr/share/locale -o -path ./usr/share/man \
    -o -path ./var/cache/apt -o -path ./var/lib/apt/lists -o -path ./debootstrap \) -prune -o -print \
    | cpio -o -H newc --quiet ) | zstd -q -3 -T0 > "$IMG.tmp/base.cpio.zst"
{ echo "arch=$ARCH"; echo "kernel=$KV"; echo "kernel_package=$PKGVER"; echo "qemu=$QEMU"; echo "built_s=$(( $(date +%s) - T0 ))"; } > "$IMG.tmp/ready"
rm -rf "$IMG"; mv "$IMG.tmp" "$IMG"
cd /; rm -rf "$W"
for old in "$CACHE/$ARCH"-*; do [ "$old" = "$IMG" ] || rm -rf "$old"; done   # superseded keys
say "image ready: $IMG"
echo "$IMG"
