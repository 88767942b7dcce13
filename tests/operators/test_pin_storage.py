"""Where a PIN may live: what Airflow itself shows of each place, and the operator's verdict on it.

Airflow's REST API (which Airflow 3's UI reads) hides a connection extra or a Variable only
when its *name* is one ``should_hide_value_for_key`` accepts, and only when the value is a
string (``redact()`` passes numbers through; a Variable's six digits are JSON-decoded to one).
So the documented place is a connection extra such as ``pin_secret`` holding a JSON string; a
Variable is hidden only when a secrets backend serves it.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz._compat import AIRFLOW_V3
from airflow_provider_plugz.operators import _pin_storage as pin_storage
from airflow_provider_plugz.testing.dag_run import run_dag
from tests.conftest import INSTANCE_ID

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from airflow_provider_plugz.testing import PlugzSandbox

# Used nowhere else, so Airflow's masker has no pattern for it: a `***` can only come from the name.
PIN = "739164"

# (where, name, stored value, hidden by Airflow 3's REST API, hidden by Airflow 2's REST API)
STORAGE = [
    pytest.param("extra", "pin_secret", PIN, True, True, id="documented-extra-pin_secret"),
    pytest.param("extra", "pin", PIN, False, False, id="extra-pin"),
    pytest.param("extra", "pin_secret", int(PIN), False, False, id="extra-pin_secret-as-json-number"),
    pytest.param("variable", "plugz_default_pin", PIN, False, False, id="variable-plugz_default_pin"),
    pytest.param(
        "variable", "plugz_default_pin_secret", PIN, False, False, id="variable-secret-name-but-json-number"
    ),
]

skip_on_airflow2 = pytest.mark.skipif(not AIRFLOW_V3, reason="Airflow 2 has no FastAPI REST API (/api/v2)")


@pytest.fixture(scope="module")
def rest_api(airflow_db: Path) -> Iterator[Any]:
    """Airflow 3's own API server app, in process (no socket), every caller an admin."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    patch = pytest.MonkeyPatch()
    patch.setenv(
        "AIRFLOW__CORE__AUTH_MANAGER",
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    )
    patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    patch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "plugz-pin-storage-tests-" + "0" * 48)
    try:
        with TestClient(create_app(apps="core")) as client:
            yield client
    finally:
        purge_cached_app()
        patch.undo()


def store_and_read_back(client: Any, where: str, name: str, stored: object, conn_id: str) -> object:
    """Create the connection or Variable through the REST API, then GET it: what a user sees."""
    if where == "extra":
        body = {"connection_id": conn_id, "conn_type": "plugz", "extra": json.dumps({name: stored})}
        assert client.post("/api/v2/connections", json=body).status_code == 201
        answer = client.get(f"/api/v2/connections/{conn_id}")
        assert client.delete(f"/api/v2/connections/{conn_id}").status_code == 204
        assert answer.status_code == 200
        return json.loads(answer.json()["extra"])[name]
    assert client.post("/api/v2/variables", json={"key": name, "value": stored}).status_code == 201
    answer = client.get(f"/api/v2/variables/{name}")
    assert client.delete(f"/api/v2/variables/{name}").status_code == 204
    assert answer.status_code == 200
    return answer.json()["value"]


@skip_on_airflow2
@pytest.mark.parametrize(("where", "name", "stored", "hidden", "hidden_on_airflow2"), STORAGE)
def test_airflow3_rest_api_hides_only_the_documented_place(
    rest_api: Any,
    request: pytest.FixtureRequest,
    where: str,
    name: str,
    stored: object,
    hidden: bool,
    hidden_on_airflow2: bool,
) -> None:
    """GET /api/v2/connections/{id} and /api/v2/variables/{key}, as the UI reads them."""
    conn_id = f"plugz_pin_storage_{request.node.callspec.id}"
    shown = store_and_read_back(rest_api, where, name, stored, conn_id)
    assert shown == ("***" if hidden else stored)


