"""The event-loop transport (the triggerer, the fleet audit): httpx, and nothing blocking on the loop.

- :func:`new_async_client` builds an httpx client with our transport rules, which many hooks
  may share; :func:`send` makes one attempt over it, bounded by the connection's deadline, and
  sorts httpx's exceptions by :func:`httpx_failures`.
- The blocking steps of the async paths (reading a connection, Airflow's masker, the first
  imports, loading TLS) run in :data:`BLOCKING`, through :func:`off_loop`;
  :func:`prepare_async_transport` is this transport's share of them.

httpx is imported on first use, never at import: only the triggerer and the audit need it.
Importing this module starts no thread (the pool starts its threads on first use).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import http.cookiejar
import sys
import time
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_plugz._client_logs import redact_client_logs
from airflow_provider_plugz.transports.body import BodyReader
from airflow_provider_plugz.transports.failures import (
    FailureTable,
    TransportFailure,
    classify,
    transport_error,
)
from airflow_provider_plugz.transports.tls import default_tls_context, tls_context

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable

    import httpx

    from airflow_provider_plugz._protocol import PlugzRequest, TransportAnswer
    from airflow_provider_plugz.connection import PlugzConfig
    from airflow_provider_plugz.exceptions import PlugzError

T = TypeVar("T")
_CHUNK = 64 * 1024
F = TransportFailure

# Blocking work of the async paths (connection reads, Airflow's masker, first imports) runs
# here. Two threads, not asyncio's default pool: the masker's work is CPU-bound, and every
# thread that competes for the GIL takes turns away from the event loop (with six, the fleet
# audit's loop stalled for most of a cold run); two still overlap a secrets backend's I/O.
BLOCKING = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="plugz-blocking")


async def off_loop(function: Callable[..., T], *args: Any) -> T:
    """Run ``function(*args)`` in the blocking-work threads, keeping context variables."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(BLOCKING, context.run, function, *args)


def prepare_async_transport(config: PlugzConfig) -> ssl.SSLContext:
    """The async transport's blocking first steps (imports, log filters, TLS context): for a thread."""
    preload_async_transport()
    redact_client_logs()
    return tls_context(config)


@functools.cache
def preload_async_transport() -> None:
    """Import httpx and what httpcore imports on a client's first request (anyio's asyncio backend).

    ~0.25 s in all here: on an event loop it would stall every request already in flight, so
    the async paths call this from a worker thread (or before anything is in flight). Private
    module names of httpcore/anyio, so a missing one is skipped (it then loads on first use).
    """
    import importlib

    import httpx  # noqa: F401

    for name in ("httpcore._backends.anyio", "anyio._backends._asyncio"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def new_async_client(
    max_connections: int | None = None, verify: ssl.SSLContext | None = None, *, keepalive: int | None = None
) -> httpx.AsyncClient:
    """An httpx client with our transport rules, which many hooks may share (``async_client=``).

    It pools connections per host; ``max_connections`` bounds them (default: httpx's 100), of
    which ``keepalive`` stay open between requests (default: all of a bound given, else 20).
    Redirects are never followed, proxies/.netrc are not read from the environment, and no
    cookie is ever kept: hooks of different connections share the client, and nothing one
    instance's answer sets may ride along with another's request.
    """
    import httpx

    redact_client_logs()
    limits = httpx.Limits(
        max_connections=max_connections or 100,
        max_keepalive_connections=keepalive or max_connections or 20,
    )
    client = httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        limits=limits,
        verify=verify if verify is not None else default_tls_context(),
    )
    client.cookies.jar.set_policy(_NO_COOKIES)  # on the client's own jar: httpx copies one given
    return client


async def send(client: httpx.AsyncClient, config: PlugzConfig, request: PlugzRequest) -> TransportAnswer:
    """One attempt over ``client``; the sync transport's rules, the deadline kept by asyncio.

    The deadline cancels whatever the attempt awaits (a pooled connection, name resolution,
    the connect, TLS, writing, reading); httpcore's trace events tell whether the request
    had started to go out by then.
    """
    import httpx  # imported off the loop by prepare_async_transport already

    error: PlugzError
    started = time.monotonic()
    progress = _Progress()
    try:
        return await _within(config.total_timeout, _exchange(client, config, request, progress))
    except asyncio.TimeoutError as exc:
        failure = TransportFailure.DEADLINE if progress.sending else TransportFailure.DEADLINE_CONNECTING
        error = transport_error(config, request, failure, exc, elapsed=time.monotonic() - started)
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError) as exc:
        error = transport_error(config, request, httpx_failure(exc), exc)
    raise error


async def _exchange(
    client: httpx.AsyncClient, config: PlugzConfig, request: PlugzRequest, progress: _Progress
) -> TransportAnswer:
    import httpx

    async with client.stream(
        request.method,
        request.url,
        headers=dict(request.headers),
        content=request.body,
        timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
        extensions={"trace": progress.trace},
    ) as response:
        reader = BodyReader(response.headers.get("Content-Encoding"), request.endpoint.max_body)
        async for chunk in response.aiter_raw(_CHUNK):
            if not reader.feed(chunk):
                break
        return response.status_code, response.headers, reader.body, reader.problem


@functools.cache
def httpx_failures() -> FailureTable:
    """httpx's exception table, most specific first; built on first use (it imports httpx)."""
    import httpx

    return (
        (httpx.ConnectTimeout, F.CONNECT_TIMEOUT),
        (httpx.TimeoutException, F.READ_TIMEOUT),  # read, write, pool
        (httpx.ConnectError, F.CONNECT),  # a TLS failure is one too: classify() looks first
        (httpx.UnsupportedProtocol, F.INVALID_REQUEST),
        (httpx.LocalProtocolError, F.INVALID_REQUEST),
        (httpx.InvalidURL, F.INVALID_REQUEST),
        (httpx.HTTPError, F.NETWORK),  # remote protocol errors, read/write errors, proxies
        (httpx.StreamError, F.NETWORK),
        (OSError, F.NETWORK),
    )


def httpx_failure(exc: BaseException) -> TransportFailure:
    """What an httpx exception means (see :func:`httpx_failures`)."""
    return classify(httpx_failures(), exc)


async def _within(seconds: float, awaitable: Awaitable[T]) -> T:
    """``awaitable`` bounded by ``seconds`` (asyncio.TimeoutError past them)."""
    if sys.version_info >= (3, 11):  # no extra task per call, as wait_for makes
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover - Python 3.10


class _Progress:
    """How far one httpx attempt got, from httpcore's trace events (the ``trace`` extension).

    ``sending`` turns True when the request's first bytes are about to be written: before
    that (waiting for a pooled connection, resolving, connecting, TLS) it provably never left.
    """

    __slots__ = ("sending",)

    def __init__(self) -> None:
        self.sending = False

    async def trace(self, event: str, info: Any) -> None:
        # "http11.send_request_headers.started", "http2.send_request_headers.started"
        if event.endswith(".send_request_headers.started"):
            self.sending = True


#: Refuses every cookie: the API uses none, and a kept one would travel with later requests.
_NO_COOKIES = http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
