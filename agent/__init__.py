"""homecare-agent: everything after a sensor event.

Data flows one way through this package:

    drivers (pin edge -> debouncer -> SensorEvent)
      -> agent.rules.care      (care rules may raise more events)
      -> agent.record.events    (claims) -> agent.record.signing (JWT)
      -> agent.outbox.store    (durable, SQLite)
      -> agent.delivery.publisher (paho-mqtt) -> PUBACK -> outbox delete
"""

__version__ = "0.1.0"
