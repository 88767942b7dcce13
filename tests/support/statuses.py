"""The status mapping, written once: an HTTP status and body in, the exact ``PlugzError`` class
and what its message says out (tests/test_protocol.py asserts each row as a pure function, for
every endpoint; the fault tables build their HTTP-status rows from it: tests/support/faults.py's
:func:`~tests.support.faults.status_rows`).

Every row holds for every endpoint: the class follows from the status and the server's words,
never from the call. What differs by call is kept by the tables that run it: a send is never
retried once it may have left, a 405's advice names the call's method (``{method}`` in ``says``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzBadRequestError,
    PlugzError,
    PlugzInstanceNotSupportedError,
    PlugzMethodNotAllowedError,
    PlugzNotFoundError,
    PlugzRateLimitedError,
    PlugzRedirectError,
    PlugzServerError,
    PlugzSubscriptionError,
    PlugzUnsupportedMediaTypeError,
)
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN

#: A Client-Token that is not ours, echoed by the server: redacted all the same.
OTHER_ECHOED_TOKEN = "0THERT0KEN5ECRET0000000000009"
NOT_FOUND_BODY = {"error": "NOT_FOUND", "message": "Unable to find matching target resource method"}
NOT_FOUND_TEXT = "NOT_FOUND: Unable to find matching target resource method"
GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
EXPIRED = "To continue sending a message, you must subscribe to this instance again"
WEB_ONLY = "This feature is only available for mobile instances"


@dataclass(frozen=True)
class StatusRow:
    """One answer and the error it must become.

    ``body``: ``None`` for no body, a dict for JSON, a str for an HTML page. ``says``: fragments
    of the message (``{method}`` is the call's HTTP method); the first is the one the fault
    tables match. ``retried``: a read retries it (until ``max_attempts``); a send never does.
    ``hidden``: values of the body no text may hold. A 3xx carries a ``Location`` holding a token.
    """

    status: int
    body: dict[str, Any] | str | None
    error: type[PlugzError]
    says: tuple[str, ...]
    retried: bool = False
    hidden: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        assert self.says, "a row says what its message holds"
        assert f"HTTP {self.status}" in self.says[0], "the first fragment names the status"


def _row(
    status: int,
    body: dict[str, Any] | str | None,
    error: type[PlugzError],
    *says: str,
    id: str,
    retried: bool = False,
    hidden: tuple[str, ...] = (),
) -> Any:
    return pytest.param(StatusRow(status, body, error, says, retried, hidden), id=id)


STATUS_TABLE = [
    # --- 3xx: never followed ------------------------------------------------------------------
    _row(
        301,
        {"error": f"moved /instances/{INSTANCE_ID}/token/{INSTANCE_TOKEN}/x"},
        PlugzRedirectError,
        "HTTP 301",
        id="301-echoes-the-path",
    ),
    _row(302, None, PlugzRedirectError, "HTTP 302", "Redirects are not followed", id="302"),
    _row(308, None, PlugzRedirectError, "HTTP 308", id="308"),
    # --- 4xx, with the error bodies of plugz-api.md --------------------------------------------
    _row(
        400,
        {"error": "null not allowed"},
        PlugzAuthenticationError,
        "HTTP 400: null not allowed",
        id="400-null-not-allowed",
    ),
    _row(
        400,
        {"error": "your client-token is not configured"},
        PlugzAuthenticationError,
        "HTTP 400: your client-token is not configured",
        id="400-client-token-not-configured",
    ),
    _row(
        400,
        {"error": f"Client-Token {OTHER_ECHOED_TOKEN} not allowed"},
        PlugzAuthenticationError,
        "HTTP 400: Client-Token *** not allowed",
        id="400-echoes-another-token",
        hidden=(OTHER_ECHOED_TOKEN,),
    ),
    _row(
        403,
        {"error": f"Client-Token {CLIENT_TOKEN} not allowed"},
        PlugzAuthenticationError,
        "HTTP 403: Client-Token *** not allowed",
        id="403-echoes-our-client-token",
    ),
    _row(
        403,
        {"error": "203.0.113.9 not allowed"},
        PlugzAuthenticationError,
        "HTTP 403: 203.0.113.9 not allowed",
        id="403-ip-not-allowed",
    ),
    _row(
        400,
        {"error": "Instance not found"},
        PlugzNotFoundError,
        "HTTP 400: Instance not found",
        "Instance ID",
        id="400-instance-not-found",
    ),
    _row(
        400,
        {"error": EXPIRED},
        PlugzSubscriptionError,
        f"HTTP 400: {EXPIRED}",
        "you must subscribe to this instance again. Renew",
        id="400-subscription-expired",
    ),
    _row(
        400,
        {"error": WEB_ONLY},
        PlugzInstanceNotSupportedError,
        f"HTTP 400: {WEB_ONLY}",
        id="400-web-instance",
    ),
    _row(400, {"error": "bad data"}, PlugzBadRequestError, "HTTP 400: bad data", id="400-other-text"),
    _row(401, None, PlugzAuthenticationError, "HTTP 401", id="401-empty"),
    _row(401, {"error": "Unauthorized"}, PlugzAuthenticationError, "HTTP 401: Unauthorized", id="401"),
    _row(403, {"error": "Forbidden"}, PlugzAuthenticationError, "HTTP 403: Forbidden", id="403"),
    _row(404, {"error": "Not Found"}, PlugzNotFoundError, "HTTP 404: Not Found", id="404"),
    _row(
        404,
        {"error": "Instance not found"},
        PlugzNotFoundError,
        "HTTP 404: Instance not found",
        id="404-instance-not-found",
    ),
    _row(405, None, PlugzMethodNotAllowedError, "HTTP 405", "{method}", id="405-empty"),
    _row(
        405,
        {"error": "Method Not Allowed"},
        PlugzMethodNotAllowedError,
        "HTTP 405: Method Not Allowed",
        "{method}",
        id="405",
    ),
    _row(
        405,
        NOT_FOUND_BODY,
        PlugzMethodNotAllowedError,
        f"HTTP 405: {NOT_FOUND_TEXT}",
        "{method}",
        id="405-not-found-body",
    ),
    _row(408, None, PlugzServerError, "HTTP 408", id="408-empty"),
    _row(408, {"error": "Request Timeout"}, PlugzServerError, "HTTP 408: Request Timeout", id="408"),
    _row(415, None, PlugzUnsupportedMediaTypeError, "HTTP 415", id="415-empty"),
    _row(
        415,
        {"error": "Unsupported Media Type"},
        PlugzUnsupportedMediaTypeError,
        "HTTP 415: Unsupported Media Type",
        id="415",
    ),
    _row(
        415,
        {"message": "Unsupported Media Type"},
        PlugzUnsupportedMediaTypeError,
        "HTTP 415: Unsupported Media Type",
        id="415-message-key",
    ),
    _row(418, {"error": "teapot"}, PlugzBadRequestError, "HTTP 418: teapot", id="418-other-4xx"),
    _row(429, None, PlugzRateLimitedError, "HTTP 429", id="429-empty", retried=True),
    _row(
        429,
        {"error": "Too Many Requests"},
        PlugzRateLimitedError,
        "HTTP 429: Too Many Requests",
        id="429",
        retried=True,
    ),
    _row(
        429,
        {"error": "slow down"},
        PlugzRateLimitedError,
        "HTTP 429: slow down",
        id="429-own-text",
        retried=True,
    ),
    # --- 5xx: a read retries what a gateway says, not what the service itself failed at ------
    _row(500, {"error": "internal"}, PlugzServerError, "HTTP 500: internal", id="500"),
    _row(502, GATEWAY_PAGE, PlugzServerError, "HTTP 502", id="502-html", retried=True),
    _row(503, None, PlugzServerError, "HTTP 503", id="503-empty", retried=True),
    _row(
        503,
        {"error": "Service Unavailable"},
        PlugzServerError,
        "HTTP 503: Service Unavailable",
        id="503",
        retried=True,
    ),
    _row(
        504,
        {"error": "Gateway Timeout"},
        PlugzServerError,
        "HTTP 504: Gateway Timeout",
        id="504",
        retried=True,
    ),
    _row(
        504,
        {"message": "upstream timeout"},
        PlugzServerError,
        "HTTP 504: upstream timeout",
        id="504-message-key",
        retried=True,
    ),
    # --- a 200 whose body is an error ---------------------------------------------------------
    _row(200, NOT_FOUND_BODY, PlugzNotFoundError, f"HTTP 200: {NOT_FOUND_TEXT}", id="200-not-found-body"),
    _row(
        200,
        {"error": "null not allowed"},
        PlugzAuthenticationError,
        "HTTP 200: null not allowed",
        id="200-null-not-allowed",
    ),
    _row(
        200,
        {"error": "your client-token is not configured"},
        PlugzAuthenticationError,
        "HTTP 200: your client-token is not configured",
        id="200-client-token-not-configured",
    ),
    _row(200, {"error": "something odd"}, PlugzBadRequestError, "HTTP 200: something odd", id="200-error"),
]
