"""The attempt's deadline (``total_timeout``) over real loopback sockets, in every phase it can fall in:
``transports/requests_deadline.py`` (the sync transport's watchdog and deadline-aware connections),
with the httpx transport (whose deadline is asyncio's) held to the same rows. Its message's wording
is tested in tests/transports/test_failures.py.

From the start of an attempt to its last byte, whatever holds it up - a full accept backlog, a
slow name lookup, a stalled or dripped TLS handshake, silence before the headers, dripped
headers, a dripped body with or without a length, a stall after the headers, a kept-alive
connection that starts to drip - the call ends at its deadline (plus a bounded margin) on both
transports, and its message gives the time the attempt really took.

A deadline that passed before the request was written is a ``PlugzConnectTimeoutError`` ("the
request was not sent": a PIN may be set again); after that, a ``PlugzReadTimeoutError`` (it may
have left). The sandbox plays the slow answers (``Fault.slow``, ``Fault.drip``);
:class:`Misbehaving` plays, on a raw socket, what happens before an HTTP answer or outside the
sandbox's framing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import re
import select
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.exceptions import (
    PlugzConnectTimeoutError,
    PlugzError,
    PlugzReadTimeoutError,
)
from airflow_provider_plugz.hooks.plugz import PinStatus, PlugzHook, preload_async_transport
from airflow_provider_plugz.testing import Fault
from tests.conftest import assert_no_secrets
from tests.support.hooks import TRANSPORTS, set_connection

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from airflow_provider_plugz.testing import PlugzSandbox

TOTAL = 0.5  # total_timeout of every row
MARGIN = 1.0  # how far past the deadline a call may end (a bound, not a benchmark)
INTERVAL = 0.05  # the pace of every drip
SLOW = 10.0  # a wait far past the deadline
#: Per-read and connect timeouts far past the deadline: only the deadline can stop a row.
EXTRA = {"total_timeout": TOTAL, "read_timeout": 5, "connect_timeout": 5, "max_attempts": 1}
ANSWER = b'{"success":true,"hasCode":false}'
LENGTH = b"Content-Length: %d\r\n\r\n" % len(ANSWER)
NOT_SENT = f"within its {TOTAL:g} s deadline (total_timeout), stopped after"
TOO_SLOW = f"did not complete within its {TOTAL:g} s deadline, stopped after"
STOPPED_AFTER = re.compile(r"stopped after (\d+\.\d\d) s")


# --- a server that misbehaves below HTTP -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Script:
    """What :class:`Misbehaving` does.

    :param full_backlog: seconds its accept queue stays full at first: a connect made meanwhile
        hangs until the client's SYN is sent again (~1 s on Linux), or until it gives up.
    :param tls: read a TLS ClientHello instead of an HTTP request.
    :param head: sent at once once the request is in.
    :param drip: then sent one byte every :data:`INTERVAL`; after it the connection is held open.
    :param certificate: serve HTTPS with this context (it then reads an HTTP request over TLS).
    """

    full_backlog: float = 0.0
    tls: bool = False
    head: bytes = b""
    drip: bytes = b""
    certificate: ssl.SSLContext | None = None


class Misbehaving:
    """A loopback server playing one :class:`Script` on every connection, from :meth:`start` on.

    Its accept queue is filled when it is made; the script's ``full_backlog`` counts from
    :meth:`start`, so that whatever the client does first cannot use the time up.
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests = 0
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=0)
        self.port: int = self._listener.getsockname()[1]
        self._fillers = self._fill_backlog() if script.full_backlog else []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]

    def _fill_backlog(self) -> list[socket.socket]:
        """Connect until a connect hangs: the accept queue is full (its SYNs are dropped)."""
        fillers: list[socket.socket] = []
        for _ in range(8):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", self.port))
            _, writable, _ = select.select([], [sock], [], 0.2)
            if writable and not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                fillers.append(sock)
                continue
            sock.close()
            return fillers
        raise AssertionError("the accept queue never filled up")

    def start(self) -> None:
        self._threads[0].start()

    def stop(self) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(5)
        for sock in (*self._fillers, self._listener):
            sock.close()

    def _accept(self) -> None:
        if self._stop.wait(self.script.full_backlog):
            return
        for filler in self._fillers:
            filler.close()
        self._listener.settimeout(INTERVAL)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        if self.script.certificate is not None:
            conn.settimeout(5)
            try:
                conn = self.script.certificate.wrap_socket(conn, server_side=True)
            except OSError:
                conn.close()
                return
        with conn:
            conn.settimeout(INTERVAL)
            if not self._read_request(conn):
                return
            try:
                conn.sendall(self.script.head)
                for byte in self.script.drip:
                    if self._stop.wait(INTERVAL):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return  # the client is gone
            while not self._stop.is_set() and self._receive(conn) != b"":
                pass  # held open until the client leaves

    def _read_request(self, conn: socket.socket) -> bool:
        data = b""
        while not self._stop.is_set():
            chunk = self._receive(conn)
            if chunk == b"":
                return False  # a filler, closed
            data += chunk or b""
            if self.script.tls and data:
                break  # a ClientHello
            head, sep, body = data.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if sep and len(body) >= (int(length.group(1)) if length else 0):
                break
        else:
            return False
        self.requests += 1
        return True

    @staticmethod
    def _receive(conn: socket.socket) -> bytes | None:
        """What arrived (b"" when the client closed), or None when nothing did for a while."""
        try:
            return conn.recv(65536)
        except TimeoutError:
            return None
        except OSError:
            return b""


