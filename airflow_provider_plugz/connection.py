"""The ``plugz`` Airflow connection: one pure function from connection to a frozen config.

Mapping (UI form, ``AIRFLOW_CONN_*`` JSON and URI alike)::

    conn_type  -> must be "plugz" when parse_connection(..., require_conn_type=True)
    login      -> instance id                 (URL path; sensitive; [A-Za-z0-9._~-] only)
    password   -> instance token              (URL path; secret; [A-Za-z0-9._~-] only)
    extra      -> client_token                (Client-Token header; secret; the UI's
                  extra__plugz__client_token form is accepted too)
    host       -> base URL, default https://api.plugzapi.com.br; a bare host name means
                  https, except loopback hosts (the sandbox), which mean http
    port       -> appended to a bare host (a port in the host URL wins)
    extra      -> connect_timeout, read_timeout (seconds, at most one day)
    extra      -> total_timeout (seconds, at most one day: the wall-clock deadline of one
                  HTTP attempt, send to last byte; default connect_timeout + read_timeout)
    extra      -> max_attempts (at most 100), retry_backoff, retry_backoff_max, retry_budget
                  (seconds, at most one day): the retry policy
    extra      -> ca_bundle (path of a CA bundle for TLS verification; verification is always on)
    extra      -> allow_insecure_http (plain http:// is refused unless the host is loopback or this is true)

The host is validated positively, piece by piece, so that what we accept is exactly what
requests (urllib3) and httpx will connect to: an LDH host name (dot-separated labels of
1-63 letters, digits and hyphens), a dotted-quad IPv4 address or a bracketed IPv6 address
without zone id; a port of digits only; a path of RFC 3986 path characters and well-formed
``%XX`` escapes. Anything else (backslashes, whitespace, '@', non-ASCII, empty labels, ...)
is refused: parsers disagree on such input, and the tokens would go where the disagreeing
parser points.

Parsing does no I/O and copies, never mutates, ``extra_dejson``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol
from urllib.parse import unquote

from airflow_provider_plugz.exceptions import PlugzConfigurationError
from airflow_provider_plugz.retry import RetryPolicy

DEFAULT_CONN_ID = "plugz_default"
_DISTINCTIVE_ID = 8
CONN_TYPE = "plugz"
DEFAULT_BASE_URL = "https://api.plugzapi.com.br"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_TOTAL_TIMEOUT = DEFAULT_CONNECT_TIMEOUT + DEFAULT_READ_TIMEOUT
# Ceilings of the number extras: beyond them a value is a typo, and huge ones overflow
# the transports (requests raises OverflowError for a read timeout of 1e20).
MAX_SECONDS = 86400.0
MAX_ATTEMPTS = 100

# RFC 3986 "unreserved": the only characters that mean the same in every URL path, raw.
_PATH_CREDENTIAL = re.compile(r"[A-Za-z0-9._~-]+")
_HEADER_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
# A header value must be plain printable ASCII (requests and httpx encode headers as latin-1).
_HEADER_VALUE = re.compile(r"[\x21-\x7e]+")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_AUTHORITY_PATH_REST = re.compile(r"([^/?#]*)([^?#]*)(.*)", re.DOTALL)
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A last label like these makes the name an IPv4 address to inet_aton and WHATWG parsers.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_BRACKETED = re.compile(r"\[([0-9a-f:.]+)\](?::(.*))?", re.DOTALL)
_PORT = re.compile(r"[0-9]{1,5}")
# A path segment: RFC 3986 pchar (unreserved, %XX, sub-delims, ':' and '@').
_SEGMENT = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})+")
_ASCII_WHITESPACE = " \t\r\n\f\v"

_HOST_NAME_ADVICE = (
    "use dot-separated labels of 1-63 letters, digits and hyphens (e.g. api.plugzapi.com.br), "
    "an IPv4 address or a bracketed IPv6 address such as [::1]"
)


class ConnectionLike(Protocol):
    """What we read from an Airflow ``Connection`` (SDK or models flavour)."""

    @property
    def conn_id(self) -> str | None: ...
    @property
    def conn_type(self) -> str | None: ...
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
    # The wall-clock deadline of one HTTP attempt, from sending to the last byte read.
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a message, log line or repr.

        The instance id only when it is long enough to be distinctive (real ones have 32
        characters): redacting a short id would also redact every word that contains it.
        """
        distinctive = len(self.instance_id) >= _DISTINCTIVE_ID
        return (self.instance_token, self.client_token, *((self.instance_id,) if distinctive else ()))


class BaseURL(NamedTuple):
    """The validated pieces of a base URL: what every transport will connect to."""

    scheme: str
    host: str  # lower case; an IPv6 address keeps its brackets
    port: int | None  # as written; None means the scheme's default
    path: str  # "" or "/seg/..." without a trailing slash

    @property
    def effective_port(self) -> int:
        """The TCP port connected to."""
        return self.port if self.port is not None else _DEFAULT_PORTS[self.scheme]

    @property
    def url(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}{self.path}"


