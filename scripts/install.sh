#!/usr/bin/env bash
# Installs homecare-agent as a systemd service on Raspberry Pi OS (run as root from
# a checkout: `sudo make install`). Idempotent: running it again upgrades the code
# and keeps the config, keys and state.
#
#   /opt/homecare-agent/venv      the program (a venv that can also see Debian's
#                                 python3-lgpio / python3-rpi.gpio)
#   /etc/homecare-agent/          config.yaml (root:homecare 0640) and secrets (root 0600, handed to the
#                                 service by systemd as credentials)
#   /var/lib/homecare-agent/      outbox, counters (systemd StateDirectory=)
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "install.sh must run as root: sudo make install" >&2; exit 1; }
src=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/homecare-agent
etc=/etc/homecare-agent

if command -v apt-get >/dev/null; then
  # GPIO backends from Debian: lgpio works on every Pi (the only one on a Pi 5).
  apt-get install -y -qq python3-venv python3-lgpio python3-rpi.gpio 2>/dev/null \
    || apt-get install -y -qq python3-venv
fi
getent group gpio >/dev/null || groupadd --system gpio
id homecare >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/homecare-agent \
  --shell /usr/sbin/nologin --user-group --groups gpio homecare
usermod -a -G gpio homecare

python3 -m venv --system-site-packages "$prefix/venv"
"$prefix/venv/bin/python" -m pip install -q --upgrade pip
"$prefix/venv/bin/python" -m pip install -q "$src"
install -m 0644 "$src/README.md" "$prefix/README.md"

install -d -m 0750 -o root -g homecare "$etc"
if [ ! -e "$etc/config.yaml" ]; then
  # the service reads secrets from systemd's credentials, not from /etc directly
  sed -e 's|key_file: /etc/homecare-agent/device-key.pem|key_file: ${CREDENTIALS_DIRECTORY}/device-key.pem|' \
      "$src/config/example.yaml" > "$etc/config.yaml.new"
  install -m 0640 -o root -g homecare "$etc/config.yaml.new" "$etc/config.yaml"
  rm -f "$etc/config.yaml.new"
  echo "wrote $etc/config.yaml from the example: edit it, then: homecare-agent validate --config $etc/config.yaml"
fi
if [ ! -e "$etc/device-key.pem" ]; then
  "$prefix/venv/bin/homecare-agent" keygen --out "$etc/device-key.pem"
fi
[ -e "$etc/mqtt-password" ] || { install -m 0600 /dev/null "$etc/mqtt-password"; \
  echo "put the broker password into $etc/mqtt-password (one line, mode 0600)"; }
[ -e "$etc/cloud-public.pem" ] || echo "put the care centre's command key into $etc/cloud-public.pem (mode 0640, group homecare)"

# For the technician's shell: the service gets its secrets as systemd credentials; by
# hand (as root) the same files are read from /etc/homecare-agent.
cat > /usr/local/bin/homecare-agent <<'WRAPPER'
#!/bin/sh
: "${CREDENTIALS_DIRECTORY:=/etc/homecare-agent}"
export CREDENTIALS_DIRECTORY
exec /opt/homecare-agent/venv/bin/homecare-agent "$@"
WRAPPER
chmod 0755 /usr/local/bin/homecare-agent

install -m 0644 "$src/systemd/homecare-agent.service" /etc/systemd/system/homecare-agent.service
systemctl daemon-reload
systemctl enable homecare-agent.service
echo "installed. Start with: systemctl start homecare-agent; then: journalctl -u homecare-agent -f"
