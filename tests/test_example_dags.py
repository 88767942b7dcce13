"""The example DAGs: they import cleanly and cheaply, and run end to end in real Airflow
(``dag.test()`` on SQLite) against the sandbox."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.testing.dag_run import run_dag
from tests.conftest import EXAMPLE_DAGS, INSTANCE_ID, ROOT

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox


def test_example_dags_import_without_errors_or_warnings() -> None:
    from tests.airflow_compat import DagBag

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=str(EXAMPLE_DAGS))
    assert bag.import_errors == {}
    assert bag.captured_warnings == {}
    assert [str(w.message) for w in caught if "example_dags" in str(w.filename)] == []
    assert sorted(bag.dag_ids) == ["plugz_fleet_audit", "plugz_onboarding", "plugz_security_check"]
    for dag in bag.dags.values():
        assert "plugz_default" in (dag.doc_md or "")


def test_parsing_a_dag_file_loads_no_hook_http_client_or_sandbox() -> None:
    """DAG files import our operators on every parse: the hook and its clients must stay unloaded."""
    code = (
        "import sys, json, runpy;"
        f"runpy.run_path({str(EXAMPLE_DAGS / 'plugz_security_check.py')!r});"
        f"runpy.run_path({str(EXAMPLE_DAGS / 'plugz_onboarding.py')!r});"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('airflow_provider_plugz'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "airflow_provider_plugz.hooks.plugz" not in loaded
    assert "airflow_provider_plugz.triggers.plugz" not in loaded
    assert "airflow_provider_plugz.testing.sandbox" not in loaded
    assert "airflow_provider_plugz.operators.plugz" in loaded
    assert "airflow_provider_plugz.sensors.plugz" in loaded


SKIPPED_REMEDIATION = {"remediation_enabled": "skipped", "set_pin": "skipped", "confirm_pin": "skipped"}
PIN_OK = {"check_pin": "success", "alert": "skipped", "ok": "success"} | SKIPPED_REMEDIATION


@pytest.mark.parametrize(
    ("has_code", "states"),
    [
        pytest.param(
            False,
            {"check_pin": "success", "alert": "success", "ok": "skipped", "remediation_enabled": "success"}
            | {"set_pin": "skipped", "confirm_pin": "skipped"},
            id="no-pin-alerts-remediation-off",
        ),
        pytest.param(
            True,
            {"check_pin": "success", "alert": "skipped", "ok": "success"} | SKIPPED_REMEDIATION,
            id="pin-ok",
        ),
    ],
)
def test_security_check_branches(
    example_dags: Any, sandbox: PlugzSandbox, has_code: bool, states: dict[str, str]
) -> None:
    sandbox.set_has_code(INSTANCE_ID, has_code)
    report = run_dag(example_dags.get_dag("plugz_security_check"))
    assert report.state == "success"
    assert report.task_states == states
    assert report.xcom_value("check_pin", "has_code") is has_code
    taken = "ok" if has_code else "alert"
    assert isinstance(report.xcom_value(taken), str)
    assert sandbox.request_count == 1
    assert sandbox.instance(INSTANCE_ID).has_code is has_code  # nothing was changed


@pytest.mark.parametrize(
    ("has_code", "states", "requests"),
    [
        pytest.param(
            False,
            {"check_pin": "success", "alert": "success", "ok": "skipped", "remediation_enabled": "success"}
            | {"set_pin": "success", "confirm_pin": "success"},
            5,  # check_pin; set_pin's own check, the POST, its confirmation; confirm_pin
            id="no-pin-remediated",
        ),
        pytest.param(
            True,
            {"check_pin": "success", "alert": "skipped", "ok": "success"} | SKIPPED_REMEDIATION,
            1,
            id="pin-ok",
        ),
    ],
)
def test_security_check_remediates_when_asked(
    example_dags: Any,
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    has_code: bool,
    states: dict[str, str],
    requests: int,
) -> None:
    conn = json.loads(sandbox.connection_json(INSTANCE_ID))
    conn["extra"]["pin_secret"] = "482913"  # the documented place: a JSON string under a hidden name
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))
    sandbox.set_has_code(INSTANCE_ID, has_code)
    report = run_dag(example_dags.get_dag("plugz_security_check"), run_conf={"remediate": True})
    assert report.state == "success"
    assert report.task_states == states
    assert sandbox.instance(INSTANCE_ID).has_code is True
    if not has_code:
        assert report.xcom_value("set_pin") == {"changed": True, "has_code": True}
        assert report.xcom_value("confirm_pin") is True
        posts = [r for r in sandbox.requests if r.method == "POST"]
        assert [p.json() for p in posts] == [{"code": "482913"}]
    assert sandbox.request_count == requests


def test_security_check_fails_clearly_on_bad_credentials(
    example_dags: Any, sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_plugz.exceptions import PlugzAuthenticationError

    conn = json.loads(sandbox.connection_json(INSTANCE_ID))
    conn["extra"]["client_token"] = "REVOKED-CLIENT-TOKEN-0001"
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))
    report = run_dag(example_dags.get_dag("plugz_security_check"))
    assert report.state == "failed"
    assert report.task_states["check_pin"] == "failed"
    error = report.errors["check_pin"]
    assert isinstance(error, PlugzAuthenticationError)
    assert "REVOKED-CLIENT-TOKEN-0001" not in str(error)
    assert "Client-Token" in str(error)


def fast_onboarding(example_dags: Any) -> Any:
    """The onboarding DAG with a poll interval and timeout fit for a test."""
    dag = example_dags.get_dag("plugz_onboarding")
    sensor = dag.get_task("wait_for_pin")
    sensor.poke_interval = 0.05
    sensor.timeout = 30
    return dag


def test_onboarding_poll_interval_is_a_param_with_a_production_default(example_dags: Any) -> None:
    dag = example_dags.get_dag("plugz_onboarding")
    assert dag.params["poll_interval"] == 300
    assert dag.get_task("wait_for_pin").poke_interval == "{{ params.poll_interval }}"


@pytest.mark.parametrize(
    "how", [pytest.param("param", id="run-conf-param"), pytest.param("attribute", id="task")]
)
def test_onboarding_deferred_sensor_completes_when_pin_is_set_mid_wait(
    example_dags: Any, sandbox: PlugzSandbox, how: str
) -> None:
    def set_pin_once_waiting() -> None:
        # 1 check in the worker, then the trigger's polls: 4 calls mean it has been waiting a while.
        deadline = time.monotonic() + 30
        while sandbox.request_count < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        sandbox.set_has_code(INSTANCE_ID, True)

    flipper = threading.Thread(target=set_pin_once_waiting, daemon=True)
    flipper.start()
    if how == "param":  # as a user trying the DAG out would: no copy, only the run's conf
        report = run_dag(example_dags.get_dag("plugz_onboarding"), run_conf={"poll_interval": 0.05})
    else:
        report = run_dag(fast_onboarding(example_dags))
    flipper.join(5)
    assert report.state == "success"
    assert report.task_states == {"wait_for_pin": "success", "announce_ready": "success"}
    assert report.xcom_value("wait_for_pin") is True
    assert "PIN set = True" in report.xcom_value("announce_ready")
    assert sandbox.request_count >= 5  # it really waited in the trigger, then saw the PIN


def test_onboarding_does_not_defer_when_the_pin_is_already_set(
    example_dags: Any, sandbox: PlugzSandbox
) -> None:
    sandbox.set_has_code(INSTANCE_ID, True)
    report = run_dag(fast_onboarding(example_dags))
    assert report.state == "success"
    assert report.xcom_value("wait_for_pin") is True
    assert sandbox.request_count == 1


def test_onboarding_fails_at_once_for_an_unknown_instance(example_dags: Any, sandbox: PlugzSandbox) -> None:
    from airflow_provider_plugz.exceptions import PlugzNotFoundError

    sandbox.remove_instance(INSTANCE_ID)
    report = run_dag(fast_onboarding(example_dags))
    assert report.state == "failed"
    assert report.task_states == {"wait_for_pin": "failed", "announce_ready": "upstream_failed"}
    assert isinstance(report.errors["wait_for_pin"], PlugzNotFoundError)
    assert sandbox.request_count == 1


@pytest.mark.parametrize(
    ("mode", "deferrable"),
    [pytest.param("poke", False, id="poke"), pytest.param("reschedule", False, id="reschedule")],
)
def test_onboarding_sensor_in_worker_modes_waits_for_the_pin(
    example_dags: Any, sandbox: PlugzSandbox, mode: str, deferrable: bool
) -> None:
    dag = fast_onboarding(example_dags)
    sensor = dag.get_task("wait_for_pin")
    sensor.mode, sensor.deferrable = mode, deferrable

    def set_pin_after_two_checks() -> None:
        deadline = time.monotonic() + 30
        while sandbox.request_count < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        sandbox.set_has_code(INSTANCE_ID, True)

    flipper = threading.Thread(target=set_pin_after_two_checks, daemon=True)
    flipper.start()
    report = run_dag(dag)
    flipper.join(5)
    assert report.state == "success"
    assert report.task_states == {"wait_for_pin": "success", "announce_ready": "success"}
    assert report.xcom_value("wait_for_pin") is True
    assert sandbox.request_count >= 3


@pytest.mark.parametrize(
    ("soft_fail", "sensor_state", "next_state"),
    [
        pytest.param(False, "failed", "upstream_failed", id="timeout-fails"),
        pytest.param(True, "skipped", "skipped", id="timeout-soft-fail-skips"),
    ],
)
@pytest.mark.parametrize(
    "mode", [pytest.param("deferrable", id="deferrable"), pytest.param("poke", id="poke")]
)
def test_onboarding_sensor_timeout_and_soft_fail(
    example_dags: Any, sandbox: PlugzSandbox, mode: str, soft_fail: bool, sensor_state: str, next_state: str
) -> None:
    from airflow_provider_plugz._compat import AirflowSensorTimeout

    dag = fast_onboarding(example_dags)
    sensor = dag.get_task("wait_for_pin")
    sensor.timeout, sensor.soft_fail, sensor.deferrable = 0.3, soft_fail, mode == "deferrable"
    report = run_dag(dag)
    assert report.task_states == {"wait_for_pin": sensor_state, "announce_ready": next_state}
    if not soft_fail:
        assert isinstance(report.errors["wait_for_pin"], AirflowSensorTimeout)


def test_the_readme_lists_every_example_dag(example_dags: Any) -> None:
    readme = (ROOT / "README.md").read_text()
    listed = readme.split("example DAGs live in `example_dags/`:", 1)[1].split("\n\n", 2)[1]
    assert sorted(example_dags.dag_ids) == sorted(re.findall(r"^- `(plugz_\w+)`", listed, re.MULTILINE))
    assert "Three example DAGs" in readme
    assert len(example_dags.dag_ids) == 3


def test_dag_docs_name_only_params_the_dags_have(example_dags: Any) -> None:
    for dag_id in example_dags.dag_ids:
        dag = example_dags.get_dag(dag_id)
        for param in re.findall(r"`(\w+)` param", dag.doc_md or ""):
            assert param in dag.params, f"{dag_id}'s doc names a param it does not have: {param}"
    onboarding = example_dags.get_dag("plugz_onboarding")
    assert "poll_interval" in onboarding.doc_md
    assert "poll_interval" in onboarding.params
