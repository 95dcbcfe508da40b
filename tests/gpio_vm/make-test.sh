#!/usr/bin/env bash
# `make test-gpio` (x86_64) and `make test-gpio-arm64` (aarch64): build or reuse the
# cached guest image, then boot it once under pytest (tests/gpio_vm/test_gpio_vm.py).
#   make-test.sh ARCH PYTHON
# A machine that cannot build or boot the guest is told so in one line, and the
# target passes (the tests are skipped, never silently).
set -euo pipefail
ARCH=${1:?usage: make-test.sh x86_64|aarch64 PYTHON}
PY=${2:?usage: make-test.sh x86_64|aarch64 PYTHON}
cd "$(dirname "$0")/../.."
T0=$(date +%s)
deps=$(mktemp)
trap 'rm -f "$deps"' EXIT
"$PY" tests/gpio_vm/deps.py > "$deps"
rc=0
img=$(bash tests/gpio_vm/build-image.sh "$ARCH" "$deps" | tail -n1) || rc=$?
[ "$rc" = 77 ] && exit 0          # build-image.sh said why, in one line
[ "$rc" = 0 ] || exit "$rc"
echo "gpio VM ($ARCH): image $img ready after $(( $(date +%s) - T0 )) s"
HOMECARE_GPIO_VM_IMAGE=$img "$PY" -m pytest -q -p no:cacheprovider -rs tests/gpio_vm/test_gpio_vm.py
echo "gpio VM ($ARCH): $(( $(date +%s) - T0 )) s in all"
