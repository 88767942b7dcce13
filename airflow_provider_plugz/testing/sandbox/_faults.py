"""Faults: the misbehaviours the sandbox plays instead of a normal answer, and their JSON form.

:class:`Fault` is the value type tests build with its classmethods; :func:`queued_fault_from_json`
reads the JSON form that ``POST /_sandbox/faults`` and the command line's ``--fault`` take.
How a fault plays on the wire is ``_app.fault_answer``'s business.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, get_args

from airflow_provider_plugz.testing.sandbox._http import HTML, JSON, TEXT, header_bytes, json_bytes, reason

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

FaultKind = Literal["status", "html", "malformed", "drop", "slow", "redirect", "drip", "raw"]


def check_status_code(code: int, low: int = 200, high: int = 599) -> int:
    """``code`` if it is an int status code in ``[low, high]``, else ValueError."""
    if isinstance(code, bool) or not isinstance(code, int) or not low <= code <= high:
        raise ValueError(f"status code must be an int in [{low}, {high}], got {code!r}")
    return code


def check_seconds(name: str, value: float) -> float:
    """``value`` as a float if it is a finite number of seconds >= 0, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def keeps_connection(headers: Sequence[tuple[str, str | bytes]], body: bytes) -> bool:
    """Whether the connection can carry another answer after one with a fault's own ``headers``.

    Not after a ``Transfer-Encoding``, several ``Content-Length`` lines or one that is not the
    body's length (the client would frame the body differently from how it was sent), nor after
    the fault said ``Connection: close``.
    """
    named = [(name.lower(), header_bytes(value).strip().lower()) for name, value in headers]
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

    def __repr__(self) -> str:
        # A fault may echo a token, a PIN or a message text back: body size and header names only.
        return (
            f"Fault(kind={self.kind!r}, code={self.code!r}, body=<{len(self.body)} bytes>, "
            f"content_type={self.content_type!r}, headers={[name for name, _ in self.headers]!r}, "
            f"seconds={self.seconds!r}, delay={self.delay!r}, interval={self.interval!r}, head={self.head!r})"
        )

    def __post_init__(self) -> None:
        check_seconds("delay", self.delay)
        check_seconds("seconds", self.seconds)
        check_seconds("interval", self.interval)
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
        check_status_code(code)
        raw: bytes
        if body is None:
            raw, content_type = json_bytes({"error": reason(code)}), JSON
        elif isinstance(body, (bytes, str)):
            raw = body.encode("utf-8") if isinstance(body, str) else body
            try:
                json.loads(raw)
                content_type = JSON
            except (ValueError, RecursionError):
                content_type = TEXT
        else:
            raw, content_type = json_bytes(body), JSON
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
        check_status_code(code)
        title = f"{code} {reason(code)}"
        page = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
        return cls("html", code=code, body=page.encode("ascii"), content_type=HTML, delay=delay)

    @classmethod
    def malformed(
        cls, code: int = 200, body: bytes = b'{"success": true, "hasCo', *, delay: float = 0.0
    ) -> Fault:
        """Answer with a broken body that claims to be JSON."""
        check_status_code(code)
        return cls("malformed", code=code, body=body, content_type=JSON, delay=delay)

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
        return cls("slow", seconds=check_seconds("seconds", seconds), delay=delay)

    @classmethod
    def redirect(cls, location: str, code: int = 302, *, delay: float = 0.0) -> Fault:
        """Answer with a redirect to ``location``."""
        check_status_code(code, 300, 399)
        body = f'<html><body>Moved to <a href="{location}">{location}</a></body></html>\r\n'
        return cls(
            "redirect",
            code=code,
            body=body.encode("utf-8"),
            content_type=HTML,
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
        interval = check_seconds("interval", interval)
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


# --------------------------------------------------------------------------- the JSON form


def json_object(body: bytes) -> dict[str, object] | None:
    """``body`` parsed as a JSON object, or None if it is not one."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
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
    a name. ``times`` and ``instance_id`` belong to the queue (see :func:`queued_fault_from_json`).
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


def queued_fault_from_json(payload: Mapping[str, object]) -> tuple[Fault, int, str | None]:
    """``(fault, times, instance_id)`` from a control-endpoint or ``--fault`` JSON object."""
    fault = _fault_from_json(payload)
    times = payload.get("times", 1)
    instance_id = payload.get("instance_id")
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ValueError("times must be an integer >= 1")
    if instance_id is not None and not isinstance(instance_id, str):
        raise ValueError("instance_id must be a string")
    return fault, times, instance_id
