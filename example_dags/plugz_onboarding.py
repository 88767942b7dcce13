"""Onboarding: wait (in the triggerer, for days if need be) until a new number is connected,
then until it has a PIN."""

from __future__ import annotations

from datetime import timedelta

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from airflow_provider_plugz.sensors.plugz import PlugzInstanceStatusSensor, PlugzPinStatusSensor

with DAG(
    dag_id="plugz_onboarding",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["plugz", "onboarding"],
    params={
        "poll_interval": Param(
            300,
            type="number",
            exclusiveMinimum=0,
            maximum=86400,
            description=(
                "Seconds between two checks (connection, then PIN) while waiting; shorten it to try "
                "the DAG out."
            ),
        )
    },
    doc_md="""
### Plugz onboarding

Trigger this DAG when a new WhatsApp number is added to Plugz. Two **deferrable** sensors
wait in the triggerer, so days of waiting cost no worker slot:

1. `wait_for_connection` waits until the number is **connected** (connected to Plugz, session
   held, phone online: scan the QR code in the Plugz panel); it pushes the status it saw
   (`{"connected", "session", "smartphone_connected", "error"}`) to XCom;
2. then `wait_for_pin` waits until it has a two-step-verification **PIN**; it pushes
   `has_code` (`True`) to XCom.

Both check every `poll_interval` seconds (a DAG param, default 300: 5 minutes; it feeds the
sensors' `poke_interval`) and give up after 7 days each (`timeout`). To try the DAG out,
trigger it with `{"poll_interval": 5}`. A number that is already connected, or already has its
PIN, passes its sensor at the first check, without deferring.

When both are there, `announce_ready` runs: replace it with the next onboarding steps
(welcome message, CRM update, ...).

Set up: an Airflow connection `plugz_default` of type **Plugz** for the new number
(see the provider docs, docs/connections.md). Credential or configuration errors fail the
waiting sensor at once; network trouble and Plugz outages only delay it.
""",
) as dag:
    # [START howto_sensor_plugz_onboarding]
    wait_for_connection = PlugzInstanceStatusSensor(
        task_id="wait_for_connection",
        plugz_conn_id="plugz_default",
        state="connected",
        deferrable=True,
        poke_interval="{{ params.poll_interval }}",
        timeout=timedelta(days=7),
    )
    wait_for_pin = PlugzPinStatusSensor(
        task_id="wait_for_pin",
        plugz_conn_id="plugz_default",
        expected=True,
        deferrable=True,
        poke_interval="{{ params.poll_interval }}",
        timeout=timedelta(days=7),
    )
    # [END howto_sensor_plugz_onboarding]

    @task
    def announce_ready(has_code: bool) -> str:
        message = f"Number is onboarded: two-step-verification PIN set = {has_code}."
        print(message)
        return message

    wait_for_connection >> wait_for_pin
    announce_ready(wait_for_pin.output)
