"""The Plugz wire protocol, free of any transport.

Three concerns live here and only here, so the sync hook (requests) and the async trigger
(httpx) share them and differ only in how bytes travel:

- :func:`build_request` turns a config and an endpoint into a :class:`PlugzRequest`;
- :func:`check_response` maps an answer (status, headers, body) to a JSON object or to the
  right :class:`~airflow_provider_plugz.exceptions.PlugzError`, classifying by body as
  well as status (the API sends some errors with HTTP 200) and redacting secrets the
  server echoes back;
- :func:`parse_pin_status` turns that object into a :class:`PinStatus`.

Transports hand over raw bytes: :class:`BodyReader` decodes ``Content-Encoding`` itself, so the
size limit holds for decoded bytes while they are decoded (a small gzip bomb never inflates).
"""

from __future__ import annotations

import email.utils
import enum
import json
import math
import re
import ssl
import time
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from airflow_provider_plugz import __version__
from airflow_provider_plugz._redaction import Secret, redact, sanitize
from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzBadRequestError,
    PlugzConfigurationError,
    PlugzConnectError,
    PlugzConnectionError,
    PlugzConnectTimeoutError,
    PlugzError,
    PlugzInstanceNotSupportedError,
    PlugzMalformedResponseError,
    PlugzMethodNotAllowedError,
    PlugzNotFoundError,
    PlugzRateLimitedError,
    PlugzRedirectError,
    PlugzServerError,
    PlugzSubscriptionError,
    PlugzTimeoutError,
    PlugzUnsupportedMediaTypeError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_plugz.connection import PlugzConfig

USER_AGENT = f"airflow-provider-plugz/{__version__}"
MAX_BODY_BYTES = 1024 * 1024
#: Bodies are asked for unencoded; a server that encodes anyway gets one layer of these, decoded here.
ACCEPT_ENCODING = "identity"


@dataclass(frozen=True)
class Endpoint:
    """One API call: HTTP method, path below the instance, and what it does in words.

    ``idempotent`` calls may be repeated after a read timeout; others may not (the server
    may have applied them before the answer was lost).
    """

    method: str
    path: str
    action: str
    idempotent: bool = True


PIN_STATUS = Endpoint("GET", "security/two-fa-code", "PIN status check")
# Not idempotent for retries: after a read timeout the server may have registered the PIN.
SET_PIN = Endpoint("POST", "security/two-fa-code", "PIN registration", idempotent=False)
_PIN = re.compile(r"[0-9]{6}")


@dataclass(frozen=True)
class PinStatus:
    """Whether the WhatsApp account behind an instance has a two-step-verification PIN."""

    has_code: bool


