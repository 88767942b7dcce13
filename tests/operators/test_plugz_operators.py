"""PlugzPinStatusOperator, PlugzPinBranchOperator and PlugzQueueOperator against the sandbox."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.exceptions import (
    PlugzAuditError,
    PlugzNotFoundError,
)
from airflow_provider_plugz.operators.plugz import (
    PlugzPinBranchOperator,
    PlugzPinStatusOperator,
    PlugzQueueOperator,
)
from airflow_provider_plugz.sensors.plugz import PlugzPinStatusSensor
from airflow_provider_plugz.testing import Fault
from tests.conftest import INSTANCE_ID, FakeTaskInstance

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox


@pytest.mark.parametrize(
    "operator_class",
    [
        pytest.param(PlugzPinStatusOperator, id="operator"),
        pytest.param(PlugzPinStatusSensor, id="sensor"),
        pytest.param(PlugzPinBranchOperator, id="branch"),
    ],
)
def test_init_does_no_io_and_conn_id_is_templated(operator_class: type[Any]) -> None:
    kwargs: dict[str, Any] = {"task_id": "t", "plugz_conn_id": "{{ params.conn }}"}
    if operator_class is PlugzPinBranchOperator:
        kwargs.update(if_pin_set="a", if_pin_missing="b")
    operator = operator_class(**kwargs)  # no such connection anywhere: must not be looked up
    assert "plugz_conn_id" in operator.template_fields
    assert "hook" not in operator.__dict__


@pytest.mark.parametrize("has_code", [pytest.param(True, id="pin"), pytest.param(False, id="no-pin")])
def test_operator_returns_has_code(sandbox: PlugzSandbox, has_code: bool) -> None:
    sandbox.set_has_code(INSTANCE_ID, has_code)
    assert PlugzPinStatusOperator(task_id="check").execute({}) is has_code  # type: ignore[arg-type]


def test_operator_fails_with_the_plugz_error(sandbox: PlugzSandbox) -> None:
    sandbox.inject(Fault.status(404, body={"error": "Instance not found"}))
    with pytest.raises(PlugzNotFoundError):
        PlugzPinStatusOperator(task_id="check").execute({})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("has_code", "chosen"),
    [pytest.param(True, ["ok"], id="pin-set"), pytest.param(False, ["alert", "page"], id="pin-missing")],
)
def test_branch_chooses_and_pushes_has_code(sandbox: PlugzSandbox, has_code: bool, chosen: list[str]) -> None:
    sandbox.set_has_code(INSTANCE_ID, has_code)
    ti = FakeTaskInstance()
    branch = PlugzPinBranchOperator(task_id="check", if_pin_set="ok", if_pin_missing=["alert", "page"])
    assert branch.choose_branch({"ti": ti}) == chosen  # type: ignore[arg-type]
    assert ti.pushed == {"has_code": has_code}


@pytest.mark.parametrize(
    ("if_pin_set", "if_pin_missing"),
    [
        pytest.param([], "b", id="empty-list"),
        pytest.param("a", [""], id="empty-id"),
        pytest.param("a", [1], id="int"),
    ],
)
def test_branch_rejects_bad_task_ids(if_pin_set: Any, if_pin_missing: Any) -> None:
    with pytest.raises(ValueError, match="task id"):
        PlugzPinBranchOperator(task_id="check", if_pin_set=if_pin_set, if_pin_missing=if_pin_missing)


# --- sensor: poke ------------------------------------------------------------------------------


# --- the queue ----------------------------------------------------------------------------------

QUEUED_TEXT = "Paciente Joao S. HIV+ leito 12"
PHONE = "5511987654321"


@pytest.mark.parametrize(
    ("queued", "fail_if_queued", "state"),
    [
        pytest.param(0, False, "empty", id="empty"),
        pytest.param(0, True, "empty", id="empty-fail-option"),
        pytest.param(2, False, "queued", id="queued"),
        pytest.param(2, True, "queued", id="queued-fails"),
    ],
)
def test_queue_operator_returns_the_audits_column_and_fails_only_when_asked(
    sandbox: PlugzSandbox, caplog: pytest.LogCaptureFixture, queued: int, fail_if_queued: bool, state: str
) -> None:
    from airflow_provider_plugz.hooks.plugz import PlugzHook

    sandbox.set_state(INSTANCE_ID, "disconnected")  # messages wait while the phone is not connected
    for _ in range(queued):
        PlugzHook().send_text(PHONE, QUEUED_TEXT)
    ti = FakeTaskInstance()
    operator = PlugzQueueOperator(task_id="queue", fail_if_queued=fail_if_queued)
    if fail_if_queued and queued:
        with pytest.raises(PlugzAuditError, match=f"{queued} message\\(s\\) wait in the queue") as info:
            operator.execute({"ti": ti})  # type: ignore[arg-type]
        column = ti.pushed["queue"]
        assert PHONE not in str(info.value)
    else:
        column = operator.execute({"ti": ti})  # type: ignore[arg-type]
    assert (column["state"], column["count"]) == (state, queued)
    assert (column["oldest_created"] is None) == (queued == 0)
    assert PHONE[-8:] not in caplog.text
    assert "HIV" not in caplog.text
    assert "HIV" not in str(column)


def test_queue_operator_refuses_a_fail_option_that_is_not_a_bool() -> None:
    with pytest.raises(ValueError, match="fail_if_queued must be True or False"):
        PlugzQueueOperator(task_id="queue", fail_if_queued="yes")  # type: ignore[arg-type]
