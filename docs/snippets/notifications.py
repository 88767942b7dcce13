"""The notifications page's sample (docs/notifications.md), parsed and checked by tests/test_docs.py."""

from __future__ import annotations

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

# [START howto_notifier_plugz_on_failure]
from airflow_provider_plugz.notifications.plugz import PlugzNotifier

alert = PlugzNotifier(phone="{{ var.value.plugz_oncall_phone }}")

with DAG(
    "nightly_sync",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    default_args={"on_failure_callback": alert},
) as dag:
    ...
# [END howto_notifier_plugz_on_failure]
