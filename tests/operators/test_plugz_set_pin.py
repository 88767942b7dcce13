"""Setting a PIN: the hook's POST, the operator's secret sources and its idempotency."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.exceptions import (
    PlugzConfigurationError,
    PlugzError,
    PlugzInstanceNotSupportedError,
    PlugzMalformedResponseError,
    PlugzRefusedError,
    PlugzServerError,
    PlugzTimeoutError,
)
from airflow_provider_plugz.hooks.plugz import PlugzHook
from airflow_provider_plugz.operators.plugz import PlugzSetPinOperator
from airflow_provider_plugz.testing import Fault
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN, task_context

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox

PIN = "482913"


def posts(sandbox: PlugzSandbox) -> list[Any]:
    return [r for r in sandbox.requests if r.method == "POST"]


def set_extra(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    """Point plugz_default at the sandbox with these extras added (JSON values as given)."""
    conn = json.loads(sandbox.connection_json(INSTANCE_ID))
    conn["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))


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
        pytest.param(Fault.status(503), PlugzServerError, 1, id="503-never-resent"),  # may have applied
        pytest.param(Fault.status(200, body={"success": False}), PlugzRefusedError, 1, id="success-false"),
        pytest.param(
            Fault.status(200, body={"success": False, "message": f"PIN {PIN} refused"}),
            PlugzRefusedError,
            1,
            id="success-false-echoes-the-pin",
        ),
        pytest.param(Fault.status(200, body={}), PlugzMalformedResponseError, 1, id="no-success"),
        pytest.param(Fault.status(500), PlugzServerError, 1, id="500"),
    ],
)
def test_set_pin_failures(
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    fault: Fault,
    error_class: type[PlugzError],
    requests: int,
) -> None:
    set_extra(sandbox, monkeypatch, read_timeout=0.05)
    sandbox.inject(fault)
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
    return PlugzSetPinOperator(task_id="set_pin", **kwargs).execute(task_context())


@pytest.fixture
def task_log(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The operator's task log as plain log records (Airflow 3 renders its own through structlog)."""
    logger = logging.getLogger("tests.set_pin.task_log")
    monkeypatch.setattr(PlugzSetPinOperator, "log", property(lambda self: logger))
    caplog.set_level(logging.INFO, logger=logger.name)
    return caplog


def pin_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "PIN" in r.getMessage()
    ]


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
    set_extra(sandbox, monkeypatch, pin_secret=PIN)
    sandbox.set_has_code(INSTANCE_ID, has_code)
    assert run_operator(pin_extra="pin_secret", overwrite=overwrite) == result
    assert len(posts(sandbox)) == (1 if posted else 0)


@pytest.mark.parametrize(
    ("kwargs", "extra", "variable"),
    [
        pytest.param({"pin_extra": "pin_secret"}, {"pin_secret": PIN}, None, id="documented-extra"),
        pytest.param({"pin_extra": "pin"}, {"pin": PIN}, None, id="legacy-extra-pin"),
        pytest.param({"pin_extra": "pin_secret"}, {"pin_secret": f" {PIN}\n"}, None, id="extra-stripped"),
        pytest.param({"pin_variable": "plugz_pin"}, {}, PIN, id="variable"),
    ],
)
def test_operator_reads_the_pin_from_its_source(
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    kwargs: dict[str, str],
    extra: dict[str, str],
    variable: str | None,
) -> None:
    set_extra(sandbox, monkeypatch, **extra)
    if variable is not None:
        monkeypatch.setenv("AIRFLOW_VAR_PLUGZ_PIN", variable)
    assert run_operator(**kwargs) == {"changed": True, "has_code": True}
    assert [json.loads(p.body) for p in posts(sandbox)] == [{"code": PIN}]


