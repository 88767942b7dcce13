"""TLS of both transports: verification is always on; a connection may name its own PEM CA bundle."""

from __future__ import annotations

import functools
import ssl
from typing import TYPE_CHECKING

from airflow_provider_plugz.exceptions import PlugzConfigurationError

if TYPE_CHECKING:
    from airflow_provider_plugz.connection import PlugzConfig


def requests_verify(config: PlugzConfig) -> str | bool:
    """requests' ``verify``: on, with the system CAs or the connection's bundle (checked here)."""
    if config.ca_bundle is None:
        return True
    tls_context(config)  # refuse a missing or non-PEM bundle up front, with advice
    return config.ca_bundle


def tls_context(config: PlugzConfig) -> ssl.SSLContext:
    """The TLS context for httpx: the system CAs (built once per process), or the connection's."""
    if config.ca_bundle is None:
        return default_tls_context()
    try:
        return ssl.create_default_context(cafile=config.ca_bundle)
    except (OSError, ssl.SSLError, ValueError):
        raise PlugzConfigurationError(
            f"Plugz connection {config.conn_id!r}: extra 'ca_bundle' is not a readable PEM CA bundle "
            "on this worker; give the path of one, or remove the extra to use the system's CAs."
        ) from None


@functools.cache
def default_tls_context() -> ssl.SSLContext:
    """The system CAs' context, shared: loading them costs ~60 ms, so once, not per hook or trigger."""
    return ssl.create_default_context()
