"""pytest fixtures that serve a Plugz sandbox (loaded in every pytest session via ``pytest11``).

The top level imports only pytest and typing; the sandbox is imported inside the fixture, so
sessions that never use it pay nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_plugz.testing.sandbox import PlugzSandbox


@pytest.fixture
def plugz_sandbox() -> Iterator[PlugzSandbox]:
    """A started sandbox: Client-Token ``sandbox-client-token``, one mobile instance without PIN.

    The instance is ``sandbox-instance`` with token ``sandbox-token``.
    """
    from airflow_provider_plugz.testing.sandbox import (
        DEFAULT_CLIENT_TOKEN,
        DEFAULT_INSTANCE_ID,
        DEFAULT_INSTANCE_TOKEN,
        PlugzSandbox,
    )

    with PlugzSandbox(client_token=DEFAULT_CLIENT_TOKEN) as sandbox:
        sandbox.add_instance(DEFAULT_INSTANCE_ID, DEFAULT_INSTANCE_TOKEN)
        yield sandbox


@pytest.fixture
def plugz_connection(plugz_sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> PlugzSandbox:
    """The ``plugz_sandbox``, with ``AIRFLOW_CONN_PLUGZ_DEFAULT`` pointing at its instance."""
    from airflow_provider_plugz.testing.sandbox import DEFAULT_INSTANCE_ID

    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", plugz_sandbox.connection_json(DEFAULT_INSTANCE_ID))
    return plugz_sandbox
