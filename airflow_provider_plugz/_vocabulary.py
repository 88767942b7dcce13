"""The words of this provider for a WhatsApp number: its connection states, the rule that names
them, how each is said, what a sensor may wait for, and how its phone is shown in logs.

One place, so that the hook's Test button, the endpoints (``InstanceStatus.state``), the
operators, the sensors, the triggers, the fleet audit and the notifier cannot drift apart:

- :data:`CONNECTION_STATES` and :func:`connection_state` (:func:`instance_state` for a status
  read back as a dict): what a ``GET .../status`` answer means;
- :func:`state_label`, :func:`describe_state` and :func:`status_sentence`: how a state is said in
  log lines and in the Test button's answer;
- :func:`instance_status_condition`: what ``PlugzInstanceStatusSensor`` and its trigger wait for;
- :func:`mask_phone`: a phone number as logs and reprs may show it.

Standard library only: DAG files (sensors, operators, the notifier) and the triggerer's event
loop (triggers) import it, so it loads neither Airflow, an HTTP client nor the protocol.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

__all__ = [
    "CONNECTED",
    "CONNECTION_STATES",
    "DISCONNECTED",
    "PHONE_OFFLINE",
    "SESSION_LOST",
    "STATE_WORDS",
    "STATUS_FIELDS",
    "connection_state",
    "describe_state",
    "instance_state",
    "instance_status_condition",
    "mask_phone",
    "state_label",
    "status_sentence",
]

# --- the states and their rule -----------------------------------------------------------------

CONNECTED = "connected"
DISCONNECTED = "disconnected"
SESSION_LOST = "session_lost"
PHONE_OFFLINE = "phone_offline"

#: The connection states of a number (``GET .../status``), in the order the fleet audit counts
#: them (its report's keys). Only ``connected`` sends; in the others messages wait in the queue.
CONNECTION_STATES = (CONNECTED, DISCONNECTED, SESSION_LOST, PHONE_OFFLINE)

#: The fields of a ``GET .../status`` answer the rule reads (``InstanceStatus``' and a trigger
#: observation's names), which a sensor's condition may also name one by one.
STATUS_FIELDS = ("connected", "session", "smartphone_connected")


def connection_state(connected: bool, session: bool | None, smartphone_connected: bool) -> str:
    """The one rule for what a ``GET .../status`` answer means (one of :data:`CONNECTION_STATES`).

    - ``connected``: connected to Plugz, session held (or not reported) and the phone online;
      messages go out.
    - ``phone_offline``: connected, but the phone is offline; messages wait in the queue.
    - ``session_lost``: not connected while the phone is online ("You need to restore the
      session."), or connected without a session; restoring the session fixes it.
    - ``disconnected``: not connected and the phone offline ("You are not connected.").
    """
    if not connected:
        return SESSION_LOST if smartphone_connected else DISCONNECTED
    if session is False:
        return SESSION_LOST
    return CONNECTED if smartphone_connected else PHONE_OFFLINE


def instance_state(status: Mapping[str, Any]) -> str:
    """:func:`connection_state` of a status given as a dict with the :data:`STATUS_FIELDS` (a
    trigger's observation, ``dataclasses.asdict(InstanceStatus)``)."""
    return connection_state(
        bool(status["connected"]), status["session"], bool(status["smartphone_connected"])
    )


# --- how each state is said ----------------------------------------------------------------------

#: Each state in words. In log lines (:func:`state_label`) a state that does not send is in capitals.
STATE_WORDS = {
    CONNECTED: "connected",
    DISCONNECTED: "disconnected",
    SESSION_LOST: "session lost",
    PHONE_OFFLINE: "phone offline",
}


def state_label(state: str) -> str:
    """A state as log lines show it: ``connected``, or in capitals when it does not send
    (``DISCONNECTED``, ``SESSION LOST``, ``PHONE OFFLINE``)."""
    words = STATE_WORDS.get(state, state.replace("_", " "))
    return words if state == CONNECTED else words.upper()


def describe_state(state: str, reason: str | None = None) -> str:
    """:func:`state_label`, with the server's reason when the number does not send:
    ``SESSION LOST (You need to restore the session.)``."""
    label = state_label(state)
    return f"{label} ({reason})" if reason and state != CONNECTED else label


def status_sentence(
    connected: bool, session: bool | None, smartphone_connected: bool, error: str | None = None
) -> str:
    """A status as a sentence for people (the Test button): what the state means and what to do.

    ``session_lost`` has two faces, said apart: not connected while the phone is online (restore
    the session), and connected without a session.
    """
    state = connection_state(connected, session, smartphone_connected)
    reason = f" ({error})" if error else ""
    if state == CONNECTED:
        return "the number is connected (phone online)"
    if state == PHONE_OFFLINE:
        return f"the number is connected but its phone is OFFLINE{reason}"
    if state == SESSION_LOST and connected:
        return f"the number is connected but holds NO WhatsApp session{reason}"
    lost = ": its WhatsApp session was lost, restore it" if state == SESSION_LOST else ""
    return f"the number is NOT connected{lost}{reason}"


# --- what a sensor waits for ---------------------------------------------------------------------


def instance_status_condition(
    state: str | Collection[str] | None = None,
    *,
    connected: bool | None = None,
    session: bool | None = None,
    smartphone_connected: bool | None = None,
) -> dict[str, Any]:
    """What ``PlugzInstanceStatusSensor`` waits for, as the JSON-safe dict its trigger keeps.

    ``{"state": [...]}`` for named states (default ``["connected"]``; ``-`` may stand for ``_``),
    else the fields that are not ``None``: ``{"connected": True, "smartphone_connected": False}``.

    :raises PlugzConfigurationError: an unknown state, a field that is not a bool or None, or
        both a state and fields.
    """
    fields = {"connected": connected, "session": session, "smartphone_connected": smartphone_connected}
    for name, value in fields.items():
        if value is not None and not isinstance(value, bool):
            raise _condition_error(
                f"{name} must be True, False or None (don't care), not a {type(value).__name__}."
            )
    chosen = {name: value for name, value in fields.items() if value is not None}
    if chosen and state is not None:
        raise _condition_error(
            "give either state=... or connected= / session= / smartphone_connected=, not both (a "
            "state already fixes those fields)."
        )
    if chosen:
        return chosen
    return {"state": _states(CONNECTED if state is None else state)}


def _states(state: object) -> list[str]:
    given = [state] if isinstance(state, str) else state
    if not isinstance(given, Collection) or isinstance(given, (bytes, dict)) or not given:
        given = [given]
    states: list[str] = []
    for one in given:
        name = one.replace("-", "_") if isinstance(one, str) else None
        if name not in CONNECTION_STATES:
            raise _condition_error(
                f"state must be one of {', '.join(CONNECTION_STATES)} (or a list of them), not "
                f"{str(one)[:40]!r}."
            )
        if name not in states:
            states.append(name)
    return states


def _condition_error(problem: str) -> Exception:
    # The error tree needs Airflow (PlugzError is an AirflowException): loaded only to say no.
    from airflow_provider_plugz.exceptions import PlugzConfigurationError

    return PlugzConfigurationError(f"Plugz instance status condition: {problem}")


# --- phones ------------------------------------------------------------------------------------


def mask_phone(phone: object) -> str:
    """A phone number for logs and reprs: ``***`` and its last 4 digits (only when it has at
    least 8, so that little of a short one shows); enough to tell numbers apart, not to dial one."""
    text = phone if isinstance(phone, str) else str(phone) if isinstance(phone, int) else ""
    digits = re.sub(r"[^0-9]", "", text)
    return f"***{digits[-4:]}" if len(digits) >= 8 else "***"
