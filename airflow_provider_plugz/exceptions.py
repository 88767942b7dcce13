"""Errors raised by the Plugz provider.

Callers branch on classes, never on message text::

    PlugzError (AirflowException)
    ├── PlugzConfigurationError          the Airflow connection is missing a field or has a bad one
    │   └── PlugzTriggerArgumentError    a trigger built with bad arguments (also a TypeError)
    ├── PlugzAuditError                  a fleet audit found numbers without a PIN or with errors
    ├── PlugzOutcomeUnknownError         a message (or PIN) may have reached Plugz: not retried by
    │                                    Airflow either (also an ``AirflowFailException``)
    ├── PlugzMalformedResponseError      2xx answer we cannot trust: not JSON, HTML, no boolean hasCode
    ├── PlugzTransientError              worth trying again later; sensors keep waiting on these
    │   ├── PlugzConnectionError         dropped connection, TLS failure (the request may have left)
    │   │   ├── PlugzConnectError        DNS failure, refused or unreachable: it never left
    │   │   ├── PlugzTLSError            the TLS handshake or certificate check failed
    │   │   └── PlugzTimeoutError        a timeout
    │   │       ├── PlugzConnectTimeoutError  while connecting: it never left
    │   │       └── PlugzReadTimeoutError     waiting for the answer, or the attempt's deadline:
    │   │                                     the server may have carried the request out
    │   ├── PlugzRateLimitedError        429 (carries ``retry_after`` seconds when the server sent it)
    │   └── PlugzServerError             408, 5xx, gateway pages
    └── PlugzAPIError                    the server refused the request; trying again will not help
        ├── PlugzAuthenticationError     401/403, Client-Token missing/wrong, caller IP not allowed
        ├── PlugzNotFoundError           404, unknown instance or instance id/token mismatch
        ├── PlugzSubscriptionError       the instance's subscription or trial has expired
        ├── PlugzRedirectError           3xx: redirects are never followed (the Client-Token stays put)
        ├── PlugzRefusedError            a 2xx answer saying success: false (the API's own refusal)
        └── PlugzBadRequestError         400 and other 4xx
            ├── PlugzMethodNotAllowedError     405
            ├── PlugzUnsupportedMediaTypeError 415
            ├── PlugzInstanceNotSupportedError the endpoint works on mobile instances only
            └── PlugzQueueFullError            the sender's message queue is full (1,000 waiting)

The retry rules follow the shape: :data:`NEVER_SENT` are the classes after which a request
provably never left (safe to retry even when it changes state). Each class carries its own
``advice``, the "what to do" sentence every message of that class ends with.

Messages never contain the instance token, the Client-Token, a PIN or the request URL:
server texts are redacted before they get here (see :mod:`airflow_provider_plugz._redaction`).
"""

from __future__ import annotations

from typing import ClassVar

from airflow_provider_plugz._compat import AirflowException, AirflowFailException


class PlugzError(AirflowException):
    """Root of every error this provider raises.

    ``http_status`` is the HTTP status when there was an answer; ``server_message`` is the
    server's own ``error``/``message`` text, already redacted; ``attempts`` is how many
    attempts the retry policy made before giving up.
    """

    #: What to do about it: the sentence every message of this class ends with.
    advice: ClassVar[str] = ""

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

    advice = "Fix it in Admin > Connections, or in the connection's AIRFLOW_CONN_* value or secrets backend."


class PlugzTriggerArgumentError(PlugzConfigurationError, TypeError):
    """A trigger was built with arguments it cannot use.

    Also a ``TypeError``: Airflow's triggerer fails just that trigger on a ``TypeError`` from its
    constructor, while any other exception there would escape its loop and take every other
    trigger down with it. Arguments come from our own ``serialize()``; this guards against kwargs
    stored by another release.
    """

    advice = "Build the trigger through its sensor or with the documented arguments."


class PlugzAuditError(PlugzError):
    """``PlugzPinAuditOperator`` was told to fail and found what it was told to fail on."""


class PlugzMalformedResponseError(PlugzError):
    """The server answered success, but the body is not the documented JSON."""

    advice = (
        "The answer is not the documented Plugz JSON; check that the connection's host is the "
        "Plugz API and not a proxy or login page."
    )


class PlugzTransientError(PlugzError):
    """A failure that may go away by itself: network trouble, throttling, server errors."""


class PlugzConnectionError(PlugzTransientError):
    """No usable answer: the connection dropped, or TLS failed; the request may have left."""

    advice = "Check that the host is reachable from this worker; the error is usually temporary."


class PlugzConnectError(PlugzConnectionError):
    """No connection could be made (name resolution, refused, unreachable): the request never left."""

    advice = (
        "Check the host and that it is reachable from this worker (DNS, firewall); the error is "
        "usually temporary."
    )


class PlugzTLSError(PlugzConnectionError):
    """The TLS handshake or the certificate check failed."""

    advice = "Check the host, or the CA bundle of this worker (extra 'ca_bundle' for a private CA)."


class PlugzTimeoutError(PlugzConnectionError):
    """A timeout: while connecting (connect timeout) or after it."""


