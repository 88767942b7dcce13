"""``PlugzHook``: the client of the Plugz API — requests in tasks, httpx in the triggerer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import heapq
import http.client
import http.cookiejar
import ipaddress
import itertools
import logging
import os
import socket
import ssl
import sys
import threading
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util.connection import allowed_gai_family

from airflow_provider_plugz import sentry
from airflow_provider_plugz._compat import (
    BaseHook,
    aget_connection,
    channel_answers_through_this_loop,
    mask_secret,
)
from airflow_provider_plugz._protocol import (
    BodyReader,
    Endpoint,
    TransportAnswer,
    TransportFailure,
    build_request,
    is_tls_failure,
    read_answer,
    transport_error,
)
from airflow_provider_plugz._redaction import redact_known, remember
from airflow_provider_plugz.connection import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    PlugzConfig,
    parse_connection,
)
from airflow_provider_plugz.endpoints import (
    DEVICE,
    INSTANCE_STATUS,
    PIN_STATUS,
    SEND_TEXT,
    SET_PIN,
    DeviceInfo,
    InstanceStatus,
    PinStatus,
    SentMessage,
)
from airflow_provider_plugz.exceptions import PlugzConfigurationError, PlugzError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    import httpx

    from airflow_provider_plugz._protocol import PlugzRequest
    from airflow_provider_plugz.retry import RetryPolicy

T = TypeVar("T")
_CHUNK = 64 * 1024

__all__ = [
    "DeviceInfo",
    "InstanceStatus",
    "PinStatus",
    "PlugzHook",
    "SentMessage",
    "new_async_client",
]


class PlugzHook(BaseHook):
    """Talks to one Plugz instance, described by an Airflow connection of type ``plugz``.

    The connection is read and validated on first use, not in ``__init__``. One
    ``requests.Session`` per hook keeps the TCP/TLS connection alive across calls.

    :param plugz_conn_id: the Airflow connection to use.
    :param async_client: an httpx client to share with other hooks (see :func:`new_async_client`).
    :param retry: the retry policy of every call; default: the connection's.
    :param require_conn_type: refuse a connection whose type is not ``plugz`` (before any
        request), for callers that take connection ids from users, such as the fleet audit.
    """

    conn_name_attr = "plugz_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Plugz"

    def __init__(
        self,
        plugz_conn_id: str = DEFAULT_CONN_ID,
        *,
        async_client: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        require_conn_type: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plugz_conn_id = plugz_conn_id
        self.retry = retry
        self.require_conn_type = require_conn_type
        # A client shared by many hooks (see new_async_client) is the owner's to close.
        self._shared_async_client = async_client

    def __repr__(self) -> str:
        return f"{type(self).__name__}(plugz_conn_id={self.plugz_conn_id!r})"

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra form fields, for Airflow versions that do not read ``conn-fields``.

        Built from the declarative ``conn-fields`` in :mod:`..get_provider_info`, so the two
        forms cannot disagree. Airflow 3.2+ reads the declaration and never calls this.
        """
        from wtforms import PasswordField, StringField

        try:
            from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        except ImportError:  # no FAB UI (Airflow 3): wtforms' own widgets
            text_widget = password_widget = None
        else:
            text_widget, password_widget = BS3TextFieldWidget(), BS3PasswordFieldWidget()

        widgets: dict[str, Any] = {}
        for name, spec in _declared_connection()["conn-fields"].items():
            secret = spec["schema"].get("format") == "password"
            field_class = PasswordField if secret else StringField
            widget = password_widget if secret else text_widget
            widgets[name] = field_class(
                spec["label"],
                description=spec.get("description"),
                default=spec["schema"].get("default"),
                **({"widget": widget} if widget is not None else {}),
            )
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields: the declarative ``ui-field-behaviour``."""
        behaviour = _declared_connection()["ui-field-behaviour"]
        return {
            "hidden_fields": list(behaviour["hidden-fields"]),
            "relabeling": dict(behaviour["relabeling"]),
            "placeholders": dict(behaviour["placeholders"]),
        }

    @cached_property
    def config(self) -> PlugzConfig:
        """The validated connection; its secrets are registered with Airflow's masker."""
        return self._read_config()

    def config_extra(self, key: str) -> Any:
        """One extra of the connection, raw (e.g. a PIN stored beside the credentials)."""
        return self.get_connection(self.plugz_conn_id).extra_dejson.get(key)

    @cached_property
    def session(self) -> requests.Session:
        _redact_client_logs()
        session = _Session()
        # Never pick up proxies or .netrc credentials from the environment implicitly.
        session.trust_env = False
        session.verify = _verify(self.config)
        session.cookies.set_policy(_NO_COOKIES)  # an API answer's cookie never rides along later
        adapter = _DeadlineAdapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def get_conn(self) -> requests.Session:
        """The hook's ``requests.Session`` (Airflow's generic hook interface)."""
        return self.session

    def close(self) -> None:
        """Close pooled connections; the hook can still be used afterwards."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    # --- the API: one line per call; each endpoint is declared in airflow_provider_plugz.endpoints

    def get_pin_status(self, *, retry: RetryPolicy | None = None) -> PinStatus:
        """Whether the instance's WhatsApp account has a two-step-verification PIN.

        :param retry: this call's retry policy; default: the hook's, else the connection's.
        :raises PlugzError: a subclass saying what went wrong and what to do.
        """
        return self.call(PIN_STATUS, retry=retry)

    async def aget_pin_status(self, *, retry: RetryPolicy | None = None) -> PinStatus:
        """:meth:`get_pin_status` for event loops (the triggerer): same checks, httpx transport."""
        return await self.acall(PIN_STATUS, retry=retry)

    def set_pin(self, code: str, *, retry: RetryPolicy | None = None) -> None:
        """Register ``code`` as the account's two-step-verification PIN (POST, JSON body).

        The PIN is registered with Airflow's secrets masker before it is sent. It is sent at
        most once, unless the connection provably never opened (a failed connect or a connect
        timeout): after a dropped connection or a read timeout the server may have applied it.

        :raises PlugzConfigurationError: ``code`` is not exactly six digits.
        :raises PlugzError: a subclass saying what went wrong and what to do.
        """
        self.call(SET_PIN, code, retry=retry)

    async def aset_pin(self, code: str, *, retry: RetryPolicy | None = None) -> None:
        """:meth:`set_pin` for event loops: same checks and the same send-once rule, over httpx."""
        await self.acall(SET_PIN, code, retry=retry)

    def get_instance_status(self, *, retry: RetryPolicy | None = None) -> InstanceStatus:
        """Whether the number is connected to Plugz, holds a session and its phone is online."""
        return self.call(INSTANCE_STATUS, retry=retry)

    async def aget_instance_status(self, *, retry: RetryPolicy | None = None) -> InstanceStatus:
        """:meth:`get_instance_status` for event loops."""
        return await self.acall(INSTANCE_STATUS, retry=retry)

    def get_device(self, *, retry: RetryPolicy | None = None) -> DeviceInfo:
        """The phone behind the instance (its number is personal data: reprs show 4 digits)."""
        return self.call(DEVICE, retry=retry)

    async def aget_device(self, *, retry: RetryPolicy | None = None) -> DeviceInfo:
        """:meth:`get_device` for event loops."""
        return await self.acall(DEVICE, retry=retry)

    def send_text(
        self,
        phone: str,
        message: str,
        *,
        message_id: str | None = None,
        delay_message: int | None = None,
        delay_typing: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> SentMessage:
        """Send a WhatsApp text; Plugz queues it (a 200 means queued, not delivered).

        ``phone`` is digits with country and area code (or a group id); both are checked before
        anything is sent. Sent at most once: a duplicate message is something a person sees.
        ``delay_message`` / ``delay_typing`` (1-15 s) and ``message_id`` (a reply) are Plugz's.
        """
        return self.call(
            SEND_TEXT,
            phone,
            message,
            message_id=message_id,
            delay_message=delay_message,
            delay_typing=delay_typing,
            retry=retry,
        )

    async def asend_text(
        self,
        phone: str,
        message: str,
        *,
        message_id: str | None = None,
        delay_message: int | None = None,
        delay_typing: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> SentMessage:
        """:meth:`send_text` for event loops (the triggerer: notifiers in Deadline Alerts)."""
        return await self.acall(
            SEND_TEXT,
            phone,
            message,
            message_id=message_id,
            delay_message=delay_message,
            delay_typing=delay_typing,
            retry=retry,
        )

    # --- the one generic path every call takes

    def call(self, endpoint: Endpoint[T], *args: Any, retry: RetryPolicy | None = None, **kwargs: Any) -> T:
        """Make any Plugz call: build it, send it, check and parse the answer, retrying as the
        policy and the endpoint's idempotency allow.

        :param retry: this call's retry policy; default: the hook's, else the connection's.
        """
        config = self.config
        request = build_request(config, endpoint, *args, **kwargs)
        if request.secrets:
            _mask_values(request.secrets)
        retrying = (retry or self.retry or config.retry).start(idempotent=endpoint.idempotent)
        while True:
            try:
                result: T = read_answer(config, request, self._send(config, request))
                return result
            except PlugzError as err:
                delay = retrying.delay_after(err)  # raises when it is time to stop
                self._log_retry(retrying.attempts, delay, err)
            _sleep(delay)

    async def acall(
        self, endpoint: Endpoint[T], *args: Any, retry: RetryPolicy | None = None, **kwargs: Any
    ) -> T:
        """:meth:`call` for event loops: the same steps over httpx, nothing blocking on the loop."""
        config = await self.aget_config()
        request = build_request(config, endpoint, *args, **kwargs)
        if request.secrets and channel_answers_through_this_loop():
            _mask_values(request.secrets)  # see aget_config: a thread would wait on this loop
        elif request.secrets:
            await _off_loop(_mask_values, request.secrets)
        retrying = (retry or self.retry or config.retry).start(idempotent=endpoint.idempotent)
        while True:
            try:
                result: T = read_answer(config, request, await self._asend(config, request))
                return result
            except PlugzError as err:
                delay = retrying.delay_after(err)
                self._log_retry(retrying.attempts, delay, err)
            await _asleep(delay)

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection the way the tasks use it, for the UI's Test button.

        One call per fact: the number's connection state (``GET .../status``), then its PIN
        (``GET .../security/two-fa-code``). A number that is not connected is reported, not a
        failure (the credentials work); a web instance has no PIN state (mobile-only endpoints).
        A failing call ends the test with its error, which names the check that failed; after
        an unusable status answer (malformed, a bad request, success: false) the PIN is still read.
        """
        from airflow_provider_plugz.exceptions import (
            PlugzBadRequestError,
            PlugzInstanceNotSupportedError,
            PlugzMalformedResponseError,
            PlugzRefusedError,
        )

        def failure(err: PlugzError) -> str:
            # The UI tests a copy of the connection under a random id: naming it only confuses.
            return f"{type(err).__name__}: " + str(err).replace(f" for connection {self.plugz_conn_id!r}", "")

        def connection_state(status: InstanceStatus) -> str:
            reason = f" ({status.error})" if status.error else ""
            if not status.connected:
                lost = ": its WhatsApp session was lost, restore it" if status.smartphone_connected else ""
                return f"the number is NOT connected{lost}{reason}"
            if status.session is False:
                return f"the number is connected but holds NO WhatsApp session{reason}"
            if not status.smartphone_connected:
                return f"the number is connected but its phone is OFFLINE{reason}"
            return "the number is connected (phone online)"

        facts: list[str] = []
        status_error: PlugzError | None = None
        try:
            facts.append(connection_state(self.get_instance_status()))
        except (PlugzMalformedResponseError, PlugzBadRequestError, PlugzRefusedError) as err:
            status_error = err  # this answer was unusable; the PIN call may still tell the rest
        except PlugzError as err:
            return False, failure(err)
        try:
            pin = self.get_pin_status()
        except PlugzInstanceNotSupportedError:
            facts.append("it is a web (QR-code) instance, so it has no PIN status (mobile-only)")
        except PlugzError as err:
            if status_error is not None:
                return False, failure(status_error)
            return False, f"{failure(err)} The instance status check worked: {facts[0]}."
        else:
            facts.append(f"the WhatsApp account {'has a PIN set' if pin.has_code else 'has NO PIN set'}")
        reached = f"Connected to Plugz at {self.config.base_url}; {'; '.join(facts)}"
        if status_error is not None:
            return False, f"{failure(status_error)} The PIN status check worked: {reached}."
        return True, f"{reached}."

    async def aget_config(self) -> PlugzConfig:
        """:attr:`config`, read without blocking the event loop.

        What blocks runs in a worker thread: reading the connection and registering its
        secrets with Airflow's masker (which recompiles one regex of all secrets each time),
        the first import of the async transport, loading the TLS context. In Airflow 3's
        triggerer the first two talk to a channel that answers through this very loop, so
        there they run on it, through Airflow's async lookup (see
        :func:`~airflow_provider_plugz._compat.channel_answers_through_this_loop`).
        """
        if "_async_tls" not in self.__dict__:
            if "config" not in self.__dict__:
                if channel_answers_through_this_loop():
                    conn = await aget_connection(self.plugz_conn_id)
                    self.__dict__["config"] = self._parse_and_mask(conn)
                else:
                    self.__dict__["config"] = await _off_loop(self._read_config)
            self.__dict__["_async_tls"] = await _off_loop(_prepare_async_transport, self.config)
        return self.config

    def _read_config(self) -> PlugzConfig:
        return self._parse_and_mask(self.get_connection(self.plugz_conn_id))

    def _parse_and_mask(self, conn: Any) -> PlugzConfig:
        config = parse_connection(conn, require_conn_type=self.require_conn_type)
        _mask(config)
        return config

    async def aclose(self) -> None:
        """Close the async client, if this hook opened one (a shared client stays open)."""
        client = self.__dict__.pop("_async_client", None)
        if client is not None and client is not self._shared_async_client:
            await client.aclose()

    def _log_retry(self, attempt: int, delay: float, error: PlugzError) -> None:
        self.log.warning("Plugz attempt %d failed, retrying in %.2f s: %s", attempt, delay, error)

    def _send(self, config: PlugzConfig, request: PlugzRequest) -> TransportAnswer:
        """Send over requests; map its exceptions without letting their URL-bearing text through.

        The whole attempt, from its start to the last byte, is bounded by ``config.total_timeout``
        whatever phase it is in (see :class:`_Watch`): the connect is given no more than the time
        left, and a watchdog shuts the socket down when the deadline passes (per-read timeouts
        alone let a server that drips one byte at a time hold the call forever).
        """
        error: PlugzError
        watch = _WATCHDOG.watch(config.total_timeout)
        try:
            with self.session.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                data=request.body,
                timeout=(config.connect_timeout, config.read_timeout),
                allow_redirects=False,
                stream=True,
            ) as response:
                reader = BodyReader(response.headers.get("Content-Encoding"))
                # Raw bytes: decoding is ours, so its output is bounded while it is produced.
                for chunk in _raw_chunks(response.raw):
                    if watch.fired or not reader.feed(chunk):
                        break
                if not watch.fired:
                    return response.status_code, response.headers, reader.body, reader.problem
            exc: BaseException = TimeoutError("deadline")
            failure = watch.failure
        except _SYNC_ERRORS as caught:
            exc, failure = caught, watch.failure if watch.fired else _requests_failure(caught)
        finally:
            watch.finish()
        error = transport_error(config, request, failure, exc, elapsed=time.monotonic() - watch.started)
        if watch.fired:
            self.close()  # the socket was shut down under the pool
        # Raised outside the except block on purpose: requests' exceptions (and urllib3's
        # under them) quote the URL, which holds the instance token, so they must not ride
        # along as __context__ into tracebacks.
        raise error

    async def _asend(self, config: PlugzConfig, request: PlugzRequest) -> TransportAnswer:
        """Send over httpx; the same rules as :meth:`_send`, the deadline kept by asyncio.

        The deadline cancels whatever the attempt awaits (a pooled connection, name resolution,
        the connect, TLS, writing, reading); httpcore's trace events tell whether the request
        had started to go out by then.
        """
        import httpx  # imported off the loop by aget_config already

        error: PlugzError
        started = time.monotonic()
        progress = _Progress()
        client = self._async_client_for(config)
        try:
            return await _within(config.total_timeout, self._aexchange(client, config, request, progress))
        except asyncio.TimeoutError as exc:
            failure = TransportFailure.DEADLINE if progress.sending else TransportFailure.DEADLINE_CONNECTING
            error = transport_error(config, request, failure, exc, elapsed=time.monotonic() - started)
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError) as exc:
            error = transport_error(config, request, _httpx_failure(exc), exc)
        raise error

    def _async_client_for(self, config: PlugzConfig) -> httpx.AsyncClient:
        client: httpx.AsyncClient | None = self.__dict__.get("_async_client")
        if client is None:
            # A shared client cannot carry a connection's own CA bundle.
            shared = self._shared_async_client if config.ca_bundle is None else None
            tls = self.__dict__["_async_tls"]  # loaded off the loop by aget_config
            client = self.__dict__["_async_client"] = shared or new_async_client(verify=tls)
        return client

    @staticmethod
    async def _aexchange(
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
            reader = BodyReader(response.headers.get("Content-Encoding"))
            async for chunk in response.aiter_raw(_CHUNK):
                if not reader.feed(chunk):
                    break
            return response.status_code, response.headers, reader.body, reader.problem


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


# Blocking work of the async paths (connection reads, Airflow's masker, first imports) runs
# here. Two threads, not asyncio's default pool: the masker's work is CPU-bound, and every
# thread that competes for the GIL takes turns away from the event loop (with six, the fleet
# audit's loop stalled for most of a cold run); two still overlap a secrets backend's I/O.
_BLOCKING = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="plugz-blocking")


