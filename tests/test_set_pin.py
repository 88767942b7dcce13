"""Setting a PIN: the hook's POST, the operator's secret sources and its idempotency."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.exceptions import (
    PlugzConfigurationError,
    PlugzError,
    PlugzInstanceNotSupportedError,
    PlugzMalformedResponseError,
    PlugzServerError,
    PlugzTimeoutError,
)
from airflow_provider_plugz.hooks.plugz import PlugzHook
from airflow_provider_plugz.operators.plugz import PlugzSetPinOperator
from airflow_provider_plugz.testing import Fault
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox

PIN = "482913"


def posts(sandbox: PlugzSandbox) -> list[Any]:
    return [r for r in sandbox.requests if r.method == "POST"]


def test_set_pin_posts_json(sandbox: PlugzSandbox) -> None:
    PlugzHook().set_pin(PIN)
    (post,) = posts(sandbox)
    assert post.path == f"/instances/{INSTANCE_ID}/token/{INSTANCE_TOKEN}/security/two-fa-code"
    assert post.headers["content-type"] == "application/json"
    assert post.headers["client-token"] == CLIENT_TOKEN
    assert json.loads(post.body) == {"code": PIN}
    assert sandbox.instance(INSTANCE_ID).has_code is True


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("12345", id="five-digits"),
        pytest.param("1234567", id="seven-digits"),
        pytest.param("12a456", id="letter"),
        pytest.param("١٢٣٤٥٦", id="arabic-indic-digits"),
        pytest.param(" 123456", id="space"),
        pytest.param("", id="empty"),
        pytest.param(123456, id="int"),
        pytest.param(None, id="none"),
    ],
)
def test_set_pin_validates_six_digits_without_echo(sandbox: PlugzSandbox, code: Any) -> None:
    with pytest.raises(PlugzConfigurationError, match="exactly six digits") as info:
        PlugzHook().set_pin(code)
    if code:
        assert str(code).strip() not in str(info.value)
    assert sandbox.request_count == 0


@pytest.mark.parametrize(
    ("fault", "error_class", "requests"),
    [
        pytest.param(Fault.slow(0.3), PlugzTimeoutError, 1, id="read-timeout-never-retried"),
        pytest.param(Fault.status(503), None, 2, id="503-retried"),
        pytest.param(
            Fault.status(200, body={"success": False}), PlugzMalformedResponseError, 1, id="success-false"
        ),
        pytest.param(Fault.status(200, body={}), PlugzMalformedResponseError, 1, id="no-success"),
        pytest.param(Fault.status(500), PlugzServerError, 1, id="500"),
    ],
)
def test_set_pin_failures(
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    fault: Fault,
    error_class: type[PlugzError] | None,
    requests: int,
) -> None:
    conn = json.loads(sandbox.connection_json(INSTANCE_ID))
    conn["extra"]["read_timeout"] = 0.05
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))
    sandbox.inject(fault)
    if error_class is None:
        PlugzHook().set_pin(PIN)
    else:
        with pytest.raises(error_class) as info:
            PlugzHook().set_pin(PIN)
        assert PIN not in str(info.value)
    assert sandbox.request_count == requests


def test_set_pin_refused_on_a_web_instance(sandbox: PlugzSandbox) -> None:
    sandbox.remove_instance(INSTANCE_ID)
    sandbox.add_instance(INSTANCE_ID, INSTANCE_TOKEN, kind="web")
    with pytest.raises(PlugzInstanceNotSupportedError, match="mobile"):
        PlugzHook().set_pin(PIN)
    assert sandbox.instance(INSTANCE_ID).has_code is False


# --- operator ----------------------------------------------------------------------------------


def run_operator(**kwargs: Any) -> Any:
    return PlugzSetPinOperator(task_id="set_pin", **kwargs).execute({})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("has_code", "overwrite", "result", "posted"),
    [
        pytest.param(False, False, {"changed": True, "has_code": True}, True, id="no-pin-sets-it"),
        pytest.param(True, False, {"changed": False, "has_code": True}, False, id="pin-set-does-nothing"),
        pytest.param(True, True, {"changed": True, "has_code": True}, True, id="pin-set-overwrite"),
    ],
)
def test_operator_is_idempotent_unless_told_to_overwrite(
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    has_code: bool,
    overwrite: bool,
    result: Any,
    posted: bool,
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_PLUGZ_PIN", PIN)
    sandbox.set_has_code(INSTANCE_ID, has_code)
    assert run_operator(pin_variable="plugz_pin", overwrite=overwrite) == result
    assert len(posts(sandbox)) == (1 if posted else 0)


def test_operator_reads_the_pin_from_a_connection_extra(
    sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = json.loads(sandbox.connection_json(INSTANCE_ID))
    conn["extra"]["pin"] = PIN
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))
    assert run_operator(pin_extra="pin") == {"changed": True, "has_code": True}
    assert [json.loads(p.body) for p in posts(sandbox)] == [{"code": PIN}]


@pytest.mark.parametrize(
    ("env", "kwargs", "message"),
    [
        pytest.param({}, {"pin_variable": "plugz_pin"}, "Variable 'plugz_pin' is missing", id="no-variable"),
        pytest.param(
            {"AIRFLOW_VAR_PLUGZ_PIN": "12-34-56"}, {"pin_variable": "plugz_pin"}, "six digits", id="bad-pin"
        ),
        pytest.param({}, {"pin_extra": "pin"}, "extra 'pin' of connection", id="no-extra"),
    ],
)
def test_operator_bad_pin_source(
    sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], kwargs: Any, message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(PlugzConfigurationError, match=message) as info:
        run_operator(**kwargs)
    assert "12-34-56" not in str(info.value)
    assert posts(sandbox) == []


def test_operator_fails_when_the_pin_is_not_confirmed(
    sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_PLUGZ_PIN", PIN)
    sandbox.inject(Fault.slow(0))  # the operator's first check goes through as usual
    sandbox.inject(Fault.status(200, body={"success": True}))  # the POST "succeeds" but is not applied
    with pytest.raises(PlugzError, match="still reports no PIN"):
        run_operator(pin_variable="plugz_pin")


@pytest.mark.parametrize(
    "kwargs",
    [pytest.param({}, id="neither"), pytest.param({"pin_variable": "a", "pin_extra": "b"}, id="both")],
)
def test_operator_needs_exactly_one_pin_source(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        PlugzSetPinOperator(task_id="set_pin", **kwargs)


def test_pin_sources_are_names_not_values() -> None:
    operator = PlugzSetPinOperator(task_id="set_pin", pin_variable="plugz_pin")
    assert set(operator.template_fields) == {"plugz_conn_id", "pin_variable"}
    assert "hook" not in operator.__dict__
