"""The control API under ``/_sandbox/``: change the sandbox's state over HTTP (CLI, other processes).

It refuses cross-site requests, so a web page open in a browser on the same machine cannot drive a
sandbox left running: the ``Host`` must be loopback (no DNS rebinding), an ``Origin`` must be absent
or loopback, and every write must say ``Content-Type: application/json`` (which a page can only
send cross-site after a CORS preflight, and the sandbox never grants one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from urllib.parse import unquote_plus

from airflow_provider_plugz.testing.sandbox._api import NOT_FOUND
from airflow_provider_plugz.testing.sandbox._faults import json_object, queued_fault_from_json
from airflow_provider_plugz.testing.sandbox._http import (
    Reply,
    Request,
    Route,
    Router,
    error,
    is_json_media,
    is_loopback_authority,
    json_bytes,
)
from airflow_provider_plugz.testing.sandbox._models import INSTANCE_STATES
from airflow_provider_plugz.testing.sandbox._state import (
    SandboxFullError,
    SandboxState,
    check_phone,
    check_state,
)

PREFIX = "/_sandbox"
#: ``GET /_sandbox/messages`` lists this many messages unless ``limit`` says otherwise ...
DEFAULT_PAGE_SIZE = 100
#: ... and at most this many ...
MAX_PAGE_SIZE = 1_000
#: ... in a body of at most this many bytes (one message, the first, may pass it alone).
PAGE_BYTES = 1024 * 1024

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LOOPBACK = "a loopback host (127.0.0.1, localhost or [::1], any port)"


def is_control(path: str) -> bool:
    """Whether ``path`` belongs to the control API."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def _shown(value: str) -> str:
    return repr(value if len(value) <= 100 else value[:100] + "...")


def cross_site_refusal(request: Request) -> Reply | None:
    """The 403/415 answer for a request that may come from a web page, else None."""
    host = request.headers.get("host")
    if host is None or not is_loopback_authority(host):
        shown = "no Host header" if host is None else f"Host {_shown(host)}"
        return error(403, f"the control API answers only requests addressed to {_LOOPBACK}; got {shown}")
    if request.authority is not None and not is_loopback_authority(request.authority):
        return error(403, f"the control API answers only requests addressed to {_LOOPBACK}")
    origin = request.headers.get("origin")
    if origin is not None:
        scheme, sep, authority = origin.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not is_loopback_authority(authority):
            return error(
                403,
                f"cross-site request refused: Origin {_shown(origin)} is not a page on {_LOOPBACK}; "
                "call the control API from a script or a loopback page",
            )
    if request.method not in _SAFE_METHODS and not is_json_media(request.headers.get("content-type")):
        return error(
            415,
            f"{request.method} {request.path} needs the header Content-Type: application/json "
            "(even without a body); the control API refuses other writes as possibly cross-site",
        )
    return None


# --------------------------------------------------------------------------- handlers

Handler = Callable[[SandboxState, Request, tuple[str, ...]], Reply]


def list_instances(state: SandboxState, request: Request, params: tuple[str, ...]) -> Reply:
    """``GET /_sandbox/instances``: every instance, without tokens."""
    return Reply(200, json_bytes([i.public() for i in state.instances]))


def add_instance(state: SandboxState, request: Request, params: tuple[str, ...]) -> Reply:
    """``POST /_sandbox/instances`` with ``{"instance_id", "token", "has_code"?, "kind"?, "expired"?,
    "state"?, "phone"?}``."""
    payload = json_object(request.body)
    if payload is None:
        return error(400, "body must be a JSON object")
    instance_id, token = payload.get("instance_id"), payload.get("token")
    has_code, kind, expired = (
        payload.get("has_code", False),
        payload.get("kind", "mobile"),
        payload.get("expired", False),
    )
    if not isinstance(instance_id, str) or not instance_id or not isinstance(token, str) or not token:
        return error(400, "instance_id and token must be non-empty strings")
    if not isinstance(has_code, bool) or not isinstance(expired, bool):
        return error(400, "has_code and expired must be booleans")
    if kind not in ("mobile", "web"):
        return error(400, "kind must be 'mobile' or 'web'")
    try:
        instance = state.add_instance(
            instance_id,
            token,
            has_code=has_code,
            kind=kind,
            expired=expired,
            state=check_state(payload.get("state", "connected")),
            phone=None if payload.get("phone") is None else check_phone(payload.get("phone")),
        )
    except ValueError as exc:
        return error(400, str(exc))
    except SandboxFullError as exc:
        return error(507, str(exc))
    return Reply(201, json_bytes(instance.public()))


def set_pin(state: SandboxState, request: Request, params: tuple[str, ...]) -> Reply:
    """``PUT /_sandbox/instances/{id}/pin`` with ``{"has_code": true|false}``."""
    payload = json_object(request.body)
    if payload is None or not isinstance(payload.get("has_code"), bool):
        return error(400, 'body must be {"has_code": true|false}')
    try:
        instance = state.update(params[0], has_code=bool(payload["has_code"]))
    except KeyError:
        return error(404, "Instance not found")
    return Reply(200, json_bytes(instance.public()))


def set_state(state: SandboxState, request: Request, params: tuple[str, ...]) -> Reply:
    """``PUT /_sandbox/instances/{id}/state`` with ``{"state": "connected"|"disconnected"|...}``.

    Connecting delivers the instance's queued messages.
    """
    payload = json_object(request.body)
    if payload is None or "state" not in payload:
        return error(400, f'body must be {{"state": ...}}, one of {", ".join(INSTANCE_STATES)}')
    try:
        instance = state.update(params[0], state=check_state(payload["state"]))
    except ValueError as exc:
        return error(400, str(exc))
    except KeyError:
        return error(404, "Instance not found")
    return Reply(200, json_bytes(instance.public()))


