"""The fake Plugz API: a route table keyed by ``(method, path)``, answering as the real API does.

Every API call first passes the checks the real API makes, in its order: a known path (404),
an allowed method (405), the account's Client-Token (400 when missing, 403 echoing a wrong one),
a known instance with its token (404), a live subscription (400), and for mobile-only routes a
mobile instance (400). Then the route's handler answers. Adding an endpoint is one route.

An instance's state (connected, disconnected, session-lost, phone-offline) shapes ``/status``;
``send-text`` works in every state, but only a connected instance delivers: the others queue.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
from typing import TYPE_CHECKING, NamedTuple

from airflow_provider_plugz.testing.sandbox._http import (
    Reply,
    Request,
    Route,
    Router,
    error,
    is_json_media,
    json_bytes,
)
from airflow_provider_plugz.testing.sandbox._state import QueueFullError

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_plugz.testing.sandbox._models import SandboxInstance
    from airflow_provider_plugz.testing.sandbox._state import SandboxState

# Bodies every hot path answers with are encoded once.
NOT_FOUND = json_bytes({"error": "NOT_FOUND", "message": "Unable to find matching target resource method"})
_NULL_NOT_ALLOWED = json_bytes({"error": "null not allowed"})
_INSTANCE_NOT_FOUND = json_bytes({"error": "Instance not found"})
_EXPIRED = json_bytes({"error": "To continue sending a message, you must subscribe to this instance again"})
_MOBILE_ONLY = json_bytes({"error": "This feature is only available for mobile instances"})
_UNSUPPORTED_MEDIA = json_bytes(
    {"error": "Unsupported Media Type", "message": "Content-Type must be application/json"}
)
_HAS_CODE = {flag: json_bytes({"success": True, "hasCode": flag}) for flag in (True, False)}
_SUCCESS = json_bytes({"success": True})
_NOT_CONNECTED = "You are not connected."
# What GET .../status answers in each state: the error text is state, not a failure.
_STATUS: dict[str, bytes] = {
    "connected": json_bytes({"connected": True, "session": True, "smartphoneConnected": True}),
    "disconnected": json_bytes(
        {"connected": False, "session": False, "smartphoneConnected": False, "error": _NOT_CONNECTED}
    ),
    "session-lost": json_bytes(
        {
            "connected": False,
            "session": False,
            "smartphoneConnected": True,
            "error": "You need to restore the session.",
        }
    ),
    "phone-offline": json_bytes(
        {"connected": True, "session": True, "smartphoneConnected": False, "error": _NOT_CONNECTED}
    ),
}
_QUEUE_FULL = json_bytes({"error": "The message queue is full"})
_DEVICE = {
    "wa_version": "2.24.1.6",
    "mcc": "724",
    "mnc": "05",
    "os_version": "14",
    "device_manufacturer": "Sandbox",
    "device_model": "Plugz Sandbox Phone",
    "osbuildnumber": "UP1A.231005.007",
    "platform": "android",
}

INSTANCE_PREFIX = "/instances/{instance_id}/token/{token}"


class Call(NamedTuple):
    """One API call that passed the common checks: the request and the instance it names."""

    request: Request
    instance: SandboxInstance
    state: SandboxState


@dataclasses.dataclass(frozen=True)
class ApiHandler:
    """A route's handler, and whether the real API serves it for mobile instances only."""

    handler: Callable[[Call], Reply]
    mobile_only: bool = False


def get_pin_status(call: Call) -> Reply:
    """``GET .../security/two-fa-code``: whether the account has a PIN."""
    return Reply(200, _HAS_CODE[call.instance.has_code])


def _json_object(request: Request) -> dict[str, object] | Reply:
    """The body of a JSON write as an object, or the 415/400 answer the real API gives instead."""
    if not is_json_media(request.headers.get("content-type")):
        return Reply(415, _UNSUPPORTED_MEDIA)
    try:
        payload = json.loads(request.body)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        return error(400, "Invalid JSON body")
    if not isinstance(payload, dict):
        return error(400, "The body must be a JSON object")
    return payload


def set_pin(call: Call) -> Reply:
    """``POST .../security/two-fa-code`` with ``{"code": "123456"}``: register a PIN."""
    if not is_json_media(call.request.headers.get("content-type")):
        return Reply(415, _UNSUPPORTED_MEDIA)
    try:
        payload = json.loads(call.request.body)
    except (ValueError, RecursionError):
        return error(400, "Invalid JSON body")
    code = payload.get("code") if isinstance(payload, dict) else None
    if not isinstance(code, str) or len(code) != 6 or not code.isascii() or not code.isdigit():
        return error(400, "code must be a string of exactly 6 digits")
    try:
        call.state.update(call.instance.instance_id, has_code=True)
    except KeyError:  # removed meanwhile
        return Reply(404, _INSTANCE_NOT_FOUND)
    return Reply(200, _SUCCESS)