@skip_on_airflow2
def test_airflow3_audit_log_keeps_no_pin_value(rest_api: Any) -> None:
    """Airflow 3.3's audit log masks every extra and Variable value, whatever its name."""
    for where, name in (("extra", "pin"), ("variable", "plugz_default_pin")):
        store_and_read_back(rest_api, where, name, PIN, "plugz_pin_storage_audit")
    answer = rest_api.get("/api/v2/eventLogs", params={"limit": 100, "order_by": "-event_log_id"})
    events = [e for e in answer.json()["event_logs"] if e["event"] in ("post_connection", "post_variable")]
    assert events, "no audit-log entries to inspect"
    assert all(PIN not in json.dumps(e) for e in events)


@pytest.mark.skipif(AIRFLOW_V3, reason="Airflow 2's REST API (airflow.api_connexion) serializers")
@pytest.mark.parametrize(("where", "name", "stored", "hidden_on_airflow3", "hidden"), STORAGE)
def test_airflow2_rest_api_serializers_hide_only_the_documented_place(
    where: str, name: str, stored: object, hidden_on_airflow3: bool, hidden: bool
) -> None:
    """What GET /api/v1/connections/{id} and /api/v1/variables/{key} answer (Variables: never hidden)."""
    from airflow.api_connexion.schemas.connection_schema import connection_schema
    from airflow.api_connexion.schemas.variable_schema import variable_schema
    from airflow.models import Connection, Variable

    if where == "extra":
        conn = Connection(conn_id="plugz_pin_storage", conn_type="plugz", extra=json.dumps({name: stored}))
        shown = json.loads(connection_schema.dump(conn)["extra"])[name]
    else:
        shown = variable_schema.dump(Variable(key=name, val=stored))["value"]
    assert shown == ("***" if hidden else stored)


# --- the operator's reading of Airflow's rules ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "hidden"),
    [
        pytest.param("pin_secret", True, id="pin_secret"),
        pytest.param("PIN-Secret", True, id="any-case-and-separator"),
        pytest.param("plugz_default_pin_secret", True, id="variable-secret-suffix"),
        pytest.param("whatsapp_pin_password", True, id="password"),
        pytest.param("client_token", True, id="client_token"),
        pytest.param("pin", False, id="pin"),
        pytest.param("plugz_default_pin", False, id="plugz_default_pin"),
        pytest.param("two_fa_code", False, id="code"),
    ],
)
def test_airflow_decides_which_names_are_sensitive(name: str, hidden: bool) -> None:
    """Airflow's own should_hide_value_for_key, found lazily in the module this Airflow has."""
    assert pin_storage._airflow_hides_name(name) is hidden


_NAME = "Airflow does not treat that {} name as sensitive"
_NUMBER_TEXT = "its text parses as a JSON number, which Airflow never redacts"
_NUMBER = "its value is a JSON number, which Airflow never redacts"
_AF2_VARS = "Airflow 2's REST API returns every Variable's value unredacted"
_AF2_FORM = (
    "Airflow 2's connection edit page carries it in clear: it is not a password field of the Plugz "
    "connection form"
)
_EXTRA, _VAR = False, True
_AF3, _AF2 = True, False
_FORM_FIELD, _NO_FORM_FIELD = True, False


