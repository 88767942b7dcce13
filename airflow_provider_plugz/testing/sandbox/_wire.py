"""HTTP/1.1 on asyncio streams, requests parsed by h11: the only module that touches sockets.

Each connection reads requests with h11 (keep-alive, pipelining, ``Expect: 100-continue``,
chunked or sized bodies up to 1 MiB) and hands each complete one to the application. Its answer
is rendered here, by :func:`render`, into one bytes object and written in **one** ``write`` call: a
response written in two pieces on a keep-alive connection stalls ~40 ms per request (Nagle's
algorithm on our side meets delayed ACK on the client's); the ``writes`` and ``responses``
counters let a test hold us to that. h11 does not render answers: a hostile fault's headers
(which h11 rightly refuses to send) must go out exactly as given, and h11's serializer would
cost as much CPU again as its parser. So every request cycle gets a fresh h11 parser, fed the
bytes the previous one had read past its request (pipelining).

Safe to leave running: a connection that sends no complete request (or does not read our answer)
for ``idle_timeout`` seconds is closed, with a 408 if it had begun a request; at most
``max_connections`` are served at once, later ones get a 503 and are closed; a body over 1 MiB
gets a 413, and one that would take the bodies all connections hold past 64 MiB a 503 (a
head still incomplete past 64 KiB gets h11's 431); a request h11 cannot
parse gets its 4xx/5xx answer and a close, never a traceback in the log; so does a request target
that :func:`~._http.parse_target` refuses (asterisk- or authority-form, a malformed URL, bad
percent-encoding: 400; longer than 8 KiB: 414).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

import h11

from airflow_provider_plugz.testing.sandbox._http import (
    Reply,
    Request,
    Target,
    TargetError,
    json_bytes,
    parse_target,
    reason,
)
from airflow_provider_plugz.testing.sandbox._models import Headers
from airflow_provider_plugz.testing.sandbox._render import render

log = logging.getLogger("airflow_provider_plugz.testing.sandbox")

DEFAULT_IDLE_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 1024
MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
#: The most request-body bytes all connections together hold at once (read, not yet answered);
#: a body that would pass it gets a 503, so ``max_connections`` bodies of 1 MiB cannot pile up.
MAX_BODIES = 64 * 1024 * 1024
_BACKLOG = 4096
_READ_SIZE = 64 * 1024
# How often a drip looks whether its client has gone while it waits between bytes.
_DRIP_POLL = 0.05
# After refusing a request, what the client still sends is read and dropped for this long (and up
# to this much), so that closing does not reset the connection before the client reads our answer.
_LINGER_SECONDS = 1.0
_LINGER_BYTES = 4 * 1024 * 1024
# The idle sweep runs every quarter of the idle timeout, at least once a second.
_SWEEPS_PER_TIMEOUT = 4
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

_T = TypeVar("_T")
App = Callable[[Request], Awaitable[Reply | None]]


@dataclasses.dataclass
class WireStats:
    """Counters of the event loop thread (plain ints: safe to read from any thread)."""

    connections_accepted: int = 0
    open_connections: int = 0
    requests_in_progress: int = 0
    writes: int = 0
    responses: int = 0
    body_bytes: int = 0


def _safe_message(exc: h11.RemoteProtocolError) -> str:
    """h11's reason for refusing a request, without the bytes it quotes (a URL may hold a token)."""
    text = str(exc)
    for marker in (": bytearray(", ": b'", ': b"'):
        text = text.split(marker, 1)[0]
    return text


class _Idle(Exception):
    """The client kept the connection waiting for ``idle_timeout``."""


