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
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from airflow_provider_plugz._protocol import Answer, BadArgument, Body, Endpoint, Malformed
from airflow_provider_plugz._redaction import Secret, mask_phones, redact, sanitize

# The connection states, their rule and phone masking live in the provider's vocabulary (standard
# library only, so that sensors and triggers use them without loading the protocol); they are
# named here too, where they were first defined.
from airflow_provider_plugz._vocabulary import CONNECTION_STATES, connection_state, mask_phone

__all__ = [
    "CONNECTION_STATES",
    "DEVICE",
    "INSTANCE_STATUS",
    "PIN_STATUS",
    "SEND_TEXT",
    "SET_PIN",
    "DeviceInfo",
    "InstanceStatus",
    "PinStatus",
    "SentMessage",
    "connection_state",
    "mask_phone",
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
    restore the session." - state here, not a failure. It is server text, kept as every error
    text is: one bounded line, secrets removed, phone-like numbers ``***``.
    """

    connected: bool
    session: bool | None
    smartphone_connected: bool
    error: str | None = None

    def __repr__(self) -> str:
        error = None if self.error is None else mask_phones(self.error)  # a server text: a phone may be in it
        return (
            f"InstanceStatus(connected={self.connected!r}, session={self.session!r}, "
            f"smartphone_connected={self.smartphone_connected!r}, error={error!r})"
        )

    @property
    def state(self) -> str:
        """The connection state, one of :data:`CONNECTION_STATES` (the rule of
        :func:`~airflow_provider_plugz._vocabulary.connection_state`)."""
        return connection_state(self.connected, self.session, self.smartphone_connected)


@dataclass(frozen=True)
class SentMessage:
    """A message Plugz accepted (``POST .../send-text``): *queued*, not yet delivered.

    ``zaap_id`` is Plugz's id of it, ``message_id`` WhatsApp's. Plugz sends queued messages one
    by one; a message to (or from) a disconnected phone waits in the queue until it reconnects.
    """

    zaap_id: str
    message_id: str


@dataclass(frozen=True)
class DeviceInfo:
    """The phone behind the instance (``GET .../device``), from Plugz's layout or Z-API's.

    ``phone`` is None when no number is paired (both references' own example answers with
    ``"phone": ""``). ``platform`` is WhatsApp's code for the phone's app (``android``,
    ``iphone``, ``smba``/``smbi`` for WhatsApp Business): Plugz's ``device.platform`` or Z-API's
    ``originalDevice``. The phone's own details (``wa_version`` ... ``mnc``, ``model``) come from
    Plugz's layout only: in Z-API's, ``device.device_model`` names the session software (e.g.
    "Z-API"), never the phone, so ``model`` stays None there and ``session_name`` holds
    ``device.sessionName``; ``session_id`` (Z-API's ``sessionId``) and ``is_business`` are Z-API's.

    Every text field but ``phone`` is server text, kept as every error text is: one bounded
    line, secrets removed, phone-like numbers ``***`` - in the field itself, so in whatever it is
    copied to (``dataclasses.asdict``, XCom, logs). ``img_url`` (the profile picture's link) is
    kept only whole: a link with a number masked or cut short is neither usable nor safe, so one
    holding anything that reads as a phone number or a secret, or longer than 2,048 printable
    characters, is None (WhatsApp's own picture links usually hold long digit runs).

    Personal data stays out of reprs: ``phone`` shows as its last 4 digits (:attr:`masked_phone`);
    ``name`` and ``about`` (the WhatsApp profile's name and status text) and ``img_url`` (its
    picture) are left out, and any phone-like number in another field is masked.
    """

    phone: str | None = field(repr=False)
    img_url: str | None = field(default=None, repr=False)
    wa_version: str | None = None
    platform: str | None = None
    os_version: str | None = None
    os_build_number: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    mcc: str | None = None
    mnc: str | None = None
    name: str | None = field(default=None, repr=False)
    about: str | None = field(default=None, repr=False)
    is_business: bool | None = None
    session_name: str | None = None
    session_id: int | None = None

    @property
    def masked_phone(self) -> str | None:
        """The phone as logs may show it (``***`` and its last 4 digits); None when none is paired."""
        return None if self.phone is None else mask_phone(self.phone)

    def __repr__(self) -> str:
        shown = [f"phone={self.masked_phone!r}"]
        for item in fields(self):
            if item.repr:
                value = getattr(self, item.name)
                shown.append(f"{item.name}={(mask_phones(value) if isinstance(value, str) else value)!r}")
        return f"DeviceInfo({', '.join(shown)})"


# --- parsing answers ---------------------------------------------------------------------------

_MISSING = object()


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


def _sent_message(answer: Answer) -> SentMessage:
    ids = {key: answer.payload.get(key) for key in ("zaapId", "messageId")}
    missing = [key for key, value in ids.items() if not isinstance(value, str) or not value]
    if missing:
        raise Malformed(f"it has no {' or '.join(repr(key) for key in missing)} text")
    return SentMessage(zaap_id=str(ids["zaapId"]), message_id=str(ids["messageId"]))


def _text_field(answer: Answer, key: str, where: str = "") -> str | None:
    """A documented string field as server text (see :meth:`Answer.text`): None when absent,
    null or blank; any other JSON type is malformed."""
    value = answer.payload.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise Malformed(f"'{where}{key}' is not a text")
    return (answer.text(key) or "").strip() or None


#: The longest link :func:`_link_field` keeps.
MAX_LINK = 2048


def _link_field(answer: Answer, key: str) -> str | None:
    """A documented link field (``imgUrl``), whole or None: None also when it is not one printable
    line of at most :data:`MAX_LINK` characters or holds anything :meth:`Answer.text` would mask or
    redact (a phone-like number, a secret, instance credentials)."""
    value = answer.payload.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise Malformed(f"'{key}' is not a text")
    link = value.strip()
    shown = mask_phones(redact(sanitize(link, MAX_LINK), answer.secrets))
    return link if shown == link else None


# Plugz's ``device`` object: the phone's own details (ours: theirs).
_PHONE_DETAILS = {
    "wa_version": "wa_version",
    "platform": "platform",
    "os_version": "os_version",
    "os_build_number": "osbuildnumber",
    "manufacturer": "device_manufacturer",
    "mcc": "mcc",
    "mnc": "mnc",
}
# Fields only Z-API's layout has: with any of them, ``device.device_model`` is the session software.
_SESSION_LAYOUT_KEYS = ("originalDevice", "sessionId", "isBusiness")
# A phone number as the API writes it: digits, perhaps with "+" and the usual separators.
_DEVICE_PHONE = re.compile(r"\+?[0-9][0-9 ().-]{0,31}")
_MAX_SESSION_ID = 2**63


def _device_phone(answer: Answer) -> str | None:
    phone = answer.payload.get("phone", _MISSING)
    if phone is _MISSING:
        raise Malformed("it has no 'phone' field")
    if phone is None or (isinstance(phone, str) and not phone.strip()):
        return None  # no number paired yet: the documented example itself
    if not isinstance(phone, str):
        raise Malformed("'phone' is not a text")
    if not _DEVICE_PHONE.fullmatch(phone.strip()):
        raise Malformed("'phone' is not a phone number (digits, at most 32 characters)")
    return phone.strip()


def _session_id(answer: Answer) -> int | None:
    value = answer.payload.get("sessionId")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_SESSION_ID:
        raise Malformed("'sessionId' is not a whole number from 0 to 2**63 - 1")
    return value


def _device(answer: Answer) -> DeviceInfo:
    """Plugz's layout (``device`` holds the phone's details) or Z-API's (``device`` holds
    ``sessionName`` and the session software as ``device_model``; see :class:`DeviceInfo`)."""
    phone = _device_phone(answer)
    device = answer.payload.get("device")
    if device is None:
        device = {}
    if not isinstance(device, Mapping):
        raise Malformed("'device' is not an object")
    details = Answer(device, answer.secrets)
    found = {ours: _text_field(details, theirs, "device.") for ours, theirs in _PHONE_DETAILS.items()}
    found["platform"] = found["platform"] or _text_field(answer, "originalDevice")
    model = _text_field(details, "device_model", "device.")
    session_name = _text_field(details, "sessionName", "device.")
    session_layout = "sessionName" in device or any(key in answer.payload for key in _SESSION_LAYOUT_KEYS)
    return DeviceInfo(
        phone=phone,
        img_url=_link_field(answer, "imgUrl"),
        **found,
        model=None if session_layout else model,
        name=_text_field(answer, "name"),
        about=_text_field(answer, "about"),
        is_business=_flag(answer, "isBusiness", optional=True),
        session_name=session_name,
        session_id=_session_id(answer),
    )


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


# Digits only, country and area code included (5511999999999): E.164 allows at most 15.
_PHONE = re.compile(r"[0-9]{8,15}")
# A group id: digits, then "-group" and/or "-<digits>" (its creation time).
_GROUP = re.compile(r"[0-9]{10,25}(-[0-9]{6,20}(-group)?|-group)")
#: The longest text send_text accepts (WhatsApp's own limit is far above an alert's needs).
MAX_MESSAGE = 4096
_DELAYS = range(1, 16)


def _send_text_body(
    phone: object,
    message: object,
    *,
    message_id: str | None = None,
    delay_message: int | None = None,
    delay_typing: int | None = None,
) -> Body:
    """The recipient and text, checked before anything is sent; no error repeats either."""
    if not isinstance(phone, str) or not (_PHONE.fullmatch(phone) or _GROUP.fullmatch(phone)):
        raise BadArgument(
            "the phone must be digits only, with country and area code (e.g. 5511999999999: 8 to 15 "
            "digits, no '+', spaces or dashes), or a group id; check where the number comes from."
        )
    if not isinstance(message, str) or not message.strip():
        raise BadArgument("the message is empty; give the text to send.")
    if len(message) > MAX_MESSAGE:
        raise BadArgument(f"the message has {len(message)} characters; at most {MAX_MESSAGE} are sent.")
    body: dict[str, Any] = {"phone": phone, "message": message}
    if message_id is not None:
        if not isinstance(message_id, str) or not message_id.strip():
            raise BadArgument("message_id (the message to reply to) must be a non-empty text.")
        body["messageId"] = message_id
    for key, value in (("delayMessage", delay_message), ("delayTyping", delay_typing)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value not in _DELAYS:
                raise BadArgument(f"{key} must be a whole number of seconds from 1 to 15.")
            body[key] = value
    return Body(body, private=(phone, message))


# --- the calls ---------------------------------------------------------------------------------

PIN_STATUS: Endpoint[PinStatus] = Endpoint("GET", "security/two-fa-code", "PIN status check", _pin_status)
# Changes state: after it may have reached the server it is never sent again.
SET_PIN: Endpoint[None] = Endpoint(
    "POST", "security/two-fa-code", "PIN registration", _pin_registered, idempotent=False, body=_pin_body
)
INSTANCE_STATUS: Endpoint[InstanceStatus] = Endpoint(
    "GET", "status", "instance status check", _instance_status, error_is_state=_reports_connection_state
)
# A WhatsApp message a person reads: never sent twice (a retry after a lost answer is a duplicate).
SEND_TEXT: Endpoint[SentMessage] = Endpoint(
    "POST", "send-text", "message sending", _sent_message, idempotent=False, body=_send_text_body
)
DEVICE: Endpoint[DeviceInfo] = Endpoint("GET", "device", "device check", _device)