@pytest.mark.parametrize(
    ("extra", "variable", "kwargs", "message"),
    [
        pytest.param(
            {}, None, {"pin_variable": "plugz_pin"}, "Variable 'plugz_pin' is missing", id="no-variable"
        ),
        pytest.param(
            {}, "   ", {"pin_variable": "plugz_pin"}, "Variable 'plugz_pin' is missing", id="blank-var"
        ),
        pytest.param(
            {},
            "12-34-56",
            {"pin_variable": "plugz_pin"},
            "PIN in Airflow Variable 'plugz_pin' must be",
            id="bad-var",
        ),
        pytest.param(
            {}, None, {"pin_extra": "pin_secret"}, "extra 'pin_secret' of connection", id="no-extra"
        ),
        pytest.param(
            {"pin_secret": "12-34-56"},
            None,
            {"pin_extra": "pin_secret"},
            "PIN in extra 'pin_secret' of connection 'plugz_default' must be a string of exactly six digits",
            id="bad-extra",
        ),
        pytest.param(
            {"pin_secret": "1234567"},
            None,
            {"pin_extra": "pin_secret"},
            "exactly six digits",
            id="seven-digits",
        ),
        pytest.param(
            {"pin_secret": True},
            None,
            {"pin_extra": "pin_secret"},
            "must be a string of exactly",
            id="bool-extra",
        ),
        pytest.param(
            {"pin_secret": ["12-34-56"]},
            None,
            {"pin_extra": "pin_secret"},
            "must be a string",
            id="list-extra",
        ),
    ],
)
def test_operator_bad_pin_source_names_it_never_the_value(
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    extra: dict[str, Any],
    variable: str | None,
    kwargs: Any,
    message: str,
) -> None:
    set_extra(sandbox, monkeypatch, **extra)
    if variable is not None:
        monkeypatch.setenv("AIRFLOW_VAR_PLUGZ_PIN", variable)
    with pytest.raises(PlugzConfigurationError, match=message) as info:
        run_operator(**kwargs)
    assert "12-34-56" not in str(info.value)
    assert "1234567" not in str(info.value)
    assert posts(sandbox) == []


@pytest.mark.parametrize(
    "number",
    [
        pytest.param(482913, id="int"),
        pytest.param(54321, id="leading-zero-lost"),  # what is left of 054321
        pytest.param(482913.0, id="float"),
    ],
)
def test_operator_refuses_a_pin_stored_as_a_json_number(
    sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, number: float
) -> None:
    set_extra(sandbox, monkeypatch, pin_secret=number)
    with pytest.raises(
        PlugzConfigurationError, match="is a JSON number; store the PIN as a JSON string"
    ) as info:
        run_operator(pin_extra="pin_secret")
    assert "extra 'pin_secret' of connection 'plugz_default'" in str(info.value)
    assert str(number) not in str(info.value)
    assert posts(sandbox) == []


@pytest.mark.parametrize(
    ("stored", "masked"),
    [
        pytest.param(PIN, [PIN], id="valid"),
        pytest.param(f" {PIN}\n", [PIN, f" {PIN}\n"], id="padded"),
        pytest.param("12-34-56", ["12-34-56"], id="malformed-is-masked-before-refusal"),
        pytest.param(482913, ["482913"], id="number-is-masked-before-refusal"),
    ],
)
def test_operator_masks_the_pin_as_soon_as_it_is_read(
    sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, stored: object, masked: list[str]
) -> None:
    from airflow_provider_plugz import _compat

    seen: list[str] = []
    monkeypatch.setattr(_compat, "mask_secret", seen.append)
    set_extra(sandbox, monkeypatch, pin_secret=stored)
    try:
        run_operator(pin_extra="pin_secret")
    except PlugzConfigurationError:
        assert posts(sandbox) == []
    assert sorted(set(seen)) == sorted(masked)


# The reasons the one WARNING gives; (source, extra, Variable text, reasons on Airflow 3, on Airflow 2).
_EXTRA_NAME = "Airflow does not treat that extra name as sensitive"
_VAR_NAME = "Airflow does not treat that Variable name as sensitive"
_JSON_NUMBER = "its text parses as a JSON number, which Airflow never redacts"
_AF2_REST = "Airflow 2's REST API returns every Variable's value unredacted"
_AF2_FORM = (
    "Airflow 2's connection edit page carries it in clear: it is not a password field of the Plugz "
    "connection form"
)
WARNING_CASES = [
    pytest.param({"pin_extra": "pin_secret"}, {"pin_secret": PIN}, None, [], [], id="extra-pin_secret"),
    pytest.param({"pin_extra": "PIN-Secret"}, {"PIN-Secret": PIN}, None, [], [], id="extra-any-secret-name"),
    pytest.param({"pin_extra": "pin"}, {"pin": PIN}, None, [_EXTRA_NAME], [_EXTRA_NAME], id="extra-pin"),
    pytest.param(
        {"pin_variable": "plugz_default_pin"},
        {},
        PIN,
        [_VAR_NAME, _JSON_NUMBER],
        [_VAR_NAME, _AF2_REST],
        id="variable-plugz_default_pin",
    ),
    pytest.param(
        {"pin_variable": "plugz_default_pin_secret"},
        {},
        PIN,
        [_JSON_NUMBER],
        [_AF2_REST],
        id="variable-sensitive-name-but-a-json-number",
    ),
    pytest.param(
        {"pin_variable": "plugz_default_pin_secret"},
        {},
        "012345",  # not valid JSON (leading zero): Airflow 3 redacts it as a string
        [],
        [_AF2_REST],
        id="variable-sensitive-name-leading-zero",
    ),
]


