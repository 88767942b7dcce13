"""A local, Plugz-compatible HTTP/1.1 server for tests, demos and users' own test suites.

Pure standard library (no Airflow, no third-party import) so it also runs where Airflow is not
installed. An ``asyncio`` server runs in a daemon thread owned by :class:`PlugzSandbox`; the
test thread changes its state (instances, PINs, faults, latency) under a lock while it serves.

Run ``python -m airflow_provider_plugz.testing.sandbox --help`` to serve it from a shell.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hmac
import ipaddress
import json
import logging
import shlex
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeVar, get_args, overload
from urllib.parse import quote, unquote, urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from types import FrameType, TracebackType

__all__ = [
    "DEFAULT_CLIENT_TOKEN",
    "DEFAULT_INSTANCE_ID",
    "DEFAULT_INSTANCE_TOKEN",
    "Fault",
    "FaultKind",
    "Headers",
    "InstanceKind",
    "PlugzSandbox",
    "RecordedRequest",
    "SandboxInstance",
    "main",
]

log = logging.getLogger(__name__)

DEFAULT_CLIENT_TOKEN = "sandbox-client-token"  # noqa: S105 - a published fixture value
DEFAULT_INSTANCE_ID = "sandbox-instance"
DEFAULT_INSTANCE_TOKEN = "sandbox-token"  # noqa: S105 - a published fixture value

FaultKind = Literal["status", "html", "malformed", "drop", "slow", "redirect", "drip", "raw"]
InstanceKind = Literal["mobile", "web"]

_T = TypeVar("_T")

_BACKLOG = 4096
_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024
_JSON = "application/json; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_CONTROL_PREFIX = "/_sandbox"
# How often a drip fault looks whether its client has gone while it waits between bytes.
_DRIP_POLL = 0.05


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# Bodies that every hot path answers with are encoded once.
_NOT_FOUND = _json_bytes({"error": "NOT_FOUND", "message": "Unable to find matching target resource method"})
_NULL_NOT_ALLOWED = _json_bytes({"error": "null not allowed"})
_INSTANCE_NOT_FOUND = _json_bytes({"error": "Instance not found"})
_EXPIRED = _json_bytes({"error": "To continue sending a message, you must subscribe to this instance again"})
_MOBILE_ONLY = _json_bytes({"error": "This feature is only available for mobile instances"})
_UNSUPPORTED_MEDIA = _json_bytes(
    {"error": "Unsupported Media Type", "message": "Content-Type must be application/json"}
)
_HAS_CODE = {flag: _json_bytes({"success": True, "hasCode": flag}) for flag in (True, False)}
_SUCCESS = _json_bytes({"success": True})
_STATUS_OK = _json_bytes({"connected": True, "smartphoneConnected": True})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# Endpoint name -> methods it accepts (everything else is a 405).
_API_METHODS = {"two-fa-code": ("GET", "POST"), "status": ("GET",)}


# --------------------------------------------------------------------------- public value types


class Headers(dict[str, str]):
    """Request headers keyed by lower-cased name; lookups ignore case."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    @overload
    def get(self, key: str, default: None = None, /) -> str | None: ...
    @overload
    def get(self, key: str, default: str, /) -> str: ...
    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...
    def get(self, key: str, default: object = None, /) -> object:
        return super().get(key.lower(), default)


