"""The ARC path: alarms to a monitoring centre's receiver over SIA DC-09 (docs/spec.md §12.2).

``codes`` (event -> code, sans-IO), ``codec`` (frames and responses, sans-IO), ``link``
(ACK/NAK/DUH, resend, supervision; sans-IO) and ``sender`` (the one socket owner thread).
"""