def _page_query(query: str) -> tuple[int, int] | Reply:
    """``(after, limit)`` from a listing's query, or the 400 answer for a bad one."""
    values = {"after": 0, "limit": DEFAULT_PAGE_SIZE}
    seen: set[str] = set()
    for field in filter(None, query.split("&")):
        name, _, text = (unquote_plus(part) for part in field.partition("="))
        if name not in values or name in seen:
            problem = "is given twice" if name in seen else "is not a parameter of this listing"
            return error(400, f"{_shown(name)} {problem}; it takes after=<seq> and limit=<count>")
        seen.add(name)
        if not text:
            continue  # limit= (empty) means the default
        low = 1 if name == "limit" else 0
        if not text.isascii() or not text.isdigit() or len(text) > 18 or int(text) < low:
            return error(400, f"{name} must be an integer >= {low}, got {_shown(text)}")
        values[name] = int(text)
    return values["after"], min(values["limit"], MAX_PAGE_SIZE)


def list_messages(state: SandboxState, request: Request, params: tuple[str, ...]) -> Reply:
    """``GET /_sandbox/messages[?after=<seq>][&limit=<n>]``: a page of the outbox, oldest first,
    every field (the tester's own data), as a JSON array.

    A page holds the messages whose ``seq`` is greater than ``after`` (default 0), at most
    ``limit`` of them (default :data:`DEFAULT_PAGE_SIZE`, at most :data:`MAX_PAGE_SIZE`) in at most
    :data:`PAGE_BYTES` of JSON (the first message is always included). Headers say the rest:
    ``X-Sandbox-Kept`` (messages in the outbox), ``X-Sandbox-Dropped`` (messages its bounds dropped
    since start or the last clear), and, when more follow, ``X-Sandbox-Next-After`` (the ``after``
    of the next page) and a ``Link: <...>; rel="next"``.
    """
    parsed = _page_query(request.query)
    if isinstance(parsed, Reply):
        return parsed
    after, limit = parsed
    page = state.message_page(after, limit, PAGE_BYTES)
    items: list[bytes] = []
    size = 2  # the brackets
    more = page.more
    for index, sent in enumerate(page.messages):
        item = json_bytes(sent.as_json())
        if items and size + 1 + len(item) > PAGE_BYTES:
            more = True
            break
        items.append(item)
        size += len(item) + (1 if index else 0)
    headers: list[tuple[str, str]] = [
        ("X-Sandbox-Kept", str(page.kept)),
        ("X-Sandbox-Dropped", str(page.dropped)),
    ]
    if more and items:
        next_after = page.messages[len(items) - 1].seq
        headers += [
            ("X-Sandbox-Next-After", str(next_after)),
            ("Link", f'<{PREFIX}/messages?after={next_after}&limit={limit}>; rel="next"'),
        ]
    return Reply(200, b"[" + b",".join(items) + b"]", headers=tuple(headers))


def usage(state: SandboxState, request: Request, params: tuple[str, ...]) -> Reply:
    """``GET /_sandbox/usage``: what the sandbox holds, in counts and bytes (see ``SandboxUsage``)."""
    return Reply(200, json_bytes(dataclasses.asdict(state.usage)))


def clear_messages(state: SandboxState, request: Request, params: tuple[str, ...]) -> Reply:
    """``DELETE /_sandbox/messages``: empty the outbox and every instance's queue."""
    state.clear_messages()
    return Reply(204)


def add_fault(state: SandboxState, request: Request, params: tuple[str, ...]) -> Reply:
    """``POST /_sandbox/faults`` with a fault's JSON form (see ``_faults.queued_fault_from_json``)."""
    payload = json_object(request.body)
    if payload is None:
        return error(400, "body must be a JSON object")
    try:
        fault, times, instance_id = queued_fault_from_json(payload)
        state.inject(fault, times, instance_id)
    except (ValueError, TypeError, RecursionError) as exc:
        return error(400, str(exc))
    except SandboxFullError as exc:
        return error(507, str(exc))
    return Reply(201, json_bytes({"kind": fault.kind, "times": times, "instance_id": instance_id}))


def clear_faults(state: SandboxState, request: Request, params: tuple[str, ...]) -> Reply:
    """``DELETE /_sandbox/faults``: drop every queued fault."""
    state.clear_faults()
    return Reply(204)


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", f"{PREFIX}/instances"): list_instances,
    ("POST", f"{PREFIX}/instances"): add_instance,
    ("PUT", f"{PREFIX}/instances/{{instance_id}}/pin"): set_pin,
    ("PUT", f"{PREFIX}/instances/{{instance_id}}/state"): set_state,
    ("GET", f"{PREFIX}/messages"): list_messages,
    ("DELETE", f"{PREFIX}/messages"): clear_messages,
    ("GET", f"{PREFIX}/usage"): usage,
    ("POST", f"{PREFIX}/faults"): add_fault,
    ("DELETE", f"{PREFIX}/faults"): clear_faults,
}


class ControlApi:
    """Answers ``/_sandbox/...`` requests by changing a :class:`SandboxState`."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._router = Router(ROUTES)

    def answer(self, request: Request) -> Reply:
        refusal = cross_site_refusal(request)
        if refusal is not None:
            return refusal
        route = self._router.match(request.method, request.path)
        if route is None:
            return Reply(404, NOT_FOUND)
        if not isinstance(route, Route):
            return Reply(405, NOT_FOUND, headers=(("Allow", ", ".join(route)),))
        return route.handler(self._state, request, route.params)