def get_status(call: Call) -> Reply:
    """``GET .../status``: whether the number, its session and its phone are connected."""
    return Reply(200, _STATUS[call.instance.state])


def get_device(call: Call) -> Reply:
    """``GET .../device``: the phone behind the instance and a made-up Android device."""
    return Reply(200, json_bytes({"phone": call.instance.phone, "imgUrl": None, "device": _DEVICE}))


def get_queue(call: Call) -> Reply:
    """``GET .../queue``: the messages waiting for the instance to send them (Plugz's array)."""
    return Reply(200, json_bytes(call.state.queue(call.instance.instance_id)))


def _send_text_problem(payload: dict[str, object]) -> str | None:
    """Why a send-text body is refused (the texts say which field to fix), else None."""
    for key in ("phone", "message"):
        value = payload.get(key)
        if not isinstance(value, str) or not value.strip():
            shown = "missing" if value is None else "empty" if isinstance(value, str) else "not a string"
            return f"{key} is {shown}: send {key} as a non-empty string"
    reply_to = payload.get("messageId")
    if reply_to is not None and (not isinstance(reply_to, str) or not reply_to):
        return "messageId must be the id (a non-empty string) of the message to reply to"
    for key in ("delayMessage", "delayTyping"):
        delay = payload.get(key)
        if delay is not None and (
            isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 1 <= delay <= 15
        ):
            return f"{key} must be a number of seconds from 1 to 15"
    return None


def send_text(call: Call) -> Reply:
    """``POST .../send-text`` with ``{"phone", "message", ...}``: queue a WhatsApp message.

    It lands in the outbox, delivered at once if the instance is connected, else queued until it
    connects (up to 1,000 messages; then the instance refuses more with a 400).
    """
    payload = _json_object(call.request)
    if isinstance(payload, Reply):
        return payload
    problem = _send_text_problem(payload)
    if problem is not None:
        return error(400, problem)
    try:
        sent = call.state.send_text(call.instance.instance_id, str(payload["phone"]), str(payload["message"]))
    except KeyError:  # removed meanwhile
        return Reply(404, _INSTANCE_NOT_FOUND)
    except QueueFullError:
        return Reply(400, _QUEUE_FULL)
    return Reply(
        200, json_bytes({"zaapId": sent.zaap_id, "messageId": sent.message_id, "id": sent.message_id})
    )


ROUTES: dict[tuple[str, str], ApiHandler] = {
    ("GET", f"{INSTANCE_PREFIX}/security/two-fa-code"): ApiHandler(get_pin_status, mobile_only=True),
    ("POST", f"{INSTANCE_PREFIX}/security/two-fa-code"): ApiHandler(set_pin, mobile_only=True),
    ("GET", f"{INSTANCE_PREFIX}/status"): ApiHandler(get_status),
    ("GET", f"{INSTANCE_PREFIX}/device"): ApiHandler(get_device),
    ("GET", f"{INSTANCE_PREFIX}/queue"): ApiHandler(get_queue),
    ("POST", f"{INSTANCE_PREFIX}/send-text"): ApiHandler(send_text),
}


def _same(received: str, expected: str) -> bool:
    # Header and path text was decoded as latin-1: encoding it back gives the bytes on the wire.
    return hmac.compare_digest(received.encode("latin-1", errors="replace"), expected.encode("utf-8"))


class PlugzApi:
    """Answers Plugz API requests from a :class:`SandboxState`."""

    def __init__(self, state: SandboxState, routes: dict[tuple[str, str], ApiHandler] = ROUTES) -> None:
        self._state = state
        self._router = Router(routes)

    def answer(self, request: Request) -> Reply:
        route = self._router.match(request.method, request.path)
        if route is None:
            return Reply(404, NOT_FOUND)
        if not isinstance(route, Route):
            return Reply(405, NOT_FOUND, headers=(("Allow", ", ".join(route)),))
        client_token = self._state.client_token
        if client_token is not None:
            received = request.headers.get("client-token")
            if not received:
                return Reply(400, _NULL_NOT_ALLOWED)
            if not _same(received, client_token):
                # The real API echoes the rejected token; our client must redact it.
                return error(403, f"Client-Token {received} not allowed")
        instance_id, token = route.params
        instance = self._state.find(instance_id)
        if instance is None or not _same(token, instance.token):
            return Reply(404, _INSTANCE_NOT_FOUND)
        if instance.expired:
            return Reply(400, _EXPIRED)
        endpoint = route.handler
        if endpoint.mobile_only and instance.kind != "mobile":
            return Reply(400, _MOBILE_ONLY)
        return endpoint.handler(Call(request, instance, self._state))
