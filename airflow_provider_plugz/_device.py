"""What ``GET .../device`` answers, in Plugz's layout or Z-API's, read into one :class:`DeviceInfo`
(:func:`read_device`, the ``parse`` of :data:`airflow_provider_plugz.endpoints.DEVICE`, which
re-exports both). Light to import, like the endpoints.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from airflow_provider_plugz._declarations import Malformed, flag, link_field, text_field
from airflow_provider_plugz._vocabulary import mask_phone

if TYPE_CHECKING:
    from airflow_provider_plugz._protocol import Answer

_MISSING = object()


@dataclass(frozen=True, repr=False)  # its own __repr__ keeps personal data out
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
        from airflow_provider_plugz._redaction import mask_phones

        shown = [f"phone={self.masked_phone!r}"]
        for item in fields(self):
            if item.repr:
                value = getattr(self, item.name)
                shown.append(f"{item.name}={(mask_phones(value) if isinstance(value, str) else value)!r}")
        return f"DeviceInfo({', '.join(shown)})"


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


def read_device(answer: Answer) -> DeviceInfo:
    """Plugz's layout (``device`` holds the phone's details) or Z-API's (``device`` holds
    ``sessionName`` and the session software as ``device_model``; see :class:`DeviceInfo`)."""
    phone = _device_phone(answer)
    device = answer.payload.get("device")
    if device is None:
        device = {}
    if not isinstance(device, Mapping):
        raise Malformed("'device' is not an object")
    details = dataclasses.replace(answer, payload=device)
    found = {ours: text_field(details, theirs, "device.") for ours, theirs in _PHONE_DETAILS.items()}
    found["platform"] = found["platform"] or text_field(answer, "originalDevice")
    model = text_field(details, "device_model", "device.")
    session_name = text_field(details, "sessionName", "device.")
    session_layout = "sessionName" in device or any(key in answer.payload for key in _SESSION_LAYOUT_KEYS)
    return DeviceInfo(
        phone=phone,
        img_url=link_field(answer, "imgUrl"),
        **found,
        model=None if session_layout else model,
        name=text_field(answer, "name"),
        about=text_field(answer, "about"),
        is_business=flag(answer, "isBusiness", optional=True),
        session_name=session_name,
        session_id=_session_id(answer),
    )