@dataclass(frozen=True)
class PlugzRequest:
    """A request ready for any transport. ``url``, ``headers`` and ``body`` carry secrets: no repr.

    ``secrets`` are the values of this request beyond the connection's (e.g. the PIN being set),
    redacted from whatever the server answers.
    """

    endpoint: Endpoint
    url: str = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)
    body: bytes | None = field(default=None, repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def method(self) -> str:
        return self.endpoint.method


def build_request(
    config: PlugzConfig, endpoint: Endpoint, json_body: Any = None, *, secrets: tuple[str, ...] = ()
) -> PlugzRequest:
    """Build the URL (credentials percent-encoded into the path) and headers for ``endpoint``."""
    url = (
        f"{config.base_url}/instances/{quote(config.instance_id, safe='')}"
        f"/token/{quote(config.instance_token, safe='')}/{endpoint.path}"
    )
    headers = {
        "Client-Token": config.client_token,
        "Accept": "application/json",
        "Accept-Encoding": ACCEPT_ENCODING,
        "User-Agent": USER_AGENT,
    }
    body = None
    if json_body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(json_body, separators=(",", ":"), default=_reveal).encode()
    return PlugzRequest(endpoint=endpoint, url=url, headers=headers, body=body, secrets=secrets)


def _reveal(value: object) -> str:
    if isinstance(value, Secret):
        return value.reveal()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# --- reading bodies ------------------------------------------------------------------------


class BodyReader:
    """Collects an answer's body from the raw bytes a transport reads, decoding as it goes.

    At most one ``Content-Encoding`` of ``gzip``/``deflate`` is decoded, and never more than
    :data:`MAX_BODY_BYTES` + 1 decoded bytes are produced, whatever the ratio: :meth:`feed`
    returns False once that many are held, and the transport stops reading. Stacked or unknown
    encodings and corrupt data leave :attr:`problem` set; the body is then empty.
    """

    def __init__(self, content_encoding: str | None) -> None:
        self.problem: str | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._decoder: Any = None
        self._deflate = False
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1:
            self.problem = "it has stacked Content-Encodings, which are refused"
        elif codings and codings[0] in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif codings and codings[0] == "deflate":
            self._decoder, self._deflate = zlib.decompressobj(), True
        elif codings:
            self.problem = "it has an unsupported Content-Encoding"

    @property
    def body(self) -> bytes:
        return b"" if self.problem else b"".join(self._chunks)

    def feed(self, data: bytes) -> bool:
        """Take raw bytes; False means stop reading (over the limit, or unreadable)."""
        if self.problem is not None:
            return False
        if self._decoder is None:
            self._keep(data)
        else:
            try:
                self._inflate(data)
            except zlib.error:
                if not (self._deflate and not self._size):
                    self.problem = "its encoded body is corrupt"
                    return False
                # "deflate" without the zlib wrapper, as some servers send it.
                self._decoder, self._deflate = zlib.decompressobj(-zlib.MAX_WBITS), False
                return self.feed(data)
        return self._size <= MAX_BODY_BYTES

    def _inflate(self, data: bytes) -> None:
        while data and self._size <= MAX_BODY_BYTES and not self._decoder.eof:
            self._keep(self._decoder.decompress(data, MAX_BODY_BYTES + 1 - self._size))
            data = self._decoder.unconsumed_tail

    def _keep(self, data: bytes) -> None:
        room = MAX_BODY_BYTES + 1 - self._size
        if data and room > 0:
            self._chunks.append(data[:room])
            self._size += min(len(data), room)


# --- response checking ---------------------------------------------------------------------

_ADVICE: dict[type[PlugzError], str] = {
    PlugzAuthenticationError: (
        "Check the connection's Client-Token (extra 'client_token'): it is the account security "
        "token from the Plugz panel's Security page; if the panel restricts IPs, allow this worker's."
    ),
    PlugzNotFoundError: (
        "Check the connection's Instance ID (login) and Instance token (password): they must "
        "belong to the same instance, as shown in the Plugz panel; check the host too."
    ),
    PlugzSubscriptionError: "Renew the instance's subscription in the Plugz panel, then run again.",
    PlugzInstanceNotSupportedError: (
        "The security endpoints work on mobile instances only; point the connection at a mobile instance."
    ),
    PlugzMethodNotAllowedError: (
        "The server rejected the HTTP method; this is a bug in the caller or a wrong host. "
        "Reading uses GET, setting uses POST."
    ),
    PlugzUnsupportedMediaTypeError: (
        "The server wants 'Content-Type: application/json'; check that the host is the Plugz API."
    ),
    PlugzBadRequestError: (
        "The server says the request does not match the API; check the Instance ID, "
        "Instance token and Client-Token of the connection."
    ),
    PlugzRedirectError: (
        "Redirects are not followed, so the Client-Token never goes elsewhere; set the "
        "connection's host to the API's final base URL (e.g. https://api.plugzapi.com.br)."
    ),
    PlugzRateLimitedError: "The server is throttling requests; try again later or poll less often.",
    PlugzServerError: "The Plugz service or a gateway in front of it failed; try again later.",
    PlugzMalformedResponseError: (
        "The answer is not the documented Plugz JSON; check that the connection's host is the "
        "Plugz API and not a proxy or login page."
    ),
}

_STATUS_CLASSES: dict[int, type[PlugzError]] = {
    401: PlugzAuthenticationError,
    403: PlugzAuthenticationError,
    404: PlugzNotFoundError,
    405: PlugzMethodNotAllowedError,
    408: PlugzServerError,
    415: PlugzUnsupportedMediaTypeError,
    429: PlugzRateLimitedError,
}

# Server texts seen from the Z-API backend (plugz-api.md, "Error bodies"), most specific first.
_TEXT_CLASSES: tuple[tuple[re.Pattern[str], type[PlugzError]], ...] = (
    (re.compile(r"subscribe", re.I), PlugzSubscriptionError),
    (re.compile(r"instance not found", re.I), PlugzNotFoundError),
    (re.compile(r"mobile", re.I), PlugzInstanceNotSupportedError),
    (re.compile(r"client[-_ ]?token|not allowed", re.I), PlugzAuthenticationError),
    (re.compile(r"matching target resource|NOT_FOUND", re.I), PlugzNotFoundError),
)


def check_response(
    config: PlugzConfig,
    endpoint: Endpoint,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: tuple[str, ...] = (),
    body_problem: str | None = None,
) -> dict[str, Any]:
    """Return the JSON object of a successful answer, or raise the matching ``PlugzError``.

    ``headers`` must be case-insensitive (both requests and httpx give such mappings).
    Transports stop reading just past :data:`MAX_BODY_BYTES`; a longer body is refused.
    ``secrets`` are redacted from server texts besides the connection's own;
    ``body_problem`` is a :class:`BodyReader`'s, when the body could not be decoded.
    """
    payload = None if body_problem else _json_object(body[: MAX_BODY_BYTES + 1])
    server_message = _server_message(payload, (*config.secrets, *secrets))

    error_class: type[PlugzError] | None = None
    if 300 <= status < 400:
        error_class = PlugzRedirectError
    elif status >= 400:
        error_class = _classify_error_status(status, server_message)
    elif payload is not None and payload.get("error") not in (None, False, ""):
        # Some errors come with HTTP 200: a body with an ``error`` key is never a success.
        error_class = _classify_text(server_message) or PlugzBadRequestError

    if error_class is not None:
        raise _api_error(config, endpoint, error_class, status, server_message, headers)
    if not 200 <= status < 300:
        raise _api_error(config, endpoint, PlugzMalformedResponseError, status, server_message, headers)

    problem = body_problem or _body_problem(body, payload, headers)
    if problem is not None:
        raise _malformed(config, endpoint, status, problem)
    assert payload is not None
    return payload


def _body_problem(body: bytes, payload: dict[str, Any] | None, headers: Mapping[str, str]) -> str | None:
    if len(body) > MAX_BODY_BYTES:
        return f"the body is larger than {MAX_BODY_BYTES} bytes"
    if payload is None:
        return _describe_non_object(body, headers)
    if "success" in payload and payload["success"] is not True:
        return f"its 'success' is {_json_kind(payload['success'])}, not true, and it has no error text"
    return None


def validate_pin(config: PlugzConfig, code: object) -> str:
    """A WhatsApp two-step-verification PIN is exactly six digits; never echo what was given."""
    if not isinstance(code, str) or not _PIN.fullmatch(code):
        raise PlugzConfigurationError(
            f"Plugz PIN registration for connection {config.conn_id!r}: the PIN must be exactly six "
            "digits (0-9), as WhatsApp's two-step verification requires; check the secret it comes from."
        )
    return code


def check_set_pin(config: PlugzConfig, payload: Mapping[str, Any]) -> None:
    """Only an explicit ``success: true`` means the PIN was registered."""
    if payload.get("success") is not True:
        raise _malformed(config, SET_PIN, 200, "it does not say success: true")


def parse_pin_status(config: PlugzConfig, payload: Mapping[str, Any]) -> PinStatus:
    """Read ``hasCode``; anything but a real JSON boolean is a malformed answer."""
    has_code = payload.get("hasCode")
    if not isinstance(has_code, bool):
        problem = "it has no 'hasCode' field" if "hasCode" not in payload else "'hasCode' is not a boolean"
        raise _malformed(config, PIN_STATUS, 200, problem)
    return PinStatus(has_code=has_code)


def _classify_error_status(status: int, server_message: str | None) -> type[PlugzError]:
    if status >= 500:
        return PlugzServerError
    if status in (405, 408, 415, 429):
        return _STATUS_CLASSES[status]
    by_text = _classify_text(server_message)
    by_status = _STATUS_CLASSES.get(status)  # 401, 403, 404 or None
    if by_status is None:
        return by_text or PlugzBadRequestError
    # The status says "credentials" or "not found"; a more specific text still wins.
    if by_text in (PlugzSubscriptionError, PlugzInstanceNotSupportedError):
        return by_text
    return by_status


def _classify_text(server_message: str | None) -> type[PlugzError] | None:
    if not server_message:
        return None
    for pattern, error_class in _TEXT_CLASSES:
        if pattern.search(server_message):
            return error_class
    return None


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _server_message(payload: Mapping[str, Any] | None, secrets: tuple[str, ...]) -> str | None:
    """The server's own ``error``/``message`` text: one sanitised, bounded line, then redacted."""
    if payload is None:
        return None
    parts = [_text(payload[key]) for key in ("error", "message") if payload.get(key) not in (None, "", False)]
    if not parts:
        return None
    return redact(sanitize(": ".join(dict.fromkeys(parts))), secrets)


def _text(value: Any) -> str:
    # Bounded before str(): a huge number or deep structure must not cost a conversion of it all.
    if isinstance(value, str):
        return value[:1000]
    if isinstance(value, (bool, float)) or (isinstance(value, int) and abs(value) < 10**300):
        return json.dumps(value)
    return f"(a JSON {_json_kind(value)})"


def _json_kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return {str: "string", int: "number", float: "number", list: "array", dict: "object"}.get(
        type(value), "value"
    )


def _describe_non_object(body: bytes, headers: Mapping[str, str]) -> str:
    if not body.strip():
        return "the body is empty"
    content_type = headers.get("Content-Type", "") or ""
    if "html" in content_type.lower() or body.lstrip()[:1] == b"<":
        return "it is an HTML page, not JSON"
    if _is_json(body):
        return "the JSON is not an object"
    return "the body is not valid JSON"


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


def _malformed(config: PlugzConfig, endpoint: Endpoint, status: int, problem: str) -> PlugzError:
    return PlugzMalformedResponseError(
        f"Plugz {endpoint.action} for connection {config.conn_id!r}: HTTP {status} answer "
        f"is malformed: {problem}. {_ADVICE[PlugzMalformedResponseError]}",
        http_status=status,
    )


def _api_error(
    config: PlugzConfig,
    endpoint: Endpoint,
    error_class: type[PlugzError],
    status: int,
    server_message: str | None,
    headers: Mapping[str, str],
) -> PlugzError:
    said = f": {server_message}" if server_message else ""
    message = (
        f"Plugz {endpoint.action} failed for connection {config.conn_id!r}: HTTP {status}{said}. "
        f"{_ADVICE[error_class]}"
    )
    if error_class is PlugzRateLimitedError:
        return PlugzRateLimitedError(
            message,
            http_status=status,
            server_message=server_message,
            retry_after=parse_retry_after(headers.get("Retry-After")),
        )
    return error_class(message, http_status=status, server_message=server_message)


_DELTA_SECONDS = re.compile(r"[0-9]+")
# Longer delta-seconds are all "far too long" (and int() refuses texts over 4,300 digits).
_MAX_DELTA_DIGITS = 12


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None.

    Whatever a server sends, this returns a finite number >= 0, ``inf`` (a wait too long to
    express), or None (no usable value); it never raises.
    """
    if not value or not isinstance(value, str):
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):  # ASCII digits only: "²".isdigit() is True
        return float(value) if len(value) <= _MAX_DELTA_DIGITS else math.inf
    if len(value) > 64 or not value.isascii():  # an HTTP date is 29 ASCII characters
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            return None
        delay = when.timestamp() - (time.time() if now is None else now)
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None
    return max(0.0, delay) if math.isfinite(delay) else None


# --- transport failures --------------------------------------------------------------------


class TransportFailure(enum.Enum):
    """What went wrong below HTTP; each transport sorts its own exceptions into these.

    ``CONNECT`` and ``CONNECT_TIMEOUT`` are the failures after which the request provably never
    left (name resolution, refused or unreachable, connect timeout); ``NETWORK`` may come after
    the request was written (a dropped connection), ``DEADLINE`` certainly does.
    """

    CONNECT = "connect failure"
    CONNECT_TIMEOUT = "connect timeout"
    READ_TIMEOUT = "read timeout"
    DEADLINE = "deadline"
    TLS = "TLS failure"
    INVALID_REQUEST = "invalid request"
    NETWORK = "network failure"


def is_tls_failure(exc: BaseException) -> bool:
    """True when ``exc`` or anything in its cause/context chain is an ``ssl`` error (not by text)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (ssl.SSLError, ssl.CertificateError)):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


