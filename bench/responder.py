"""The care centre of ``bench_ack``, in a process of its own: verify each alarm, ack at once.

``python -m bench.responder SETTINGS.json``; the file names the broker, the user, the
password *file*, the device's public key and the care centre's private key (no secret
on the command line). Subscribed to the device's ``events/sos`` (MQTT 5, QoS 1), it
verifies every event with the device key and answers each ``sos.pressed`` with a
signed ``ack`` naming it. For the baseline it also echoes ``bench/ping`` to
``bench/pong`` unchanged (no verification, no signing). Prints ``ready`` once subscribed.
"""
from __future__ import annotations

import json
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict

import jwt
import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from paho.mqtt.enums import CallbackAPIVersion

from agent.record.signing import Verifier, ed25519_thumbprint

PING, PONG = "bench/ping", "bench/pong"


def main(argv: "list[str]") -> int:
    s: Dict[str, Any] = json.loads(Path(argv[0]).read_text())
    device_public = serialization.load_pem_public_key(Path(s["device_public"]).read_bytes())
    cloud_key = serialization.load_pem_private_key(Path(s["cloud_key"]).read_bytes(), None)
    verifier = Verifier("EdDSA", device_public, kid=ed25519_thumbprint(device_public))  # type: ignore[arg-type]
    prefix, device = s["prefix"], s["device_id"]

    def on_connect(client: mqtt.Client, *_: Any) -> None:
        sock = client.socket()
        if s.get("nodelay") and sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
        client.subscribe([(f"{prefix}/events/sos", 1), (PING, 1)])

    def on_subscribe(client: mqtt.Client, *_: Any) -> None:
        print("ready", flush=True)

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == PING:
            client.publish(PONG, msg.payload, qos=1)
            return
        claims = verifier.verify(msg.payload.decode("ascii"))
        if claims["type"] != "sos.pressed":
            return
        now = int(time.time())
        token = jwt.encode({"aud": device, "jti": str(uuid.uuid4()), "iat": now, "exp": now + 300,
                            "cmd": "ack", "in_reply_to": claims["jti"]}, cloud_key,  # type: ignore[arg-type]
                           algorithm="EdDSA", headers={"typ": "homecare-command+jwt"})
        client.publish(f"{prefix}/commands", token, qos=1)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-responder",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(s["user"], Path(s["password_file"]).read_text())
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect(s["host"], s["port"])
    client.loop_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
