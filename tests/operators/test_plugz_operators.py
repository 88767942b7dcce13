"""PlugzPinStatusOperator and PlugzPinBranchOperator against the sandbox."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.exceptions import (
    PlugzNotFoundError,
)
from airflow_provider_plugz.operators.plugz import PlugzPinBranchOperator, PlugzPinStatusOperator
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