async def _off_loop(function: Callable[..., T], *args: Any) -> T:
    """Run ``function(*args)`` in the blocking-work threads, keeping context variables."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(_BLOCKING, context.run, function, *args)


def _prepare_async_transport(config: PlugzConfig) -> ssl.SSLContext:
    """The async transport's blocking first steps (imports, log filters, TLS context): for a thread."""
    preload_async_transport()
    _redact_client_logs()
    return _tls_context(config)


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

    _redact_client_logs()
    limits = httpx.Limits(
        max_connections=max_connections or 100,
        max_keepalive_connections=keepalive or max_connections or 20,
    )
    client = httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        limits=limits,
        verify=verify if verify is not None else _default_tls_context(),
    )
    client.cookies.jar.set_policy(_NO_COOKIES)  # on the client's own jar: httpx copies one given
    return client


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


class _RedactCredentialUrls(logging.Filter):
    """Rewrites log records of the HTTP clients so that they hold no instance URL or known secret.

    httpx logs every request's URL at INFO, urllib3 and httpcore at DEBUG: with the instance
    token in the path, that is a secret in the log unless redacted here.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record of someone else's: leave it to logging
            return True
        cleaned = redact_known(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_CLIENT_LOGGERS = ("httpx", "httpcore", "urllib3")
_LOG_FILTER = _RedactCredentialUrls()
_filtered_loggers: set[str] = set()
_filter_lock = threading.Lock()


def _redact_client_logs() -> None:
    """Put the filter on every logger of the HTTP clients, children included.

    A logger's filters do not apply to records of its children (``httpcore.http11``), so each
    one gets it; loggers created since the last call are picked up on the next.
    """
    manager = logging.Logger.manager
    with _filter_lock:
        names = [*_CLIENT_LOGGERS, *manager.loggerDict]
        for name in names:
            if name in _filtered_loggers or name.split(".", 1)[0] not in _CLIENT_LOGGERS:
                continue
            logger = logging.getLogger(name)
            logger.addFilter(_LOG_FILTER)
            _filtered_loggers.add(name)


# --- the sync transport's deadline -----------------------------------------------------------


class _Watch:
    """One attempt's deadline, kept whatever phase the attempt is in when it passes.

    - Resolving the host name and connecting: both get no more than the time left
      (:func:`_connect_watched`); a connection that opens after the deadline is not used.
    - The TLS handshake, writing the request, waiting for the answer, reading it: the watch holds
      a duplicate of the connection's socket and the watchdog shuts it down at the deadline,
      which wakes up whatever blocks on it. A duplicate, because ``ssl`` takes the original's
      descriptor over for the handshake and http.client drops its own reference to the socket
      of an answer that closes the connection: neither takes the socket out of our reach.

    ``sending`` turns True when the connection is open and the request is about to be written:
    a deadline that fired before then means the request never left.
    """

    __slots__ = ("_done", "_held", "_lock", "deadline", "fired", "sending", "started")

    def __init__(self, seconds: float) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        self.fired = False
        self.sending = False
        self._done = False
        self._held: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def failure(self) -> TransportFailure:
        """What a fired deadline is: before the request was written, or after it may have left."""
        return TransportFailure.DEADLINE if self.sending else TransportFailure.DEADLINE_CONNECTING

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def hold(self, sock: socket.socket) -> None:
        """Watch the socket of the attempt's connection (the first one given; see the class)."""
        with self._lock:
            if self._done or self._held is not None:
                return
            # socket.fromfd duplicates the descriptor; it works for an SSLSocket too.
            self._held = socket.fromfd(sock.fileno(), sock.family, sock.type)
            if self.fired:
                _shut_down(self._held)

    def begin_sending(self) -> None:
        """The connection is open and the request is about to be written.

        :raises TimeoutError: the deadline passed first; the request then never left.
        """
        with self._lock:
            if not self.fired:
                self.sending = True
                return
        raise _DeadlinePassed("the attempt's deadline passed before the request was written")

    def fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            if self._held is not None:
                _shut_down(self._held)  # under the lock: finish() cannot close it meanwhile

    def finish(self) -> None:
        with self._lock:
            self._done = True
            held, self._held = self._held, None
            if held is not None:
                held.close()  # the duplicate only: the connection's own socket is the pool's
        if _current_watch() is self:
            _CURRENT.watch = None

    @property
    def done(self) -> bool:
        return self._done