@dataclasses.dataclass(frozen=True)
class SandboxInstance:
    """A snapshot of one fake instance; change it through :class:`PlugzSandbox` methods."""

    instance_id: str
    token: str = dataclasses.field(repr=False)
    has_code: bool = False
    kind: InstanceKind = "mobile"
    expired: bool = False

    def public(self) -> dict[str, object]:
        """Describe the instance without its token (what the control API lists)."""
        return {
            "instance_id": self.instance_id,
            "has_code": self.has_code,
            "kind": self.kind,
            "expired": self.expired,
        }


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One API request as the sandbox received it (``path`` is the raw request target)."""

    method: str
    path: str
    headers: Headers
    body: bytes
    instance_id: str | None = None

    def json(self) -> object:
        """The body parsed as JSON."""
        return json.loads(self.body)


def _check_status_code(code: int, low: int = 200, high: int = 599) -> int:
    if isinstance(code, bool) or not isinstance(code, int) or not low <= code <= high:
        raise ValueError(f"status code must be an int in [{low}, {high}], got {code!r}")
    return code


def _check_seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def _header_bytes(text: str | bytes) -> bytes:
    """A header name or value as it goes on the wire: bytes verbatim, text as latin-1 or else UTF-8."""
    if isinstance(text, bytes):
        return text
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _keeps_connection(headers: Sequence[tuple[str, str | bytes]], body: bytes) -> bool:
    """Whether the connection can carry another answer after one with a fault's own ``headers``.

    Not after a ``Transfer-Encoding``, several ``Content-Length`` lines or one that is not the
    body's length (the client would frame the body differently from how it was sent), nor after
    the fault said ``Connection: close``.
    """
    named = [(name.lower(), _header_bytes(value).strip().lower()) for name, value in headers]
    lengths = [value for name, value in named if name == "content-length"]
    if lengths and lengths != [b"%d" % len(body)]:
        return False
    return not any(
        name == "transfer-encoding" or (name == "connection" and b"close" in value.split(b","))
        for name, value in named
    )


@dataclasses.dataclass(frozen=True)
class Fault:
    """A misbehaviour the sandbox plays instead of (or before) a normal API answer.

    Build one with the classmethods (:meth:`status`, :meth:`html`, :meth:`malformed`, :meth:`drop`,
    :meth:`slow`, :meth:`redirect`, :meth:`drip`, :meth:`raw`) and hand it to
    :meth:`PlugzSandbox.inject`. ``delay`` seconds are waited before any fault plays.

    ``body`` is the answer's body (for ``raw``, the whole response); ``headers`` are extra header
    lines sent in order as given; ``seconds`` is a slow fault's wait; ``interval`` and ``head`` are
    a drip's pace and whether its head drips too.
    """

    kind: FaultKind
    code: int = 0
    body: bytes = b""
    content_type: str = ""
    headers: tuple[tuple[str, str | bytes], ...] = ()
    seconds: float = 0.0
    delay: float = 0.0
    interval: float = 0.0
    head: bool = False

    def __post_init__(self) -> None:
        _check_seconds("delay", self.delay)
        _check_seconds("seconds", self.seconds)
        _check_seconds("interval", self.interval)
        for name, value in self.headers:
            # A CR or LF would let a fault smuggle extra headers or split the response (that is
            # what Fault.raw is for).
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            if (
                not isinstance(name, str)
                or not name
                or any(c in name for c in "\r\n: ")
                or not isinstance(text, str)
                or "\r" in text
                or "\n" in text
            ):
                raise ValueError(f"invalid header {name!r}: {value!r}")

    @classmethod
    def status(
        cls,
        code: int,
        body: bytes | str | Mapping[str, object] | Sequence[object] | None = None,
        headers: Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]] | None = None,
        *,
        delay: float = 0.0,
    ) -> Fault:
        """Answer with ``code``; the body defaults to ``{"error": "<reason phrase>"}``.

        A dict/list body is sent as JSON; a str/bytes body as JSON if it parses as JSON, otherwise
        as plain text; bytes go out verbatim. ``headers`` (a mapping, or ``(name, value)`` pairs to
        repeat a name) are sent as a hostile server sends them: in order, a ``str`` value as
        latin-1 when it fits and as UTF-8 otherwise, a ``bytes`` value byte for byte. A given
        ``Content-Type`` replaces the default one. A given ``Content-Length`` or
        ``Transfer-Encoding`` replaces the computed length (nothing is sent twice); unless it is
        the body's true length, the connection is closed after the answer (as it is after a
        given ``Connection: close``).
        """
        _check_status_code(code)
        raw: bytes
        if body is None:
            raw, content_type = _json_bytes({"error": _reason(code)}), _JSON
        elif isinstance(body, (bytes, str)):
            raw = body.encode("utf-8") if isinstance(body, str) else body
            try:
                json.loads(raw)
                content_type = _JSON
            except (ValueError, RecursionError):
                content_type = _TEXT
        else:
            raw, content_type = _json_bytes(body), _JSON
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers or ())
        given = [value for name, value in pairs if isinstance(name, str) and name.lower() == "content-type"]
        if given:
            first = given[0]
            content_type = first if isinstance(first, str) else first.decode("latin-1")
        return cls(
            "status", code=code, body=raw, content_type=content_type, headers=tuple(pairs), delay=delay
        )

    @classmethod
    def html(cls, code: int = 502, *, delay: float = 0.0) -> Fault:
        """Answer with a proxy's HTML error page, as a gateway in front of the API would."""
        _check_status_code(code)
        title = f"{code} {_reason(code)}"
        page = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
        return cls("html", code=code, body=page.encode("ascii"), content_type=_HTML, delay=delay)

    @classmethod
    def malformed(
        cls, code: int = 200, body: bytes = b'{"success": true, "hasCo', *, delay: float = 0.0
    ) -> Fault:
        """Answer with a broken body that claims to be JSON."""
        _check_status_code(code)
        return cls("malformed", code=code, body=body, content_type=_JSON, delay=delay)

    @classmethod
    def drop(cls, *, delay: float = 0.0) -> Fault:
        """Read the whole request, then close the connection without answering.

        The body a ``Content-Length`` announces is read (and recorded) first, so the client has
        written its request completely: "the connection dropped after the request was sent".
        """
        return cls("drop", delay=delay)

    @classmethod
    def slow(cls, seconds: float, *, delay: float = 0.0) -> Fault:
        """Answer normally, but only after ``seconds`` (plus ``delay``)."""
        return cls("slow", seconds=_check_seconds("seconds", seconds), delay=delay)

    @classmethod
    def redirect(cls, location: str, code: int = 302, *, delay: float = 0.0) -> Fault:
        """Answer with a redirect to ``location``."""
        _check_status_code(code, 300, 399)
        body = f'<html><body>Moved to <a href="{location}">{location}</a></body></html>\r\n'
        return cls(
            "redirect",
            code=code,
            body=body.encode("utf-8"),
            content_type=_HTML,
            headers=(("Location", location),),
            delay=delay,
        )

    @classmethod
    def drip(cls, interval: float = 0.5, *, head: bool = False, delay: float = 0.0) -> Fault:
        """Send the normal answer one byte every ``interval`` seconds, to defeat per-read timeouts.

        With ``head=False`` the status line and headers (with the right ``Content-Length``) go out
        at once and only the body drips; with ``head=True`` ("slow headers") the head drips too.
        Every byte, the first included, waits ``interval``; a client that waits long enough gets
        the whole, valid answer and may reuse the connection. The drip ends as soon as the client
        closes the connection (or stops sending: a half-close counts as gone) or the sandbox stops.
        """
        interval = _check_seconds("interval", interval)
        if interval == 0:
            raise ValueError("interval must be a number of seconds > 0")
        if not isinstance(head, bool):
            raise ValueError(f"head must be a bool, got {head!r}")
        return cls("drip", interval=interval, head=head, delay=delay)

    @classmethod
    def raw(cls, data: bytes, *, delay: float = 0.0) -> Fault:
        """Send ``data`` verbatim as the whole response, then close the connection.

        Nothing is added or checked: ``data`` is the status line, headers and body, valid HTTP or
        not (an empty ``data`` closes without a byte, as :meth:`drop` does). For property tests
        that throw arbitrary bytes at an HTTP client.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"data must be bytes, got {type(data).__name__}")
        return cls("raw", body=bytes(data), delay=delay)


@dataclasses.dataclass
class _PendingFault:
    fault: Fault
    remaining: int
    instance_id: str | None


# --------------------------------------------------------------------------- HTTP/1.1 wire format


class _ProtocolError(Exception):
    """A request we cannot parse; answered with ``status`` and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclasses.dataclass(slots=True)
