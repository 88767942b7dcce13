"""The Deadline Alert sample (docs/notifications.md; Airflow 3.1+), parsed and checked by
tests/test_docs.py."""

from __future__ import annotations

# [START howto_notifier_plugz_deadline_alert]
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, DeadlineReference

from airflow_provider_plugz.notifications.plugz import PlugzNotifier

with DAG(
    "nightly_sync_deadline",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(hours=1),
        callback=AsyncCallback(PlugzNotifier, kwargs={"phone": "{{ var.value.plugz_oncall_phone }}"}),
    ),
) as dag:
    ...
# [END howto_notifier_plugz_deadline_alert]
