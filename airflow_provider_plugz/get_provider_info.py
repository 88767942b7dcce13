"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

It must stay import-light: Airflow reads it in every component at start-up. Its one import is
the package's ``__version__``, a constant in the tiny generated ``_version`` module (the git tag).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_plugz import __version__

_SECRET = {"type": ["string", "null"], "format": "password"}
_SECONDS = {"type": ["number", "null"], "exclusiveMinimum": 0}


def get_provider_info() -> dict[str, Any]:
    """Describe the package, its connection type and the form Airflow 3.2+ draws for it."""
    return {
        "package-name": "airflow-provider-plugz",
        "name": "Plugz",
        "description": (
            "Plugz WhatsApp API (Z-API): PIN (two-step verification) checks and waits, connection "
            "health and status, device info, sending messages, WhatsApp failure alerts (notifier), "
            "event-driven DAGs (AssetWatcher) and fleet audits."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Plugz",
                "external-doc-url": "https://plugzapi.com.br",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Plugz",
                "python-modules": ["airflow_provider_plugz.hooks.plugz"],
            }
        ],
        "operators": [
            {
                "integration-name": "Plugz",
                "python-modules": [
                    "airflow_provider_plugz.operators.plugz",
                    "airflow_provider_plugz.operators.audit",
                    "airflow_provider_plugz.operators.audit_merge",
                    "airflow_provider_plugz.operators.messages",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Plugz",
                "python-modules": ["airflow_provider_plugz.sensors.plugz"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Plugz",
                "python-modules": [
                    "airflow_provider_plugz.triggers.plugz",
                    "airflow_provider_plugz.triggers.events",
                ],
            }
        ],
        "notifications": ["airflow_provider_plugz.notifications.plugz.PlugzNotifier"],
        "connection-types": [
            {
                "connection-type": "plugz",
                "hook-class-name": "airflow_provider_plugz.hooks.plugz.PlugzHook",
                "hook-name": "Plugz",
                "conn-fields": {
                    "client_token": {
                        "label": "Client-Token",
                        "description": "Account security token (Plugz panel > Security).",
                        "schema": _SECRET,
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "schema": {**_SECONDS, "default": 5},
                    },
                    "read_timeout": {
                        "label": "Read timeout (s)",
                        "schema": {**_SECONDS, "default": 30},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {
                        "host": "Base URL",
                        "login": "Instance ID",
                        "password": "Instance token",
                    },
                    "placeholders": {
                        "host": "https://api.plugzapi.com.br",
                        "login": "instance id from the Plugz panel",
                        "password": "instance token from the Plugz panel",
                        "client_token": "account security token",
                    },
                },
            }
        ],
    }
