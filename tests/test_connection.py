"""Connection parsing: one pure function, every input form, every bad field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_plugz.connection import DEFAULT_BASE_URL, PlugzConfig, parse_connection
from airflow_provider_plugz.exceptions import PlugzConfigurationError
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN, SECRETS, make_connection


def test_defaults() -> None:
    config = parse_connection(make_connection())
    assert config == PlugzConfig(
        conn_id="plugz_default",
        base_url=DEFAULT_BASE_URL,
        instance_id=INSTANCE_ID,
        instance_token=INSTANCE_TOKEN,
        client_token=CLIENT_TOKEN,
        connect_timeout=5.0,
        read_timeout=30.0,
    )


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        pytest.param(None, None, "https://api.plugzapi.com.br", id="empty-host-default"),
        pytest.param("", None, "https://api.plugzapi.com.br", id="blank-host-default"),
        pytest.param("api.plugzapi.com.br", None, "https://api.plugzapi.com.br", id="bare-host-https"),
        pytest.param("https://api.plugzapi.com.br/", None, "https://api.plugzapi.com.br", id="url-slash"),
        pytest.param("https://proxy.example/plugz/", None, "https://proxy.example/plugz", id="url-path"),
        pytest.param("api.example", 8443, "https://api.example:8443", id="bare-host-port"),
        pytest.param("https://api.example:9000", 8443, "https://api.example:9000", id="url-port-wins"),
        pytest.param("127.0.0.1", 8080, "http://127.0.0.1:8080", id="loopback-http"),
        pytest.param("localhost:8080", None, "http://localhost:8080", id="localhost-http"),
        pytest.param("[::1]:8080", None, "http://[::1]:8080", id="ipv6-loopback-http"),
        pytest.param("http://127.0.0.1:9", None, "http://127.0.0.1:9", id="explicit-http"),
    ],
)
def test_base_url(host: str | None, port: int | None, expected: str) -> None:
    assert parse_connection(make_connection(host=host, port=port)).base_url == expected


def test_prefixed_client_token_extra_accepted() -> None:
    conn = make_connection(extra={"extra__plugz__client_token": CLIENT_TOKEN})
    assert parse_connection(conn).client_token == CLIENT_TOKEN


def test_timeouts_from_extras_strings_or_numbers() -> None:
    conn = make_connection(extra={"client_token": CLIENT_TOKEN, "connect_timeout": "2.5", "read_timeout": 7})
    config = parse_connection(conn)
    assert (config.connect_timeout, config.read_timeout) == (2.5, 7.0)


def test_retry_policy_from_extras() -> None:
    extra = {
        "client_token": CLIENT_TOKEN,
        "max_attempts": "2",
        "retry_backoff": 0.1,
        "retry_backoff_max": "1",
        "retry_budget": 9,
    }
    retry = parse_connection(make_connection(extra=extra)).retry
    assert (retry.max_attempts, retry.backoff, retry.backoff_max, retry.budget) == (2, 0.1, 1.0, 9.0)


def test_default_retry_policy() -> None:
    retry = parse_connection(make_connection()).retry
    assert (retry.max_attempts, retry.backoff, retry.backoff_max, retry.budget) == (4, 0.5, 8.0, 30.0)


@pytest.mark.parametrize(
    ("host", "flag"),
    [
        pytest.param("http://proxy.internal:8080", True, id="http-allowed-by-flag"),
        pytest.param("http://proxy.internal:8080", "true", id="http-allowed-by-string-flag"),
        pytest.param("http://127.0.0.1:8080", False, id="http-loopback"),
        pytest.param("http://localhost:8080", False, id="http-localhost"),
    ],
)
def test_plain_http_only_where_safe_or_allowed(host: str, flag: Any) -> None:
    conn = make_connection(host=host, extra={"client_token": CLIENT_TOKEN, "allow_insecure_http": flag})
    assert parse_connection(conn).base_url == host


def test_ca_bundle_extra() -> None:
    conn = make_connection(extra={"client_token": CLIENT_TOKEN, "ca_bundle": "/etc/ssl/company.pem"})
    assert parse_connection(conn).ca_bundle == "/etc/ssl/company.pem"


def test_extra_dejson_not_mutated() -> None:
    conn = make_connection(extra={"client_token": CLIENT_TOKEN, "read_timeout": "3"})
    before = json.dumps(conn.extra_dejson, sort_keys=True)
    parse_connection(conn)
    assert json.dumps(conn.extra_dejson, sort_keys=True) == before


def test_from_uri() -> None:
    from tests.airflow_compat import Connection

    uri = f"plugz://{INSTANCE_ID}:{INSTANCE_TOKEN}@api.plugzapi.com.br?client_token={CLIENT_TOKEN}"
    config = parse_connection(Connection(conn_id="plugz_uri", uri=uri))
    assert (config.conn_id, config.base_url, config.instance_token, config.client_token) == (
        "plugz_uri",
        DEFAULT_BASE_URL,
        INSTANCE_TOKEN,
        CLIENT_TOKEN,
    )


@pytest.mark.parametrize(
    "env_value",
    [
        pytest.param(
            json.dumps(
                {
                    "conn_type": "plugz",
                    "login": INSTANCE_ID,
                    "password": INSTANCE_TOKEN,
                    "extra": {"client_token": CLIENT_TOKEN},
                }
            ),
            id="json",
        ),
        pytest.param(f"plugz://{INSTANCE_ID}:{INSTANCE_TOKEN}@?client_token={CLIENT_TOKEN}", id="uri"),
    ],
)
def test_from_environment(monkeypatch: pytest.MonkeyPatch, env_value: str) -> None:
    from airflow_provider_plugz.hooks.plugz import PlugzHook

    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_ENV", env_value)
    config = PlugzHook("plugz_env").config
    assert (config.conn_id, config.base_url, config.instance_id, config.client_token) == (
        "plugz_env",
        DEFAULT_BASE_URL,
        INSTANCE_ID,
        CLIENT_TOKEN,
    )


def test_repr_hides_secrets() -> None:
    text = repr(parse_connection(make_connection()))
    assert INSTANCE_ID not in text
    assert not any(secret in text for secret in SECRETS)


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        pytest.param({"login": None}, "login (Instance ID)", id="no-instance-id"),
        pytest.param({"login": "  "}, "login (Instance ID)", id="blank-instance-id"),
        pytest.param({"login": "abc/def"}, "login (Instance ID)", id="slash-instance-id"),
        pytest.param({"login": "abc def"}, "login (Instance ID)", id="space-instance-id"),
        pytest.param({"login": "abc..def"}, "login (Instance ID)", id="dotdot-instance-id"),
        pytest.param({"password": None}, "password (Instance token)", id="no-token"),
        pytest.param({"password": "tok?en"}, "password (Instance token)", id="query-token"),
        pytest.param({"password": "tok#en"}, "password (Instance token)", id="fragment-token"),
        pytest.param({"password": "tok%2Fen"}, "password (Instance token)", id="percent-token"),
        pytest.param({"password": "tok\x00en"}, "password (Instance token)", id="nul-token"),
        pytest.param({"extra": {}}, "client_token", id="no-client-token"),
        pytest.param({"extra": {"client_token": ""}}, "client_token", id="empty-client-token"),
        pytest.param({"extra": {"client_token": 1234567}}, "client_token", id="number-client-token"),
        pytest.param({"extra": {"client_token": "ab\r\nX-Evil: 1"}}, "client_token", id="crlf-client-token"),
        pytest.param(
            {"extra": {"client_token": CLIENT_TOKEN, "read_timeout": "soon"}},
            "read_timeout",
            id="word-timeout",
        ),
        pytest.param(
            {"extra": {"client_token": CLIENT_TOKEN, "connect_timeout": 0}},
            "connect_timeout",
            id="zero-timeout",
        ),
        pytest.param(
            {"extra": {"client_token": CLIENT_TOKEN, "connect_timeout": True}},
            "connect_timeout",
            id="bool-timeout",
        ),
        pytest.param({"host": "ftp://api.plugzapi.com.br"}, "host", id="ftp-host"),
        pytest.param({"host": "https://user:pw@api.example"}, "host", id="credentials-in-host"),
        pytest.param({"host": "https://api.example?x=1"}, "host", id="query-in-host"),
        pytest.param({"host": "https://api.example:notaport"}, "host", id="bad-port"),
        pytest.param({"host": "http://api.plugzapi.com.br"}, "plain http://", id="plain-http-public"),
        pytest.param({"host": "http://10.0.0.5:8080"}, "plain http://", id="plain-http-private"),
        pytest.param(
            {
                "host": "http://proxy.internal",
                "extra": {"client_token": CLIENT_TOKEN, "allow_insecure_http": "yes"},
            },
            "allow_insecure_http",
            id="bad-flag",
        ),
        pytest.param(
            {"extra": {"client_token": CLIENT_TOKEN, "max_attempts": 0}}, "max_attempts", id="zero-attempts"
        ),
        pytest.param(
            {"extra": {"client_token": CLIENT_TOKEN, "max_attempts": 2.5}},
            "max_attempts",
            id="fractional-attempts",
        ),
        pytest.param(
            {"extra": {"client_token": CLIENT_TOKEN, "retry_backoff": -1}},
            "retry_backoff",
            id="negative-backoff",
        ),
        pytest.param(
            {"extra": {"client_token": CLIENT_TOKEN, "retry_budget": "x"}}, "retry_budget", id="bad-budget"
        ),
        pytest.param(
            {"extra": {"client_token": CLIENT_TOKEN, "ca_bundle": 5}}, "ca_bundle", id="bad-ca-bundle"
        ),
        pytest.param(
            {"extra": {"client_token": "töken-ünicode"}}, "client_token", id="non-ascii-client-token"
        ),
    ],
)
def test_invalid_fields_name_the_field_not_the_value(fields: dict[str, Any], names: str) -> None:
    with pytest.raises(PlugzConfigurationError) as info:
        parse_connection(make_connection(**fields))
    message = str(info.value)
    assert names in message
    assert "plugz_default" in message
    for value in (fields.get("login"), fields.get("password"), *(fields.get("extra") or {}).values()):
        if isinstance(value, str) and len(value.strip()) > 2:
            assert value not in message
