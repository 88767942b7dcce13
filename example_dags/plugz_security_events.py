"""Event-driven security: run the moment our WhatsApp number loses its PIN or its connection.

A ``PlugzSecurityEventTrigger`` watches the number in Airflow 3's triggerer (an ``AssetWatcher``
on the asset this DAG is scheduled on) and fires only on a change; each run WhatsApps the
on-call phone what changed and, when enabled, sets the PIN again.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, Asset, AssetWatcher, Variable, task
except ImportError:  # Airflow 2.11: no event-driven scheduling
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models import Variable

    Asset = AssetWatcher = None

from airflow_provider_plugz.notifications.plugz import PlugzNotifier
from airflow_provider_plugz.operators.plugz import PlugzPinStatusOperator, PlugzSetPinOperator
from airflow_provider_plugz.triggers.events import PlugzSecurityEventTrigger

#: The number watched, and how often the triggerer asks Plugz about it (seconds; one PIN and one
#: status request per poll). The environment variable is read when the DAG file is parsed.
WATCHED_CONN_ID = "plugz_default"
POLL_INTERVAL = float(os.environ.get("PLUGZ_SECURITY_EVENTS_POLL_INTERVAL", "60"))
#: The Airflow Variable holding the on-call phone (digits with country and area code, or a group id).
ONCALL_VARIABLE = "plugz_oncall_phone"

if AssetWatcher is not None:
    # [START howto_trigger_plugz_security_event_watcher]
    SECURITY_ASSET: Any = Asset(
        name=f"plugz_security_{WATCHED_CONN_ID}",
        uri=f"x-plugz://{WATCHED_CONN_ID}/security",
        watchers=[
            AssetWatcher(
                name=f"plugz_security_watcher_{WATCHED_CONN_ID}",
                trigger=PlugzSecurityEventTrigger(WATCHED_CONN_ID, poll_interval=POLL_INTERVAL),
            )
        ],
    )
    SCHEDULE: Any = [SECURITY_ASSET]
    # [END howto_trigger_plugz_security_event_watcher]
    WHY_NO_SCHEDULE = ""
else:
    SECURITY_ASSET = None
    SCHEDULE = None
    WHY_NO_SCHEDULE = (
        "This Airflow has no event-driven scheduling (Asset + AssetWatcher need Airflow 3.0+): "
        "here the DAG runs only when triggered by hand, with the events in its `events` param."
    )

#: How the alert says each connection state that is not ``connected``.
NOT_CONNECTED = {
    "disconnected": "is disconnected",
    "session_lost": "has lost its WhatsApp session",
    "phone_offline": "has its phone offline",
}


def describe(event: dict[str, Any]) -> str:
    """One event, in words for the on-call person."""
    change, new = event.get("change"), event.get("new")
    if event.get("status") == "error":
        return f"cannot be checked: {event.get('error_class')}: {event.get('message')}"
    if event.get("status") == "flapping":
        if event.get("watch") == "pin":
            return "keeps losing and regaining its two-step-verification PIN: check WhatsApp > Settings now"
        seen = ", ".join(str(value) for value in event.get("values") or [])
        return f"keeps changing connection state ({seen}): check its phone and the Plugz panel"
    words = {
        "pin_removed": "LOST its two-step-verification PIN: set one in WhatsApp > Settings",
        "pin_set": "has its two-step-verification PIN again",
        "no_pin": "has NO two-step-verification PIN (found when the watcher started)",
        "reconnected": "is connected again",
    }
    if change in words:
        return words[change]
    state = NOT_CONNECTED.get(str(new), f"is {new}")
    suffix = " (found when the watcher started)" if change == "not_connected" else ""
    return f"{state}{suffix}: reconnect it in the Plugz panel"


def send_to_oncall(message: str, context: Any) -> None:
    """WhatsApp ``message`` to the on-call phone from the ``plugz_alerts`` number (sent as it is,
    never rendered as a template: it holds what Plugz answered)."""
    from airflow_provider_plugz.exceptions import PlugzConfigurationError

    phone = Variable.get(ONCALL_VARIABLE, None)
    if not phone:
        raise PlugzConfigurationError(
            f"Plugz security events: the Variable {ONCALL_VARIABLE!r} (the phone alerts go to) is not "
            "set; set it to digits with country and area code, e.g. 5511999999999 (Admin > "
            "Variables or AIRFLOW_VAR_PLUGZ_ONCALL_PHONE)."
        )
    PlugzNotifier(phone=str(phone), message=message).notify(context)


with DAG(
    dag_id="plugz_security_events",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["plugz", "security"],
    description=WHY_NO_SCHEDULE or f"Runs when {WATCHED_CONN_ID} loses or regains its PIN or connection.",
    params={"remediate": False, "events": []},
    default_args={"on_failure_callback": PlugzNotifier(phone="{{ var.value.plugz_oncall_phone }}")},
    doc_md=f"""
