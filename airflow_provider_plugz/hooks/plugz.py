"""``PlugzHook``: the client of the Plugz API — requests in tasks, httpx in the triggerer.

The hook reads and checks the connection, builds each call from its declaration (see
:mod:`airflow_provider_plugz.endpoints`), retries it as the policy allows and reads the answer
(:mod:`airflow_provider_plugz._protocol`); how the bytes travel is the transports' (see
:mod:`airflow_provider_plugz.transports`): :mod:`~airflow_provider_plugz.transports.sync_requests`
in tasks, :mod:`~airflow_provider_plugz.transports.async_httpx` on event loops.
"""

from __future__ import annotations

import asyncio
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_plugz import _connection_form, sentry
from airflow_provider_plugz._compat import (
    BaseHook,
    aget_connection,
    channel_answers_through_this_loop,
    mask_secret,
)
from airflow_provider_plugz._protocol import build_request, read_answer
from airflow_provider_plugz._redaction import remember
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
    QUEUE,
    SEND_TEXT,
    SET_PIN,
    DeviceInfo,
    InstanceStatus,
    PinStatus,
    QueueInfo,
    SentMessage,
)
from airflow_provider_plugz.exceptions import PlugzError
from airflow_provider_plugz.transports import async_httpx, sync_requests
from airflow_provider_plugz.transports.async_httpx import (
    new_async_client,
    off_loop,
    preload_async_transport,
    prepare_async_transport,
)

if TYPE_CHECKING:
    import httpx
    import requests

    from airflow_provider_plugz._declarations import Endpoint
    from airflow_provider_plugz._protocol import PlugzRequest, TransportAnswer
    from airflow_provider_plugz.retry import RetryPolicy

T = TypeVar("T")

__all__ = [
    "DeviceInfo",
    "InstanceStatus",
    "PinStatus",
    "PlugzHook",
    "SentMessage",
    "new_async_client",
    "preload_async_transport",
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
        return _connection_form.connection_form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields: the declarative ``ui-field-behaviour``."""
        return _connection_form.ui_field_behaviour()

    @cached_property
    def config(self) -> PlugzConfig:
        """The validated connection; its secrets are registered with Airflow's masker."""
        return self._read_config()

    def config_extra(self, key: str) -> Any:
        """One extra of the connection, raw (e.g. a PIN stored beside the credentials)."""
        return self.get_connection(self.plugz_conn_id).extra_dejson.get(key)

    @cached_property
    def session(self) -> requests.Session:
        """The hook's session, with the sync transport's rules (see :func:`.sync_requests.new_session`)."""
        return sync_requests.new_session(self.config)

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

    def get_queue(self, *, retry: RetryPolicy | None = None) -> QueueInfo:
        """How many messages wait in the number's queue, and since when (never what they say)."""
        return self.call(QUEUE, retry=retry)

    async def aget_queue(self, *, retry: RetryPolicy | None = None) -> QueueInfo:
        """:meth:`get_queue` for event loops."""
        return await self.acall(QUEUE, retry=retry)

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
            await off_loop(_mask_values, request.secrets)
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
            from airflow_provider_plugz._vocabulary import status_sentence

            return status_sentence(
                status.connected, status.session, status.smartphone_connected, status.error
            )

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
                    self.__dict__["config"] = await off_loop(self._read_config)
            self.__dict__["_async_tls"] = await off_loop(prepare_async_transport, self.config)
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
        """One attempt over requests, within ``config.total_timeout`` (see :func:`.sync_requests.send`).

        When the deadline fired, the socket was shut down under the session's pool: the
        session is dropped (the next attempt opens a new one).
        """
        return sync_requests.send(self.session, config, request, on_deadline=self.close)

    async def _asend(self, config: PlugzConfig, request: PlugzRequest) -> TransportAnswer:
        """One attempt over httpx: the same rules as :meth:`_send` (see :func:`.async_httpx.send`)."""
        return await async_httpx.send(self._async_client_for(config), config, request)

    def _async_client_for(self, config: PlugzConfig) -> httpx.AsyncClient:
        client: httpx.AsyncClient | None = self.__dict__.get("_async_client")
        if client is None:
            # A shared client cannot carry a connection's own CA bundle.
            shared = self._shared_async_client if config.ca_bundle is None else None
            tls = self.__dict__["_async_tls"]  # loaded off the loop by aget_config
            client = self.__dict__["_async_client"] = shared or new_async_client(verify=tls)
        return client


def _sleep(seconds: float) -> None:
    """Wait between attempts (a seam for tests, which must never sleep for real)."""
    time.sleep(seconds)


async def _asleep(seconds: float) -> None:
    """The async twin of :func:`_sleep`."""
    await asyncio.sleep(seconds)


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
