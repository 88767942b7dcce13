"""The fake Plugz API: a route table keyed by ``(method, path)``, answering as the real API does.

Every API call first passes the checks the real API makes, in its order: a known path (404),
an allowed method (405), the account's Client-Token (400 when missing, 403 echoing a wrong one),
a known instance with its token (404), a live subscription (400), and for mobile-only routes a
mobile instance (400). Then the route's handler answers. Adding an endpoint is one route.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
from typing import TYPE_CHECKING, NamedTuple

from airflow_provider_plugz.testing.sandbox._http import (
    Answer,
    Request,
    Route,
    Router,
    error,
    is_json_media,
    json_bytes,
)

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
_STATUS_OK = json_bytes({"connected": True, "smartphoneConnected": True})

INSTANCE_PREFIX = "/instances/{instance_id}/token/{token}"


class Call(NamedTuple):
    """One API call that passed the common checks: the request and the instance it names."""

    request: Request
    instance: SandboxInstance
    state: SandboxState


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A route's handler, and whether the real API serves it for mobile instances only."""

    handler: Callable[[Call], Answer]
    mobile_only: bool = False


def get_pin_status(call: Call) -> Answer:
    """``GET .../security/two-fa-code``: whether the account has a PIN."""
    return Answer(200, _HAS_CODE[call.instance.has_code])


def set_pin(call: Call) -> Answer:
    """``POST .../security/two-fa-code`` with ``{"code": "123456"}``: register a PIN."""
    if not is_json_media(call.request.headers.get("content-type")):
        return Answer(415, _UNSUPPORTED_MEDIA)
    try:
        payload = json.loads(call.request.body)
    except ValueError:
        return error(400, "Invalid JSON body")
    code = payload.get("code") if isinstance(payload, dict) else None
    if not isinstance(code, str) or len(code) != 6 or not code.isascii() or not code.isdigit():
        return error(400, "code must be a string of exactly 6 digits")
    try:
        call.state.update(call.instance.instance_id, has_code=True)
    except KeyError:  # removed meanwhile
        return Answer(404, _INSTANCE_NOT_FOUND)
    return Answer(200, _SUCCESS)


def get_status(call: Call) -> Answer:
    """``GET .../status``: the number is connected."""
    return Answer(200, _STATUS_OK)


def get_device(call: Call) -> Answer:
    """``GET .../device``: the phone behind the instance (a made-up number derived from its id)."""
    digits = "".join(str(ord(ch) % 10) for ch in call.instance.instance_id)[-9:].rjust(9, "0")
    device = {
        "wa_version": "2.24.1.6",
        "mcc": "724",
        "mnc": "05",
        "os_version": "14",
        "device_manufacturer": "Sandbox",
        "device_model": "Plugz Sandbox Phone",
        "osbuildnumber": "UP1A.231005.007",
        "platform": "android",
    }
    return Answer(200, json_bytes({"phone": f"5511{digits}", "imgUrl": None, "device": device}))


ROUTES: dict[tuple[str, str], Endpoint] = {
    ("GET", f"{INSTANCE_PREFIX}/security/two-fa-code"): Endpoint(get_pin_status, mobile_only=True),
    ("POST", f"{INSTANCE_PREFIX}/security/two-fa-code"): Endpoint(set_pin, mobile_only=True),
    ("GET", f"{INSTANCE_PREFIX}/status"): Endpoint(get_status),
    ("GET", f"{INSTANCE_PREFIX}/device"): Endpoint(get_device),
}


def _same(received: str, expected: str) -> bool:
    # Header and path text was decoded as latin-1: encoding it back gives the bytes on the wire.
    return hmac.compare_digest(received.encode("latin-1", errors="replace"), expected.encode("utf-8"))


class PlugzApi:
    """Answers Plugz API requests from a :class:`SandboxState`."""

    def __init__(self, state: SandboxState, routes: dict[tuple[str, str], Endpoint] = ROUTES) -> None:
        self._state = state
        self._router = Router(routes)

    def answer(self, request: Request) -> Answer:
        route = self._router.match(request.method, request.path)
        if route is None:
            return Answer(404, NOT_FOUND)
        if not isinstance(route, Route):
            return Answer(405, NOT_FOUND, headers=(("Allow", ", ".join(route)),))
        client_token = self._state.client_token
        if client_token is not None:
            received = request.headers.get("client-token")
            if not received:
                return Answer(400, _NULL_NOT_ALLOWED)
            if not _same(received, client_token):
                # The real API echoes the rejected token; our client must redact it.
                return error(403, f"Client-Token {received} not allowed")
        instance_id, token = route.params
        instance = self._state.find(instance_id)
        if instance is None or not _same(token, instance.token):
            return Answer(404, _INSTANCE_NOT_FOUND)
        if instance.expired:
            return Answer(400, _EXPIRED)
        endpoint = route.handler
        if endpoint.mobile_only and instance.kind != "mobile":
            return Answer(400, _MOBILE_ONLY)
        return endpoint.handler(Call(request, instance, self._state))