class HttpServer:
    """Serves an application over HTTP/1.1 on one listening socket (run it in an event loop)."""

    def __init__(self, app: App, *, idle_timeout: float, max_connections: int) -> None:
        self.app = app
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.stats = WireStats()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._connections: dict[asyncio.Task[None], _Connection] = {}

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host``:``port`` (0: any free port); returns the bound port."""
        self._server = await asyncio.start_server(self._handle, host, port, backlog=_BACKLOG)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and end every connection (a drip or a latency wait included)."""
        server, sweeper = self._server, self._sweeper
        if server is None or sweeper is None:
            return
        server.close()
        sweeper.cancel()
        # Let connections accepted in this very iteration start their handler, so that the handler
        # registers itself and its transport gets closed below.
        await asyncio.sleep(0)
        tasks = [sweeper, *self._connections]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)
        self._server = self._sweeper = None

    async def _sweep(self) -> None:
        """Close connections that have kept us waiting past their deadline (one task for all:
        cheaper than a timer per read)."""
        loop = asyncio.get_running_loop()
        interval = min(self.idle_timeout / _SWEEPS_PER_TIMEOUT, 1.0)
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for task, connection in list(self._connections.items()):
                deadline = connection.deadline
                if deadline is not None and now >= deadline:
                    connection.timed_out = True
                    task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        stats = self.stats
        stats.connections_accepted += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if stats.open_connections >= self.max_connections:
            self._refuse(writer)
            return
        stats.open_connections += 1
        connection = self._connections[task] = _Connection(self, task, reader, writer)
        aborted = False
        try:
            await connection.serve()
        except asyncio.CancelledError:
            # Only close() cancels us (the sweeper's cancellations are caught where we wait).
            # Ending normally matters: Python 3.11's stream callback calls task.exception() on
            # the finished task, which raises for a cancelled one.
            aborted = True
        except ConnectionError:
            aborted = True  # the peer is gone: nothing to flush
        except Exception:
            aborted = True
            log.exception("Plugz sandbox connection handler failed")
        finally:
            connection.release()
            stats.open_connections -= 1
            del self._connections[task]
            if aborted:
                writer.transport.abort()
            else:
                writer.close()

    def _refuse(self, writer: asyncio.StreamWriter) -> None:
        """Answer a connection over ``max_connections`` with a 503 before it asks, and close it."""
        body = json_bytes(
            {
                "error": "Service Unavailable",
                "message": f"the sandbox serves at most {self.max_connections} connections at once; "
                "close idle ones or raise max_connections",
            }
        )
        self.stats.writes += 1
        self.stats.responses += 1
        writer.write(render(503, body, headers=(("Retry-After", "1"),), keep_alive=False))
        writer.close()