def _shut_down(sock: socket.socket) -> None:
    # It only wakes up whoever blocks on the socket (connect, handshake, send, recv): each then
    # fails or reads an early end, and the caller closes the connection.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread for the whole process that fires expired :class:`_Watch`es."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, seconds: float) -> _Watch:
        """Start watching the calling thread's next attempt; :meth:`_Watch.finish` ends it."""
        watch = _Watch(seconds)
        with self._condition:
            heapq.heappush(self._heap, (watch.deadline, next(self._order), watch))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="plugz-deadlines", daemon=True)
                self._thread.start()
            self._condition.notify()
        _CURRENT.watch = watch
        return watch

    def _run(self) -> None:
        while True:
            with self._condition:
                while True:
                    while self._heap and self._heap[0][2].done:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._condition.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        watch = heapq.heappop(self._heap)[2]
                        break
                    self._condition.wait(wait)
            watch.fire()


_WATCHDOG = _Watchdog()
_CURRENT = threading.local()


class _DeadlinePassed(TimeoutError):
    """Raised inside urllib3 when the attempt's deadline passed before the request was written."""


def _current_watch() -> _Watch | None:
    watch: _Watch | None = _CURRENT.__dict__.get("watch")
    return watch


def _connect_watched(connection: HTTPConnection, connect: Callable[[], None]) -> None:
    """``connection.connect()`` within the current attempt's deadline (see :class:`_Watch`)."""
    watch = _current_watch()
    if watch is None:
        connect()
        return
    try:
        connect()
    except BaseException as exc:
        if isinstance(exc, _DeadlinePassed) or watch.remaining() <= 0:
            watch.fire()  # it ran out of the time left: the deadline's doing, whatever it raised
        raise
    watch.begin_sending()


