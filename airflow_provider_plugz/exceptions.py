"""Errors raised by the Plugz provider.

Callers branch on classes, never on message text::

    PlugzError (AirflowException)
    ├── PlugzConfigurationError          the Airflow connection is missing a field or has a bad one
    ├── PlugzAuditError                  a fleet audit found numbers without a PIN or with errors
    ├── PlugzMalformedResponseError      2xx answer we cannot trust: not JSON, HTML, no boolean hasCode
    ├── PlugzTransientError              worth trying again later; sensors keep waiting on these
    │   ├── PlugzConnectionError         dropped connection, TLS failure (the request may have left)
    │   │   ├── PlugzConnectError        DNS failure, refused or unreachable (it never left)
    │   │   └── PlugzTimeoutError        read timeout or deadline (the request may have reached the server)
    │   │       └── PlugzConnectTimeoutError  connect timeout (it did not)
    │   ├── PlugzRateLimitedError        429 (carries ``retry_after`` seconds when the server sent it)
    │   └── PlugzServerError             408, 5xx, gateway pages
    └── PlugzAPIError                    the server refused the request; trying again will not help
        ├── PlugzAuthenticationError     401/403, Client-Token missing/wrong, caller IP not allowed
        ├── PlugzNotFoundError           404, unknown instance or instance id/token mismatch
        ├── PlugzSubscriptionError       the instance's subscription or trial has expired
        ├── PlugzRedirectError           3xx: redirects are never followed (the Client-Token stays put)
        └── PlugzBadRequestError         400 and other 4xx
            ├── PlugzMethodNotAllowedError     405
            ├── PlugzUnsupportedMediaTypeError 415
            └── PlugzInstanceNotSupportedError the endpoint works on mobile instances only

Messages never contain the instance token, the Client-Token, a PIN or the request URL:
server texts are redacted before they get here (see :mod:`airflow_provider_plugz._protocol`).
"""

from __future__ import annotations

from airflow_provider_plugz._compat import AirflowException


class PlugzError(AirflowException):
    """Root of every error this provider raises.

    ``http_status`` is the HTTP status when there was an answer; ``server_message`` is the
    server's own ``error``/``message`` text, already redacted; ``attempts`` is how many
    attempts the retry policy made before giving up.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        server_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.server_message = server_message
        self.attempts = 1


class PlugzConfigurationError(PlugzError):
    """The Airflow connection is missing a field or holds an invalid one."""


class PlugzAuditError(PlugzError):
    """``PlugzPinAuditOperator`` was told to fail and found what it was told to fail on."""


class PlugzMalformedResponseError(PlugzError):
    """The server answered success, but the body is not the documented JSON."""


class PlugzTransientError(PlugzError):
    """A failure that may go away by itself: network trouble, throttling, server errors."""


class PlugzConnectionError(PlugzTransientError):
    """No usable answer: DNS failure, connection refused or dropped, TLS failure."""


class PlugzConnectError(PlugzConnectionError):
    """No connection could be made (name resolution, refused, unreachable): the request never left."""


class PlugzTimeoutError(PlugzConnectionError):
    """The read timeout ran out: the server may or may not have carried out the request."""


class PlugzConnectTimeoutError(PlugzTimeoutError):
    """The connect timeout ran out: the request never reached the server."""


class PlugzRateLimitedError(PlugzTransientError):
    """HTTP 429: the server asks us to slow down."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        server_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, http_status=http_status, server_message=server_message)
        self.retry_after = retry_after


class PlugzServerError(PlugzTransientError):
    """HTTP 408 or 5xx, including HTML pages from gateways in front of the API."""


class PlugzAPIError(PlugzError):
    """The server refused the request; repeating it unchanged will not help."""


class PlugzAuthenticationError(PlugzAPIError):
    """Credentials refused: bad or missing Client-Token, or the caller's IP is not allowed."""


class PlugzNotFoundError(PlugzAPIError):
    """Unknown instance (or instance id and token that do not belong together), or unknown path."""


class PlugzSubscriptionError(PlugzAPIError):
    """The instance's subscription or trial has expired; it must be renewed in the Plugz panel."""


class PlugzRedirectError(PlugzAPIError):
    """The server answered with a redirect, which is never followed."""


class PlugzBadRequestError(PlugzAPIError):
    """HTTP 400 (or another 4xx): the request does not match what the API expects."""


class PlugzMethodNotAllowedError(PlugzBadRequestError):
    """HTTP 405: wrong HTTP method for the endpoint (a bug in the caller)."""


class PlugzUnsupportedMediaTypeError(PlugzBadRequestError):
    """HTTP 415: missing or unsupported ``Content-Type``."""


class PlugzInstanceNotSupportedError(PlugzBadRequestError):
    """The security endpoints work on mobile instances only; this one is a web instance."""


__all__ = [
    "PlugzAPIError",
    "PlugzAuditError",
    "PlugzAuthenticationError",
    "PlugzBadRequestError",
    "PlugzConfigurationError",
    "PlugzConnectError",
    "PlugzConnectTimeoutError",
    "PlugzConnectionError",
    "PlugzError",
    "PlugzInstanceNotSupportedError",
    "PlugzMalformedResponseError",
    "PlugzMethodNotAllowedError",
    "PlugzNotFoundError",
    "PlugzRateLimitedError",
    "PlugzRedirectError",
    "PlugzServerError",
    "PlugzSubscriptionError",
    "PlugzTimeoutError",
    "PlugzTransientError",
    "PlugzUnsupportedMediaTypeError",
]
