"""Every Plugz call this provider makes: one declaration each, and the typed result it gives.

An :class:`~airflow_provider_plugz._protocol.Endpoint` holds all there is to know about a
call - method, path, whether it may be repeated, the words its messages use, how its body is
built and validated, how its answer becomes a frozen result - so that adding a call is one
declaration here and a one-line method on :class:`~airflow_provider_plugz.hooks.plugz.PlugzHook`
(``hook.call(ENDPOINT, ...)`` / ``await hook.acall(ENDPOINT, ...)``). The contract of each is in
the Plugz reference (``plugz-api.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_plugz._protocol import Answer, BadArgument, Body, Endpoint, Malformed
from airflow_provider_plugz._redaction import Secret

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "INSTANCE_STATUS",
    "PIN_STATUS",
    "SET_PIN",
    "InstanceStatus",
    "PinStatus",
]


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PinStatus:
    """Whether the WhatsApp account behind an instance has a two-step-verification PIN."""

    has_code: bool


@dataclass(frozen=True)
class InstanceStatus:
    """Whether the number is connected (``GET .../status``).

    ``session`` is Plugz's own field (None where the server does not send it, as Z-API);
    ``error`` is the server's reason when something is not connected, e.g. "You need to
    restore the session." - state here, not a failure.
    """

    connected: bool
    session: bool | None
    smartphone_connected: bool
    error: str | None = None


# --- parsing answers ---------------------------------------------------------------------------


def _flag(answer: Answer, key: str, *, optional: bool = False) -> bool | None:
    value = answer.payload.get(key)
    if isinstance(value, bool) or (optional and value is None):
        return value
    raise Malformed(f"it has no {key!r} field" if key not in answer.payload else f"{key!r} is not a boolean")


def _pin_status(answer: Answer) -> PinStatus:
    return PinStatus(has_code=bool(_flag(answer, "hasCode")))


def _pin_registered(answer: Answer) -> None:
    if answer.payload.get("success") is not True:
        raise Malformed("it does not say success: true")


def _instance_status(answer: Answer) -> InstanceStatus:
    return InstanceStatus(
        connected=bool(_flag(answer, "connected")),
        session=_flag(answer, "session", optional=True),
        smartphone_connected=bool(_flag(answer, "smartphoneConnected")),
        error=answer.text("error"),
    )


def _reports_connection_state(payload: Mapping[str, Any]) -> bool:
    # {"connected": false, "error": "You are not connected."} is state; {"error": "..."} alone
    # (a bad Client-Token, say) is a failure like on any other endpoint.
    return isinstance(payload.get("connected"), bool)


# --- request bodies ----------------------------------------------------------------------------

_SIX_DIGITS = re.compile(r"[0-9]{6}")


def _pin_body(code: object) -> Body:
    """A WhatsApp two-step-verification PIN is exactly six digits; never echo what was given."""
    if not isinstance(code, str) or not _SIX_DIGITS.fullmatch(code):
        raise BadArgument(
            "the PIN must be exactly six digits (0-9), as WhatsApp's two-step verification requires; "
            "check the secret it comes from."
        )
    return Body({"code": Secret(code)}, secrets=(code,))


# --- the calls ---------------------------------------------------------------------------------

PIN_STATUS: Endpoint[PinStatus] = Endpoint("GET", "security/two-fa-code", "PIN status check", _pin_status)
# Changes state: after it may have reached the server it is never sent again.
SET_PIN: Endpoint[None] = Endpoint(
    "POST", "security/two-fa-code", "PIN registration", _pin_registered, idempotent=False, body=_pin_body
)
INSTANCE_STATUS: Endpoint[InstanceStatus] = Endpoint(
    "GET", "status", "instance status check", _instance_status, error_is_state=_reports_connection_state
)
