"""Daily security check: is a two-step-verification PIN set on our WhatsApp number?"""

from __future__ import annotations

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.10 / 2.11
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_plugz.operators.plugz import (
    PlugzPinBranchOperator,
    PlugzPinStatusOperator,
    PlugzSetPinOperator,
)

with DAG(
    dag_id="plugz_security_check",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["plugz", "security"],
    params={"remediate": False},
    doc_md="""
### Plugz security check

Every day, asks Plugz whether the WhatsApp number behind the `plugz_default` connection
has a two-step-verification PIN, and branches on the answer:

- **PIN set** -> `ok` (nothing to do);
- **no PIN** -> `alert` (replace its body with your pager, Slack or e-mail call), then,
  **only if the `remediate` param is true** (off by default), `set_pin` registers the PIN
  kept in the `plugz_default` connection's extra `pin_secret` and `confirm_pin` checks again.

`check_pin` pushes the answer to XCom under the key `has_code`.

Set up: create an Airflow connection `plugz_default` of type **Plugz** with the
Instance ID, Instance token and Client-Token from the Plugz panel (see the provider README).
To let the DAG fix a missing PIN, add the six-digit PIN to that connection's extra as a
JSON **string**, `{"pin_secret": "012345"}`, and trigger with `{"remediate": true}` (or
change the default). Airflow's REST API and Airflow 3's UI show an extra whose name
contains `secret` as `***`; a name like `pin`, a JSON number, or an Airflow Variable kept
in the metadata database are shown in clear (`set_pin` says so in a WARNING in its log, and
refuses a number). A Variable served by a secrets backend is never shown either: pass
`pin_variable=` for that.
A Plugz error (bad credentials, unknown instance, service down) fails `check_pin`
with a message saying what to do.
""",
) as dag:
    check_pin = PlugzPinBranchOperator(
        task_id="check_pin",
        plugz_conn_id="plugz_default",
        if_pin_set="ok",
        if_pin_missing="alert",
    )

    @task
    def alert() -> str:
        message = "WhatsApp number has NO two-step-verification PIN: set one in WhatsApp > Settings."
        print(message)
        return message

    @task
    def ok() -> str:
        message = "WhatsApp number has a two-step-verification PIN."
        print(message)
        return message

    @task.short_circuit
    def remediation_enabled(params: dict[str, object] | None = None) -> bool:
        """Go on to set the PIN only when the run's `remediate` param is true."""
        return bool((params or {}).get("remediate"))

    set_pin = PlugzSetPinOperator(
        task_id="set_pin",
        plugz_conn_id="plugz_default",
        pin_extra="pin_secret",  # a JSON string in an extra Airflow hides by name
    )
    confirm_pin = PlugzPinStatusOperator(task_id="confirm_pin", plugz_conn_id="plugz_default")

    alert_task = alert()
    check_pin >> [alert_task, ok()]
    alert_task >> remediation_enabled() >> set_pin >> confirm_pin
