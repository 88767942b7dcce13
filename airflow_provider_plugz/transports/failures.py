"""Exception tables: a transport's exception classes -> what went wrong, and the one lookup.

Each transport keeps its own table (:data:`.sync_requests.REQUESTS_FAILURES`,
:func:`.async_httpx.httpx_failures`), most specific class first; tests/hooks check that every
exception class those libraries define has its row.
"""

from __future__ import annotations

import enum
import math
import re
import ssl
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from airflow_provider_plugz._redaction import redact, sanitize
from airflow_provider_plugz.exceptions import (
    PlugzConfigurationError,
    PlugzConnectError,
    PlugzConnectionError,
    PlugzConnectTimeoutError,
    PlugzError,
    PlugzReadTimeoutError,
    PlugzTLSError,
)

if TYPE_CHECKING:
    from airflow_provider_plugz._protocol import PlugzRequest
    from airflow_provider_plugz.connection import PlugzConfig


class TransportFailure(enum.Enum):
    """What went wrong below HTTP; each transport sorts its own exceptions into these.

    ``CONNECT``, ``CONNECT_TIMEOUT`` and ``DEADLINE_CONNECTING`` are the failures after which the
    request provably never left (name resolution, refused or unreachable, connect timeout, the
    attempt's deadline passing before the request was written); ``NETWORK`` may come after the
    request was written (a dropped connection), ``DEADLINE`` certainly does.
    """

    CONNECT = "connect failure"
    CONNECT_TIMEOUT = "connect timeout"
    READ_TIMEOUT = "read timeout"
    DEADLINE = "deadline"
    DEADLINE_CONNECTING = "deadline before sending"
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


# What each failure below HTTP is, in words, and the class it raises; the advice is the class's.
_TRANSPORT_ERRORS: dict[TransportFailure, tuple[type[PlugzError], str]] = {
    TransportFailure.CONNECT: (
        PlugzConnectError,
        "could not connect to {host} ({reason}); the request was not sent",
    ),
    TransportFailure.CONNECT_TIMEOUT: (
        PlugzConnectTimeoutError,
        "timed out while connecting to {host} ({reason})",
    ),
    TransportFailure.READ_TIMEOUT: (
        PlugzReadTimeoutError,
        "timed out while waiting for the answer from {host} ({reason})",
    ),
    TransportFailure.DEADLINE: (
        PlugzReadTimeoutError,
        "did not complete within its {deadline:g} s deadline{elapsed} ({host} was too slow to send the "
        "whole answer)",
    ),
    TransportFailure.DEADLINE_CONNECTING: (
        PlugzConnectTimeoutError,
        "did not connect to {host} within its {deadline:g} s deadline (total_timeout){elapsed}; the "
        "request was not sent",
    ),
    TransportFailure.TLS: (PlugzTLSError, "failed the TLS check with {host} ({reason})"),
    TransportFailure.INVALID_REQUEST: (
        PlugzConfigurationError,
        "could not be sent: the connection's host or Client-Token cannot form a valid request ({reason})",
    ),
    TransportFailure.NETWORK: (PlugzConnectionError, "got no usable answer from {host} ({reason})"),
}


def transport_error(
    config: PlugzConfig,
    request: PlugzRequest,
    failure: TransportFailure,
    exc: BaseException,
    *,
    elapsed: float | None = None,
) -> PlugzError:
    """The one PlugzError for a failure below HTTP, with a text safe to show anywhere.

    Low-level exception texts quote the URL (and so the instance token): only the exception's
    class name and its OS/TLS reason code are kept, and of the URL only the host and port (the
    path may be a proxy's, and below it come the credentials). ``elapsed`` is the attempt's
    wall-clock time so far, which a deadline's message gives (rounded up, to the hundredth).
    """
    found = _OS_REASON.search(str(exc)[:2000])
    # An OS or TLS reason code ("[Errno 111] Connection refused"), never a server's text; redacted
    # all the same, with the request's own values too.
    sent = (*config.secrets, *request.redacted)
    said = redact(sanitize(found.group(0).strip(), 80), sent) if found else ""
    error_class, what = _TRANSPORT_ERRORS[failure]
    happened = what.format(
        host=urlsplit(config.base_url).netloc,
        reason=type(exc).__name__ + (f": {said}" if said else ""),
        deadline=config.total_timeout,
        elapsed="" if elapsed is None else f", stopped after {math.ceil(elapsed * 100) / 100:.2f} s",
    )
    return error_class(
        f"Plugz {request.endpoint.action} for connection {config.conn_id!r} {happened}. {error_class.advice}"
    )


#: ``(exception class, failure kind)`` rows, most specific first.
FailureTable = tuple[tuple[type[BaseException], TransportFailure], ...]


def classify(table: FailureTable, exc: BaseException) -> TransportFailure:
    """The failure kind of ``exc``: its first row in ``table``, looking through requests' wrapper.

    requests wraps urllib3's reason in a ``MaxRetryError`` argument; that reason is the more
    specific fact (a ``NewConnectionError`` means the request never left), so it is matched too.
    An ``ssl`` error anywhere in the cause chain makes it a TLS failure.
    """
    if is_tls_failure(exc):
        return TransportFailure.TLS
    candidates: list[BaseException] = [exc]
    wrapped = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
    reason = getattr(wrapped, "reason", None)
    candidates.extend(c for c in (reason, wrapped) if isinstance(c, BaseException))
    for cls, failure in table:
        if any(isinstance(candidate, cls) for candidate in candidates):
            return failure
    return TransportFailure.NETWORK
