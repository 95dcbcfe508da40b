"""The receiver's MQTT link (paho-mqtt 2.x, MQTT 5): a competing consumer.

Events come through the shared subscription ``$share/<group>/<root>/+/events/#``, so
each event goes to one instance of the group; statuses (retained) through a plain
subscription, so every instance sees them. A message is acknowledged (PUBACK) only
after the caller has committed it (``manual_ack``): a receiver killed mid-batch has its
unacknowledged messages sent again. The session is persistent (a fixed client id per
instance, session expiry one day): on mosquitto, what was queued for an instance while
it was down is delivered when it returns, so restart a dead instance (systemd does).
paho's own thread only puts messages on the caller's queue.
"""
from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.files.secrets import read_secret_file
from receiver.config import MqttConfig

log = logging.getLogger("homecare.receiver.link")
SESSION_EXPIRY_S = 86400


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    retain: bool
    received_at: float


class Link:
    """``start()``, then messages arrive on ``inbox``; ``ack(message)`` once committed."""

    def __init__(self, config: MqttConfig, instance: str, inbox: "queue.Queue[Message]") -> None:
        self.config = config
        self.inbox = inbox
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"homecare-receiver-{instance}",
                                  protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
        if config.username is not None:
            password = None
            if config.password_file is not None:
                password = read_secret_file(config.password_file, what="mqtt.password_file"
                                            ).decode("utf-8").strip()
            self.client.username_pw_set(config.username, password)
        if config.ca_file is not None:
            self.client.tls_set_context(ssl.create_default_context(cafile=str(config.ca_file)))
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    @property
    def events_filter(self) -> str:
        return f"$share/{self.config.group}/{self.config.topic_root}/+/events/#"

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(self.config.host, self.config.port, keepalive=30,
                                  clean_start=False, properties=props)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                    properties: Any = None) -> None:
        if rc.is_failure:
            log.error("the broker refused the connection: %s", rc)
            return
        client.subscribe([(self.events_filter, 1),
                          (f"{self.config.topic_root}/+/status", 1)])
        log.info("connected to %s:%s (session present: %s)", self.config.host,
                 self.config.port, flags.session_present)
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                       properties: Any = None) -> None:
        self.connected.clear()
        log.warning("disconnected from the broker: %s", rc)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.inbox.put(Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos, bool(msg.retain),
                               time.time()))

    def ack(self, message: Message) -> None:
        if message.qos > 0:
            self.client.ack(message.mid, message.qos)

    def publish(self, topic: str, payload: str, timeout: float = 10.0) -> bool:
        """QoS 1; True once the broker's PUBACK came back within ``timeout``."""
        info = self.client.publish(topic, payload.encode("ascii"), qos=1)
        try:
            info.wait_for_publish(timeout)
        except RuntimeError:
            return False
        return info.is_published()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_connected(link: Link, timeout: Optional[float]) -> bool:
    return link.connected.wait(timeout)
