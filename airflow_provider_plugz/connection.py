"""The ``plugz`` Airflow connection: one pure function from connection to a frozen config.

Mapping (UI form, ``AIRFLOW_CONN_*`` JSON and URI alike)::

    login      -> instance id                 (URL path; sensitive)
    password   -> instance token              (URL path; secret)
    extra      -> client_token                (Client-Token header; secret; the UI's
                  extra__plugz__client_token form is accepted too)
    host       -> base URL, default https://api.plugzapi.com.br; a bare host name means
                  https, except loopback hosts (the sandbox), which mean http
    port       -> appended to a bare host
    extra      -> connect_timeout, read_timeout (seconds)
    extra      -> max_attempts, retry_backoff, retry_backoff_max, retry_budget (the retry policy)
    extra      -> ca_bundle (path of a CA bundle for TLS verification; verification is always on)
    extra      -> allow_insecure_http (plain http:// is refused unless the host is loopback or this is true)

Parsing does no I/O and copies, never mutates, ``extra_dejson``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from airflow_provider_plugz.exceptions import PlugzConfigurationError
from airflow_provider_plugz.retry import RetryPolicy

DEFAULT_CONN_ID = "plugz_default"
CONN_TYPE = "plugz"
DEFAULT_BASE_URL = "https://api.plugzapi.com.br"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0

# Anything that could change the shape of the URL path it is pasted into.
_PATH_CREDENTIAL_FORBIDDEN = re.compile(r"[\s/?#%\\\x00-\x1f\x7f]|\.\.")
_HEADER_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
# A header value must be plain printable ASCII (requests and httpx encode headers as latin-1).
_HEADER_VALUE = re.compile(r"[\x21-\x7e]+")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class ConnectionLike(Protocol):
    """What we read from an Airflow ``Connection`` (SDK or models flavour)."""

    @property
    def conn_id(self) -> str | None: ...
    @property
    def host(self) -> str | None: ...
    @property
    def login(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...
    @property
    def extra_dejson(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PlugzConfig:
    """Everything needed to talk to one Plugz instance, validated.

    Secrets are excluded from ``repr`` so the object can be logged or shown in a debugger.
    """

    conn_id: str
    base_url: str
    instance_id: str = field(repr=False)
    instance_token: str = field(repr=False)
    client_token: str = field(repr=False)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    ca_bundle: str | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a message, log line or repr."""
        return (self.instance_token, self.client_token, self.instance_id)


def parse_connection(conn: ConnectionLike) -> PlugzConfig:
    """Validate an Airflow connection and turn it into a :class:`PlugzConfig`.

    :raises PlugzConfigurationError: naming the field at fault, never its value.
    """
    conn_id = conn.conn_id or DEFAULT_CONN_ID
    try:
        raw_extra = conn.extra_dejson
    except (TypeError, ValueError):
        raise _config_error(conn_id, "extra is not valid JSON") from None
    if raw_extra is not None and not isinstance(raw_extra, Mapping):
        raise _config_error(conn_id, 'extra must be a JSON object, e.g. {"client_token": "..."}')
    extra = dict(raw_extra or {})

    instance_id = _path_credential(conn_id, "login (Instance ID)", conn.login)
    instance_token = _path_credential(conn_id, "password (Instance token)", conn.password)
    client_token = _client_token(conn_id, extra)
    base_url = _base_url(conn_id, conn.host, conn.port)
    if base_url.startswith("http://") and not _flag(conn_id, extra, "allow_insecure_http"):
        hostname = urlsplit(base_url).hostname or ""
        if not is_loopback(hostname):
            raise _config_error(
                conn_id,
                "host uses plain http://, which would send the tokens unencrypted; use https:// "
                "(or set extra allow_insecure_http to true for a trusted internal proxy)",
            )
    defaults = RetryPolicy()
    retry = RetryPolicy(
        max_attempts=int(
            _number(conn_id, extra, "max_attempts", defaults.max_attempts, minimum=1, integer=True)
        ),
        backoff=_number(conn_id, extra, "retry_backoff", defaults.backoff),
        backoff_max=_number(conn_id, extra, "retry_backoff_max", defaults.backoff_max),
        budget=_number(conn_id, extra, "retry_budget", defaults.budget),
    )
    return PlugzConfig(
        conn_id=conn_id,
        base_url=base_url,
        instance_id=instance_id,
        instance_token=instance_token,
        client_token=client_token,
        connect_timeout=_number(conn_id, extra, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, positive=True),
        read_timeout=_number(conn_id, extra, "read_timeout", DEFAULT_READ_TIMEOUT, positive=True),
        retry=retry,
        ca_bundle=_ca_bundle(conn_id, extra),
    )