class _Request:
    method: str
    target: str
    version: str
    headers: Headers
    content_length: int
    keep_alive: bool
    expect_continue: bool
    body: bytes = b""


class _Answer(NamedTuple):
    status: int
    body: bytes
    content_type: str = _JSON
    headers: tuple[tuple[str, str | bytes], ...] = ()
    close: bool = False  # end the connection after this answer
    wire: bytes | None = None  # send exactly these bytes instead of rendering the answer
    drip: Fault | None = None  # send it byte by byte, at this drip fault's pace


class _DateCache:
    """The ``Date`` header value, formatted at most once a second (locale-independent)."""

    _DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    _MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

    def __init__(self) -> None:
        self._cached: tuple[int, str] = (-1, "")

    def now(self) -> str:
        second = int(time.time())
        cached = self._cached
        if cached[0] == second:
            return cached[1]
        t = time.gmtime(second)
        text = (
            f"{self._DAYS[t.tm_wday]}, {t.tm_mday:02d} {self._MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
        )
        self._cached = (second, text)
        return text


_DATE = _DateCache()


def _render_response(
    status: int,
    body: bytes,
    content_type: str = _JSON,
    headers: Sequence[tuple[str, str | bytes]] = (),
    *,
    keep_alive: bool = True,
    head_only: bool = False,
) -> bytes:
    """Serialise a whole response into one bytes object, so it goes out in a single write.

    A response written in two pieces on a keep-alive connection stalls ~40 ms per request
    (Nagle's algorithm on our side meets delayed ACK on the client's). ``headers`` that name
    ``Content-Type``, ``Content-Length`` or ``Transfer-Encoding`` replace ours, never add to them.
    """
    lines = [f"HTTP/1.1 {status} {_reason(status)}\r\nServer: plugz-sandbox\r\nDate: {_DATE.now()}\r\n"]
    bodiless = status < 200 or status in (204, 304)
    given = {name.lower() for name, _ in headers} if headers else set()
    # RFC 9110 forbids Content-Length on 1xx/204; every other answer carries type and length.
    if not (status < 200 or status == 204):
        if "content-type" not in given:
            lines.append(f"Content-Type: {content_type}\r\n")
        if "content-length" not in given and "transfer-encoding" not in given:
            lines.append(f"Content-Length: {0 if bodiless else len(body)}\r\n")
    head = _header_bytes("".join(lines))
    if headers:
        head += b"".join(b"%s: %s\r\n" % (_header_bytes(n), _header_bytes(v)) for n, v in headers)
    head += b"\r\n" if keep_alive else b"Connection: close\r\n\r\n"
    return head if bodiless or head_only else head + body


