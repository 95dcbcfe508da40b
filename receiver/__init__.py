"""homecare-receiver: the reference cloud side of docs/spec.md §15.

Competing consumers of the gateways' events, stored once per ``jti`` in PostgreSQL,
gateway supervision, open alarms on an HTTP API and a live page, and the operator's
acknowledge signed as an ``ack`` command. ``agent/`` never imports this package.
"""
