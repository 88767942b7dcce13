"""The :class:`PlugzSandbox` facade: one object that owns the state, the server and its thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow_provider_plugz.testing.sandbox._app import SandboxApp
from airflow_provider_plugz.testing.sandbox._faults import check_seconds
from airflow_provider_plugz.testing.sandbox._http import loopback_host
from airflow_provider_plugz.testing.sandbox._models import DEFAULT_CLIENT_TOKEN
from airflow_provider_plugz.testing.sandbox._state import (
    DEFAULT_OUTBOX_BYTES,
    DEFAULT_OUTBOX_LIMIT,
    DEFAULT_RECORD_BYTES,
    DEFAULT_RECORD_LIMIT,
    SandboxState,
    check_state,
)
from airflow_provider_plugz.testing.sandbox._wire import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    HttpServer,
)

if TYPE_CHECKING:
    from types import TracebackType

    from airflow_provider_plugz.testing.sandbox._faults import Fault
    from airflow_provider_plugz.testing.sandbox._models import (
        InstanceKind,
        InstanceState,
        RecordedRequest,
        SandboxInstance,
        SandboxUsage,
        SentText,
    )

log = logging.getLogger("airflow_provider_plugz.testing.sandbox")


def default_max_connections() -> int:
    """1,024, or half the process's file-descriptor limit if that is lower (the other half is
    left to everything else in the process, such as a test's own client sockets)."""
    try:
        import resource
    except ImportError:  # Windows: no file-descriptor limit to mind
        return DEFAULT_MAX_CONNECTIONS
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return DEFAULT_MAX_CONNECTIONS
    return max(1, min(DEFAULT_MAX_CONNECTIONS, soft // 2))


class PlugzSandbox:
    """A Plugz-compatible HTTP server on loopback, running in a background thread.

    Use it as a context manager or call :meth:`start` / :meth:`stop`. Every method is safe to
    call from any thread while the server is answering. ``client_token=None`` means the fake
    account does not require a ``Client-Token`` header.

    Bounded in count and in bytes, so it is safe to leave running: it remembers the last
    ``record_limit`` API requests and at most ``record_bytes`` of them (targets, headers and
    bodies; :attr:`request_count` counts all) and the last ``outbox_limit`` messages sent holding
    at most ``outbox_bytes`` (ids, phones and texts as UTF-8; the oldest go first and
    :attr:`messages_dropped` counts them; an instance that is not connected queues at most 1,000
    and refuses more); it holds at most 10,000 instances (ids and tokens of at most 1 KiB) and
    10,000 queued faults of at most 64 MiB together, refusing more with
    :class:`SandboxFullError`; it accepts request bodies of at most 1 MiB (a 413 otherwise) and
    request targets of at most 8 KiB (a 414), and answers a target it cannot parse with a 400; it
    closes a connection that sends no complete request for ``idle_timeout`` seconds; it serves at
    most ``max_connections`` connections at once (default 1,024, or half the file-descriptor limit
    if lower) and answers more with a 503. :attr:`usage` shows what it holds, in its own count.
    """

    def __init__(
        self,
        client_token: str | None = DEFAULT_CLIENT_TOKEN,
        *,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        record_limit: int = DEFAULT_RECORD_LIMIT,
        record_bytes: int = DEFAULT_RECORD_BYTES,
        outbox_limit: int = DEFAULT_OUTBOX_LIMIT,
        outbox_bytes: int = DEFAULT_OUTBOX_BYTES,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_connections: int | None = None,
    ) -> None:
        self._host = loopback_host(host)
        self._requested_port = port
        if check_seconds("idle_timeout", idle_timeout) == 0:
            raise ValueError("idle_timeout must be a number of seconds > 0")
        if max_connections is None:
            max_connections = default_max_connections()
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections must be an int >= 1, got {max_connections!r}")
        self._state = SandboxState(
            client_token,
            latency=latency,
            record_limit=record_limit,
            record_bytes=record_bytes,
            outbox_limit=outbox_limit,
            outbox_bytes=outbox_bytes,
        )
        self._app = SandboxApp(self._state)
        self._server = HttpServer(
            self._app, idle_timeout=float(idle_timeout), max_connections=max_connections
        )
        self._lifecycle_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._port: int | None = None
        self._startup_error: BaseException | None = None

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None and self._thread is not None else "stopped"
        return f"<PlugzSandbox {where} instances={len(self._state.instances)}>"

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> PlugzSandbox:
        """Bind and serve in a daemon thread; returns once the port is open. No-op if running."""
        with self._lifecycle_lock:
            if self._thread is not None:
                return self
            ready = threading.Event()
            self._startup_error = None
            thread = threading.Thread(target=self._run, args=(ready,), name="plugz-sandbox", daemon=True)
            thread.start()
            ready.wait()
            if self._startup_error is not None:
                thread.join()
                error, self._startup_error = self._startup_error, None
                raise error
            self._thread = thread
        return self

    def stop(self) -> None:
        """Close every connection and join the server thread. Idempotent."""
        with self._lifecycle_lock:
            thread, loop, stop_event = self._thread, self._loop, self._stop_event
            if thread is None:
                return
            if loop is not None and stop_event is not None:
                with contextlib.suppress(RuntimeError):  # the loop already ended
                    loop.call_soon_threadsafe(stop_event.set)
            thread.join()
            self._thread = self._loop = self._stop_event = None

    def __enter__(self) -> PlugzSandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._serve(ready))
        except BaseException as exc:
            if not ready.is_set():
                self._startup_error = exc
                ready.set()
            else:
                log.exception("Plugz sandbox event loop failed")

    async def _serve(self, ready: threading.Event) -> None:
        stop_event = asyncio.Event()
        try:
            self._port = await self._server.start(self._host, self._requested_port)
        except OSError as exc:
            self._startup_error = exc
            ready.set()
            return
        self._loop = asyncio.get_running_loop()
        self._stop_event = stop_event
        ready.set()
        try:
            await stop_event.wait()
        finally:
            await self._server.close()

    # ---------------------------------------------------------------- where it listens

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._thread is not None

    @property
    def host(self) -> str:
        """The loopback address the server binds."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port (the OS's choice when constructed with ``port=0``)."""
        if self._port is None:
            raise RuntimeError("the sandbox has not been started")
        return self._port

    @property
    def _netloc(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://<host>:<port>``, what a hook uses instead of the real API's URL."""
        return f"http://{self._netloc}"

    @property
    def client_token(self) -> str | None:
        """The account's Client-Token, or None when the account requires none."""
        return self._state.client_token

    @property
    def idle_timeout(self) -> float:
        """Seconds a connection may wait without sending a complete request before it is closed."""
        return self._server.idle_timeout

    @property
    def max_connections(self) -> int:
        """The most connections served at once; more are answered with a 503 and closed."""
        return self._server.max_connections

    # ---------------------------------------------------------------- state

    @property
    def latency(self) -> float:
        """Seconds waited before every API answer (not control endpoints); settable at runtime."""
        return self._state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._state.latency = seconds

    def add_instance(
        self,
        instance_id: str,
        token: str,
        *,
        has_code: bool = False,
        kind: InstanceKind = "mobile",
        expired: bool = False,
        state: InstanceState = "connected",
        phone: str | None = None,
    ) -> SandboxInstance:
        """Create (or replace) a fake instance and return its snapshot.

        ``state`` is what ``GET .../status`` reports (see :meth:`set_state`); ``phone`` is the
        number ``GET .../device`` answers (8 to 15 digits), by default one made up from the id.
        ValueError for a bad value (an id or token longer than 1 KiB too);
        :class:`SandboxFullError` when adding a 10,001st instance.
        """
        return self._state.add_instance(
            instance_id, token, has_code=has_code, kind=kind, expired=expired, state=state, phone=phone
        )

    def remove_instance(self, instance_id: str) -> None:
        """Forget an instance and its queue (KeyError if unknown); the outbox keeps what it sent."""
        self._state.remove_instance(instance_id)

    def set_has_code(self, instance_id: str, has_code: bool) -> SandboxInstance:
        """Set whether the instance's account has a PIN (KeyError if unknown)."""
        return self._state.update(instance_id, has_code=bool(has_code))

    def set_expired(self, instance_id: str, expired: bool) -> SandboxInstance:
        """Set whether the instance's subscription has expired (KeyError if unknown)."""
        return self._state.update(instance_id, expired=bool(expired))

    def set_state(self, instance_id: str, state: InstanceState) -> SandboxInstance:
        """Set the instance's connection state (KeyError if unknown, ValueError for a bad state).

        ``"connected"``: connected, session held, phone online; messages are delivered.
        ``"disconnected"``, ``"session-lost"``, ``"phone-offline"``: ``GET .../status`` says so
        (with Plugz's ``error`` text) and sent messages wait in the queue; becoming
        ``"connected"`` delivers them.
        """
        return self._state.update(instance_id, state=check_state(state))

    def instance(self, instance_id: str) -> SandboxInstance:
        """The current snapshot of one instance (KeyError if unknown)."""
        return self._state.instance(instance_id)

    @property
    def instances(self) -> list[SandboxInstance]:
        """Snapshots of every instance."""
        return self._state.instances

    def inject(self, fault: Fault, *, times: int = 1, instance_id: str | None = None) -> None:
        """Queue ``fault`` for the next ``times`` API calls (only ``instance_id``'s, if given).

        Queued faults are consumed in FIFO order: a call takes the oldest fault that applies to it.
        :class:`SandboxFullError` if 10,000 faults are queued, or their bodies and headers would
        pass 64 MiB together.
        """
        self._state.inject(fault, times, instance_id)

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        self._state.clear_faults()

    @property
    def pending_faults(self) -> list[tuple[Fault, int, str | None]]:
        """``(fault, calls left, instance_id)`` for every queued fault, oldest first."""
        return self._state.pending_faults

    @property
    def requests(self) -> list[RecordedRequest]:
        """The most recent API requests (within ``record_limit`` and ``record_bytes``), oldest first."""
        return self._state.requests

    @property
    def request_count(self) -> int:
        """API requests received since start (or the last :meth:`reset`), recorded or not."""
        return self._state.request_count

    @property
    def messages(self) -> list[SentText]:
        """The outbox: messages accepted by ``POST .../send-text``, oldest first, all it keeps (the
        last ``outbox_limit``, within ``outbox_bytes``; :attr:`messages_dropped` counts the rest).

        ``delivered`` is False for a message still queued because its instance is not connected.
        Unlike ``GET /_sandbox/messages`` it is not paged: the bounds keep it small.
        """
        return self._state.messages

    @property
    def messages_dropped(self) -> int:
        """Messages the outbox dropped, oldest first, to stay within ``outbox_limit`` and
        ``outbox_bytes`` (a message larger than ``outbox_bytes`` alone is dropped at once), since
        start or the last :meth:`clear_messages` / :meth:`reset`."""
        return self._state.messages_dropped

    @property
    def usage(self) -> SandboxUsage:
        """What the sandbox holds now, in counts and in the bytes its bounds count."""
        return self._state.usage

    def clear_messages(self) -> None:
        """Empty the outbox and every instance's queue of undelivered messages."""
        self._state.clear_messages()

    def reset(self) -> None:
        """Forget instances, queued faults, recorded requests, the request count and messages."""
        self._state.reset()

    # ---------------------------------------------------------------- counters

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted since construction (those refused over ``max_connections`` too)."""
        return self._server.stats.connections_accepted

    @property
    def open_connections(self) -> int:
        """Connections being served right now."""
        return self._server.stats.open_connections

    @property
    def requests_in_progress(self) -> int:
        """Requests received whole and not yet answered (being answered, waiting out latency or a
        fault, dripping): 0 once the sandbox has done all it will with every request it got, so
        a test can wait for a request its client gave up on. Idle connections do not count."""
        return self._server.stats.requests_in_progress

    @property
    def buffered_bytes(self) -> int:
        """Request-body bytes the open connections hold right now (read, not yet answered); at
        most 64 MiB together: a body that would pass that gets a 503."""
        return self._server.stats.body_bytes

    @property
    def writes(self) -> int:
        """``writer.write`` calls made for responses: one per response, one per byte of a drip.

        A drip that stopped (its client closed) stops this count growing.
        """
        return self._server.stats.writes

    @property
    def responses(self) -> int:
        """Responses sent, including interim ``100 Continue`` and control-endpoint answers."""
        return self._server.stats.responses

    @property
    def max_in_flight(self) -> int:
        """The most API calls that were waiting out latency or a delay at the same time."""
        return self._app.max_in_flight

    # ---------------------------------------------------------------- Airflow connections

    def connection_uri(self, instance_id: str, conn_type: str = "plugz") -> str:
        """An Airflow connection URI for one instance (login = id, password = token)."""
        instance = self.instance(instance_id)
        login, password = quote(instance.instance_id, safe=""), quote(instance.token, safe="")
        uri = f"{conn_type}://{login}:{password}@{self._netloc}"
        if self.client_token is not None:
            uri += f"?client_token={quote(self.client_token, safe='')}"
        return uri

    def connection_json(self, instance_id: str, conn_type: str = "plugz") -> str:
        """The JSON form of an Airflow connection for one instance, for ``AIRFLOW_CONN_<ID>``."""
        instance = self.instance(instance_id)
        extra = {} if self.client_token is None else {"client_token": self.client_token}
        return json.dumps(
            {
                "conn_type": conn_type,
                "host": self.base_url,
                "login": instance.instance_id,
                "password": instance.token,
                "extra": extra,
            },
            separators=(",", ":"),
        )
