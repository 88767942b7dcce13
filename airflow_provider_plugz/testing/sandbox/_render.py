"""Rendering an answer: the status line and headers we write ourselves, in one bytes object.

h11 does not render answers for the sandbox: a hostile fault's headers (which h11 rightly refuses
to send) must go out exactly as given, and h11's serializer would cost as much CPU again as its
parser. :func:`render` is used by :mod:`._wire` for every answer.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from airflow_provider_plugz.testing.sandbox._http import JSON, header_bytes, reason

if TYPE_CHECKING:
    from collections.abc import Sequence

_SERVER = b"plugz-sandbox"


class _DateCache:
    """The ``Date`` header value, formatted at most once a second (locale-independent)."""

    _DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    _MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

    def __init__(self) -> None:
        self._cached: tuple[int, bytes] = (-1, b"")

    def now(self) -> bytes:
        second = int(time.time())
        cached = self._cached
        if cached[0] == second:
            return cached[1]
        t = time.gmtime(second)
        text = (
            f"{self._DAYS[t.tm_wday]}, {t.tm_mday:02d} {self._MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
        ).encode("ascii")
        self._cached = (second, text)
        return text


_DATE = _DateCache()
_REASONS: dict[int, bytes] = {}
# Encoded Content-Type values; a fault may bring any, so the cache stops growing at a few.
_CONTENT_TYPES: dict[str, bytes] = {}
_CONTENT_TYPES_CACHED = 16


def _reason_bytes(status: int) -> bytes:
    phrase = _REASONS.get(status)
    if phrase is None:
        phrase = _REASONS[status] = reason(status).encode("ascii")
    return phrase


def render(
    status: int,
    body: bytes,
    content_type: str = JSON,
    headers: Sequence[tuple[str, str | bytes]] = (),
    *,
    keep_alive: bool = True,
    head_only: bool = False,
) -> bytes:
    """A whole response as one bytes object, ``headers`` exactly as given, in order.

    Every answer but 1xx/204 carries ``Content-Type`` and ``Content-Length`` (RFC 9110 forbids
    the length there); ``headers`` that name ``Content-Type``, ``Content-Length`` or
    ``Transfer-Encoding`` replace ours, never add to them. Nothing is validated: the APIs send
    well-formed headers, and a fault's are refused at construction only if they hold CR or LF.
    """
    head = b"HTTP/1.1 %d %s\r\nServer: %s\r\nDate: %s\r\n" % (
        status,
        _reason_bytes(status),
        _SERVER,
        _DATE.now(),
    )
    bodiless = status < 200 or status in (204, 304)
    if not (status < 200 or status == 204):
        given = {name.lower() for name, _ in headers} if headers else ()
        if "content-type" not in given:
            encoded = _CONTENT_TYPES.get(content_type)
            if encoded is None:
                encoded = header_bytes(content_type)
                if len(_CONTENT_TYPES) < _CONTENT_TYPES_CACHED:
                    _CONTENT_TYPES[content_type] = encoded
            head += b"Content-Type: %s\r\n" % encoded
        if "content-length" not in given and "transfer-encoding" not in given:
            head += b"Content-Length: %d\r\n" % (0 if bodiless else len(body))
    if headers:
        head += b"".join(b"%s: %s\r\n" % (header_bytes(n), header_bytes(v)) for n, v in headers)
    head += b"\r\n" if keep_alive else b"Connection: close\r\n\r\n"
    return head if bodiless or head_only else head + body
