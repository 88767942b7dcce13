"""HTTP vocabulary shared by the wire layer and the two APIs: requests, answers, routes, loopback.

The APIs (``_api``, ``_control``) take a :class:`Request` and return an :class:`Answer`; only the
wire layer (``_wire``) knows about sockets and h11.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_plugz.testing.sandbox._models import Headers

JSON = "application/json; charset=utf-8"
HTML = "text/html; charset=utf-8"
TEXT = "text/plain; charset=utf-8"

_H = TypeVar("_H")


def json_bytes(value: object) -> bytes:
    """``value`` as compact UTF-8 JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def reason(code: int) -> str:
    """The standard reason phrase of ``code`` ("Unknown" for codes without one)."""
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def header_bytes(text: str | bytes) -> bytes:
    """A header name or value as it goes on the wire: bytes verbatim, text as latin-1 or else UTF-8."""
    if isinstance(text, bytes):
        return text
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def is_json_media(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` value names ``application/json`` (any parameters, any case)."""
    return content_type is not None and content_type.split(";", 1)[0].strip().lower() == "application/json"


class Request(NamedTuple):
    """One complete request: ``target`` as received, ``path`` without query (and without the
    scheme and authority of an absolute-form target), header and target text decoded as latin-1."""

    method: str
    target: str
    path: str
    headers: Headers
    body: bytes


def path_of(target: str) -> str:
    """The path of an origin-form or absolute-form request target."""
    if "://" in target:
        return urlsplit(target).path or "/"
    return target.partition("?")[0]


class Answer(NamedTuple):
    """What an API answers; the wire layer renders it, with its ``headers`` exactly as given.

    ``close`` ends the connection after it, unannounced (a fault whose framing is not ours).
    ``raw`` bytes replace the whole response (then the connection closes); ``drip_interval``
    sends the response one byte at a time (``drip_head``: the head too).
    """

    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str | bytes], ...] = ()
    close: bool = False
    raw: bytes | None = None
    drip_interval: float = 0.0
    drip_head: bool = False


def error(status: int, message: str) -> Answer:
    """A JSON ``{"error": message}`` answer."""
    return Answer(status, json_bytes({"error": message}))


# --------------------------------------------------------------------------- routes


@dataclasses.dataclass(frozen=True, slots=True)
class Route(Generic[_H]):
    """A matched route: the handler and the path's ``{placeholder}`` segments, percent-decoded."""

    handler: _H
    params: tuple[str, ...]


class Router(Generic[_H]):
    """A route table keyed by ``(method, path pattern)``; ``{name}`` in a pattern matches one segment.

    :meth:`match` gives the route, or the methods the path takes (for a 405's ``Allow``), or
    neither (a 404). Literal segments are compared as received; placeholders are percent-decoded
    and never empty.
    """

    def __init__(self, routes: Mapping[tuple[str, str], _H]) -> None:
        # Patterns grouped by their number of segments: a path is compared only with its peers.
        self._by_length: dict[int, dict[tuple[str | None, ...], dict[str, _H]]] = {}
        for (method, pattern), handler in routes.items():
            key = tuple(None if s.startswith("{") else s for s in pattern.strip("/").split("/"))
            self._by_length.setdefault(len(key), {}).setdefault(key, {})[method] = handler

    def match(self, method: str, path: str) -> Route[_H] | tuple[str, ...] | None:
        """The route for ``method`` on ``path``; else the methods ``path`` allows; else None."""
        segments = path.split("/")[1:]
        for pattern, methods in self._by_length.get(len(segments), {}).items():
            params: list[str] = []
            for literal, segment in zip(pattern, segments, strict=True):
                if literal is None:
                    if not segment:
                        break
                    params.append(unquote(segment))
                elif literal != segment:
                    break
            else:
                handler = methods.get(method)
                if handler is None:
                    return tuple(methods)
                return Route(handler, tuple(params))
        return None


# --------------------------------------------------------------------------- loopback


def loopback_host(host: str) -> str:
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


def is_loopback_authority(authority: str) -> bool:
    """Whether ``host[:port]`` (a ``Host`` header, an origin's authority) names a loopback host:
    ``localhost``, ``127.x.x.x`` or ``[::1]``, with any port or none."""
    if authority.startswith("["):
        host, sep, rest = authority[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return False
    else:
        host, _, port = authority.partition(":")
        if port and not port.isdigit():
            return False
        if host.lower() == "localhost":
            return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