@pytest.mark.parametrize(
    ("variable", "name_hidden", "value", "airflow_v3", "form_masks", "reasons"),
    [
        pytest.param(_EXTRA, True, "482913", _AF3, _NO_FORM_FIELD, [], id="extra-secret-name"),
        pytest.param(_EXTRA, True, "482913", _AF2, _FORM_FIELD, [], id="extra-secret-form-field-af2"),
        pytest.param(
            _EXTRA, True, "482913", _AF2, _NO_FORM_FIELD, [_AF2_FORM], id="extra-secret-no-field-af2"
        ),
        pytest.param(
            _EXTRA, False, "482913", _AF3, _NO_FORM_FIELD, [_NAME.format("extra")], id="extra-plain"
        ),
        pytest.param(
            _EXTRA,
            False,
            "482913",
            _AF2,
            _FORM_FIELD,
            [_NAME.format("extra")],
            id="extra-plain-form-field-af2",
        ),
        pytest.param(_EXTRA, True, 482913, _AF3, _FORM_FIELD, [_NUMBER], id="extra-number"),
        pytest.param(
            _EXTRA,
            False,
            482913,
            _AF2,
            _NO_FORM_FIELD,
            [_NAME.format("extra"), _NUMBER, _AF2_FORM],
            id="extra-plain-number-no-field-af2",
        ),
        pytest.param(_VAR, True, "482913", _AF3, _NO_FORM_FIELD, [_NUMBER_TEXT], id="var-secret-name-digits"),
        pytest.param(_VAR, True, " 482913\n", _AF3, _NO_FORM_FIELD, [_NUMBER_TEXT], id="var-padded-digits"),
        pytest.param(_VAR, True, "012345", _AF3, _NO_FORM_FIELD, [], id="var-secret-name-leading-zero"),
        pytest.param(
            _VAR,
            False,
            "012345",
            _AF3,
            _NO_FORM_FIELD,
            [_NAME.format("Variable")],
            id="var-plain-leading-zero",
        ),
        pytest.param(
            _VAR,
            False,
            "482913",
            _AF3,
            _NO_FORM_FIELD,
            [_NAME.format("Variable"), _NUMBER_TEXT],
            id="var-plain-name-digits",
        ),
        pytest.param(_VAR, True, "012345", _AF2, _NO_FORM_FIELD, [_AF2_VARS], id="var-secret-name-af2"),
        pytest.param(
            _VAR,
            False,
            "482913",
            _AF2,
            _NO_FORM_FIELD,
            [_NAME.format("Variable"), _AF2_VARS],
            id="var-plain-af2",
        ),
    ],
)
def test_pin_exposure_rules(
    variable: bool, name_hidden: bool, value: object, airflow_v3: bool, form_masks: bool, reasons: list[str]
) -> None:
    """Why a PIN in the metadata database would be shown: one reason per rule that applies."""
    exposure = pin_storage._pin_exposure(
        variable=variable, name_hidden=name_hidden, value=value, airflow_v3=airflow_v3, form_masks=form_masks
    )
    assert exposure == reasons


def test_plugz_form_declares_password_fields() -> None:
    """Airflow 2's edit page masks an extra only when the Plugz form declares it a password field."""
    assert pin_storage._plugz_form_masks("client_token") is True
    assert pin_storage._plugz_form_masks("read_timeout") is False
    assert pin_storage._plugz_form_masks("pin") is False


def _db_variable(key: str, value: str) -> Any:
    from airflow.models.variable import Variable

    return Variable(key=key, val=value)


def _db_connection(conn_id: str, fields: dict[str, Any]) -> Any:
    from airflow.models.connection import Connection

    return Connection(conn_id=conn_id, **{**fields, "extra": json.dumps(fields.get("extra", {}))})


@pytest.fixture
def metadata_db(airflow_db: Path) -> Iterator[list[Any]]:
    """Rows to keep in Airflow's metadata database for one test (removed afterwards)."""
    from airflow.utils.session import create_session

    rows: list[Any] = []
    yield rows
    with create_session() as session:
        for row in rows:
            session.delete(session.merge(row))


def _store(rows: list[Any], *new: Any) -> None:
    from airflow.utils.session import create_session

    with create_session() as session:
        session.add_all(new)
    rows.extend(new)


