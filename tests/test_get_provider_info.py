"""Provider metadata: what Airflow discovers, and that it matches the code."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from importlib.metadata import entry_points, metadata

import pytest

import airflow_provider_plugz
from airflow_provider_plugz.get_provider_info import get_provider_info


def test_entry_point_is_installed() -> None:
    points = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.module.startswith("airflow_provider")
    ]
    assert [ep.value for ep in points] == ["airflow_provider_plugz.get_provider_info:get_provider_info"]
    assert points[0].load() is get_provider_info


def test_every_listed_module_and_class_imports() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-plugz"
    assert info["versions"][0] == airflow_provider_plugz.__version__
    modules = [
        m
        for kind in ("hooks", "operators", "sensors", "triggers")
        for entry in info[kind]
        for m in entry["python-modules"]
    ]
    assert modules == [
        "airflow_provider_plugz.hooks.plugz",
        "airflow_provider_plugz.operators.plugz",
        "airflow_provider_plugz.operators.audit",
        "airflow_provider_plugz.operators.audit_merge",
        "airflow_provider_plugz.operators.messages",
        "airflow_provider_plugz.sensors.plugz",
        "airflow_provider_plugz.triggers.plugz",
        "airflow_provider_plugz.triggers.events",
    ]
    for module in modules:
        importlib.import_module(module)


def test_connection_type_matches_hook() -> None:
    from airflow_provider_plugz.hooks.plugz import PlugzHook

    (conn,) = get_provider_info()["connection-types"]
    module, _, name = conn["hook-class-name"].rpartition(".")
    assert getattr(importlib.import_module(module), name) is PlugzHook
    assert (conn["connection-type"], conn["hook-name"]) == (PlugzHook.conn_type, PlugzHook.hook_name)
    assert PlugzHook.conn_name_attr == "plugz_conn_id"
    assert PlugzHook.default_conn_name == "plugz_default"


def test_form_declares_the_plugz_fields() -> None:
    (conn,) = get_provider_info()["connection-types"]
    fields = conn["conn-fields"]
    assert set(fields) == {"client_token", "connect_timeout", "read_timeout"}
    assert fields["client_token"]["schema"]["format"] == "password"
    behaviour = conn["ui-field-behaviour"]
    assert behaviour["relabeling"] == {
        "host": "Base URL",
        "login": "Instance ID",
        "password": "Instance token",
    }
    assert set(behaviour["hidden-fields"]) == {"schema", "port", "extra"}
    assert behaviour["placeholders"]["host"] == "https://api.plugzapi.com.br"


def test_airflow_providers_manager_discovers_us() -> None:
    from airflow.providers_manager import ProvidersManager

    from tests.airflow_compat import hook_info as find_hook_info

    manager = ProvidersManager()
    assert "airflow-provider-plugz" in manager.providers
    hook_info = find_hook_info("plugz")
    assert hook_info is not None
    assert hook_info.hook_name == "Plugz"
    assert hook_info.connection_id_attribute_name == "plugz_conn_id"
    widgets = manager.connection_form_widgets
    assert widgets["extra__plugz__client_token"].is_sensitive is True
    assert manager.field_behaviours["plugz"]["relabeling"]["login"] == "Instance ID"


def test_hook_field_behaviour_agrees_with_the_declaration() -> None:
    """Airflow 2.x (and 3.0/3.1) draw the form from the hook; 3.2+ from conn-fields: same form."""
    from airflow_provider_plugz.hooks.plugz import PlugzHook

    (conn,) = get_provider_info()["connection-types"]
    declared = conn["ui-field-behaviour"]
    assert PlugzHook.get_ui_field_behaviour() == {
        "hidden_fields": declared["hidden-fields"],
        "relabeling": declared["relabeling"],
        "placeholders": declared["placeholders"],
    }


def test_hook_form_widgets_agree_with_the_declaration() -> None:
    # wtforms comes with Airflow 2's UI (where this form is used); Airflow 3.2+ never calls it.
    wtforms = pytest.importorskip("wtforms", reason="Airflow 3.2+ has no wtforms UI; runs on Airflow 2")

    from airflow_provider_plugz.hooks.plugz import PlugzHook

    (conn,) = get_provider_info()["connection-types"]
    widgets = PlugzHook.get_connection_form_widgets()
    assert set(widgets) == set(conn["conn-fields"])
    for name, spec in conn["conn-fields"].items():
        assert widgets[name].args[0] == spec["label"]
        is_password = widgets[name].field_class is wtforms.PasswordField
        assert is_password == (spec["schema"].get("format") == "password"), name


def test_notifier_is_listed_and_is_an_airflow_notifier() -> None:
    from airflow_provider_plugz._compat import BaseNotifier
    from airflow_provider_plugz.notifications.plugz import PlugzNotifier

    (path,) = get_provider_info()["notifications"]
    assert path == "airflow_provider_plugz.notifications.plugz.PlugzNotifier"
    module, _, name = path.rpartition(".")
    assert getattr(importlib.import_module(module), name) is PlugzNotifier
    assert issubclass(PlugzNotifier, BaseNotifier)


def test_provider_info_is_valid_for_this_airflows_schema() -> None:
    """Airflow validates provider info against the schema it ships when it discovers providers."""
    import json
    from importlib.resources import files

    import jsonschema

    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)
    with pytest.raises(jsonschema.ValidationError):  # the schema really checks the list
        jsonschema.validate({**get_provider_info(), "notifications": [{"class": "PlugzNotifier"}]}, schema)


def test_airflow_providers_manager_lists_the_notifier() -> None:
    from airflow.providers_manager import ProvidersManager

    assert "airflow_provider_plugz.notifications.plugz.PlugzNotifier" in ProvidersManager().notification


@pytest.mark.parametrize(
    "feature",
    [
        pytest.param("PIN (two-step verification) checks and waits", id="pin"),
        pytest.param("health and status", id="health"),
        pytest.param("device info", id="device"),
        pytest.param("sending messages", id="messages"),
        pytest.param("WhatsApp failure alerts", id="alerts"),
        pytest.param("event-driven DAGs", id="events"),
        pytest.param("fleet audits", id="fleets"),
    ],
)
def test_descriptions_cover_the_whole_provider(feature: str) -> None:
    # What Airflow's providers page shows, and the one-line summary pip and PyPI show.
    assert feature in get_provider_info()["description"]
    assert feature in metadata("airflow-provider-plugz")["Summary"]


def test_the_provider_info_version_is_the_installed_version() -> None:
    # Both come from the git tag: the install wrote _version.py with the version of its metadata.
    assert get_provider_info()["versions"] == [airflow_provider_plugz.__version__]
    assert airflow_provider_plugz.__version__ == metadata("airflow-provider-plugz")["Version"]


def test_reading_the_provider_info_imports_nothing_else() -> None:
    # Every Airflow component reads it at start-up: beside the standard library, only our three modules.
    probe = (
        "import json, sys; before = set(sys.modules); "
        "import airflow_provider_plugz.get_provider_info as m; m.get_provider_info(); "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    added = {name for name in json.loads(result.stdout) if name.split(".")[0] not in sys.stdlib_module_names}
    assert added == {
        "airflow_provider_plugz",
        "airflow_provider_plugz._version",
        "airflow_provider_plugz.get_provider_info",
    }
