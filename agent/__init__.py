"""homecare-agent: everything after a sensor event.

Data flows one way through this package:

    drivers (pin edge -> debouncer -> SensorEvent)
      -> agent.care      (care rules may raise more events)
      -> agent.events    (claims) -> agent.signing (JWT)
      -> agent.outbox    (durable, SQLite)
      -> agent.publisher (paho-mqtt) -> PUBACK -> outbox delete
"""

__version__ = "0.1.0"