def _new_conn_watched(connection: HTTPConnection, new_conn: Callable[[], socket.socket]) -> socket.socket:
    """urllib3's ``_new_conn`` (resolve, then connect to each address in turn) within the deadline.

    The name is resolved here first (:func:`_resolve_within`), then each address gets a connect
    timeout of at most the time left; the socket that opens is held by the watch at once, so the
    TLS handshake that follows is the watchdog's. ``_dns_host`` is urllib3's name for what it
    connects to; the TLS check and the Host header keep using the host name.
    """
    watch = _current_watch()
    if watch is None:
        return new_conn()
    name, timeout = connection._dns_host, connection.timeout
    addresses = _resolve_within(name, connection.port, watch)
    failure: BaseException | None = None
    try:
        for address in addresses:
            remaining = watch.remaining()
            if remaining <= 0:
                raise _DeadlinePassed("the attempt's deadline passed before a connection opened")
            connection._dns_host = address
            bounded = isinstance(timeout, (int, float)) and timeout <= remaining
            connection.timeout = timeout if bounded else remaining
            try:
                sock = new_conn()
            except urllib3.exceptions.ConnectTimeoutError as exc:  # NewConnectionError too
                if not bounded and not isinstance(exc, urllib3.exceptions.NewConnectionError):
                    raise _DeadlinePassed("the attempt's deadline passed while connecting") from None
                failure = exc  # try the next address, as urllib3 itself does
                continue
            break
        else:
            assert failure is not None
            raise failure
    finally:
        connection._dns_host, connection.timeout = name, timeout
    try:
        watch.hold(sock)
    except BaseException:
        sock.close()
        raise
    return sock


