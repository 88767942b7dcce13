"""Shared test setup: no network but loopback, and connections built the Airflow way."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

# Distinctive, realistic-length secrets: long enough for Airflow's masker (>= 5 chars) and
# easy to grep for in any text a test captures.
INSTANCE_ID = "3C0FFEE1NSTANCE0000000000000001"
INSTANCE_TOKEN = "T0KEN5ECRET0000000000000000001"
CLIENT_TOKEN = "F1C11E7T0KEN5ECRET00000000001"
SECRETS = (INSTANCE_TOKEN, CLIENT_TOKEN)


def _is_loopback(address: Any) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, bytes) or (isinstance(host, str) and host.startswith("/")):
        return True  # AF_UNIX socket paths (asyncio's self-pipe, etc.)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that tries to reach beyond 127.0.0.0/8 (or ::1)."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def guard(address: Any) -> None:
        if not _is_loopback(address):
            raise OSError(f"tests may only use loopback, not {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        guard(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None:
            name = host.decode() if isinstance(host, bytes) else str(host)
            if name != "localhost":
                guard(name)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def make_connection(conn_id: str = "plugz_default", **fields: Any) -> Any:
    """An Airflow SDK ``Connection`` of type plugz with valid defaults, overridable per field."""
    from airflow.sdk import Connection

    values: dict[str, Any] = {
        "conn_type": "plugz",
        "login": INSTANCE_ID,
        "password": INSTANCE_TOKEN,
        "extra": {"client_token": CLIENT_TOKEN},
    }
    values.update(fields)
    extra = values.pop("extra")
    return Connection(conn_id=conn_id, extra=None if extra is None else _json(extra), **values)


def _json(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)