@pytest.mark.parametrize(
    ("env", "in_db", "lookup", "expected"),
    [
        pytest.param({"AIRFLOW_VAR_PLUGZ_P": "x"}, False, {"variable": "plugz_p"}, True, id="env-variable"),
        pytest.param(
            {"AIRFLOW_CONN_PLUGZ_P": "plugz://h"}, False, {"conn_id": "plugz_p"}, True, id="env-conn"
        ),
        pytest.param({}, True, {"variable": "plugz_p"}, False, id="db-variable"),
        pytest.param({}, True, {"conn_id": "plugz_p"}, False, id="db-connection"),
        pytest.param({}, False, {"variable": "plugz_p"}, False, id="nowhere"),
    ],
)
def test_secrets_backend_detection_skips_the_metadata_database(
    metadata_db: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    in_db: bool,
    lookup: dict[str, str],
    expected: bool,
) -> None:
    """Environment variables (like Vault) never show in the UI; the metadata database does."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if in_db:
        _store(metadata_db, _db_variable("plugz_p", "x"), _db_connection("plugz_p", {"conn_type": "plugz"}))
    assert pin_storage._from_secrets_backend(**lookup) is expected


# --- a real run: the task log of set_pin ------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"[{record.levelname.lower()}] {record.getMessage()}")


@pytest.mark.usefixtures("alerts")  # the example DAG alerts through plugz_alerts
@pytest.mark.parametrize(
    ("pin_extra", "extra", "reasons_on_airflow3"),
    [
        pytest.param("pin_secret", {"pin_secret": PIN}, [], id="documented-extra"),
        pytest.param(
            "pin", {"pin": PIN}, ["Airflow does not treat that extra name as sensitive"], id="extra-pin-warns"
        ),
    ],
)
def test_remediation_run_warns_only_for_a_place_airflow_shows(
    example_dags: Any,
    sandbox: PlugzSandbox,
    metadata_db: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    pin_extra: str,
    extra: dict[str, str],
    reasons_on_airflow3: list[str],
) -> None:
    """plugz_default kept in the metadata database (Admin > Connections), the DAG run for real:
    its task log has one WARNING naming the source and why, or none."""
    monkeypatch.delenv("AIRFLOW_CONN_PLUGZ_DEFAULT")
    fields = json.loads(sandbox.connection_json(INSTANCE_ID))
    fields["extra"].update(extra)
    _store(metadata_db, _db_connection("plugz_default", fields))
    dag = example_dags.get_dag("plugz_security_check")
    dag.get_task("set_pin").pin_extra = pin_extra
    records = _Records()
    logging.getLogger().addHandler(records)
    try:
        report = run_dag(dag, run_conf={"remediate": True})
    finally:
        logging.getLogger().removeHandler(records)
    assert report.task_states["set_pin"] == "success"
    # Airflow 2 logs through the standard library; Airflow 3 renders task logs with structlog.
    lines = capfd.readouterr().out.splitlines() if AIRFLOW_V3 else records.messages
    warnings = [line for line in lines if "Plugz PIN source" in line]

    reasons = pin_storage._pin_exposure(  # the rules themselves are pinned down in test_pin_exposure_rules
        variable=False,
        name_hidden=pin_storage._airflow_hides_name(pin_extra),
        value=PIN,
        airflow_v3=AIRFLOW_V3,
        form_masks=pin_storage._plugz_form_masks(pin_extra),
    )
    if AIRFLOW_V3:
        assert reasons == reasons_on_airflow3
    expected = [
        f"Plugz PIN source extra {pin_extra!r} of connection 'plugz_default' is shown in clear by Airflow "
        f"({'; '.join(reasons)}); keep the PIN as a JSON string in a connection extra whose name Airflow "
        "hides, e.g. pin_extra='pin_secret', or in a secrets backend."
    ]
    assert [w[w.index("Plugz PIN source") :].split(" [airflow.task")[0].rstrip() for w in warnings] == (
        expected if reasons else []
    )
    assert all("[warning" in w for w in warnings)  # logged at WARNING level
    assert all(PIN not in line for line in lines)
    assert any("Plugz connection 'plugz_default': PIN registered and confirmed." in line for line in lines)
