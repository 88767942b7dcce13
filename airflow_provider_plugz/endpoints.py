"""Every Plugz call this provider makes: one declaration each, and the typed result it gives.

An :class:`~airflow_provider_plugz._protocol.Endpoint` holds all there is to know about a
call - method, path, whether it may be repeated, the words its messages use, how its body is
built and validated, how its answer becomes a frozen result - so that adding a call is one
declaration here and a one-line method on :class:`~airflow_provider_plugz.hooks.plugz.PlugzHook`
(``hook.call(ENDPOINT, ...)`` / ``await hook.acall(ENDPOINT, ...)``). The contract of each is in
the Plugz reference (``plugz-api.md``).

Beside each read call that says something about a number's health, its
:class:`~airflow_provider_plugz._facts.Fact`: how the answer becomes a state and an audit column,
how it is counted and when it fails the audit. ``FACTS`` lists them: each is a check of the fleet
audit (``checks=``, with its ``fail_if_*`` option) and a value the event watcher can ``watch``.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_plugz._declarations import (
    BadArgument,
    Body,
    Endpoint,
    Fact,
    Malformed,
    checked_text,
    cut,
    expect_keys,
    facts_by_name,
    flag,
    kind,
)
from airflow_provider_plugz._device import DeviceInfo, read_device

# The connection states, their rule and phone masking live in the provider's vocabulary (standard
# library only, so that sensors and triggers use them without loading the protocol); they are
# named here too, where they were first defined.
from airflow_provider_plugz._vocabulary import (
    CONNECTED,
    CONNECTION_STATES,
    connection_state,
    describe_state,
    mask_phone,
    state_label,
)

if TYPE_CHECKING:
    from airflow_provider_plugz._protocol import Answer

# Light to import (the audit operator and the event watcher read FACTS when a DAG file is parsed,
# the triggerer on its event loop): the redaction helpers are imported where they are used.

__all__ = [
    "CONNECTION",
    "CONNECTION_STATES",
    "DEVICE",
    "FACTS",
    "INSTANCE_STATUS",
    "PIN",
    "PIN_STATUS",
    "QUEUE",
    "QUEUED_MESSAGES",
    "SEND_TEXT",
    "SET_PIN",
    "DeviceInfo",
    "InstanceStatus",
    "PinStatus",
    "QueueInfo",
    "SentMessage",
    "connection_state",
    "fact",
    "mask_phone",
]


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PinStatus:
    """Whether the WhatsApp account behind an instance has a two-step-verification PIN."""

    has_code: bool


@dataclass(frozen=True, repr=False)  # its own __repr__ masks phones
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
        from airflow_provider_plugz._redaction import mask_phones

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
class QueueInfo:
    """The messages waiting in the number's queue (``GET .../queue``): how many, and since when.

    Messages wait there until WhatsApp takes them (1-3 s apart), and while the phone is not
    connected (then at most 1,000; on reconnect they all go out, perhaps stale). Who they are for
    and what they say are personal data: counted, never kept. ``oldest_created`` is when the oldest
    was queued (ISO-8601, UTC), None when the queue is empty or the server gave no time;
    ``complete`` is False when the server said more pages follow (``count`` is then a lower bound).
    """

    count: int
    oldest_created: str | None = None
    complete: bool = True


# --- parsing answers ---------------------------------------------------------------------------


def _pin_status(answer: Answer) -> PinStatus:
    return PinStatus(has_code=bool(flag(answer, "hasCode")))


def _pin_registered(answer: Answer) -> None:
    if answer.payload.get("success") is not True:
        raise Malformed("it does not say success: true")


def _instance_status(answer: Answer) -> InstanceStatus:
    return InstanceStatus(
        connected=bool(flag(answer, "connected")),
        session=flag(answer, "session", optional=True),
        smartphone_connected=bool(flag(answer, "smartphoneConnected")),
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


# --- request bodies ----------------------------------------------------------------------------

_SIX_DIGITS = re.compile(r"[0-9]{6}")


def _pin_body(code: object) -> Body:
    """A WhatsApp two-step-verification PIN is exactly six digits; never echo what was given."""
    if not isinstance(code, str) or not _SIX_DIGITS.fullmatch(code):
        raise BadArgument(
            "the PIN must be exactly six digits (0-9), as WhatsApp's two-step verification requires; "
            "check the secret it comes from."
        )
    from airflow_provider_plugz._redaction import Secret

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
DEVICE: Endpoint[DeviceInfo] = Endpoint("GET", "device", "device check", read_device)


_MIN_MS, _MAX_MS = 10**12, 2**47  # 2001-09-09 to the year 6429, in epoch milliseconds


def _queue(answer: Answer) -> QueueInfo:
    """Plugz's bare array of queued messages, or an object with ``messages`` (the page's example,
    and Z-API's paged listing with ``hasMore``); only the count and the oldest ``Created`` are kept."""
    messages = answer.payload.get("messages")
    if not isinstance(messages, list):
        raise Malformed("it is neither a list of messages nor an object with a 'messages' list")
    created: list[int] = []
    for message in messages:
        if not isinstance(message, Mapping):
            raise Malformed("an item of its 'messages' is not an object")
        when = message.get("Created")
        # Epoch milliseconds; anything else (a text, seconds, a time before 2001) says no time.
        if isinstance(when, (int, float)) and not isinstance(when, bool) and _MIN_MS <= when < _MAX_MS:
            created.append(int(when))
    oldest = None
    if created:
        moment = datetime.datetime.fromtimestamp(min(created) / 1000, tz=datetime.timezone.utc)
        oldest = moment.isoformat(timespec="seconds")
    return QueueInfo(len(messages), oldest, complete=answer.payload.get("hasMore") is not True)