def _parse_head(head: bytes) -> _Request:
    """Parse a request line and header block (without the final blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise _ProtocolError(400, "malformed request line")
    method, target, version = parts
    if not method.isascii() or not method.isalpha():
        raise _ProtocolError(400, "malformed method")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if version.startswith("HTTP/"):
            raise _ProtocolError(505, f"{version} is not supported")
        raise _ProtocolError(400, "malformed request line")
    headers = Headers()
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        # No colon, a name with whitespace, or an obsolete folded continuation line.
        if not sep or not name or name != name.strip(" \t") or " " in name:
            raise _ProtocolError(400, "malformed header line")
        key = name.lower()
        value = value.strip(" \t")
        previous = dict.get(headers, key)
        dict.__setitem__(headers, key, value if previous is None else f"{previous}, {value}")
    if "transfer-encoding" in headers:
        if "content-length" in headers:
            raise _ProtocolError(400, "both Transfer-Encoding and Content-Length")
        raise _ProtocolError(411, "chunked request bodies are not supported; send Content-Length")
    length = 0
    raw_length = headers.get("content-length")
    if raw_length is not None:
        values = {v.strip() for v in raw_length.split(",")}
        if len(values) != 1:
            raise _ProtocolError(400, "conflicting Content-Length")
        text = values.pop()
        if not text.isascii() or not text.isdigit():
            raise _ProtocolError(400, "invalid Content-Length")
        length = int(text)
        if length > _MAX_BODY:
            raise _ProtocolError(413, f"request body larger than {_MAX_BODY} bytes")
    connection = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    return _Request(
        method=method,
        target=target,
        version=version,
        headers=headers,
        content_length=length,
        keep_alive=version == "HTTP/1.1" and "close" not in connection,
        expect_continue=headers.get("expect", "").lower() == "100-continue",
    )


def _split_target(target: str) -> str:
    """The path of an origin-form or absolute-form request target."""
    if "://" in target:
        return urlsplit(target).path or "/"
    return target.partition("?")[0]


def _match_api(path: str) -> tuple[str, str, str] | None:
    """``(instance_id, token, endpoint)`` for an API path, else None."""
    parts = path.split("/")
    if len(parts) < 6 or parts[0] or parts[1] != "instances" or parts[3] != "token":
        return None
    rest = parts[5:]
    if rest == ["security", "two-fa-code"]:
        endpoint = "two-fa-code"
    elif rest == ["status"]:
        endpoint = "status"
    else:
        return None
    instance_id, token = unquote(parts[2]), unquote(parts[4])
    if not instance_id or not token:
        return None
    return instance_id, token, endpoint


def _instance_of(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) >= 3 and parts[1] == "instances" and parts[2]:
        return unquote(parts[2])
    return None


def _is_json_media(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";", 1)[0].strip().lower() == "application/json"


def _same(received: str, expected: str) -> bool:
    # Header and path text was decoded as latin-1: encoding it back gives the bytes on the wire.
    return hmac.compare_digest(received.encode("latin-1", errors="replace"), expected.encode("utf-8"))


def _error(status: int, message: str, **extra: str) -> _Answer:
    return _Answer(status, _json_bytes({"error": message, **extra}))


def _loopback_host(host: str) -> str:
    """Return ``host`` as a loopback IP literal, refusing anything reachable from elsewhere."""
    if host.lower() == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(f"host must be a loopback IP address or 'localhost', got {host!r}") from None
    if not address.is_loopback:
        raise ValueError(
            f"refusing to listen on {host}: the sandbox accepts fixed, published credentials, "
            "so it only binds loopback addresses (127.0.0.1, ::1)"
        )
    return str(address)


# --------------------------------------------------------------------------- the server


class PlugzSandbox:
    """A Plugz-compatible HTTP server on loopback, running in a background thread.

    Use it as a context manager or call :meth:`start` / :meth:`stop`. Every method is safe to
    call from any thread while the server is answering. ``client_token=None`` means the fake
    account does not require a ``Client-Token`` header.
    """

    def __init__(
        self,
        client_token: str | None = DEFAULT_CLIENT_TOKEN,
        *,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        record_limit: int = 10_000,
    ) -> None:
        if record_limit < 0:
            raise ValueError("record_limit must be >= 0")
        self._host = _loopback_host(host)
        self._requested_port = port
        self._client_token = client_token
        self._lock = threading.Lock()
        self._lifecycle_lock = threading.Lock()
        self._instances: dict[str, SandboxInstance] = {}
        self._faults: list[_PendingFault] = []
        self._recorded: deque[RecordedRequest] = deque(maxlen=record_limit)
        self._request_count = 0
        self._latency = _check_seconds("latency", latency)
        # Written only by the loop thread; plain ints are safe to read from others.
        self._connections_accepted = 0
        self._writes = 0
        self._responses = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._port: int | None = None
        self._startup_error: BaseException | None = None
        self._connection_tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None and self._thread is not None else "stopped"
        return f"<PlugzSandbox {where} instances={len(self._instances)}>"

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
        return self._client_token

    # ---------------------------------------------------------------- state

    @property
    def latency(self) -> float:
        """Seconds waited before every API answer (not control endpoints); settable at runtime."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._latency = _check_seconds("latency", seconds)

    def add_instance(
        self,
        instance_id: str,
        token: str,
        *,
        has_code: bool = False,
        kind: InstanceKind = "mobile",
        expired: bool = False,
    ) -> SandboxInstance:
        """Create (or replace) a fake instance and return its snapshot."""
        if not isinstance(instance_id, str) or not instance_id:
            raise ValueError("instance_id must be a non-empty string")
        if not isinstance(token, str) or not token:
            raise ValueError("token must be a non-empty string")
        if kind not in ("mobile", "web"):
            raise ValueError(f"kind must be 'mobile' or 'web', got {kind!r}")
        instance = SandboxInstance(instance_id, token, bool(has_code), kind, bool(expired))
        with self._lock:
            self._instances[instance_id] = instance
        return instance

    def remove_instance(self, instance_id: str) -> None:
        """Forget an instance (KeyError if unknown)."""
        with self._lock:
            del self._instances[instance_id]

    def set_has_code(self, instance_id: str, has_code: bool) -> SandboxInstance:
        """Set whether the instance's account has a PIN (KeyError if unknown)."""
        with self._lock:
            instance = dataclasses.replace(self._instances[instance_id], has_code=bool(has_code))
            self._instances[instance_id] = instance
        return instance

    def set_expired(self, instance_id: str, expired: bool) -> SandboxInstance:
        """Set whether the instance's subscription has expired (KeyError if unknown)."""
        with self._lock:
            instance = dataclasses.replace(self._instances[instance_id], expired=bool(expired))
            self._instances[instance_id] = instance
        return instance

    def instance(self, instance_id: str) -> SandboxInstance:
        """The current snapshot of one instance (KeyError if unknown)."""
        with self._lock:
            return self._instances[instance_id]

    @property
    def instances(self) -> list[SandboxInstance]:
        """Snapshots of every instance."""
        with self._lock:
            return list(self._instances.values())

    def inject(self, fault: Fault, *, times: int = 1, instance_id: str | None = None) -> None:
        """Queue ``fault`` for the next ``times`` API calls (only ``instance_id``'s, if given).

        Queued faults are consumed in FIFO order: a call takes the oldest fault that applies to it.
        """
        if not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault, got {type(fault).__name__}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be an int >= 1, got {times!r}")
        with self._lock:
            self._faults.append(_PendingFault(fault, times, instance_id))

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> list[tuple[Fault, int, str | None]]:
        """``(fault, calls left, instance_id)`` for every queued fault, oldest first."""
        with self._lock:
            return [(p.fault, p.remaining, p.instance_id) for p in self._faults]

    @property
    def requests(self) -> list[RecordedRequest]:
        """The most recent API requests received (up to ``record_limit``), oldest first."""
        with self._lock:
            return list(self._recorded)

    @property
    def request_count(self) -> int:
        """API requests received since start (or the last :meth:`reset`)."""
        with self._lock:
            return self._request_count

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted since construction."""
        return self._connections_accepted

    @property
    def writes(self) -> int:
        """``writer.write`` calls made for responses: one per response, one per byte of a drip.

        A drip that stopped (its client closed) stops this count growing.
        """
        return self._writes

    @property
    def responses(self) -> int:
        """Responses sent, including interim ``100 Continue`` and control-endpoint answers."""
        return self._responses

    @property
    def max_in_flight(self) -> int:
        """The most API calls that were waiting out latency or a delay at the same time."""
        return self._max_in_flight

    def reset(self) -> None:
        """Forget instances, queued faults, recorded requests and the request count."""
        with self._lock:
            self._instances.clear()
            self._faults.clear()
            self._recorded.clear()
            self._request_count = 0

    # ---------------------------------------------------------------- Airflow connections

    def connection_uri(self, instance_id: str, conn_type: str = "plugz") -> str:
        """An Airflow connection URI for one instance (login = id, password = token)."""
        instance = self.instance(instance_id)
        login, password = quote(instance.instance_id, safe=""), quote(instance.token, safe="")
        uri = f"{conn_type}://{login}:{password}@{self._netloc}"
        if self._client_token is not None:
            uri += f"?client_token={quote(self._client_token, safe='')}"
        return uri

    def connection_json(self, instance_id: str, conn_type: str = "plugz") -> str:
        """The JSON form of an Airflow connection for one instance, for ``AIRFLOW_CONN_<ID>``."""
        instance = self.instance(instance_id)
        extra = {} if self._client_token is None else {"client_token": self._client_token}
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

    # ---------------------------------------------------------------- event loop thread

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
            server = await asyncio.start_server(
                self._handle, self._host, self._requested_port, backlog=_BACKLOG, limit=_MAX_HEAD
            )
        except OSError as exc:
            self._startup_error = exc
            ready.set()
            return
        self._port = int(server.sockets[0].getsockname()[1])
        self._loop = asyncio.get_running_loop()
        self._stop_event = stop_event
        ready.set()
        try:
            await stop_event.wait()
        finally:
            server.close()
            # Let connections accepted in this very iteration start their handler, so that
            # the handler registers itself and its transport gets closed below.
            await asyncio.sleep(0)
            tasks = list(self._connection_tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connection_tasks.add(task)
        self._connections_accepted += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cancelled = False
        try:
            await self._serve_connection(reader, writer)
        except asyncio.CancelledError:
            # Only stop() cancels us. Ending normally matters: Python 3.11's stream callback calls
            # task.exception() on the finished task, which raises for a cancelled one.
            cancelled = True
        except (ConnectionError, asyncio.IncompleteReadError):
            cancelled = True  # the peer is gone: nothing to flush
        except Exception:
            log.exception("Plugz sandbox connection handler failed")
        finally:
            if task is not None:
                self._connection_tasks.discard(task)
            if cancelled:
                writer.transport.abort()
            else:
                writer.close()

    def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        # Counted first, so a client that has the bytes also sees them counted.
        self._writes += 1
        self._responses += 1
        writer.write(data)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # the client closed between requests
            except asyncio.LimitOverrunError:
                self._write(
                    writer, _render_response(431, _json_bytes({"error": _reason(431)}), keep_alive=False)
                )
                await writer.drain()
                return
            head = head.lstrip(b"\r\n")  # RFC 9112 2.2: ignore blank lines before a request line
            if not head:
                continue
            try:
                request = _parse_head(head[:-4])
            except _ProtocolError as exc:
                body = _json_bytes({"error": _reason(exc.status), "message": exc.message})
                self._write(writer, _render_response(exc.status, body, keep_alive=False))
                await writer.drain()
                return
            if request.content_length:
                if request.expect_continue:
                    self._write(writer, _CONTINUE)
                request.body = await reader.readexactly(request.content_length)
            answer = await self._dispatch(request)
            if answer is None:
                return  # a drop fault: close without answering
            if answer.wire is not None:
                data = answer.wire
            else:
                data = _render_response(
                    answer.status,
                    answer.body,
                    answer.content_type,
                    answer.headers,
                    keep_alive=request.keep_alive,
                    head_only=request.method == "HEAD",
                )
            if answer.drip is not None:
                if not await self._drip(reader, writer, data, answer.drip):
                    return  # the client gave up waiting
            else:
                self._write(writer, data)
                await writer.drain()
            if answer.close or not request.keep_alive:
                return

    async def _drip(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes, fault: Fault
    ) -> bool:
        """Write ``data`` one byte per ``fault.interval``; False if the client went away first.

        Between bytes it looks every ``_DRIP_POLL`` seconds whether the client has closed (EOF
        on our side) so that a client giving up ends the drip at once, not a long interval later.
        """
        self._responses += 1
        start = 0 if fault.head else data.find(b"\r\n\r\n") + 4
        if start:
            self._writes += 1
            writer.write(data[:start])
            await writer.drain()
        loop = asyncio.get_running_loop()
        for index in range(start, len(data)):
            deadline = loop.time() + fault.interval
            while True:
                if reader.at_eof() or writer.is_closing():
                    return False
                left = deadline - loop.time()
                if left <= 0:
                    break
                await asyncio.sleep(min(left, _DRIP_POLL))
            self._writes += 1
            writer.write(data[index : index + 1])
            await writer.drain()
        return True

    async def _dispatch(self, request: _Request) -> _Answer | None:
        path = _split_target(request.target)
        if path == _CONTROL_PREFIX or path.startswith(_CONTROL_PREFIX + "/"):
            return self._control(request, path)
        instance_id = _instance_of(path)
        recorded = RecordedRequest(request.method, request.target, request.headers, request.body, instance_id)
        with self._lock:
            self._request_count += 1
            self._recorded.append(recorded)
            fault = self._take_fault(instance_id)
            wait = self._latency
        if fault is not None:
            wait += fault.delay + fault.seconds
        if wait > 0:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            try:
                await asyncio.sleep(wait)
            finally:
                self._in_flight -= 1
        if fault is None or fault.kind == "slow":
            return self._api(request, path)
        if fault.kind == "drip":
            return self._api(request, path)._replace(drip=fault)
        if fault.kind == "drop":
            return None
        if fault.kind == "raw":
            return _Answer(0, b"", close=True, wire=fault.body)
        close = not _keeps_connection(fault.headers, fault.body)
        return _Answer(fault.code, fault.body, fault.content_type, fault.headers, close=close)

    def _take_fault(self, instance_id: str | None) -> Fault | None:
        # Caller holds self._lock.
        for index, pending in enumerate(self._faults):
            if pending.instance_id is None or pending.instance_id == instance_id:
                pending.remaining -= 1
                if pending.remaining <= 0:
                    del self._faults[index]
                return pending.fault
        return None

    # ---------------------------------------------------------------- the Plugz API

    def _api(self, request: _Request, path: str) -> _Answer:
        route = _match_api(path)
        if route is None:
            return _Answer(404, _NOT_FOUND)
        instance_id, token, endpoint = route
        allowed = _API_METHODS[endpoint]
        if request.method not in allowed:
            return _Answer(405, _NOT_FOUND, headers=(("Allow", ", ".join(allowed)),))
        if self._client_token is not None:
            received = request.headers.get("client-token")
            if not received:
                return _Answer(400, _NULL_NOT_ALLOWED)
            if not _same(received, self._client_token):
                # The real API echoes the rejected token; our client must redact it.
                return _error(403, f"Client-Token {received} not allowed")
        with self._lock:
            instance = self._instances.get(instance_id)
        if instance is None or not _same(token, instance.token):
            return _Answer(404, _INSTANCE_NOT_FOUND)
        if instance.expired:
            return _Answer(400, _EXPIRED)
        if endpoint == "status":
            return _Answer(200, _STATUS_OK)
        if instance.kind != "mobile":
            return _Answer(400, _MOBILE_ONLY)
        if request.method == "GET":
            return _Answer(200, _HAS_CODE[instance.has_code])
        if not _is_json_media(request.headers.get("content-type")):
            return _Answer(415, _UNSUPPORTED_MEDIA)
        try:
            payload = json.loads(request.body)
        except ValueError:
            return _error(400, "Invalid JSON body")
        code = payload.get("code") if isinstance(payload, dict) else None
        if not isinstance(code, str) or len(code) != 6 or not code.isascii() or not code.isdigit():
            return _error(400, "code must be a string of exactly 6 digits")
        with self._lock:
            current = self._instances.get(instance_id)
            if current is None:
                return _Answer(404, _INSTANCE_NOT_FOUND)
            self._instances[instance_id] = dataclasses.replace(current, has_code=True)
        return _Answer(200, _SUCCESS)

    # ---------------------------------------------------------------- control endpoints

    def _control(self, request: _Request, path: str) -> _Answer:
        parts = [unquote(p) for p in path[len(_CONTROL_PREFIX) + 1 :].split("/")]
        method = request.method
        if parts == ["instances"]:
            if method == "GET":
                return _Answer(200, _json_bytes([i.public() for i in self.instances]))
            if method == "POST":
                return self._control_add_instance(request.body)
            return _Answer(405, _NOT_FOUND, headers=(("Allow", "GET, POST"),))
        if len(parts) == 3 and parts[0] == "instances" and parts[2] == "pin":
            if method != "PUT":
                return _Answer(405, _NOT_FOUND, headers=(("Allow", "PUT"),))
            payload = _json_object(request.body)
            if payload is None or not isinstance(payload.get("has_code"), bool):
                return _error(400, 'body must be {"has_code": true|false}')
            try:
                instance = self.set_has_code(parts[1], bool(payload["has_code"]))
            except KeyError:
                return _Answer(404, _INSTANCE_NOT_FOUND)
            return _Answer(200, _json_bytes(instance.public()))
        if parts == ["faults"]:
            if method == "POST":
                return self._control_add_fault(request.body)
            if method == "DELETE":
                self.clear_faults()
                return _Answer(204, b"")
            return _Answer(405, _NOT_FOUND, headers=(("Allow", "POST, DELETE"),))
        return _Answer(404, _NOT_FOUND)

    def _control_add_instance(self, body: bytes) -> _Answer:
        payload = _json_object(body)
        if payload is None:
            return _error(400, "body must be a JSON object")
        instance_id, token = payload.get("instance_id"), payload.get("token")
        has_code, kind, expired = (
            payload.get("has_code", False),
            payload.get("kind", "mobile"),
            payload.get("expired", False),
        )
        if not isinstance(instance_id, str) or not instance_id or not isinstance(token, str) or not token:
            return _error(400, "instance_id and token must be non-empty strings")
        if not isinstance(has_code, bool) or not isinstance(expired, bool):
            return _error(400, "has_code and expired must be booleans")
        if kind not in ("mobile", "web"):
            return _error(400, "kind must be 'mobile' or 'web'")
        instance = self.add_instance(instance_id, token, has_code=has_code, kind=kind, expired=expired)
        return _Answer(201, _json_bytes(instance.public()))

    def _control_add_fault(self, body: bytes) -> _Answer:
        payload = _json_object(body)
        if payload is None:
            return _error(400, "body must be a JSON object")
        try:
            fault, times, instance_id = _queued_fault_from_json(payload)
            self.inject(fault, times=times, instance_id=instance_id)
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))
        return _Answer(201, _json_bytes({"kind": fault.kind, "times": times, "instance_id": instance_id}))


def _json_object(body: bytes) -> dict[str, object] | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


# The keys each fault kind takes besides kind, delay, times and instance_id.
_FAULT_KEYS: dict[str, frozenset[str]] = {
    "status": frozenset({"status", "body", "body_base64", "headers"}),
    "html": frozenset({"status"}),
    "malformed": frozenset({"status"}),
    "drop": frozenset(),
    "slow": frozenset({"seconds"}),
    "redirect": frozenset({"location", "status"}),
    "drip": frozenset({"interval", "head"}),
    "raw": frozenset({"data", "data_base64"}),
}


def _fault_from_json(payload: Mapping[str, object]) -> Fault:
    """Build a :class:`Fault` from a control-endpoint JSON object (ValueError/TypeError if bad).

    ``kind`` picks the classmethod; its arguments go by the same names (``status`` for the code).
    Bytes travel as text sent as UTF-8 (``body``, ``data``) or as base64 (``body_base64``,
    ``data_base64``). ``headers`` is an object, or a list of ``[name, value]`` pairs to repeat
    a name. ``times`` and ``instance_id`` belong to the queue (see :func:`_queued_fault_from_json`).
    """
    kind = payload.get("kind")
    if not isinstance(kind, str) or kind not in _FAULT_KEYS:
        raise ValueError(f"kind must be one of {', '.join(get_args(FaultKind))}")
    unknown = sorted(set(payload) - _FAULT_KEYS[kind] - {"kind", "delay", "times", "instance_id"})
    if unknown:
        known = ", ".join(sorted(_FAULT_KEYS[kind] | {"delay", "times", "instance_id"}))
        raise ValueError(f"unknown key(s) {', '.join(unknown)} for a {kind} fault; it takes {known}")
    status = payload.get("status")
    delay = payload.get("delay", 0.0)
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        raise ValueError("status must be an integer")
    if isinstance(delay, bool) or not isinstance(delay, (int, float)):
        raise ValueError("delay must be a number")
    if kind == "status":
        body = payload.get("body")
        if body is not None and not isinstance(body, (str, dict, list)):
            raise ValueError("body must be a string, object or array")
        raw_body = _base64_field(payload, "body")
        headers = _headers_field(payload.get("headers"))
        return Fault.status(
            500 if status is None else status, body if raw_body is None else raw_body, headers, delay=delay
        )
    if kind == "html":
        return Fault.html(502 if status is None else status, delay=delay)
    if kind == "malformed":
        return Fault.malformed(200 if status is None else status, delay=delay)
    if kind == "drop":
        return Fault.drop(delay=delay)
    if kind == "slow":
        seconds = payload.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise ValueError("a slow fault needs a number of seconds")
        return Fault.slow(seconds, delay=delay)
    if kind == "redirect":
        location = payload.get("location")
        if not isinstance(location, str) or not location:
            raise ValueError("a redirect fault needs a location")
        return Fault.redirect(location, 302 if status is None else status, delay=delay)
    if kind == "drip":
        interval = payload.get("interval", 0.5)
        head = payload.get("head", False)
        if isinstance(interval, bool) or not isinstance(interval, (int, float)):
            raise ValueError("interval must be a number of seconds")
        if not isinstance(head, bool):
            raise ValueError("head must be true or false")
        return Fault.drip(interval, head=head, delay=delay)
    data = _base64_field(payload, "data")  # kind == "raw"
    if data is None:
        text = payload.get("data")
        if not isinstance(text, str):
            raise ValueError("a raw fault needs data (text, sent as UTF-8) or data_base64")
        data = text.encode("utf-8")
    return Fault.raw(data, delay=delay)


def _base64_field(payload: Mapping[str, object], name: str) -> bytes | None:
    """``payload[name + "_base64"]`` decoded, or None if absent (``name`` must then be absent)."""
    encoded = payload.get(f"{name}_base64")
    if encoded is None:
        return None
    if name in payload:
        raise ValueError(f"give {name} or {name}_base64, not both")
    if not isinstance(encoded, str):
        raise ValueError(f"{name}_base64 must be a base64 string")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name}_base64 is not valid base64") from None


def _headers_field(value: object) -> list[tuple[str, str]] | None:
    """A JSON ``headers`` value (object, or list of ``[name, value]`` pairs) as header pairs."""
    if value is None:
        return None
    pairs: list[tuple[object, object]] | None = None
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list) and all(isinstance(pair, list) and len(pair) == 2 for pair in value):
        pairs = [(name, text) for name, text in value]
    if pairs is None or not all(isinstance(name, str) and isinstance(text, str) for name, text in pairs):
        raise ValueError("headers must be an object of strings or a list of [name, value] strings")
    return [(str(name), str(text)) for name, text in pairs]


def _queued_fault_from_json(payload: Mapping[str, object]) -> tuple[Fault, int, str | None]:
    """``(fault, times, instance_id)`` from a control-endpoint or ``--fault`` JSON object."""
    fault = _fault_from_json(payload)
    times = payload.get("times", 1)
    instance_id = payload.get("instance_id")
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ValueError("times must be an integer >= 1")
    if instance_id is not None and not isinstance(instance_id, str):
        raise ValueError("instance_id must be a string")
    return fault, times, instance_id


# --------------------------------------------------------------------------- command line


def _instance_spec(spec: str) -> tuple[str, str, bool, InstanceKind, bool]:
    """Parse ``ID:TOKEN[:pin][:web][:expired]`` into add_instance arguments."""
    parts = spec.split(":")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError(f"expected ID:TOKEN[:pin][:web][:expired], got {spec!r}")
    flags = set(parts[2:])
    unknown = flags - {"pin", "web", "mobile", "expired"}
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown instance flag(s) {sorted(unknown)} in {spec!r}")
    kind: InstanceKind = "web" if "web" in flags else "mobile"
    return parts[0], parts[1], "pin" in flags, kind, "expired" in flags


def _fault_spec(text: str) -> tuple[Fault, int, str | None]:
    """Parse a ``--fault`` JSON object (the control API's form) into inject arguments."""
    payload = _json_object(text.encode("utf-8"))
    if payload is None:
        raise argparse.ArgumentTypeError(f'expected a JSON object such as {{"kind": "drop"}}, got {text!r}')
    try:
        return _queued_fault_from_json(payload)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(f"{exc} (in {text!r})") from None


def _conn_env_name(instance_id: str, first: bool) -> str:
    if first:
        return "AIRFLOW_CONN_PLUGZ_DEFAULT"
    return (
        "AIRFLOW_CONN_PLUGZ_"
        + "".join(c if c.isascii() and c.isalnum() else "_" for c in instance_id).upper()
    )


def main(argv: list[str] | None = None) -> int:
    """Serve a sandbox until SIGINT/SIGTERM, printing shell lines that point Airflow at it."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_plugz.testing.sandbox",
        description="Serve a local, Plugz-compatible fake API for tests and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 lets the OS choose (default)")
    parser.add_argument(
        "--client-token",
        default=DEFAULT_CLIENT_TOKEN,
        help="Client-Token the account requires; empty for none (default: %(default)s)",
    )
    parser.add_argument(
        "--instance",
        action="append",
        type=_instance_spec,
        metavar="ID:TOKEN[:pin][:web][:expired]",
        help=f"an instance to serve; repeatable (default: {DEFAULT_INSTANCE_ID}:{DEFAULT_INSTANCE_TOKEN})",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API answer")
    parser.add_argument(
        "--fault",
        action="append",
        type=_fault_spec,
        default=[],
        metavar="JSON",
        help="a fault to queue, as POST /_sandbox/faults takes it, e.g. "
        '\'{"kind": "drip", "interval": 0.5, "times": 3}\' or \'{"kind": "status", "status": 503}\'; '
        "repeatable, played in order",
    )
    args = parser.parse_args(argv)
    try:
        host = _loopback_host(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    if args.latency < 0:
        parser.error("--latency must be >= 0")
    specs = args.instance or [(DEFAULT_INSTANCE_ID, DEFAULT_INSTANCE_TOKEN, False, "mobile", False)]

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    sandbox = PlugzSandbox(args.client_token or None, latency=args.latency, host=host, port=args.port)
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            sandbox.start()
        except OSError as exc:
            reason = exc.strerror or exc
            sys.stderr.write(f"Plugz sandbox cannot listen on {host} port {args.port}: {reason}\n")
            return 1
        with sandbox:
            for instance_id, token, has_code, kind, expired in specs:
                sandbox.add_instance(instance_id, token, has_code=has_code, kind=kind, expired=expired)
            for fault, times, fault_instance in args.fault:
                sandbox.inject(fault, times=times, instance_id=fault_instance)
            out = sys.stdout
            out.write(f"# Plugz sandbox listening on {sandbox.base_url} (Ctrl-C to stop)\n")
            out.write(f"export PLUGZ_SANDBOX_URL={sandbox.base_url}\n")
            for index, (instance_id, *_) in enumerate(specs):
                env = _conn_env_name(instance_id, index == 0)
                out.write(f"export {env}={shlex.quote(sandbox.connection_json(instance_id))}\n")
            for fault, times, fault_instance in args.fault:
                scope = f" on {fault_instance}" if fault_instance is not None else ""
                out.write(f"# queued a {fault.kind} fault for the next {times} call(s){scope}\n")
            out.flush()
            # A timeout keeps Ctrl-C responsive where signals do not interrupt waits (Windows).
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
    sys.stderr.write("Plugz sandbox stopped.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
