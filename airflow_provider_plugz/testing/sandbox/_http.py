"""HTTP vocabulary shared by the wire layer and the two APIs: requests, answers, routes, loopback.

The APIs (``_api``, ``_control``) take a :class:`Request` and return an :class:`Reply`; only the
wire layer (``_wire``) knows about sockets and h11.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from http import HTTPStatus
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar
from urllib.parse import unquote, unquote_to_bytes

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_plugz.testing.sandbox._models import Headers

JSON = "application/json; charset=utf-8"
HTML = "text/html; charset=utf-8"
TEXT = "text/plain; charset=utf-8"

_H = TypeVar("_H")


def json_bytes(value: object) -> bytes:
    """``value`` as compact UTF-8 JSON (escaped as ASCII if it holds a lone surrogate, which has no
    UTF-8 form: a JSON body may send one)."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode("ascii")


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


_TOKEN_SEGMENT = re.compile(r"(/token/)[^/]*", re.IGNORECASE)


def _masked_path(path: str) -> str:
    """A request path for reprs: the instance token's segment as ``***``."""
    return _TOKEN_SEGMENT.sub(r"\1***", path)


class Request(NamedTuple):
    """One complete request: ``target`` as received, ``path`` without query (and without the
    scheme and authority of an absolute-form target), header and target text decoded as latin-1.

    ``query`` is the target's query (without ``?``); ``authority`` is the ``host[:port]`` of an
    absolute-form target, None for an origin-form one. The wire layer builds a request only from a
    target :func:`parse_target` accepted, so handlers need not parse it again.
    """

    method: str
    target: str
    path: str
    headers: Headers
    body: bytes
    query: str = ""
    authority: str | None = None

    def __repr__(self) -> str:
        # The target holds the instance token, a header the Client-Token, the body a PIN or a
        # message: the path with its token masked, header names and sizes only.
        return (
            f"Request({self.method!r}, {_masked_path(self.path)!r}, headers={sorted(self.headers)!r}, "
            f"body=<{len(self.body)} bytes>, query=<{len(self.query)} chars>, authority={self.authority!r})"
        )


# --------------------------------------------------------------------------- request targets

#: The longest request target accepted (longer ones get a 414, as most servers answer).
MAX_TARGET = 8 * 1024
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 3986 reg-name or IPv4address (unreserved / sub-delims; no percent-encoding in a host here).
_REG_NAME = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=]*")
_FORMS = (
    "send a path starting with / (origin-form, e.g. /instances/ID/token/TOKEN/status) "
    "or an http(s) URL (absolute-form)"
)


class TargetError(ValueError):
    """A request target the sandbox refuses: ``status`` (400 or 414) and a message that says why
    without quoting the target (an API target holds an instance token)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Target(NamedTuple):
    """A request target taken apart: percent-encoded ``path`` and ``query``, and the authority of
    an absolute-form target (None for origin-form)."""

    path: str
    query: str
    authority: str | None

    def __repr__(self) -> str:
        return (
            f"Target(path={_masked_path(self.path)!r}, query=<{len(self.query)} chars>, "
            f"authority={self.authority!r})"
        )


def _check_authority(authority: str) -> None:
    if not authority:
        raise TargetError(400, f"an absolute-form request target needs a host; {_FORMS}")
    if "@" in authority:
        raise TargetError(400, "a request target must not carry user info (user:password@)")
    if authority.startswith("["):
        host, sep, rest = authority[1:].partition("]")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise TargetError(400, "the request target's host is not a valid [IPv6] literal") from None
        if not sep:
            raise TargetError(400, "the request target's host is not a valid [IPv6] literal")
        port = rest[1:] if rest.startswith(":") else None
        if rest and port is None:
            raise TargetError(400, "the request target's authority is malformed after its [IPv6] host")
    else:
        host, sep, port_text = authority.partition(":")
        port = port_text if sep else None
        if not host or not _REG_NAME.fullmatch(host):
            raise TargetError(400, "the request target's host is malformed")
    if port and (not port.isascii() or not port.isdigit() or len(port) > 5 or int(port) > 65535):
        raise TargetError(400, "the request target's port must be a number from 0 to 65535")


def _check_encoding(part: str, name: str) -> None:
    if _BAD_PERCENT.search(part):
        raise TargetError(400, f"the request target's {name} has a '%' not followed by two hex digits")
    try:
        unquote_to_bytes(part).decode("utf-8")
    except UnicodeDecodeError:
        raise TargetError(
            400, f"the request target's {name} percent-encodes bytes that are not UTF-8"
        ) from None


def parse_target(target: str) -> Target:
    """Take a request target apart, or raise :class:`TargetError` (never anything else).

    Accepted: origin-form (``/path?query``) and absolute-form (``http://host[:port]/path?query``,
    ``https`` too), printable ASCII, at most :data:`MAX_TARGET` characters, every ``%`` followed
    by two hex digits that encode UTF-8. Refused with a 400: asterisk-form (``*``), authority-form
    (``host:port``, for CONNECT), other schemes, user info, a malformed host or port, a fragment,
    bad percent-encoding; with a 414: a longer target.
    """
    if len(target) > MAX_TARGET:
        raise TargetError(414, f"the request target is longer than {MAX_TARGET} bytes")
    if not target or not target.isascii() or not target.isprintable() or " " in target:
        raise TargetError(400, f"the request target must be printable ASCII; {_FORMS}")
    if target == "*":
        raise TargetError(400, f"asterisk-form (*) request targets are not served; {_FORMS}")
    if "#" in target:
        raise TargetError(400, "a request target must not carry a fragment (#...)")
    authority: str | None = None
    rest = target
    if not target.startswith("/"):
        scheme, sep, rest = target.partition("://")
        if not sep:
            raise TargetError(400, f"authority-form and other request targets are not served; {_FORMS}")
        if scheme.lower() not in ("http", "https"):
            raise TargetError(400, f"the request target's scheme must be http or https; {_FORMS}")
        cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        authority, rest = rest[:cut], rest[cut:]
        _check_authority(authority)
        if not rest.startswith("/"):
            rest = "/" + rest
    path, _, query = rest.partition("?")
    _check_encoding(path, "path")
    _check_encoding(query, "query")
    return Target(path, query, authority)


class Reply(NamedTuple):
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

    def __repr__(self) -> str:
        # A body may hold a phone (/device), message ids, an echoed text: sizes and names only.
        raw = None if self.raw is None else f"<{len(self.raw)} bytes>"
        return (
            f"Reply({self.status!r}, body=<{len(self.body)} bytes>, content_type={self.content_type!r}, "
            f"headers={[name for name, _ in self.headers]!r}, close={self.close!r}, raw={raw}, "
            f"drip_interval={self.drip_interval!r}, drip_head={self.drip_head!r})"
        )


def error(status: int, message: str) -> Reply:
    """A JSON ``{"error": message}`` answer."""
    return Reply(status, json_bytes({"error": message}))


# --------------------------------------------------------------------------- routes


@dataclasses.dataclass(frozen=True, slots=True)
class Route(Generic[_H]):
    """A matched route: the handler and the path's ``{placeholder}`` segments, percent-decoded."""

    handler: _H
    params: tuple[str, ...] = dataclasses.field(repr=False)  # an instance token among them


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