# A queue holds at most 1,000 messages of up to 4,096 characters: its listing can pass 1 MiB.
QUEUE: Endpoint[QueueInfo] = Endpoint(
    "GET", "queue", "queue check", _queue, array_key="messages", max_body=16 * 1024 * 1024
)


# --- the facts: what the audit checks per number and the watcher watches ---------------------------


def _pin_fields(result: PinStatus) -> dict[str, Any]:
    return {"has_code": result.has_code}


def _read_pin_fields(xcom: Any) -> dict[str, Any]:
    if not isinstance(xcom, dict):
        raise ValueError(f"a PIN answer must be a JSON object, got {kind(xcom)}")
    expect_keys(xcom, {"has_code"}, "a PIN answer")
    if not isinstance(xcom["has_code"], bool):
        raise ValueError(f"has_code must be a bool, got {kind(xcom['has_code'])}")
    return {"has_code": xcom["has_code"]}


PIN: Fact[PinStatus] = Fact(
    name="pin",
    endpoint=PIN_STATUS,
    fields=_pin_fields,
    read_fields=_read_pin_fields,
    state=lambda fields: fields["has_code"],
    states={True: "with_pin", False: "without_pin"},
    words={True: "with PIN", False: "WITHOUT PIN"},
    is_bad=lambda state: state is False,
    fail_option="fail_if_missing_pin",
    problem="have NO PIN",
    column="has_code",
    errors_count="errors",
    title="PIN",
    describe=lambda fields: "PIN set" if fields["has_code"] else "NO PIN",
    baseline="no_pin",
    change=lambda old, new: "pin_set" if new else "pin_removed",
    doing="checking",
)

#: The fields of a connection status column, in the order they are written.
_STATUS_KEYS = ("state", "connected", "session", "smartphone_connected", "reason")


def _status_fields(result: InstanceStatus) -> dict[str, Any]:
    return {
        "state": result.state,
        "connected": result.connected,
        "session": result.session,
        "smartphone_connected": result.smartphone_connected,
        "reason": None if result.error is None else cut(result.error),
    }


def _read_status_fields(xcom: Any) -> dict[str, Any]:
    if not isinstance(xcom, dict):
        raise ValueError(f"a status entry must be a JSON object, got {kind(xcom)}")
    expect_keys(xcom, set(_STATUS_KEYS), "a status entry")
    for name in ("connected", "smartphone_connected"):
        if not isinstance(xcom[name], bool):
            raise ValueError(f"a status entry's {name} must be true or false, not {kind(xcom[name])}")
    if xcom["session"] is not None and not isinstance(xcom["session"], bool):
        raise ValueError(f"a status entry's session must be true, false or null, not {kind(xcom['session'])}")
    reason = xcom["reason"]
    if reason is not None:
        checked_text(reason, "the status reason")
    state = xcom["state"]
    if not isinstance(state, str) or state not in CONNECTION_STATES:
        raise ValueError(f"a status entry's state must be one of {', '.join(CONNECTION_STATES)}")
    if connection_state(xcom["connected"], xcom["session"], xcom["smartphone_connected"]) != state:
        raise ValueError(f"a status entry's state {state!r} does not match its fields")
    return {key: xcom[key] for key in _STATUS_KEYS}