def _config_error(conn_id: str, problem: str) -> PlugzConfigurationError:
    return PlugzConfigurationError(
        f"Plugz connection {conn_id!r}: {problem} (Admin > Connections, or the AIRFLOW_CONN_* value)."
    )


def _path_credential(conn_id: str, label: str, value: str | None) -> str:
    value = (value or "").strip()
    if not value:
        raise _config_error(conn_id, f"{label} is empty; copy it from the instance page of the Plugz panel")
    if _PATH_CREDENTIAL_FORBIDDEN.search(value):
        raise _config_error(
            conn_id,
            f"{label} contains whitespace, '/', '?', '#', '%', '\\', '..' or a control character; "
            "paste the value exactly as the Plugz panel shows it",
        )
    return value


def _client_token(conn_id: str, extra: Mapping[str, Any]) -> str:
    raw = extra.get("client_token")
    if raw in (None, ""):
        raw = extra.get(f"extra__{CONN_TYPE}__client_token")
    label = "extra 'client_token' (Client-Token)"
    if raw in (None, ""):
        raise _config_error(
            conn_id,
            f"{label} is missing; it is the account security token from the Security page of the Plugz panel",
        )
    if not isinstance(raw, str):
        raise _config_error(conn_id, f"{label} must be a string")
    value = raw.strip()
    if not _HEADER_VALUE.fullmatch(value):
        raise _config_error(
            conn_id, f"{label} is blank or contains a line break, space, control or non-ASCII character"
        )
    return value


def _number(
    conn_id: str,
    extra: Mapping[str, Any],
    key: str,
    default: float,
    *,
    minimum: float = 0,
    positive: bool = False,
    integer: bool = False,
) -> float:
    raw = extra.get(key)
    if raw in (None, ""):
        return default
    kind = "a whole number" if integer else "a number of seconds"
    try:
        if isinstance(raw, bool):
            raise TypeError
        value = float(raw)
    except (TypeError, ValueError):
        raise _config_error(conn_id, f"extra {key!r} must be {kind}") from None
    if (
        not math.isfinite(value)
        or value < minimum
        or (positive and value <= 0)
        or (integer and not value.is_integer())
    ):
        bound = "greater than 0" if positive else f"at least {minimum:g}"
        raise _config_error(conn_id, f"extra {key!r} must be {kind}, {bound}")
    return value


def _flag(conn_id: str, extra: Mapping[str, Any], key: str) -> bool:
    raw = extra.get(key, False)
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false", ""):
        return raw.strip().lower() == "true"
    raise _config_error(conn_id, f"extra {key!r} must be true or false")


def _ca_bundle(conn_id: str, extra: Mapping[str, Any]) -> str | None:
    raw = extra.get("ca_bundle")
    if raw in (None, ""):
        return None
    if not isinstance(raw, str) or _HEADER_FORBIDDEN.search(raw):
        raise _config_error(conn_id, "extra 'ca_bundle' must be the path of a CA bundle file")
    return raw


def is_loopback(hostname: str) -> bool:
    """True for names and addresses that never leave this machine."""
    name = hostname.lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _base_url(conn_id: str, host: str | None, port: int | None) -> str:
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        try:
            hostname = urlsplit(f"//{host}").hostname or ""
        except ValueError:
            hostname = ""
        host = f"{'http' if is_loopback(hostname) else 'https'}://{host}"
    try:
        parts = urlsplit(host)
        parsed_port = parts.port
    except ValueError:
        raise _config_error(conn_id, "host is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _config_error(conn_id, "host must be an http(s) URL or a host name, e.g. api.plugzapi.com.br")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise _config_error(
            conn_id, "host must not contain credentials, '?' or '#'; put them in their own fields"
        )
    if (port is not None and not 0 < port < 65536) or parsed_port == 0:
        raise _config_error(conn_id, "port must be between 1 and 65535")
    netloc = parts.netloc
    if port and parsed_port is None:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
