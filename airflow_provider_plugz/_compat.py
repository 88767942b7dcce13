"""Every import that differs between Airflow versions, resolved in one place."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException
from airflow.sdk.log import mask_secret


async def aget_connection(conn_id: str) -> Any:
    """Read a connection from inside an event loop without blocking it."""
    return await BaseHook.aget_connection(conn_id)


__all__ = ["AirflowException", "BaseHook", "aget_connection", "mask_secret"]