_OS_REASON = re.compile(r"\[Errno -?\d+\][^'\")\]]*|\[SSL: [A-Z_]+\]")


def transport_error(
    config: PlugzConfig, request: PlugzRequest, failure: TransportFailure, exc: BaseException
) -> PlugzError:
    """The one PlugzError for a failure below HTTP, with a text safe to show anywhere.

    Low-level exception texts quote the URL (and so the instance token): only the exception's
    class name and its OS/TLS reason code are kept.
    """
    found = _OS_REASON.search(str(exc)[:2000])
    said = redact(sanitize(found.group(0).strip(), 80), config.secrets) if found else ""
    reason = type(exc).__name__ + (f": {said}" if said else "")
    where = f"Plugz {request.endpoint.action} for connection {config.conn_id!r}"
    # The host and port only: the path may be a proxy's, and below it come the credentials.
    host = urlsplit(config.base_url).netloc
    if failure is TransportFailure.DEADLINE:
        return PlugzTimeoutError(
            f"{where} did not complete within its {config.total_timeout:g} s deadline ({host} was "
            "too slow to send the whole answer). The service may be overloaded; try again, or raise "
            "the connection's total_timeout extra."
        )
    if failure is TransportFailure.CONNECT:
        return PlugzConnectError(
            f"{where} could not connect to {host} ({reason}); the request was not sent. Check the "
            "host and that it is reachable from this worker (DNS, firewall); the error is usually "
            "temporary."
        )
    if failure in (TransportFailure.CONNECT_TIMEOUT, TransportFailure.READ_TIMEOUT):
        connecting = failure is TransportFailure.CONNECT_TIMEOUT
        error_class = PlugzConnectTimeoutError if connecting else PlugzTimeoutError
        doing = f"connecting to {host}" if connecting else f"waiting for the answer from {host}"
        return error_class(
            f"{where} timed out while {doing} ({reason}). The service may be slow or unreachable; "
            "try again, or raise the connection's connect_timeout/read_timeout extras."
        )
    if failure is TransportFailure.TLS:
        return PlugzConnectionError(
            f"{where} failed the TLS check with {host} ({reason}). Check the host, or the CA bundle "
            "of this worker."
        )
    if failure is TransportFailure.INVALID_REQUEST:
        return PlugzConfigurationError(
            f"{where}: the connection's host or Client-Token cannot form a valid request ({reason})."
        )
    return PlugzConnectionError(
        f"{where} got no usable answer from {host} ({reason}). Check that the host is reachable "
        "from this worker; the error is usually temporary."
    )
