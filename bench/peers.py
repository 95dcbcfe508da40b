"""The daemons ``bench daemon`` runs beside ours: mqtt-io and a bare paho client.

* **mqtt-io** (``MQTTIO_SPEC``, default ``mqtt-io==2.7.*``), installed with pip into a
  throw-away venv under the bench's temp folder, together with the gpiozero we use. It
  runs the same three inputs (GPIO17, 27, 22, pull-up, edge interrupts, so no polling) and
  two outputs (GPIO5, 6) through its ``gpiozero`` module on gpiozero's ``MockFactory``
  (``GPIOZERO_PIN_FACTORY=mock``): the same pin library and mock pins as ours. Its own
  ``mock`` module was not used: it is built on ``unittest.mock`` for its tests, which a
  daemon on a Pi never imports. No registry, or a failing install: :func:`install_mqtt_io`
  returns ``None`` with the reason, and the bench prints it and goes on without.
  ``BENCH_MQTTIO_VENV=DIR`` reuses (or creates once) a venv outside the temp folder.
* **bare paho**: ``paho.mqtt.client`` connected with the same keepalive, one QoS 1
  publish, then ``loop_forever``: the least a paho-based daemon costs.

All three log in as the broker's ``device`` user; the password is handed over in a 0600
file (mqtt-io's config) or on stdin (the paho script), never on a command line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional, Tuple

import yaml

MQTTIO_SPEC = os.environ.get("MQTTIO_SPEC", "mqtt-io==2.7.*")
KEEPALIVE_S = 30   # our default (agent/config/schema.py); given to all three
INPUTS = (("sos", 17), ("front_door", 27), ("kitchen_smoke", 22))
OUTPUTS = (("buzzer", 5), ("led", 6))

PAHO_SCRIPT = """\
import json, sys
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
c = json.loads(sys.stdin.readline())
client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=c["client_id"], protocol=mqtt.MQTTv5)
client.username_pw_set(c["user"], c["password"])
client.on_connect = lambda *a: client.publish(c["topic"], b"online", qos=1)
client.connect(c["host"], c["port"], c["keepalive"])
client.loop_forever()
"""


def _gpiozero_spec() -> str:
    from importlib.metadata import version
    return f"gpiozero=={version('gpiozero')}"


def install_mqtt_io(folder: Path) -> Tuple[Optional[Path], str]:
    """(python of a venv with mqtt-io, note); (None, why) when it cannot be installed."""
    venv = Path(os.environ.get("BENCH_MQTTIO_VENV") or folder / "mqtt-io-venv")
    python = venv / "bin" / "python"
    if python.exists() and _has_mqtt_io(python):
        return python, f"mqtt-io {_version(python)} from {venv}"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        MQTTIO_SPEC, _gpiozero_spec()],
                       check=True, capture_output=True, text=True, timeout=600)
    except subprocess.CalledProcessError as e:
        tail = (e.stderr or e.stdout or "").strip().splitlines()[-1:] or ["(no output)"]
        return None, f"mqtt-io not installed ({MQTTIO_SPEC}): {tail[0]}"
    except subprocess.TimeoutExpired:
        return None, f"mqtt-io not installed ({MQTTIO_SPEC}): pip took over 10 min"
    return python, f"mqtt-io {_version(python)} (fresh venv)"


def _has_mqtt_io(python: Path) -> bool:
    return subprocess.run([str(python), "-c", "import mqtt_io"], capture_output=True).returncode == 0


def _version(python: Path) -> str:
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                          "print(m.version('mqtt-io'))"], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def _secret_file(path: Path, text: str) -> None:
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def write_mqtt_io_config(folder: Path, broker: Any, topic_prefix: str) -> Path:
    """mqtt-io's config for the same pins, against ``broker``'s plain listener."""
    data = {
        "mqtt": {"host": broker.host, "port": broker.plain_port, "user": "device",
                 "password": broker.users["device"], "client_id": "gw-test-mqttio",
                 "topic_prefix": topic_prefix, "keepalive": KEEPALIVE_S},
        "gpio_modules": [{"name": "pins", "module": "gpiozero"}],
        "digital_inputs": [{"name": name, "module": "pins", "pin": pin, "pullup": True,
                            "interrupt": "both"} for name, pin in INPUTS],
        "digital_outputs": [{"name": name, "module": "pins", "pin": pin}
                            for name, pin in OUTPUTS],
    }
    path = folder / "mqtt-io.yml"
    _secret_file(path, yaml.safe_dump(data, sort_keys=False))
    return path


def paho_settings(broker: Any, topic: str) -> str:
    """The stdin line :data:`PAHO_SCRIPT` reads (JSON, password included)."""
    return json.dumps({"host": broker.host, "port": broker.plain_port, "user": "device",
                       "password": broker.users["device"], "client_id": "gw-test-paho",
                       "topic": topic, "keepalive": KEEPALIVE_S}) + "\n"
