"""Every import that differs between Airflow versions, resolved in one place."""

from __future__ import annotations

from typing import Any

from airflow.sdk import (
    BaseBranchOperator,
    BaseHook,
    BaseOperator,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout
from airflow.sdk.log import mask_secret


async def aget_connection(conn_id: str) -> Any:
    """Read a connection from inside an event loop without blocking it."""
    return await BaseHook.aget_connection(conn_id)


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable``, read when an operator is built."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


__all__ = [
    "AirflowException",
    "AirflowSensorTimeout",
    "BaseBranchOperator",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "PokeReturnValue",
    "aget_connection",
    "default_deferrable",
    "mask_secret",
]