def expected_reasons(kwargs: dict[str, str], on_airflow3: list[str], on_airflow2: list[str]) -> list[str]:
    """The reasons for this Airflow; on Airflow 2 an extra that the Plugz form does not declare a
    password field is also in clear on the connection edit page."""
    from airflow_provider_plugz._compat import AIRFLOW_V3
    from airflow_provider_plugz.operators._pin_storage import _plugz_form_masks

    if AIRFLOW_V3:
        return on_airflow3
    if "pin_extra" in kwargs and not _plugz_form_masks(kwargs["pin_extra"]):
        return [*on_airflow2, _AF2_FORM]
    return on_airflow2


@pytest.mark.parametrize(("kwargs", "extra", "variable", "on_airflow3", "on_airflow2"), WARNING_CASES)
def test_operator_warns_once_when_airflow_would_show_the_pin(
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    task_log: pytest.LogCaptureFixture,
    kwargs: dict[str, str],
    extra: dict[str, str],
    variable: str | None,
    on_airflow3: list[str],
    on_airflow2: list[str],
) -> None:
    """As if the connection / Variable lived in Airflow's metadata database (what the UI shows)."""
    from airflow_provider_plugz.operators import _pin_storage

    monkeypatch.setattr(_pin_storage, "_from_secrets_backend", lambda **_: False)
    set_extra(sandbox, monkeypatch, **extra)
    if variable is not None:
        monkeypatch.setenv(f"AIRFLOW_VAR_{kwargs['pin_variable'].upper()}", variable)
    assert run_operator(**kwargs) == {"changed": True, "has_code": True}
    expected = expected_reasons(kwargs, on_airflow3, on_airflow2)
    warnings = pin_warnings(task_log)
    if not expected:
        assert warnings == []
    else:
        (warning,) = warnings
        if "pin_variable" in kwargs:
            source = f"Airflow Variable {kwargs['pin_variable']!r}"
        else:
            source = f"extra {kwargs['pin_extra']!r} of connection 'plugz_default'"
        assert warning.startswith(f"Plugz PIN source {source} is shown in clear by Airflow")
        assert f"({'; '.join(expected)})" in warning  # every reason, and only those
        assert "pin_extra='pin_secret'" in warning
    assert all(value not in text for text in task_log.text.splitlines() for value in (PIN, "012345"))


@pytest.mark.parametrize(
    ("kwargs", "extra", "variable"),
    [
        pytest.param({"pin_extra": "pin"}, {"pin": PIN}, None, id="extra-pin"),
        pytest.param({"pin_variable": "plugz_default_pin"}, {}, PIN, id="variable-plugz_default_pin"),
    ],
)
def test_operator_does_not_warn_for_a_secrets_backend(
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    task_log: pytest.LogCaptureFixture,
    kwargs: dict[str, str],
    extra: dict[str, str],
    variable: str | None,
) -> None:
    """AIRFLOW_CONN_* / AIRFLOW_VAR_* are a secrets backend: the UI and REST API never list them."""
    set_extra(sandbox, monkeypatch, **extra)
    if variable is not None:
        monkeypatch.setenv("AIRFLOW_VAR_PLUGZ_DEFAULT_PIN", variable)
    assert run_operator(**kwargs) == {"changed": True, "has_code": True}
    assert pin_warnings(task_log) == []
    assert "PIN registered and confirmed" in task_log.text  # the capture does see the operator's log


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
    with pytest.raises(ValueError, match=r"exactly one of pin_extra .*pin_secret"):
        PlugzSetPinOperator(task_id="set_pin", **kwargs)


def test_pin_sources_are_names_not_values() -> None:
    operator = PlugzSetPinOperator(task_id="set_pin", pin_variable="plugz_pin")
    assert set(operator.template_fields) == {"plugz_conn_id", "pin_variable"}
    assert "hook" not in operator.__dict__
