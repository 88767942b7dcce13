"""What the tests need from Airflow that lives in different places in 2.11+ and 3.x.

The package's own differences are in ``airflow_provider_plugz._compat``; these are the ones
only tests use (internals of dag.test(), the secrets masker, the providers manager).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_plugz._compat import AIRFLOW_V3

if AIRFLOW_V3:
    from airflow.sdk import Connection

    try:  # Airflow 3.1+
        from airflow.sdk.exceptions import AirflowRescheduleException, AirflowSkipException, TaskDeferred
    except ImportError:  # Airflow 3.0
        from airflow.exceptions import (  # type: ignore[no-redef]
            AirflowRescheduleException,
            AirflowSkipException,
            TaskDeferred,
        )

    try:  # Airflow 3.1+
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    try:  # Airflow 3.1+
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # Airflow 3.0
        from airflow.sdk.execution_time.secrets_masker import redact  # type: ignore[no-redef]
    from airflow.sdk.definitions.dag import DAG as _SdkDag

    DAG_TEST_CODE = _SdkDag.test.__code__
else:
    from airflow.exceptions import AirflowRescheduleException, AirflowSkipException, TaskDeferred
    from airflow.models import Connection  # type: ignore[assignment]
    from airflow.models.dag import DAG as _ModelsDag
    from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    from airflow.utils.log.secrets_masker import redact  # type: ignore[no-redef]

    DAG_TEST_CODE = _ModelsDag.test.__code__


def warm_up_task_api() -> None:
    """Airflow 3 runs dag.test() tasks through an in-process API whose first call builds the
    routes of every API version (~8 s): pay it once, up front. Airflow 2 has no such API."""
    if AIRFLOW_V3:
        from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor

        assert InProcessTestSupervisor._api_client().get("health").status_code == 200


def hook_info(conn_type: str) -> Any:
    """The providers manager's HookInfo for a connection type."""
    if AIRFLOW_V3:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        return ProvidersManagerTaskRuntime().hooks[conn_type]
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager().hooks[conn_type]


__all__ = [
    "DAG_TEST_CODE",
    "AirflowRescheduleException",
    "AirflowSkipException",
    "Connection",
    "DagBag",
    "TaskDeferred",
    "hook_info",
    "redact",
    "warm_up_task_api",
]
