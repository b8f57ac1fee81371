"""Where the MQTT broker is, from FACEFLEET_MQTT_URL, and how to name it in a log line."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    @property
    def display(self) -> str:
        """The address without its credentials."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
        }
        if self.tls:
            options["tls_context"] = ssl.create_default_context()
        return options
