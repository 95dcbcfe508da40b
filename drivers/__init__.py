"""Sensors and outputs: sans-IO state machines plus thin gpiozero shells.

The state machines (debounce, hold, flapping, smoke patterns) take ``(level, now)``
and return :class:`drivers.events.SensorEvent` values; they import no GPIO,
threads or clocks. The gpiozero shells only turn pin edges into ``(level, now)``.
"""
