"""Shared pieces of the hook tests (tests/hooks/, tests/transports/): the two transports and
pointing ``plugz_default`` at a sandbox with some fields changed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import INSTANCE_ID

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox

TRANSPORTS = [pytest.param("sync", id="requests"), pytest.param("async", id="httpx")]


def set_connection(monkeypatch: pytest.MonkeyPatch, sb: PlugzSandbox, **changes: Any) -> None:
    conn = json.loads(sb.connection_json(INSTANCE_ID))
    extra = changes.pop("extra", {})
    conn.update(changes)
    conn["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))
