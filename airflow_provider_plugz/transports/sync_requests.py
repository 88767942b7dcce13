"""The task-side transport: a ``requests`` session and one attempt over it.

:func:`new_session` builds the session a hook keeps (our transport rules: no redirects, no
proxies or .netrc from the environment, no cookies, TLS always verified, every attempt within
its deadline - see :mod:`.requests_deadline`); :func:`send` makes one attempt and returns the
raw answer, or raises the :class:`~airflow_provider_plugz.exceptions.PlugzError` its failure
is, sorted by :data:`REQUESTS_FAILURES`.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import time
from typing import TYPE_CHECKING

import requests
import urllib3

from airflow_provider_plugz._client_logs import redact_client_logs
from airflow_provider_plugz.transports.body import BodyReader
from airflow_provider_plugz.transports.failures import (
    FailureTable,
    TransportFailure,
    classify,
    transport_error,
)
from airflow_provider_plugz.transports.requests_deadline import DeadlineAdapter, watch_attempt
from airflow_provider_plugz.transports.tls import requests_verify

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_provider_plugz._protocol import PlugzRequest, TransportAnswer
    from airflow_provider_plugz.connection import PlugzConfig
    from airflow_provider_plugz.exceptions import PlugzError

_CHUNK = 64 * 1024
F = TransportFailure

#: requests (and urllib3 and http.client under it, whose errors escape unwrapped while we read
#: the raw body): exception class -> failure kind, most specific first. TLS is recognised by
#: type here and by the cause chain in :func:`~.failures.classify`. tests/hooks check that every
#: exception class these libraries define has its row.
REQUESTS_FAILURES: FailureTable = (
    # urllib3 2 derives NewConnectionError (refused, unreachable, DNS) from ConnectTimeoutError.
    (urllib3.exceptions.NewConnectionError, F.CONNECT),
    (requests.ConnectTimeout, F.CONNECT_TIMEOUT),
    (urllib3.exceptions.ConnectTimeoutError, F.CONNECT_TIMEOUT),
    (requests.exceptions.SSLError, F.TLS),
    (urllib3.exceptions.SSLError, F.TLS),
    (requests.Timeout, F.READ_TIMEOUT),
    (urllib3.exceptions.TimeoutError, F.READ_TIMEOUT),
    (TimeoutError, F.READ_TIMEOUT),
    (requests.exceptions.InvalidURL, F.INVALID_REQUEST),
    (requests.exceptions.InvalidSchema, F.INVALID_REQUEST),
    (requests.exceptions.MissingSchema, F.INVALID_REQUEST),
    (requests.exceptions.URLRequired, F.INVALID_REQUEST),
    (urllib3.exceptions.LocationValueError, F.INVALID_REQUEST),
    (urllib3.exceptions.ProxySchemeUnsupported, F.INVALID_REQUEST),
    # Everything else is about the answer or the connection after it opened (our own headers
    # are validated before sending): the request may have left.
    (requests.RequestException, F.NETWORK),
    (urllib3.exceptions.HTTPError, F.NETWORK),
    (http.client.HTTPException, F.NETWORK),
    (OSError, F.NETWORK),
)
_SYNC_ERRORS = tuple(cls for cls, _ in REQUESTS_FAILURES)


def new_session(config: PlugzConfig) -> requests.Session:
    """A session with our transport rules, for one connection's calls (it keeps connections alive)."""
    redact_client_logs()
    session = _Session()
    # Never pick up proxies or .netrc credentials from the environment implicitly.
    session.trust_env = False
    session.verify = requests_verify(config)
    session.cookies.set_policy(_NO_COOKIES)  # an API answer's cookie never rides along later
    adapter = DeadlineAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def send(
    session: requests.Session,
    config: PlugzConfig,
    request: PlugzRequest,
    *,
    on_deadline: Callable[[], None],
) -> TransportAnswer:
    """One attempt over ``session``; its exceptions mapped without letting their URL-bearing text through.

    The whole attempt, from its start to the last byte, is bounded by ``config.total_timeout``
    whatever phase it is in (see :mod:`.requests_deadline`): the connect is given no more than
    the time left, and a watchdog shuts the socket down when the deadline passes.
    ``on_deadline`` is called when it did, before the error is raised: the socket was shut down
    under the session's pool, which the caller then discards.
    """
    error: PlugzError
    watch = watch_attempt(config.total_timeout)
    try:
        with session.request(
            request.method,
            request.url,
            headers=dict(request.headers),
            data=request.body,
            timeout=(config.connect_timeout, config.read_timeout),
            allow_redirects=False,
            stream=True,
        ) as response:
            reader = BodyReader(response.headers.get("Content-Encoding"), request.endpoint.max_body)
            # Raw bytes: decoding is ours, so its output is bounded while it is produced.
            for chunk in _raw_chunks(response.raw):
                if watch.fired or not reader.feed(chunk):
                    break
            if not watch.fired:
                return response.status_code, response.headers, reader.body, reader.problem
        exc: BaseException = TimeoutError("deadline")
        failure = watch.failure
    except _SYNC_ERRORS as caught:
        exc, failure = caught, watch.failure if watch.fired else requests_failure(caught)
    finally:
        watch.finish()
    error = transport_error(config, request, failure, exc, elapsed=time.monotonic() - watch.started)
    if watch.fired:
        on_deadline()
    # Raised outside the except block on purpose: requests' exceptions (and urllib3's
    # under them) quote the URL, which holds the instance token, so they must not ride
    # along as __context__ into tracebacks.
    raise error


def requests_failure(exc: BaseException) -> TransportFailure:
    """What a requests/urllib3/http.client exception means (see :data:`REQUESTS_FAILURES`)."""
    return classify(REQUESTS_FAILURES, exc)


def _raw_chunks(raw: urllib3.HTTPResponse) -> Iterator[bytes]:
    """The answer's bytes as they came (still encoded), ending at the first empty read.

    Not urllib3's ``stream()``: it loops, yielding nothing, for as long as its decoder says it
    holds an unconsumed tail - which, when it is asked not to decode, it never consumes. Two
    ``Content-Encoding`` headers (``gzip`` and a garbage one) made that loop spin forever, out of
    reach of the deadline, which is checked between chunks.
    """
    if raw.chunked and raw.supports_chunked_reads():
        yield from raw.read_chunked(_CHUNK, decode_content=False)
        return
    while chunk := raw.read(_CHUNK, decode_content=False):
        yield chunk


class _Session(requests.Session):
    """requests' session, minus its look at where a redirect would lead.

    Even with ``allow_redirects=False`` requests prepares the next request of a 3xx (for
    ``Response.next``), and to do so reads the whole body, *decoded*: a gzip bomb behind a
    ``Location`` would be inflated outside our bounded reader, and a garbage second
    ``Content-Encoding`` left urllib3 holding a tail that hung the read after it. Redirects are
    never followed (the Client-Token stays put), so there is never a target.
    """

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


#: Refuses every cookie: the API uses none, and a kept one would travel with later requests.
_NO_COOKIES = http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
