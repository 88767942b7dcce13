"""``PlugzHook``: the client of the Plugz API — requests in tasks, httpx in the triggerer."""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests

from airflow_provider_plugz._compat import BaseHook, aget_connection, mask_secret
from airflow_provider_plugz._protocol import (
    MAX_BODY_BYTES,
    PIN_STATUS,
    SET_PIN,
    Endpoint,
    PinStatus,
    TransportFailure,
    build_request,
    check_response,
    check_set_pin,
    parse_pin_status,
    redact,
    transport_error,
    validate_pin,
)
from airflow_provider_plugz.connection import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    PlugzConfig,
    parse_connection,
)
from airflow_provider_plugz.exceptions import PlugzConfigurationError, PlugzError

if TYPE_CHECKING:
    from collections.abc import Mapping

    import httpx

    from airflow_provider_plugz._protocol import PlugzRequest
    from airflow_provider_plugz.retry import RetryPolicy

__all__ = ["PinStatus", "PlugzHook"]


class PlugzHook(BaseHook):
    """Talks to one Plugz instance, described by an Airflow connection of type ``plugz``.

    The connection is read and validated on first use, not in ``__init__``. One
    ``requests.Session`` per hook keeps the TCP/TLS connection alive across calls.

    :param plugz_conn_id: the Airflow connection to use.
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plugz_conn_id = plugz_conn_id
        self.retry = retry
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
        config = parse_connection(self.get_connection(self.plugz_conn_id))
        _mask(config)
        return config

    def config_extra(self, key: str) -> Any:
        """One extra of the connection, raw (e.g. a PIN stored beside the credentials)."""
        return self.get_connection(self.plugz_conn_id).extra_dejson.get(key)

    @cached_property
    def session(self) -> requests.Session:
        _redact_client_logs()
        session = requests.Session()
        # Never pick up proxies or .netrc credentials from the environment implicitly.
        session.trust_env = False
        session.verify = _verify(self.config)
        return session

    def get_conn(self) -> requests.Session:
        """The hook's ``requests.Session`` (Airflow's generic hook interface)."""
        return self.session

    def close(self) -> None:
        """Close pooled connections; the hook can still be used afterwards."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    def get_pin_status(self, *, retry: RetryPolicy | None = None) -> PinStatus:
        """Whether the instance's WhatsApp account has a two-step-verification PIN.

        :param retry: this call's retry policy; default: the hook's, else the connection's.
        :raises PlugzError: a subclass saying what went wrong and what to do.
        """
        return parse_pin_status(self.config, self._call(PIN_STATUS, retry=retry))

    def set_pin(self, code: str, *, retry: RetryPolicy | None = None) -> None:
        """Register ``code`` as the account's two-step-verification PIN (POST, JSON body).

        The PIN is registered with Airflow's secrets masker before anything else happens.
        A read timeout is never retried: the server may have applied the PIN already.

        :raises PlugzConfigurationError: ``code`` is not exactly six digits.
        :raises PlugzError: a subclass saying what went wrong and what to do.
        """
        if isinstance(code, str) and len(code) >= 5:
            mask_secret(code)
        config = self.config
        pin = validate_pin(config, code)
        check_set_pin(config, self._call(SET_PIN, {"code": pin}, retry=retry))

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection the way the PIN tasks use it, for the UI's Test button."""
        try:
            status = self.get_pin_status()
        except PlugzError as err:
            # The UI tests a copy of the connection under a random id: naming it only confuses.
            message = str(err).replace(f" for connection {self.plugz_conn_id!r}", "")
            return False, f"{type(err).__name__}: {message}"
        pin = "has a PIN set" if status.has_code else "has NO PIN set"
        return True, f"Connected to Plugz at {self.config.base_url}; the WhatsApp account {pin}."

    async def aget_pin_status(self, *, retry: RetryPolicy | None = None) -> PinStatus:
        """:meth:`get_pin_status` for event loops (the triggerer): same checks, httpx transport."""
        config = await self.aget_config()
        return parse_pin_status(config, await self._acall(config, PIN_STATUS, retry=retry))

    async def aget_config(self) -> PlugzConfig:
        """:attr:`config`, read without blocking the event loop."""
        if "config" not in self.__dict__:
            config = parse_connection(await aget_connection(self.plugz_conn_id))
            _mask(config)
            self.__dict__["config"] = config
        return self.config

    async def aclose(self) -> None:
        """Close the async client, if this hook opened one (a shared client stays open)."""
        client = self.__dict__.pop("_async_client", None)
        if client is not None and client is not self._shared_async_client:
            await client.aclose()

    def _call(
        self, endpoint: Endpoint, json_body: Any = None, *, retry: RetryPolicy | None = None
    ) -> dict[str, Any]:
        """The one way every sync API call goes: build, then send and check until done."""
        config = self.config
        request = build_request(config, endpoint, json_body)
        retrying = (retry or self.retry or config.retry).start(idempotent=endpoint.idempotent)
        while True:
            try:
                return check_response(config, endpoint, *self._send(config, request))
            except PlugzError as err:
                delay = retrying.delay_after(err)  # raises when it is time to stop
                self._log_retry(retrying.attempts, delay, err)
            _sleep(delay)

    async def _acall(
        self,
        config: PlugzConfig,
        endpoint: Endpoint,
        json_body: Any = None,
        *,
        retry: RetryPolicy | None = None,
    ) -> dict[str, Any]:
        """The one way every async API call goes: the same as :meth:`_call`, over httpx."""
        request = build_request(config, endpoint, json_body)
        retrying = (retry or self.retry or config.retry).start(idempotent=endpoint.idempotent)
        while True:
            try:
                return check_response(config, endpoint, *await self._asend(config, request))
            except PlugzError as err:
                delay = retrying.delay_after(err)
                self._log_retry(retrying.attempts, delay, err)
            await _asleep(delay)

    def _log_retry(self, attempt: int, delay: float, error: PlugzError) -> None:
        self.log.warning("Plugz attempt %d failed, retrying in %.2f s: %s", attempt, delay, error)

    def _send(self, config: PlugzConfig, request: PlugzRequest) -> tuple[int, Mapping[str, str], bytes]:
        """Send over requests; map its exceptions without letting their URL-bearing text through."""
        error: PlugzError
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
                body = b""
                for chunk in response.iter_content(chunk_size=64 * 1024):
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        break
                return response.status_code, response.headers, body
        except requests.RequestException as exc:
            error = transport_error(config, request, _requests_failure(exc), exc)
        # Raised outside the except block on purpose: requests' exceptions (and urllib3's
        # under them) quote the URL, which holds the instance token, so they must not ride
        # along as __context__ into tracebacks.
        raise error

    async def _asend(
        self, config: PlugzConfig, request: PlugzRequest
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send over httpx; the same rules as :meth:`_send`."""
        import httpx  # only the triggerer pays for it

        error: PlugzError
        try:
            client = self.__dict__.get("_async_client")
            if client is None:
                # A shared client cannot carry a connection's own CA bundle.
                shared = self._shared_async_client if config.ca_bundle is None else None
                client = self.__dict__["_async_client"] = shared or new_async_client(
                    verify=_tls_context(config)
                )
            async with client.stream(
                request.method,
                request.url,
                headers=dict(request.headers),
                content=request.body,
                timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
            ) as response:
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        break
                return response.status_code, response.headers, body
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = transport_error(config, request, _httpx_failure(exc), exc)
        raise error


def new_async_client(
    max_connections: int | None = None, verify: ssl.SSLContext | None = None
) -> httpx.AsyncClient:
    """An httpx client with our transport rules, which many hooks may share (``async_client=``).

    It pools connections per host; ``max_connections`` bounds them (default: httpx's 100).
    Redirects are never followed and proxies/.netrc are not read from the environment.
    """
    import httpx

    _redact_client_logs()
    limits = httpx.Limits(
        max_connections=max_connections or 100, max_keepalive_connections=max_connections or 20
    )
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        limits=limits,
        verify=verify if verify is not None else _default_tls_context(),
    )


class _RedactCredentialUrls(logging.Filter):
    """Rewrites log records of the HTTP clients so instance URLs lose their credentials.

    httpx logs every request's URL at INFO, urllib3 at DEBUG: with the instance token in the
    path, that is a secret in the log unless redacted here.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, ())
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


@functools.cache
def _redact_client_logs() -> None:
    for name in ("httpx", "httpcore", "urllib3.connectionpool"):
        logging.getLogger(name).addFilter(_RedactCredentialUrls())


def _requests_failure(exc: requests.RequestException) -> TransportFailure:
    if isinstance(exc, requests.ConnectTimeout):
        return TransportFailure.CONNECT_TIMEOUT
    if isinstance(exc, requests.Timeout):
        return TransportFailure.READ_TIMEOUT
    if isinstance(exc, requests.exceptions.SSLError):
        return TransportFailure.TLS
    if isinstance(exc, requests.exceptions.InvalidURL):
        return TransportFailure.INVALID_REQUEST
    # InvalidHeader here is about the answer (our own headers are validated before sending).
    return TransportFailure.NETWORK


def _httpx_failure(exc: Exception) -> TransportFailure:
    import httpx

    if isinstance(exc, httpx.ConnectTimeout):
        return TransportFailure.CONNECT_TIMEOUT
    if isinstance(exc, httpx.TimeoutException):
        return TransportFailure.READ_TIMEOUT
    if isinstance(exc, (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError)):
        return TransportFailure.INVALID_REQUEST
    if isinstance(exc, httpx.ConnectError) and "SSL" in str(exc):
        return TransportFailure.TLS
    return TransportFailure.NETWORK


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
    """Tell Airflow's secrets masker about the credentials as soon as they are read."""
    for secret in (config.instance_token, config.client_token):
        mask_secret(secret)