def parse_connection(conn: ConnectionLike, *, require_conn_type: bool = False) -> PlugzConfig:
    """Validate an Airflow connection and turn it into a :class:`PlugzConfig`.

    :param require_conn_type: refuse a connection whose type is not ``plugz``, so that the
        password of, say, an ``http`` or ``postgres`` connection is never sent to Plugz.
    :raises PlugzConfigurationError: naming the field at fault, never its value.
    """
    conn_id = conn.conn_id or DEFAULT_CONN_ID
    if require_conn_type:
        _check_conn_type(conn_id, getattr(conn, "conn_type", None))
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
    base = parse_base_url(conn.host, conn.port, conn_id=conn_id)
    insecure_allowed = _flag(conn_id, extra, "allow_insecure_http")
    if base.scheme == "http" and not insecure_allowed and not is_loopback(base.host.strip("[]")):
        raise _config_error(
            conn_id,
            "host uses plain http://, which would send the tokens unencrypted; use https:// "
            "(or set extra allow_insecure_http to true for a trusted internal proxy)",
        )
    defaults = RetryPolicy()
    retry = RetryPolicy(
        max_attempts=int(
            _number(
                conn_id,
                extra,
                "max_attempts",
                defaults.max_attempts,
                minimum=1,
                maximum=MAX_ATTEMPTS,
                integer=True,
            )
        ),
        backoff=_number(conn_id, extra, "retry_backoff", defaults.backoff),
        backoff_max=_number(conn_id, extra, "retry_backoff_max", defaults.backoff_max),
        budget=_number(conn_id, extra, "retry_budget", defaults.budget),
    )
    connect_timeout = _number(conn_id, extra, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, positive=True)
    read_timeout = _number(conn_id, extra, "read_timeout", DEFAULT_READ_TIMEOUT, positive=True)
    total_timeout = _number(
        conn_id, extra, "total_timeout", min(connect_timeout + read_timeout, MAX_SECONDS), positive=True
    )
    return PlugzConfig(
        conn_id=conn_id,
        base_url=base.url,
        instance_id=instance_id,
        instance_token=instance_token,
        client_token=client_token,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retry=retry,
        ca_bundle=_ca_bundle(conn_id, extra),
        total_timeout=total_timeout,
    )


def _config_error(conn_id: str, problem: str) -> PlugzConfigurationError:
    return PlugzConfigurationError(
        f"Plugz connection {conn_id!r}: {problem} (Admin > Connections, or the AIRFLOW_CONN_* value)."
    )


def _check_conn_type(conn_id: str, conn_type: Any) -> None:
    if conn_type == CONN_TYPE:
        return
    shown = repr(conn_type)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    raise PlugzConfigurationError(
        f"Plugz connection {conn_id!r} has type {shown}, not {CONN_TYPE!r}; its credentials are "
        "not meant for the Plugz API and are not sent there. Use a connection of type Plugz "
        "(Admin > Connections, or the AIRFLOW_CONN_* value)."
    )


def _path_credential(conn_id: str, label: str, value: object) -> str:
    if value is not None and not isinstance(value, str):
        raise _config_error(conn_id, f"{label} must be a string")
    value = (value or "").strip()
    if not value:
        raise _config_error(conn_id, f"{label} is empty; copy it from the instance page of the Plugz panel")
    if not _PATH_CREDENTIAL.fullmatch(value):
        raise _config_error(
            conn_id,
            f"{label} contains a character other than ASCII letters, digits, '-', '.', '_' and '~' "
            "(e.g. whitespace, '/', '?', '#', '%', '\\', a control, zero-width or other non-ASCII "
            "character); paste the value exactly as the Plugz panel shows it",
        )
    if not value.strip("."):
        raise _config_error(
            conn_id,
            f"{label} is made only of dots, which would change the URL path; "
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
    maximum: float = MAX_SECONDS,
    positive: bool = False,
    integer: bool = False,
) -> float:
    raw = extra.get(key)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return default
    kind = "a whole number" if integer else "a number of seconds"
    try:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise TypeError
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise _config_error(conn_id, f"extra {key!r} must be {kind}") from None
    if (
        not math.isfinite(value)
        or value < minimum
        or value > maximum
        or (positive and value <= 0)
        or (integer and not value.is_integer())
    ):
        lower = "greater than 0" if positive else f"at least {minimum:g}"
        upper = f"at most {maximum:g}" + ("" if integer else " (one day)")
        raise _config_error(conn_id, f"extra {key!r} must be {kind}, {lower} and {upper}")
    return value + 0.0  # -0.0 becomes 0.0


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