def _resolve_within(host: str, port: int | None, watch: _Watch) -> list[str]:
    """The addresses of ``host``, resolved in a helper thread waited for no longer than the time left.

    ``getaddrinfo`` can be neither interrupted nor given a timeout: a thread still resolving at
    the deadline is left to finish on its own. An IP address is returned as it is, and so is a
    name that does not resolve (urllib3 then resolves it again and says why it failed).
    """
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return [host]
    resolved: concurrent.futures.Future[list[Any]] = concurrent.futures.Future()

    def resolve() -> None:
        try:
            found = socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)
        except BaseException as exc:  # handed over to the waiting thread
            resolved.set_exception(exc)
        else:
            resolved.set_result(found)

    threading.Thread(target=resolve, name="plugz-resolve", daemon=True).start()
    try:
        found = resolved.result(timeout=max(watch.remaining(), 0.0))
    except concurrent.futures.TimeoutError:
        raise _DeadlinePassed("the attempt's deadline passed while resolving the host name") from None
    except OSError:
        return [host]
    addresses = list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in found))
    return addresses or [host]


def _request_watched(connection: HTTPConnection) -> None:
    """Before a request is written: a kept-alive connection's socket is held, and the request leaves.

    A new connection is not open yet here when urllib3 lets http.client open it while sending
    (plain HTTP): :func:`_connect_watched` marks that one.
    """
    watch = _current_watch()
    if watch is not None and connection.sock is not None:
        watch.hold(connection.sock)
        watch.begin_sending()


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _new_conn_watched(self, super()._new_conn)

    def connect(self) -> None:
        _connect_watched(self, super().connect)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _request_watched(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _new_conn_watched(self, super()._new_conn)

    def connect(self) -> None:
        _connect_watched(self, super().connect)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _request_watched(self)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections keep the attempt's deadline (see :class:`_Watch`)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


# --- mapping transport exceptions --------------------------------------------------------------

F = TransportFailure

#: requests (and urllib3 and http.client under it, whose errors escape unwrapped while we read
#: the raw body): exception class -> failure kind, most specific first. TLS is recognised by
#: type here and by the cause chain in :func:`classify`. tests/hooks check that every exception
#: class these libraries define has its row.
REQUESTS_FAILURES: tuple[tuple[type[BaseException], TransportFailure], ...] = (
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


@functools.cache
def _httpx_failures() -> tuple[tuple[type[BaseException], TransportFailure], ...]:
    """httpx's table, built on first use (only the triggerer and the audit import httpx)."""
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


def classify(
    table: tuple[tuple[type[BaseException], TransportFailure], ...], exc: BaseException
) -> TransportFailure:
    """The failure kind of ``exc``: its first row in ``table``, looking through requests' wrapper.

    requests wraps urllib3's reason in a ``MaxRetryError`` argument; that reason is the more
    specific fact (a ``NewConnectionError`` means the request never left), so it is matched too.
    An ``ssl`` error anywhere in the cause chain makes it a TLS failure.
    """
    if is_tls_failure(exc):
        return F.TLS
    candidates: list[BaseException] = [exc]
    wrapped = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
    reason = getattr(wrapped, "reason", None)
    candidates.extend(c for c in (reason, wrapped) if isinstance(c, BaseException))
    for cls, failure in table:
        if any(isinstance(candidate, cls) for candidate in candidates):
            return failure
    return F.NETWORK


def _requests_failure(exc: BaseException) -> TransportFailure:
    return classify(REQUESTS_FAILURES, exc)


def _httpx_failure(exc: BaseException) -> TransportFailure:
    return classify(_httpx_failures(), exc)


def _declared_connection() -> dict[str, Any]:
    from airflow_provider_plugz.get_provider_info import get_provider_info

    (declared,) = get_provider_info()["connection-types"]
    return declared  # type: ignore[no-any-return]


def _sleep(seconds: float) -> None:
    """Wait between attempts (a seam for tests, which must never sleep for real)."""
    time.sleep(seconds)


async def _asleep(seconds: float) -> None:
    """The async twin of :func:`_sleep`."""
    await asyncio.sleep(seconds)


def _verify(config: PlugzConfig) -> str | bool:
    """TLS verification is always on; a connection may name its own PEM CA bundle."""
    if config.ca_bundle is None:
        return True
    _tls_context(config)  # refuse a missing or non-PEM bundle up front, with advice
    return config.ca_bundle


def _tls_context(config: PlugzConfig) -> ssl.SSLContext:
    """The TLS context for httpx: the system CAs (built once per process), or the connection's."""
    if config.ca_bundle is None:
        return _default_tls_context()
    try:
        return ssl.create_default_context(cafile=config.ca_bundle)
    except (OSError, ssl.SSLError, ValueError):
        raise PlugzConfigurationError(
            f"Plugz connection {config.conn_id!r}: extra 'ca_bundle' is not a readable PEM CA bundle "
            "on this worker; give the path of one, or remove the extra to use the system's CAs."
        ) from None


@functools.cache
def _default_tls_context() -> ssl.SSLContext:
    # Loading the system CAs costs ~60 ms: do it once, not per hook or per trigger.
    return ssl.create_default_context()


def _mask(config: PlugzConfig) -> None:
    """Tell Airflow's secrets masker and our redaction about the credentials as soon as they are read."""
    remember(*config.secrets)
    for secret in (config.instance_token, config.client_token):
        mask_secret(secret)
    # A running Sentry client (Airflow's [sentry] integration) gets our scrubber: on Airflow 3
    # the [sentry] before_send setting itself cannot be used (apache/airflow#69464).
    sentry.install()


def _mask_values(values: tuple[str, ...]) -> None:
    """Secrets of one request (a PIN): registered before it is sent (Airflow skips short ones)."""
    remember(*values)
    for value in values:
        if len(value) >= 5:
            mask_secret(value)
