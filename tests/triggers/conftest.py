"""What the trigger tests share: a Plugz connection that cannot be read, in every way it can fail."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, SECRETS, assert_no_secrets

#: A secret of the broken connections below: it must not show in any event.
BROKEN_TOKEN = "T0KEN5ECRETBR0KEN000000000001"

#: Every way reading ``plugz_default`` can fail, as (its AIRFLOW_CONN_* value - None: no such
#: connection, RuntimeError: a secrets backend that fails -, words the error must say).
CONNECTION_FAILURES = [
    pytest.param((None, "does not exist"), id="missing"),
    pytest.param(('{"conn_type": "plugz", "login": ', "does not exist"), id="neither-json-nor-uri"),
    pytest.param(
        (
            {
                "conn_type": "http",
                "login": INSTANCE_ID,
                "password": BROKEN_TOKEN,
                "extra": {"client_token": "C1"},
            },
            "has type 'http', not 'plugz'",
        ),
        id="wrong-conn-type",
    ),
    pytest.param(
        ({"conn_type": "plugz", "login": INSTANCE_ID}, "password (Instance token) is empty"), id="no-token"
    ),
    pytest.param(
        (
            {"conn_type": "plugz", "login": INSTANCE_ID, "password": BROKEN_TOKEN, "extra": "{not json"},
            "client_token",
        ),
        id="extra-not-json",
    ),
    pytest.param(
        (
            {
                "conn_type": "plugz",
                "host": "ftp://x",
                "login": INSTANCE_ID,
                "password": BROKEN_TOKEN,
                "extra": {"client_token": "C1"},
            },
            "host",
        ),
        id="bad-host",
    ),
    pytest.param((RuntimeError, "could not be read (RuntimeError)"), id="secrets-backend-fails"),
]


class UnreadableConnection:
    """``with unreadable:`` makes ``plugz_default`` unreadable in one way; leaving it fixes it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, how: Any, says: str) -> None:
        self.monkeypatch, self.how, self.says = monkeypatch, how, says
        self._context: Any = None

    def __enter__(self) -> UnreadableConnection:
        from airflow_provider_plugz.hooks.plugz import PlugzHook

        self._context = self.monkeypatch.context()
        broken = self._context.__enter__()
        if self.how is RuntimeError:

            def fail(cls: Any, conn_id: str) -> Any:
                raise RuntimeError(f"secrets backend down; its token is {CLIENT_TOKEN}")

            broken.setattr(PlugzHook, "get_connection", classmethod(fail))
        elif self.how is None:
            broken.delenv("AIRFLOW_CONN_PLUGZ_DEFAULT", raising=False)
        else:
            value = self.how if isinstance(self.how, str) else json.dumps(self.how)
            broken.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", value)
        return self

    def __exit__(self, *exc: object) -> None:
        self._context.__exit__(*exc)

    def check(self, message: str) -> None:
        """``message`` says what to fix, names the connection, and holds no secret or traceback."""
        assert self.says in message
        assert "plugz_default" in message
        assert "Traceback" not in message
        assert_no_secrets(message, secrets=(*SECRETS, BROKEN_TOKEN))


@pytest.fixture(params=CONNECTION_FAILURES)
def unreadable_connection(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> UnreadableConnection:
    """One way ``plugz_default`` cannot be read (each test using it runs once per way)."""
    how, says = request.param
    return UnreadableConnection(monkeypatch, how, says)