class PlugzConnectTimeoutError(PlugzTimeoutError):
    """The connect timeout ran out: the request never reached the server."""

    advice = (
        "The host may be unreachable from this worker or slow to accept connections; try again, "
        "or raise the connection's connect_timeout extra."
    )


class PlugzReadTimeoutError(PlugzTimeoutError):
    """The read timeout or the attempt's deadline ran out: the server may have carried the request out."""

    advice = (
        "The service may be slow or overloaded; try again, or raise the connection's read_timeout "
        "(per read) or total_timeout (whole attempt) extras."
    )


class PlugzRateLimitedError(PlugzTransientError):
    """HTTP 429: the server asks us to slow down."""

    advice = "The server is throttling requests; try again later or poll less often."

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

    advice = "The Plugz service or a gateway in front of it failed; try again later."


class PlugzAPIError(PlugzError):
    """The server refused the request; repeating it unchanged will not help."""


class PlugzAuthenticationError(PlugzAPIError):
    """Credentials refused: bad or missing Client-Token, or the caller's IP is not allowed."""

    advice = (
        "Check the connection's Client-Token (extra 'client_token'): it is the account security "
        "token from the Plugz panel's Security page; if the panel restricts IPs, allow this worker's."
    )


class PlugzNotFoundError(PlugzAPIError):
    """Unknown instance (or instance id and token that do not belong together), or unknown path."""

    advice = (
        "Check the connection's Instance ID (login) and Instance token (password): they must "
        "belong to the same instance, as shown in the Plugz panel; check the host too."
    )


class PlugzSubscriptionError(PlugzAPIError):
    """The instance's subscription or trial has expired; it must be renewed in the Plugz panel."""

    advice = "Renew the instance's subscription in the Plugz panel, then run again."


class PlugzRedirectError(PlugzAPIError):
    """The server answered with a redirect, which is never followed."""

    advice = (
        "Redirects are not followed, so the Client-Token never goes elsewhere; set the "
        "connection's host to the API's final base URL (e.g. https://api.plugzapi.com.br)."
    )


class PlugzRefusedError(PlugzAPIError):
    """The API answered (HTTP 2xx) but refused: ``{"success": false}``, usually with a ``message``.

    The server's reason, redacted, is in the message and in ``server_message``; a reason that
    names a known cause raises that cause's class instead (e.g. :class:`PlugzSubscriptionError`).
    """

    advice = (
        "The Plugz API refused the request and did not carry it out; fix what its reason names "
        "(in the Plugz panel or the connection), then run again. Without a reason, check the "
        "instance in the Plugz panel."
    )


class PlugzBadRequestError(PlugzAPIError):
    """HTTP 400 (or another 4xx): the request does not match what the API expects."""

    advice = (
        "The server says the request does not match the API; check the Instance ID, "
        "Instance token and Client-Token of the connection."
    )


class PlugzMethodNotAllowedError(PlugzBadRequestError):
    """HTTP 405: wrong HTTP method for the endpoint (a bug in the caller)."""

    advice = (
        "The server rejected the HTTP method; this is a bug in the caller or a wrong host. "
        "Reading uses GET, setting uses POST."
    )


class PlugzUnsupportedMediaTypeError(PlugzBadRequestError):
    """HTTP 415: missing or unsupported ``Content-Type``."""

    advice = "The server wants 'Content-Type: application/json'; check that the host is the Plugz API."


class PlugzInstanceNotSupportedError(PlugzBadRequestError):
    """The security endpoints work on mobile instances only; this one is a web instance."""

    advice = (
        "The security endpoints work on mobile instances only; point the connection at a mobile instance."
    )


class PlugzQueueFullError(PlugzBadRequestError):
    """The sending instance's queue is full: 1,000 messages already wait for its phone to reconnect.

    The message was refused, not queued, so sending it again later is safe (and not a duplicate).
    """

    advice = (
        "The sending number's message queue is full because its phone is disconnected: reconnect "
        "it (or empty the queue in the Plugz panel, DELETE .../queue), then send again."
    )


class PlugzOutcomeUnknownError(PlugzError, AirflowFailException):
    """A state-changing request (a message, a PIN) may have reached Plugz, and we cannot tell.

    Also an ``AirflowFailException``: the task fails without an Airflow retry, since a retry
    would send it again (a duplicate message is something a person reads).
    """

    advice = (
        "Check what happened before sending again: the sending number's queue (GET .../queue, or the "
        "Plugz panel) and the recipient's chat for a message, PlugzPinStatusOperator for a PIN. To "
        "send again anyway, run the task with allow_resend=True."
    )


#: Failures after which the request provably never left: the only ones a state-changing call retries.
NEVER_SENT: tuple[type[PlugzError], ...] = (PlugzConnectError, PlugzConnectTimeoutError)


__all__ = [
    "NEVER_SENT",
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
    "PlugzOutcomeUnknownError",
    "PlugzQueueFullError",
    "PlugzRateLimitedError",
    "PlugzReadTimeoutError",
    "PlugzRedirectError",
    "PlugzRefusedError",
    "PlugzServerError",
    "PlugzSubscriptionError",
    "PlugzTLSError",
    "PlugzTimeoutError",
    "PlugzTransientError",
    "PlugzTriggerArgumentError",
    "PlugzUnsupportedMediaTypeError",
]
