"""Daily security check: does our WhatsApp number have a two-step-verification PIN, and is it
connected? If not, WhatsApp the on-call phone."""

from __future__ import annotations

from typing import Any

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, Variable, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models import Variable

from airflow_provider_plugz.notifications.plugz import PlugzNotifier
from airflow_provider_plugz.operators.plugz import (
    PlugzInstanceStatusOperator,
    PlugzPinStatusOperator,
    PlugzSetPinOperator,
)

#: The Airflow Variable holding the on-call phone (digits with country and area code, or a group id).
ONCALL_VARIABLE = "plugz_oncall_phone"
#: How the alert says each connection state that is not ``connected``.
NOT_CONNECTED = {
    "disconnected": "is disconnected",
    "session_lost": "has lost its WhatsApp session",
    "phone_offline": "has its phone offline",
}


def send_to_oncall(message: str, context: Any) -> None:
    """WhatsApp ``message`` to the on-call phone from the ``plugz_alerts`` number.

    ``notify()`` sends the text as it is: it holds what Plugz answered, which must never be
    rendered as a Jinja template (as a notifier's templated ``message`` would be).
    """
    from airflow_provider_plugz.exceptions import PlugzConfigurationError

    phone = Variable.get(ONCALL_VARIABLE, None)
    if not phone:
        raise PlugzConfigurationError(
            f"Plugz security check: the Variable {ONCALL_VARIABLE!r} (the phone alerts go to) is not "
            "set; set it to digits with country and area code, e.g. 5511999999999 (Admin > "
            "Variables or AIRFLOW_VAR_PLUGZ_ONCALL_PHONE)."
        )
    PlugzNotifier(phone=str(phone), message=message).notify(context)


with DAG(
    dag_id="plugz_security_check",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["plugz", "security"],
    params={"remediate": False},
    # Any task that fails (bad credentials, Plugz down, an alert that could not go out) is
    # reported on WhatsApp too, with the DAG, task, run and log URL.
    default_args={"on_failure_callback": PlugzNotifier(phone="{{ var.value.plugz_oncall_phone }}")},
    doc_md="""
### Plugz security check

Every day, asks Plugz whether the WhatsApp number behind the `plugz_default` connection
has a two-step-verification PIN (`check_pin`) and whether it is connected (`check_connection`),
then branches (`route`):

- **PIN set and connected** -> `ok` (nothing to do);
- **no PIN, or not connected** (disconnected, session lost, phone offline) -> `alert` sends
  a WhatsApp message saying which to the on-call phone; then, **only if the PIN is missing and
  the `remediate` param is true** (off by default), `set_pin` registers the PIN kept in the
  `plugz_default` connection's extra `pin_secret` and `confirm_pin` checks again.

`check_pin` returns the answer (XCom `return_value`, `True`/`False`); `check_connection` the
status (`{"connected", "session", "smartphone_connected", "error"}`); `alert` the text it sent.

**Alerts.** They go out through `PlugzNotifier` from a number of their own, the connection
`plugz_alerts` (an alert that a number is disconnected cannot go out from that number), to
the phone in the Variable `plugz_oncall_phone` (digits with country and area code, e.g.
`5511999999999`, or a WhatsApp group id). The same notifier is every task's
`on_failure_callback`: a failed task (bad credentials, Plugz down, an alert that could not be
sent) is reported too. Logs show the phone masked and the text's length only. Plugz *queues*
messages: while `plugz_alerts` is disconnected, alerts wait and go out when it reconnects.

Set up: create Airflow connections `plugz_default` (the number to check) and `plugz_alerts`
(the number alerts come from) of type **Plugz** with the Instance ID, Instance token and
Client-Token from the Plugz panel (see the provider docs, docs/connections.md), and the Variable
`plugz_oncall_phone`. A missing `plugz_alerts` or Variable fails `alert` with a message saying
what to set.
To let the DAG fix a missing PIN, add the six-digit PIN to that connection's extra as a
JSON **string**, `{"pin_secret": "012345"}`, and trigger with `{"remediate": true}` (or
change the default). Airflow's REST API and Airflow 3's UI show an extra whose name
contains `secret` as `***`; a name like `pin`, a JSON number, or an Airflow Variable kept
in the metadata database are shown in clear (`set_pin` says so in a WARNING in its log, and
refuses a number). A Variable served by a secrets backend is never shown either: pass
`pin_variable=` for that.
A Plugz error (bad credentials, unknown instance, service down) fails `check_pin` or
`check_connection` with a message saying what to do.
""",
) as dag:
    # [START howto_operator_plugz_security_check]
    check_pin = PlugzPinStatusOperator(task_id="check_pin", plugz_conn_id="plugz_default")
    check_connection = PlugzInstanceStatusOperator(task_id="check_connection", plugz_conn_id="plugz_default")
    # [END howto_operator_plugz_security_check]

    def problems(has_code: bool, status: dict[str, Any]) -> list[str]:
        """What is wrong with the number, in words for the on-call person (empty: nothing)."""
        from airflow_provider_plugz.endpoints import connection_state

        found = []
        if not has_code:
            found.append("has NO two-step-verification PIN: set one in WhatsApp > Settings")
        state = connection_state(status["connected"], status["session"], status["smartphone_connected"])
        if state != "connected":
            reason = f" ({status['error']})" if status.get("error") else ""
            found.append(f"{NOT_CONNECTED[state]}{reason}: reconnect it in the Plugz panel")
        return found

    @task.branch
    def route(has_code: bool, status: dict[str, Any]) -> str:
        """``alert`` when the PIN is missing or the number is not connected, else ``ok``."""
        return "alert" if problems(has_code, status) else "ok"

    # The text goes to a person: XCom keeps it; the log shows its length and the phone masked only.
    @task(show_return_value_in_logs=False)
    def alert(has_code: bool, status: dict[str, Any], **context: Any) -> str:
        found = problems(has_code, status)
        message = "*Plugz security check*\nThe WhatsApp number of connection plugz_default " + (
            "\nand ".join(found) + "."
        )
        send_to_oncall(message, context)
        print(f"Alerted the on-call phone: {len(found)} problem(s) with plugz_default.")
        return message

    @task
    def ok() -> str:
        message = "WhatsApp number has a two-step-verification PIN and is connected."
        print(message)
        return message

    @task.short_circuit
    def remediation_enabled(has_code: bool, params: dict[str, object] | None = None) -> bool:
        """Go on to set the PIN only when it is missing and the run's `remediate` param is true."""
        return not has_code and bool((params or {}).get("remediate"))

    set_pin = PlugzSetPinOperator(
        task_id="set_pin",
        plugz_conn_id="plugz_default",
        pin_extra="pin_secret",  # a JSON string in an extra Airflow hides by name
    )
    confirm_pin = PlugzPinStatusOperator(task_id="confirm_pin", plugz_conn_id="plugz_default")

    alert_task = alert(check_pin.output, check_connection.output)
    route(check_pin.output, check_connection.output) >> [alert_task, ok()]
    alert_task >> remediation_enabled(check_pin.output) >> set_pin >> confirm_pin
