"""The requests transport's deadline: one attempt, from its start to the last byte, within ``total_timeout``.

Per-read timeouts alone let a server that drips one byte at a time hold a call forever, and
neither requests nor urllib3 bounds an attempt as a whole. Here:

- :func:`watch_attempt` starts a :class:`_Watch` for the calling thread's next attempt; one
  daemon thread for the whole process (:class:`_Watchdog`, started on the first attempt, never
  at import) fires the watches whose deadline passed;
- :class:`DeadlineAdapter` mounts urllib3 pools whose connections keep the current watch:
  resolving and connecting get no more than the time left, and the open socket is held so that
  the watchdog can shut it down (which wakes up whatever blocks on it).

:mod:`.sync_requests` uses both; nothing else does.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import heapq
import ipaddress
import itertools
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util.connection import allowed_gai_family

from airflow_provider_plugz.transports.failures import TransportFailure

if TYPE_CHECKING:
    from collections.abc import Callable


def watch_attempt(seconds: float) -> _Watch:
    """Start keeping the calling thread's next attempt within ``seconds``; ``finish()`` ends it."""
    return _WATCHDOG.watch(seconds)


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


class _Watched(HTTPConnection):
    """What both watched connections add to urllib3's: the attempt's watch sees each step."""

    def _new_conn(self) -> socket.socket:
        return _new_conn_watched(self, super()._new_conn)

    def connect(self) -> None:
        _connect_watched(self, super().connect)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _request_watched(self)
        super().request(*args, **kwargs)


class _WatchedHTTPConnection(_Watched):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections keep the attempt's deadline (see :class:`_Watch`)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