### Plugz security events

{WHY_NO_SCHEDULE}

Runs **the moment** the WhatsApp number behind the `plugz_default` connection loses or regains
its two-step-verification PIN, or is disconnected or reconnected - not a day later, as the
daily `plugz_security_check` would. The waiting is done in the triggerer: the asset
`plugz_security_plugz_default` has an `AssetWatcher` whose `PlugzSecurityEventTrigger` asks
Plugz every {POLL_INTERVAL:g} s (env `PLUGZ_SECURITY_EVENTS_POLL_INTERVAL` when the file is
parsed) and fires only on a **change**: a steady state, good or bad, runs nothing.

- `collect` gathers the run's events (the asset events' payloads, plus the `events` param of a
  manual run, for trying the DAG out);
- `route` -> `alert` WhatsApps the on-call phone one message listing them (a PIN removed or
  set, disconnected or reconnected, a PIN or connection that keeps changing - one `flapping`
  event, not one per flip -, or the watcher unable to check: bad credentials, unknown instance,
  a connection missing or malformed), or -> `nothing_to_report`;
- **only if a PIN was removed and the `remediate` param is true** (off by default; runs the
  watcher starts take the default, so change it in the DAG file to turn it on), `set_pin`
  registers the PIN kept in the `plugz_default` connection's extra `pin_secret` and
  `confirm_pin` checks again. Setting it again fires a `pin_set` event: one more run, which
  reports it.

Alerts go out as in `plugz_security_check`: from the `plugz_alerts` connection to the phone in
the Variable `plugz_oncall_phone`; the same notifier reports any failed task. After a
triggerer restart the watcher takes a new baseline: a change while no triggerer ran is not
reported (the daily check still finds it).
""",
) as dag:

    @task
    def collect(params: dict[str, Any] | None = None, **context: Any) -> list[dict[str, Any]]:
        """The watcher's events that started this run, then any given in the `events` param."""
        events: list[dict[str, Any]] = []
        triggering = context.get("triggering_asset_events") or {}
        if SECURITY_ASSET is not None and triggering:
            for asset_event in triggering.get(SECURITY_ASSET, []):
                payload = (asset_event.extra or {}).get("payload")
                if isinstance(payload, dict):
                    events.append(payload)
        events.extend(e for e in (params or {}).get("events") or [] if isinstance(e, dict))
        print(f"{len(events)} security event(s): {[e.get('change') or e.get('status') for e in events]}")
        return events

    @task.branch
    def route(events: list[dict[str, Any]]) -> str:
        return "alert" if events else "nothing_to_report"

    # The text goes to a person: XCom keeps it; the log shows its length and the phone masked only.
    @task(show_return_value_in_logs=False)
    def alert(events: list[dict[str, Any]], **context: Any) -> str:
        lines = [f"- {describe(event)} (seen {event.get('observed_at')})" for event in events]
        message = (
            f"*Plugz security events*\nThe WhatsApp number of connection {WATCHED_CONN_ID}:\n"
            + "\n".join(lines)
        )
        send_to_oncall(message, context)
        print(f"Alerted the on-call phone: {len(events)} event(s) of {WATCHED_CONN_ID}.")
        return message

    @task
    def nothing_to_report() -> str:
        message = "No security event in this run."
        print(message)
        return message

    @task.short_circuit
    def remediation_enabled(events: list[dict[str, Any]], params: dict[str, object] | None = None) -> bool:
        """Go on to set the PIN only when one was removed (or missing) and `remediate` is true."""
        lost = any(e.get("change") in ("pin_removed", "no_pin") for e in events)
        return lost and bool((params or {}).get("remediate"))

    set_pin = PlugzSetPinOperator(task_id="set_pin", plugz_conn_id=WATCHED_CONN_ID, pin_extra="pin_secret")
    confirm_pin = PlugzPinStatusOperator(task_id="confirm_pin", plugz_conn_id=WATCHED_CONN_ID)

    events = collect()
    alert_task = alert(events)
    route(events) >> [alert_task, nothing_to_report()]
    alert_task >> remediation_enabled(events) >> set_pin >> confirm_pin
