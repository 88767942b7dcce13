"""The "testing your own DAGs" sample (docs/sandbox.md): tests/test_docs.py calls it with the
``plugz_connection`` fixture, as pytest would."""

from __future__ import annotations

from typing import Any


# [START howto_testing_plugz_fixture]
def test_my_dag_sees_no_pin(plugz_connection: Any) -> None:
    from airflow_provider_plugz.hooks.plugz import PlugzHook

    assert PlugzHook().get_pin_status().has_code is False


# [END howto_testing_plugz_fixture]
