"""Every error meterline raises on purpose derives from MeterlineError."""

from __future__ import annotations


class MeterlineError(Exception):
    """Root of meterline's errors; its message says what to do."""


class ConfigError(MeterlineError):
    """Settings or meterline.toml are wrong; the message names every bad key."""


class ServiceError(MeterlineError):
    """A local service (the Kafka broker) could not be resolved, started or stopped."""


class MissingToolError(ServiceError):
    """A program a local service needs (java, mvn) is not installed."""

    def __init__(self, tool: str, hint: str) -> None:
        super().__init__(f"{tool} was not found on PATH: {hint}")
        self.tool = tool


class PortInUseError(ServiceError):
    """The port a local service wants is taken by another process."""

    def __init__(self, port: int, hint: str = "") -> None:
        super().__init__(f"port {port} on 127.0.0.1 is already in use by another process{hint}")
        self.port = port