def parse_base_url(host: object, port: object = None, *, conn_id: str = DEFAULT_CONN_ID) -> BaseURL:
    """The connection's host (and port) field as validated :class:`BaseURL` pieces.

    Accepted: empty (the default API), a bare host (``api.example``, ``api.example:8443``,
    ``[::1]:8080``) or an ``http(s)://`` URL with optional port and path. Nothing is
    resolved or contacted.

    :raises PlugzConfigurationError: saying what to fix, without quoting the host.
    """
    if host is not None and not isinstance(host, str):
        raise _config_error(conn_id, "host must be a string, e.g. api.plugzapi.com.br")
    text = (host or "").strip(_ASCII_WHITESPACE)
    if not text:
        return _split_url(conn_id, DEFAULT_BASE_URL, None)
    if not text.isascii():
        raise _config_error(
            conn_id,
            "host is not a valid host name: it contains non-ASCII characters; write an international "
            "domain name in its punycode form (xn--...) and percent-encode (%XX) other characters "
            "of the path",
        )
    if not text.isprintable() or any(char in _ASCII_WHITESPACE for char in text):
        raise _config_error(
            conn_id,
            "host is not a valid host name: it contains whitespace or a control character; "
            "enter just the URL or host name, e.g. https://api.plugzapi.com.br",
        )
    field_port = _port_field(conn_id, port)
    if "://" in text:
        return _split_url(conn_id, text, field_port)
    # A bare host: https, except loopback (the sandbox), which means http.
    base = _split_url(conn_id, f"//{text}", field_port)
    return base._replace(scheme="http") if is_loopback(base.host.strip("[]")) else base


def _port_field(conn_id: str, port: object) -> int | None:
    if port is None:
        return None
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        raise _config_error(conn_id, "port must be a whole number between 1 and 65535")
    if isinstance(port, str):
        if not port.strip():
            return None
        if not _PORT.fullmatch(port.strip()):
            raise _config_error(conn_id, "port must be a whole number between 1 and 65535")
        port = int(port)
    if not 0 < port < 65536:
        raise _config_error(conn_id, "port must be between 1 and 65535")
    return port


def _split_url(conn_id: str, text: str, field_port: int | None) -> BaseURL:
    """Split printable ASCII ``scheme://authority/path`` (or ``//authority/path``) and check each piece."""
    scheme_match = _SCHEME.match(text)
    if scheme_match:
        scheme, rest = scheme_match.group(1).lower(), text[scheme_match.end() :]
    elif text.startswith("//"):
        scheme, rest = "https", text[2:]
    else:
        scheme, rest = "", ""
    if scheme not in _DEFAULT_PORTS:
        raise _config_error(conn_id, "host must be an http(s) URL or a host name, e.g. api.plugzapi.com.br")
    pieces = _AUTHORITY_PATH_REST.fullmatch(rest)
    assert pieces is not None  # the pattern matches any string
    authority, path, query_or_fragment = pieces.groups()
    if query_or_fragment or "@" in authority:
        raise _config_error(
            conn_id, "host must not contain credentials, '?' or '#'; put them in their own fields"
        )
    hostname, url_port = _authority(conn_id, authority)
    return BaseURL(
        scheme=scheme,
        host=hostname,
        port=url_port if url_port is not None else field_port,
        path=_path(conn_id, path),
    )


def _authority(conn_id: str, authority: str) -> tuple[str, int | None]:
    """``host[:port]`` -> (lower-case host, port or None)."""
    authority = authority.lower()
    bracketed = _BRACKETED.fullmatch(authority)
    if bracketed:
        address, port_text = bracketed.group(1), bracketed.group(2)
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise _config_error(
                conn_id,
                "host is not a valid host name: an IPv6 address must be written in brackets, without "
                "a zone id, e.g. https://[2001:db8::1]:8443",
            ) from None
        hostname = f"[{address}]"
    else:
        if "[" in authority or "]" in authority or authority.count(":") > 1:
            raise _config_error(
                conn_id,
                "host is not a valid host name: an IPv6 address must be written in brackets, without "
                "a zone id, e.g. https://[2001:db8::1]:8443; " + _HOST_NAME_ADVICE,
            )
        hostname, colon, port_text = authority.partition(":")
        if not colon:
            port_text = None
        if not _is_host_name(hostname):
            raise _config_error(conn_id, f"host is not a valid host name: {_HOST_NAME_ADVICE}")
    if port_text is None:
        return hostname, None
    if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        raise _config_error(
            conn_id, "host is not a valid URL: the port after ':' must be digits only, from 1 to 65535"
        )
    return hostname, int(port_text)


def _is_host_name(name: str) -> bool:
    """An LDH host name (lower case), or a dotted-quad IPv4 address."""
    if not 0 < len(name) <= 253:
        return False
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return False
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # "127.1", "0x7f000001" or "1.2.3.04" would be read as (other) IPv4 addresses.
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            return False
    return True


def _path(conn_id: str, path: str) -> str:
    """A base path: ``/`` separated RFC 3986 segments, none empty, '.' or '..' (even as %2E)."""
    path = path.rstrip("/")
    if not path:
        return ""
    segments = path.split("/")[1:]
    if not all(_SEGMENT.fullmatch(segment) and unquote(segment).strip(".") for segment in segments):
        raise _config_error(
            conn_id,
            "host is not a valid URL: its path may contain only letters, digits, "
            "-._~!$&'()*+,;=:@ and %XX escapes, in segments that are not empty, '.' or '..'",
        )
    return path