class _Connection:
    """One client connection: requests in through h11, answers out in one write each."""

    __slots__ = (
        "_app",
        "_eof",
        "_h11",
        "_head_only",
        "_held",
        "_keep_alive",
        "_loop",
        "_pending",
        "_reader",
        "_server",
        "_stats",
        "_task",
        "_transport",
        "_writer",
        "deadline",
        "timed_out",
    )

    def __init__(
        self,
        server: HttpServer,
        task: asyncio.Task[None],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._server = server
        self._app = server.app
        self._stats = server.stats
        self._task = task
        self._reader = reader
        self._writer = writer
        self._transport = writer.transport
        self._loop = asyncio.get_running_loop()
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._pending = False  # whether the parser holds bytes of the next request
        self._eof = False
        self._head_only = False
        self._keep_alive = True
        self._held = 0  # bytes of the current request's body, counted in stats.body_bytes
        #: Loop time by which the client must send (or read) what we wait for; None while we work.
        self.deadline: float | None = None
        #: Set by the sweeper when it cancels us for being idle.
        self.timed_out = False

    async def serve(self) -> None:
        while True:
            request = await self._next_request()
            if request is None:
                return
            self._stats.requests_in_progress += 1
            try:
                try:
                    answer = await self._app(request)
                except Exception:
                    log.exception("Plugz sandbox failed to answer a %s request", request.method)
                    await self._send_error(500, "the sandbox failed to answer; see its log")
                    return
                if answer is None:
                    return  # a drop fault: close without answering
                if not await self._send(answer):
                    return  # the client went away during a drip
            finally:
                self._stats.requests_in_progress -= 1
            if answer.close or not self._keep_alive:
                return
            # A fresh parser for the next request, fed what this one read past its request.
            trailing = self._h11.trailing_data[0]
            self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
            self._pending = bool(trailing)
            if trailing:
                self._h11.receive_data(trailing)

    # ---------------------------------------------------------------- reading

    def release(self) -> None:
        """Stop counting the current request's body (answered, or the connection is ending)."""
        self._stats.body_bytes -= self._held
        self._held = 0

    async def _next_request(self) -> Request | None:
        """The next complete request; None once the connection is to be closed (after an error
        answer, an idle timeout, or the client closing it)."""
        self.release()
        conn = self._h11
        deadline = self._loop.time() + self._server.idle_timeout
        self._head_only, self._keep_alive = False, True
        head: h11.Request | None = None
        target: Target | None = None
        headers = Headers()
        body = b""
        need_data = not self._pending  # a fresh parser with nothing buffered: read before asking it
        while True:
            if need_data:
                if conn.they_are_waiting_for_100_continue:
                    conn.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
                    self._write(_CONTINUE)
                try:
                    data = await self._wait(self._reader.read(_READ_SIZE), deadline)
                except _Idle:
                    if conn.their_state is not h11.IDLE or conn.trailing_data[0]:
                        timeout = self._server.idle_timeout
                        await self._send_error(408, f"no complete request within {timeout:g} s", linger=False)
                    return None
                if not data:
                    self._eof = True
                elif data[:1] in b"\r\n" and conn.their_state is h11.IDLE and not conn.trailing_data[0]:
                    # RFC 9112 2.2: ignore blank lines before a request line (h11 does not).
                    data = data.lstrip(b"\r\n")
                    if not data:
                        continue
                conn.receive_data(data)
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if not self._eof:  # else the client is gone: nobody to answer
                    await self._send_error(exc.error_status_hint, _safe_message(exc))
                return None
            need_data = event is h11.NEED_DATA
            if type(event) is h11.Request:
                head = event
                checked = self._check_head(event, headers)
                if not isinstance(checked, Target):
                    await self._send_error(*checked)
                    return None
                target = checked
            elif type(event) is h11.Data:
                body += event.data
                refusal = self._hold(len(body), len(event.data))
                if refusal is not None:
                    await self._send_error(*refusal)
                    return None
            elif type(event) is h11.EndOfMessage and head is not None and target is not None:
                return Request(
                    head.method.decode("ascii"),
                    head.target.decode("latin-1"),
                    target.path,
                    headers,
                    body,
                    target.query,
                    target.authority,
                )
            elif not need_data:  # ConnectionClosed: the client closed between requests
                return None

    def _hold(self, size: int, more: int) -> tuple[int, str] | None:
        """Count ``more`` bytes of a body now ``size`` long; the error answer if it is too much."""
        if size > MAX_BODY:
            return 413, f"request body larger than {MAX_BODY} bytes"
        if self._stats.body_bytes + more > MAX_BODIES:
            return 503, f"the sandbox holds {MAX_BODIES} bytes of request bodies already; retry later"
        self._stats.body_bytes += more
        self._held += more
        return None

    def _check_head(self, event: h11.Request, headers: Headers) -> Target | tuple[int, str]:
        """Fill ``headers`` from a request head; its target taken apart, or the error answer
        (status, message) for a head we refuse."""
        for name, value in event.headers:
            key, text = name.decode("latin-1"), value.decode("latin-1")
            previous = dict.get(headers, key)
            dict.__setitem__(headers, key, text if previous is None else f"{previous}, {text}")
        self._head_only = event.method == b"HEAD"
        connection = dict.get(headers, "connection")
        self._keep_alive = event.http_version == b"1.1" and (
            connection is None or "close" not in {token.strip().lower() for token in connection.split(",")}
        )
        if event.http_version not in (b"1.0", b"1.1"):
            self._keep_alive = False
            return 505, f"HTTP/{event.http_version.decode('ascii')} is not supported"
        length = dict.get(headers, "content-length")
        if length is not None and "transfer-encoding" in headers:
            return 400, "both Transfer-Encoding and Content-Length"
        if length is not None and int(length) > MAX_BODY:
            return 413, f"request body larger than {MAX_BODY} bytes"
        try:
            return parse_target(event.target.decode("latin-1"))
        except TargetError as exc:
            return exc.status, exc.message

    async def _wait(self, awaitable: Awaitable[_T], deadline: float) -> _T:
        """``await awaitable`` (a read or a drain); :class:`_Idle` if the sweeper finds it still
        waiting after ``deadline``."""
        self.deadline = deadline
        try:
            return await awaitable
        except asyncio.CancelledError:
            if not self.timed_out:
                raise  # close() is stopping the sandbox
            uncancel = getattr(self._task, "uncancel", None)  # Python 3.11+
            if uncancel is not None:
                uncancel()
            raise _Idle from None
        finally:
            self.deadline = None

    # ---------------------------------------------------------------- writing

    def _write(self, data: bytes, *, response: bool = True) -> None:
        # Counted first, so a client that has the bytes also sees them counted.
        self._stats.writes += 1
        if response:
            self._stats.responses += 1
        self._writer.write(data)

    async def _flush(self) -> None:
        """Wait until the client has taken what we wrote; abort if it has not in ``idle_timeout``."""
        if self._transport.get_write_buffer_size():
            try:
                await self._wait(self._writer.drain(), self._loop.time() + self._server.idle_timeout)
            except _Idle:
                raise ConnectionAbortedError("the client does not read its answer") from None

    async def _send(self, answer: Reply) -> bool:
        """Write ``answer``; False if the client went away first (during a drip)."""
        if answer.raw is not None:
            if answer.raw:
                self._write(answer.raw)
                await self._flush()
            return True
        data = render(
            answer.status,
            answer.body,
            answer.content_type,
            answer.headers,
            keep_alive=self._keep_alive,
            head_only=self._head_only,
        )
        if answer.drip_interval:
            return await self._drip(data, answer.drip_interval, answer.drip_head)
        self._write(data)
        await self._flush()
        return True

    async def _send_error(self, status: int, message: str, *, linger: bool = True) -> None:
        """Answer a request we refuse (or one that timed out, or failed); the connection then closes."""
        self._keep_alive = False
        body = json_bytes({"error": reason(status), "message": message})
        self._write(render(status, body, keep_alive=False, head_only=self._head_only))
        await self._flush()
        if linger:
            await self._linger()

    async def _linger(self) -> None:
        """Half-close, then read and drop what the client still sends (a body we refused, the rest
        of a head too large) for a moment: closing with unread data would reset the connection,
        and a reset can destroy our answer before the client reads it."""
        if self._eof or not self._writer.can_write_eof():
            return
        self._writer.write_eof()
        deadline = self._loop.time() + min(_LINGER_SECONDS, self._server.idle_timeout)
        dropped = 0
        with contextlib.suppress(_Idle):
            while dropped < _LINGER_BYTES:
                data = await self._wait(self._reader.read(_READ_SIZE), deadline)
                if not data:
                    return
                dropped += len(data)

    async def _drip(self, data: bytes, interval: float, head: bool) -> bool:
        """Write ``data`` one byte per ``interval``; False if the client went away first.

        Between bytes it looks every ``_DRIP_POLL`` seconds whether the client has closed (EOF on
        our side) so that a client giving up ends the drip at once, not a long interval later.
        """
        self._stats.responses += 1
        reader, writer, loop = self._reader, self._writer, self._loop
        start = 0 if head else data.find(b"\r\n\r\n") + 4
        if start:
            self._write(data[:start], response=False)
            await self._flush()
        for index in range(start, len(data)):
            deadline = loop.time() + interval
            while True:
                if reader.at_eof() or writer.is_closing():
                    return False
                left = deadline - loop.time()
                if left <= 0:
                    break
                await asyncio.sleep(min(left, _DRIP_POLL))
            self._write(data[index : index + 1], response=False)
            await self._flush()
        return True
