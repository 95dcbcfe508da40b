#!/usr/bin/env python3
"""Reference consumer for homecare-agent events (docs/integrators.md), paho-mqtt + PyJWT.

Subscribes to ``homecare/+/events/#`` (QoS 1), verifies every event's signature with
the device's public key (PEM or JWK), checks ``typ`` and ``kid``, de-duplicates by
``jti``, tracks ``seq`` per device and reports gaps (a gap across a new ``boot`` is
normal: the agent reserves seq numbers in blocks). Prints one JSON report on stdout on
SIGTERM/SIGINT, after ``--count`` unique events, or after ``--idle`` seconds without a
new event; the same format as ../consumer-node. Connection notes go to stderr.

    python3 consumer.py --url mqtt://broker:1883 --key gw-0001.pub.pem \\
        [--kid KID] [--username U --password-file F] [--protocol 3.1.1|5] \\
        [--topic 'homecare/+/events/#'] [--count N] [--idle S] [--progress N]

Environment: HOMECARE_KEY, HOMECARE_KID, MQTT_URL, MQTT_USERNAME, MQTT_PASSWORD_FILE.
Needs paho-mqtt >= 2.0 and PyJWT >= 2.8 with cryptography.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import signal
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Set, Tuple
from urllib.parse import urlparse

import jwt
import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion

TYP = "homecare-event+jwt"
REQUIRED = ["v", "iss", "jti", "seq", "boot", "iat", "ts", "ts_sync", "type", "sensor",
            "prio", "data"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def load_key(path: str, kid: Optional[str]) -> Tuple[Ed25519PublicKey, str]:
    """An Ed25519 public key from a PEM or JWK file, and the kid to expect (RFC 7638
    thumbprint unless given or named in the JWK)."""
    text = open(path, encoding="utf-8").read().strip()
    if text.startswith("{"):
        jwk = json.loads(text)
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or "d" in jwk:
            raise SystemExit(f"{path}: expected an Ed25519 public JWK (kty OKP, crv Ed25519)")
        x = jwk["x"]
        key = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))
        kid = kid or jwk.get("kid")
    else:
        loaded = serialization.load_pem_public_key(text.encode("ascii"))
        if not isinstance(loaded, Ed25519PublicKey):
            raise SystemExit(f"{path}: expected an Ed25519 public key PEM")
        key = loaded
        x = b64url(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    thumbprint = b64url(hashlib.sha256(
        json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"),
                   sort_keys=True).encode("utf-8")).digest())
    return key, kid or thumbprint


class Tally:
    """What the consumer has seen; thread-safe (paho's thread adds, main thread reports)."""

    def __init__(self, key: Ed25519PublicKey, kid: str, alg: str) -> None:
        self.key, self.kid, self.alg = key, kid, alg
        self.lock = threading.Lock()
        self.first_token: Dict[str, str] = {}
        self.duplicate_jtis: Set[str] = set()
        self.by_device: Dict[str, Dict[int, int]] = {}
        self.bad: List[Dict[str, str]] = []
        self.received = self.duplicates = self.duplicate_mismatches = 0
        self.last_new = time.monotonic()

    def verify(self, topic: str, token: str) -> Dict[str, Any]:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != TYP:
            raise ValueError(f"typ is {header.get('typ')!r}, not {TYP}")
        if header.get("kid") != self.kid:
            raise ValueError(f"kid {header.get('kid')!r} is not the registered {self.kid}")
        claims: Dict[str, Any] = jwt.decode(token, self.key, algorithms=[self.alg],
                                            options={"verify_iat": False, "require": REQUIRED})
        device = topic.split("/")[1] if topic.count("/") >= 2 else None
        if claims["iss"] != device:
            raise ValueError(f"iss {claims['iss']} arrived on {topic}")
        return claims

    def handle(self, topic: str, payload: bytes) -> None:
        with self.lock:
            self.received += 1
        try:
            token = payload.decode("ascii")
            claims = self.verify(topic, token)
        except Exception as exc:  # every failure is a bad event, counted, never fatal
            with self.lock:
                self.bad.append({"topic": topic, "error": f"{type(exc).__name__}: {exc}"})
            return
        with self.lock:
            seen = self.first_token.get(claims["jti"])
            if seen is not None:
                self.duplicates += 1
                self.duplicate_jtis.add(claims["jti"])
                if seen != token:  # same jti, different bytes: suspicious
                    self.duplicate_mismatches += 1
                return
            self.first_token[claims["jti"]] = token
            self.last_new = time.monotonic()
            self.by_device.setdefault(claims["iss"], {})[claims["seq"]] = claims["boot"]

    def unique(self) -> int:
        with self.lock:
            return len(self.first_token)

    def report(self) -> Dict[str, Any]:
        with self.lock:
            gaps: List[Dict[str, Any]] = []
            devices: Dict[str, Any] = {}
            for iss, seqs in sorted(self.by_device.items()):
                ordered = sorted(seqs.items())
                for (prev_seq, prev_boot), (seq, boot) in zip(ordered, ordered[1:]):
                    if seq > prev_seq + 1:
                        gaps.append({"iss": iss, "after_seq": prev_seq, "before_seq": seq,
                                     "missing": seq - prev_seq - 1, "boot_before": prev_boot,
                                     "boot_after": boot, "across_boot": prev_boot != boot})
                devices[iss] = {"events": len(ordered), "boots": sorted(set(seqs.values())),
                                "first_seq": ordered[0][0] if ordered else None,
                                "last_seq": ordered[-1][0] if ordered else None}
            return {"consumer": "python", "received": self.received,
                    "unique": len(self.first_token), "duplicates": self.duplicates,
                    "duplicate_jtis": sorted(self.duplicate_jtis),
                    "duplicate_mismatches": self.duplicate_mismatches,
                    "bad_signatures": len(self.bad), "bad": self.bad[:20], "gaps": gaps,
                    "in_boot_gaps": sum(1 for g in gaps if not g["across_boot"]),
                    "devices": devices, "jtis": sorted(self.first_token)}


def note(**fields: Any) -> None:
    sys.stderr.write(json.dumps(fields) + "\n")
    sys.stderr.flush()


def main(argv: Optional[List[str]] = None) -> int:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default=env("MQTT_URL", "mqtt://localhost:1883"))
    p.add_argument("--key", default=env("HOMECARE_KEY"), help="device public key (PEM or JWK)")
    p.add_argument("--kid", default=env("HOMECARE_KID"))
    p.add_argument("--alg", default="EdDSA", choices=["EdDSA"])
    p.add_argument("--username", default=env("MQTT_USERNAME"))
    p.add_argument("--password-file", default=env("MQTT_PASSWORD_FILE"))
    p.add_argument("--protocol", default="5", choices=["3.1.1", "5"])
    p.add_argument("--topic", default="homecare/+/events/#")
    p.add_argument("--client-id", default=f"consumer-python-{os.getpid()}")
    p.add_argument("--count", type=int, help="stop after this many unique events")
    p.add_argument("--idle", type=float, help="stop after this many seconds without a new event")
    p.add_argument("--progress", type=int, help="note the count on stderr every N new events")
    args = p.parse_args(argv)
    if not args.key:
        p.error("give the device's public key with --key FILE (PEM or JWK) or HOMECARE_KEY")
    key, kid = load_key(args.key, args.kid)
    tally = Tally(key, kid, args.alg)
    done = threading.Event()
    why: List[str] = []

    def stop(reason: str) -> None:
        why.append(reason)
        done.set()

    signal.signal(signal.SIGTERM, lambda *_: stop("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: stop("SIGINT"))

    url = urlparse(args.url)
    v5 = args.protocol == "5"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id,
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                         clean_session=None if v5 else True)
    if args.username:
        password = open(args.password_file).read().strip() if args.password_file else None
        client.username_pw_set(args.username, password)
    if url.scheme in ("mqtts", "ssl"):
        client.tls_set()
    client.reconnect_delay_set(0.25, 2)

    def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            note(event="connect_failed", error=str(reason))
            return
        note(event="connected")
        c.subscribe(args.topic, qos=1)

    def on_subscribe(c: mqtt.Client, u: Any, mid: int, reasons: Any, props: Any) -> None:
        if any(r.is_failure for r in reasons):
            note(event="subscribe_failed", error=str(reasons[0]))
        else:
            note(event="subscribed", topic=args.topic)

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        before = tally.unique()
        tally.handle(msg.topic, bytes(msg.payload))
        after = tally.unique()
        if args.progress and after > before and after % args.progress == 0:
            note(event="progress", unique=after)
        if args.count and tally.unique() >= args.count:
            stop("count")

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.on_disconnect = lambda *a: note(event="disconnected")
    client.connect_async(url.hostname or "localhost",
                         url.port or (8883 if url.scheme in ("mqtts", "ssl") else 1883), 30)
    client.loop_start()
    while not done.wait(0.1):
        if args.idle and tally.unique() and time.monotonic() - tally.last_new > args.idle:
            stop("idle")
    client.disconnect()
    client.loop_stop()
    note(event="finished", why=why[0])
    sys.stdout.write(json.dumps(tally.report()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