def _connection_change(old: Any, new: Any) -> str:
    if new == CONNECTED:
        return "reconnected"
    return "disconnected" if old == CONNECTED else "connection_changed"


CONNECTION: Fact[InstanceStatus] = Fact(
    name="connection",
    endpoint=INSTANCE_STATUS,
    fields=_status_fields,
    read_fields=_read_status_fields,
    state=lambda fields: fields["state"],
    states={state: state for state in CONNECTION_STATES},
    words={state: state_label(state) for state in CONNECTION_STATES},
    is_bad=lambda state: state != CONNECTED,
    fail_option="fail_if_disconnected",
    problem="are not connected",
    column="status",
    errors_count="status_errors",
    title="Connection status",
    describe=lambda fields: describe_state(fields["state"], fields["reason"]),
    baseline="not_connected",
    change=_connection_change,
    doing="reading the status of",
)

#: A queue's states: nothing waiting, or messages waiting (for WhatsApp, or for the phone).
QUEUE_EMPTY, QUEUED_MESSAGES = "empty", "queued"


def _queue_fields(result: QueueInfo) -> dict[str, Any]:
    state = QUEUED_MESSAGES if result.count else QUEUE_EMPTY
    return {"state": state, "count": result.count, "oldest_created": result.oldest_created}


def _read_queue_fields(xcom: Any) -> dict[str, Any]:
    if not isinstance(xcom, dict):
        raise ValueError(f"a queue entry must be a JSON object, got {kind(xcom)}")
    expect_keys(xcom, {"state", "count", "oldest_created"}, "a queue entry")
    count, oldest = xcom["count"], xcom["oldest_created"]
    if type(count) is not int or count < 0:
        raise ValueError(f"a queue entry's count must be a whole number >= 0, not {kind(count)}")
    if oldest is not None and (not isinstance(oldest, str) or len(oldest) > 40):
        raise ValueError(f"a queue entry's oldest_created must be a time or null, not {kind(oldest)}")
    if xcom["state"] != (QUEUED_MESSAGES if count else QUEUE_EMPTY):
        raise ValueError("a queue entry's state does not match its count")
    return {"state": xcom["state"], "count": count, "oldest_created": oldest}


def _describe_queue(fields: Mapping[str, Any]) -> str:
    if not fields["count"]:
        return "queue empty"
    since = f" since {fields['oldest_created']}" if fields["oldest_created"] else ""
    return f"{fields['count']} message(s) QUEUED{since}"


QUEUE_FACT: Fact[QueueInfo] = Fact(
    name="queue",
    endpoint=QUEUE,
    fields=_queue_fields,
    read_fields=_read_queue_fields,
    state=lambda fields: fields["state"],
    states={QUEUE_EMPTY: "queue_empty", QUEUED_MESSAGES: "with_queued_messages"},
    words={QUEUE_EMPTY: "queue empty", QUEUED_MESSAGES: "WITH QUEUED MESSAGES"},
    is_bad=lambda state: state == QUEUED_MESSAGES,
    fail_option="fail_if_queued",
    problem="have messages waiting in their queue",
    column="queue",
    errors_count="queue_errors",
    title="Queue",
    describe=_describe_queue,
    baseline="messages_queued",
    change=lambda old, new: "queue_filled" if new == QUEUED_MESSAGES else "queue_emptied",
    doing="reading the queue of",
)

#: Every fact, in the order reports count them and watchers poll them.
FACTS = facts_by_name((PIN, CONNECTION, QUEUE_FACT))


def fact(name: str) -> Fact[Any]:
    """The fact called ``name``; KeyError naming the known ones."""
    try:
        return FACTS[name]
    except KeyError:
        raise KeyError(f"no fact {name!r}; known: {', '.join(FACTS)}") from None
