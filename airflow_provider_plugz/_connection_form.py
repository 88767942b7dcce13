"""The connection form for Airflow versions that do not read ``conn-fields`` (Airflow 2.x, < 3.2).

Both are derived from the declarative ``connection-types`` entry in :mod:`.get_provider_info`,
so the two forms cannot disagree. :class:`~airflow_provider_plugz.hooks.plugz.PlugzHook`'s
``get_connection_form_widgets`` / ``get_ui_field_behaviour`` hand these over (Airflow looks for
those class methods on the hook itself). Airflow 3.2+ reads the declaration and calls neither.
"""

from __future__ import annotations

from typing import Any


def connection_form_widgets() -> dict[str, Any]:
    """The extra form fields: wtforms fields, with Flask-AppBuilder's widgets where there is FAB."""
    from wtforms import PasswordField, StringField

    try:
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    except ImportError:  # no FAB UI (Airflow 3): wtforms' own widgets
        text_widget = password_widget = None
    else:
        text_widget, password_widget = BS3TextFieldWidget(), BS3PasswordFieldWidget()

    widgets: dict[str, Any] = {}
    for name, spec in _declared_connection()["conn-fields"].items():
        secret = spec["schema"].get("format") == "password"
        field_class = PasswordField if secret else StringField
        widget = password_widget if secret else text_widget
        widgets[name] = field_class(
            spec["label"],
            description=spec.get("description"),
            default=spec["schema"].get("default"),
            **({"widget": widget} if widget is not None else {}),
        )
    return widgets


def ui_field_behaviour() -> dict[str, Any]:
    """Hidden, relabelled and placeholder fields: the declarative ``ui-field-behaviour``."""
    behaviour = _declared_connection()["ui-field-behaviour"]
    return {
        "hidden_fields": list(behaviour["hidden-fields"]),
        "relabeling": dict(behaviour["relabeling"]),
        "placeholders": dict(behaviour["placeholders"]),
    }


def _declared_connection() -> dict[str, Any]:
    from airflow_provider_plugz.get_provider_info import get_provider_info

    (declared,) = get_provider_info()["connection-types"]
    return declared  # type: ignore[no-any-return]