HTTP_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
#: A TLS record header announcing a 16 KiB handshake record: the client waits for all of it.
TLS_RECORD = b"\x16\x03\x03\x40\x00"


# --- the table -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    """One way to hold an attempt up.

    ``fault`` is played by the sandbox, ``script`` by :class:`Misbehaving` (the connection then
    points at it, over ``scheme``). ``lookup`` delays name resolution of ``localhost`` (the
    connection's host then) by that many seconds; ``warm`` makes one good call on the same hook
    first, so the attempt reuses a kept-alive connection. ``post`` sets a PIN instead of reading it.
    """

    error: type[PlugzError]
    says: str
    fault: Fault | None = None
    script: Script | None = None
    scheme: str = "http"
    lookup: float = 0.0
    warm: bool = False
    post: bool = False


ROWS = [
    # --- before the request is written: it never left -------------------------------------------
    pytest.param(
        Row(
            PlugzConnectTimeoutError,
            NOT_SENT,
            script=Script(full_backlog=0.3, head=HTTP_HEAD + LENGTH, drip=ANSWER),
        ),
        id="connect-held-by-full-backlog-then-dripped-body",
    ),
    pytest.param(
        Row(
            PlugzConnectTimeoutError,
            NOT_SENT,
            script=Script(full_backlog=0.3, head=HTTP_HEAD + LENGTH + ANSWER),
            post=True,
        ),
        id="post-connect-held-by-full-backlog",
    ),
    pytest.param(Row(PlugzConnectTimeoutError, NOT_SENT, lookup=1.5), id="slow-name-lookup"),
    pytest.param(
        Row(PlugzConnectTimeoutError, NOT_SENT, script=Script(tls=True), scheme="https"),
        id="tls-handshake-stalls",
    ),
    pytest.param(
        Row(
            PlugzConnectTimeoutError,
            NOT_SENT,
            script=Script(tls=True, head=TLS_RECORD, drip=bytes(2000)),
            scheme="https",
        ),
        id="tls-handshake-drips",
    ),
    # --- after it may have left ---------------------------------------------------------------------
    pytest.param(
        Row(PlugzReadTimeoutError, TOO_SLOW, fault=Fault.slow(SLOW)), id="silent-before-the-headers"
    ),
    pytest.param(
        Row(PlugzReadTimeoutError, TOO_SLOW, fault=Fault.drip(INTERVAL, head=True)), id="dripped-headers"
    ),
    pytest.param(Row(PlugzReadTimeoutError, TOO_SLOW, fault=Fault.drip(INTERVAL)), id="dripped-body"),
    pytest.param(Row(PlugzReadTimeoutError, TOO_SLOW, fault=Fault.drip(SLOW)), id="stall-after-the-headers"),
    pytest.param(
        Row(
            PlugzReadTimeoutError,
            TOO_SLOW,
            # No length: the body ends when the server closes; http.client lets go of the socket.
            script=Script(head=HTTP_HEAD + b"Connection: close\r\n\r\n", drip=ANSWER * 8),
        ),
        id="dripped-body-until-close",
    ),
    pytest.param(
        Row(
            PlugzReadTimeoutError,
            TOO_SLOW,
            script=Script(head=HTTP_HEAD + b"Transfer-Encoding: chunked\r\n\r\n", drip=b"1\r\n{\r\n" * 40),
        ),
        id="dripped-chunks",
    ),
    pytest.param(
        Row(PlugzReadTimeoutError, TOO_SLOW, fault=Fault.drip(INTERVAL), warm=True),
        id="kept-alive-connection-then-dripped-body",
    ),
    pytest.param(
        Row(PlugzReadTimeoutError, TOO_SLOW, fault=Fault.drip(INTERVAL), post=True), id="post-dripped-body"
    ),
]


# --- running a row ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _async_transport_loaded() -> None:
    """httpx's first import is not any row's attempt."""
    preload_async_transport()


def slow_lookups(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Resolving ``localhost`` takes ``seconds`` (over the loopback-only guard, which stays)."""
    guarded = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("localhost", b"localhost"):  # anyio asks with bytes
            time.sleep(seconds)
        return guarded(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def attempt(transport: str, row: Row, arm: Callable[[], None]) -> tuple[PlugzError, float]:
    """Make the row's call on a new hook (after one good call for ``warm``, then ``arm()``):
    the error it raised and the seconds the call took, measured around the call alone (the
    connection is read before)."""
    hook = PlugzHook()
    if transport == "sync":
        if row.warm:
            hook.get_pin_status()
        assert hook.config  # read before the clock starts: reading it is no part of an attempt
        arm()
        started = time.monotonic()
        try:
            if row.post:
                hook.set_pin("482913")
            else:
                hook.get_pin_status()
        except PlugzError as err:
            return err, time.monotonic() - started
        finally:
            hook.close()
        pytest.fail("the call succeeded")

    async def run() -> tuple[PlugzError, float]:
        try:
            if row.warm:
                await hook.aget_pin_status()
            await hook.aget_config()
            arm()
            started = time.monotonic()
            try:
                if row.post:
                    await hook.aset_pin("482913")
                else:
                    await hook.aget_pin_status()
            except PlugzError as err:
                return err, time.monotonic() - started
        finally:
            await hook.aclose()
        pytest.fail("the call succeeded")

    return asyncio.run(run())


@pytest.fixture
def misbehaving() -> Iterator[Callable[[Script], Misbehaving]]:
    """Makes :class:`Misbehaving` servers (not started yet), stopped after the test."""
    servers: list[Misbehaving] = []

    def make(script: Script) -> Misbehaving:
        servers.append(Misbehaving(script))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("row", ROWS)
def test_the_deadline_holds_in_every_phase(
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    misbehaving: Callable[[Script], Misbehaving],
    transport: str,
    row: Row,
) -> None:
    host = sandbox.base_url
    server = None if row.script is None else misbehaving(row.script)
    if server is not None:
        host = f"{row.scheme}://127.0.0.1:{server.port}"
    elif row.lookup:
        host = f"http://localhost:{sandbox.port}"
        slow_lookups(monkeypatch, row.lookup)
    set_connection(monkeypatch, sandbox, host=host, extra=EXTRA)

    def arm() -> None:
        if row.fault is not None:
            sandbox.inject(row.fault)
        if server is not None:
            server.start()

    error, took = attempt(transport, row, arm)

    message = str(error)
    assert took < TOTAL + MARGIN, f"the call took {took:.2f} s: {message}"
    assert type(error) is row.error, error
    assert row.says in message
    found = STOPPED_AFTER.search(message)
    assert found, message
    said = float(found.group(1))
    assert said >= TOTAL  # the real time, never the deadline's
    assert took - 0.3 <= said <= took + 0.01  # rounded up to the hundredth
    assert_no_secrets(message)
    assert ("the request was not sent" in message) is (row.error is PlugzConnectTimeoutError)
    if row.post:
        assert "482913" not in message
        assert error.attempts == 1


# --- the scenes themselves -------------------------------------------------------------------------------


def test_a_full_backlog_holds_a_connect_for_about_a_second(
    misbehaving: Callable[[Script], Misbehaving],
) -> None:
    """What the backlog rows rely on: a connect made while the accept queue is full waits for
    its SYN to be sent again, although the server starts accepting much sooner."""
    server = misbehaving(Script(full_backlog=0.3))
    server.start()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):
        took = time.monotonic() - started
    assert 0.6 < took < 4.0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_connect_held_by_a_full_backlog_succeeds_within_a_longer_deadline(
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    misbehaving: Callable[[Script], Misbehaving],
    transport: str,
) -> None:
    """The rows' server answers a client that waits long enough: only the deadline failed them."""
    server = misbehaving(Script(full_backlog=0.3, head=HTTP_HEAD + LENGTH + ANSWER))
    set_connection(
        monkeypatch, sandbox, host=f"http://127.0.0.1:{server.port}", extra={**EXTRA, "total_timeout": 5}
    )
    hook = PlugzHook()

    async def run() -> PinStatus:
        try:
            await hook.aget_config()
            server.start()
            return await hook.aget_pin_status()
        finally:
            await hook.aclose()

    started = time.monotonic()
    if transport == "sync":
        assert hook.config
        server.start()
        started = time.monotonic()
        assert hook.get_pin_status() == PinStatus(has_code=False)
    else:
        assert asyncio.run(run()) == PinStatus(has_code=False)
    assert time.monotonic() - started > 0.6  # the connect was held
    assert server.requests == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_pin_stopped_by_the_deadline_before_sending_is_sent_on_the_next_attempt(
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    misbehaving: Callable[[Script], Misbehaving],
    transport: str,
    retry_sleeps: list[float],
) -> None:
    """The send-once rule: a deadline that passed while connecting means the PIN never left, so
    the next attempt may send it - and the server then gets it exactly once."""
    server = misbehaving(Script(full_backlog=0.3, head=HTTP_HEAD + LENGTH + ANSWER))
    set_connection(
        monkeypatch, sandbox, host=f"http://127.0.0.1:{server.port}", extra={**EXTRA, "max_attempts": 2}
    )
    hook = PlugzHook()

    async def run() -> None:
        try:
            await hook.aget_config()
            server.start()
            await hook.aset_pin("482913")
        finally:
            await hook.aclose()

    if transport == "sync":
        assert hook.config
        server.start()
        hook.set_pin("482913")
    else:
        asyncio.run(run())
    assert len(retry_sleeps) == 1  # the first attempt failed at its deadline, while connecting
    assert server.requests == 1


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open descriptors in /proc")
def test_the_watch_keeps_no_descriptor_open(sandbox: PlugzSandbox) -> None:
    """Each attempt holds a duplicate of its socket: it is closed when the attempt ends."""
    hook = PlugzHook()
    hook.get_pin_status()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        hook.get_pin_status()  # over the kept-alive connection
    assert len(os.listdir("/proc/self/fd")) <= before
    assert sandbox.connections_accepted == 1


def self_signed_localhost(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a new certificate for the name ``localhost`` only (no IP address),
    and the path of that certificate as a CA bundle for the connection."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "localhost.pem", directory / "localhost.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_https_by_host_name_checks_that_name_while_the_deadline_resolves_it(
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    misbehaving: Callable[[Script], Misbehaving],
    tmp_path: Path,
    transport: str,
) -> None:
    """The sync transport resolves the name itself (within the deadline) and connects to an
    address: the TLS check must still use the name (the certificate has no IP address), and an
    address that refuses is skipped for the next, as urllib3 itself does."""
    context, ca_bundle = self_signed_localhost(tmp_path)
    server = misbehaving(Script(head=HTTP_HEAD + LENGTH + ANSWER, certificate=context))
    server.start()
    guarded = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        found = guarded(host, *args, **kwargs)
        if host in ("localhost", b"localhost"):  # first an address where nothing listens
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", server.port)), *found]
        return found

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    set_connection(
        monkeypatch,
        sandbox,
        host=f"https://localhost:{server.port}",
        extra={**EXTRA, "total_timeout": 10, "ca_bundle": str(ca_bundle)},
    )
    hook = PlugzHook()
    if transport == "sync":
        assert hook.get_pin_status() == PinStatus(has_code=False)
    else:

        async def run() -> PinStatus:
            try:
                return await hook.aget_pin_status()
            finally:
                await hook.aclose()

        assert asyncio.run(run()) == PinStatus(has_code=False)
    assert server.requests == 1
