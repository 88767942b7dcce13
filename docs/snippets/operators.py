"""The operators and sensors pages' samples (docs/operators.md, docs/sensors.md), in one DAG that
tests/test_docs.py parses and checks."""

from __future__ import annotations

from datetime import timedelta

import pendulum

try:  # Airflow 3
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.empty import EmptyOperator

# [START howto_operator_plugz_imports]
from airflow_provider_plugz.operators.plugz import PlugzPinBranchOperator, PlugzPinStatusOperator
from airflow_provider_plugz.sensors.plugz import PlugzPinStatusSensor

# [END howto_operator_plugz_imports]

with DAG(
    dag_id="plugz_docs_operators",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    # [START howto_operator_plugz_pin_status]
    check = PlugzPinStatusOperator(task_id="check_pin", plugz_conn_id="plugz_default")
    # [END howto_operator_plugz_pin_status]

    ok, alert, open_ticket = (EmptyOperator(task_id=t) for t in ("ok", "alert", "open_ticket"))
    # [START howto_operator_plugz_pin_branch]
    branch = PlugzPinBranchOperator(
        task_id="branch_on_pin",
        if_pin_set="ok",  # a task id, a task group id, or a list of them
        if_pin_missing=["alert", "open_ticket"],
    )
    branch >> [ok, alert, open_ticket]
    # [END howto_operator_plugz_pin_branch]

    # [START howto_sensor_plugz_pin_status]
    # poke: holds a worker slot, checks every poke_interval seconds
    PlugzPinStatusSensor(task_id="wait_poke", mode="poke", poke_interval=60, timeout=3600)
    # reschedule: frees the slot between checks
    PlugzPinStatusSensor(task_id="wait_reschedule", mode="reschedule", poke_interval=600, timeout=86400)
    # deferrable: waits in the triggerer (PlugzPinStatusTrigger), for days, at no worker cost
    PlugzPinStatusSensor(task_id="wait_deferred", deferrable=True, poke_interval=300, timeout=7 * 86400)
    # expected=False waits for the PIN to be removed
    PlugzPinStatusSensor(task_id="wait_for_removal", expected=False, poke_interval=60)
    # [END howto_sensor_plugz_pin_status]

    # [START howto_operator_plugz_set_pin]
    from airflow_provider_plugz.operators.plugz import PlugzSetPinOperator

    # The documented place: an extra of the Plugz connection, as a JSON string.
    PlugzSetPinOperator(task_id="set_pin", pin_extra="pin_secret")
    # A Variable: only when a secrets backend serves it (see below).
    PlugzSetPinOperator(task_id="set_pin_from_variable", pin_variable="plugz_default_pin")
    # [END howto_operator_plugz_set_pin]

    # [START howto_operator_plugz_instance_status]
    from airflow_provider_plugz.operators.plugz import PlugzInstanceStatusOperator

    health = PlugzInstanceStatusOperator(task_id="health")
    # return_value: {"connected": true, "session": true, "smartphone_connected": true, "error": null}
    # [END howto_operator_plugz_instance_status]

    # [START howto_sensor_plugz_instance_status]
    from airflow_provider_plugz.sensors.plugz import PlugzInstanceStatusSensor

    # until the number is connected (the default)
    PlugzInstanceStatusSensor(task_id="wait_for_connection", deferrable=True, poke_interval=300)
    # until it goes down: any one of several states
    PlugzInstanceStatusSensor(task_id="wait_for_outage", state=["disconnected", "session_lost"])
    # a condition over the fields; None (the default) means "don't care"
    PlugzInstanceStatusSensor(task_id="phone_back", connected=True, smartphone_connected=True)
    # [END howto_sensor_plugz_instance_status]

    # [START howto_operator_plugz_audit]
    from airflow_provider_plugz.operators.audit import PlugzPinAuditOperator

    audit = PlugzPinAuditOperator(
        task_id="audit_pins",
        plugz_conn_ids=["plugz_sales", "plugz_support", "plugz_billing"],  # templated
        max_concurrency=32,
        audit_timeout=timedelta(minutes=30),  # the default; seconds work too
        execution_timeout=timedelta(minutes=30),  # the audit ends ~1 minute before this
        fail_if_missing_pin=False,  # True: fail the task when any number has no PIN
        fail_on_error=False,  # True: fail when any number could not be checked (timeouts included)
    )
    # [END howto_operator_plugz_audit]

    # [START howto_operator_plugz_send_message]
    from airflow_provider_plugz.operators.messages import PlugzSendMessageOperator

    PlugzSendMessageOperator(
        task_id="tell_oncall",
        plugz_conn_id="plugz_alerts",
        phone="{{ var.value.plugz_oncall_phone }}",
        message="Fleet audit: {{ ti.xcom_pull('audit_pins')['without_pin'] }} number(s) without PIN",
    )
    # [END howto_operator_plugz_send_message]
