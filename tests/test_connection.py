"""Connection parsing: one pure function, every input form, every bad field."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import string
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
import requests
from hypothesis import example, given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url

from airflow_provider_plugz.connection import (
    DEFAULT_BASE_URL,
    MAX_SECONDS,
    BaseURL,
    PlugzConfig,
    parse_base_url,
    parse_connection,
)
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
        total_timeout=35.0,
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
        pytest.param({"login": ".."}, "login (Instance ID)", id="dotdot-instance-id"),
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


# --- instance id and token: URL-unreserved ASCII only --------------------------------------

CREDENTIAL_FIELDS = [
    pytest.param("login", "login (Instance ID)", id="login"),
    pytest.param("password", "password (Instance token)", id="password"),
]


@pytest.mark.parametrize(("field", "label"), CREDENTIAL_FIELDS)
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("abc+def", id="plus"),
        pytest.param("abc@def", id="at"),
        pytest.param("abc:def", id="colon"),
        pytest.param("abc;def", id="semicolon"),
        pytest.param("abc\\def", id="backslash"),
        pytest.param("abc\tdef", id="tab"),
        pytest.param("abc\x7fdef", id="del"),
        pytest.param("abc\u200bdef", id="zero-width-space"),
        pytest.param("abc\u200ddef", id="zero-width-joiner"),
        pytest.param("abc\ufeffdef", id="bom"),
        pytest.param("abc\u202edef", id="bidi-override"),
        pytest.param("abc\u2066def", id="bidi-isolate"),
        pytest.param("t\u00f6ken", id="latin-letter"),
        pytest.param("\u0430bcdef", id="cyrillic-lookalike"),
        pytest.param("abc\uff0fdef", id="fullwidth-slash"),
    ],
)
def test_path_credential_forbidden_characters(field: str, label: str, value: str) -> None:
    with pytest.raises(PlugzConfigurationError) as info:
        parse_connection(make_connection(**{field: value}))
    message = str(info.value)
    assert message.startswith(f"Plugz connection 'plugz_default': {label} contains")
    assert value not in message
    assert message.isascii()


@pytest.mark.parametrize(("field", "label"), CREDENTIAL_FIELDS)
@pytest.mark.parametrize("value", [".", "..", "...", " .. "])
def test_path_credential_only_dots(field: str, label: str, value: str) -> None:
    with pytest.raises(PlugzConfigurationError, match=re.escape(f"{label} is made only of dots")):
        parse_connection(make_connection(**{field: value}))


@pytest.mark.parametrize(("field", "label"), CREDENTIAL_FIELDS)
def test_path_credential_not_a_string(field: str, label: str) -> None:
    class Conn:
        conn_id, conn_type, host, port = "plugz_default", "plugz", None, None
        login, password = INSTANCE_ID, INSTANCE_TOKEN
        extra_dejson = {"client_token": CLIENT_TOKEN}  # noqa: RUF012

    conn = Conn()
    setattr(conn, field, 1234567)
    with pytest.raises(PlugzConfigurationError, match=re.escape(f"{label} must be a string")):
        parse_connection(conn)


@pytest.mark.parametrize(("field", "label"), CREDENTIAL_FIELDS)
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("3C0FFEE1-abc_def.ghi~jkl", id="every-unreserved-kind"),
        pytest.param("abc..def", id="inner-dots"),
        pytest.param(".hidden", id="leading-dot"),
        pytest.param("~", id="tilde"),
    ],
)
def test_path_credential_unreserved_accepted(field: str, label: str, value: str) -> None:
    config = parse_connection(make_connection(**{field: value}))
    assert (config.instance_id if field == "login" else config.instance_token) == value


# --- the host is what the transport connects to --------------------------------------------

SUFFIX = "/instances/x/token/y/security/two-fa-code"


def _host_key(host: str) -> str:
    """One spelling per host: lower case, IPv6 without brackets and compressed."""
    bare = host.lower().removeprefix("[").removesuffix("]")
    try:
        return ipaddress.ip_address(bare).compressed
    except ValueError:
        return bare


def transport_views(url: str) -> dict[str, tuple[str | None, str, int | None, str]]:
    """(scheme, host, port, unquoted path) of ``url`` as each HTTP stack reads it."""
    defaults = {"http": 80, "https": 443}
    views: dict[str, tuple[str | None, str, int | None, str]] = {}

    def add(name: str, scheme: str | None, host: str | None, port: int | None, path: str | None) -> None:
        port = port if port is not None else defaults.get(scheme or "")
        views[name] = (scheme, _host_key(host or ""), port, unquote(path or ""))

    u3 = parse_url(url)
    add("urllib3", u3.scheme, u3.host, u3.port, u3.path)
    hx = httpx.URL(url)
    add("httpx", hx.scheme, hx.raw_host.decode("ascii"), hx.port, hx.raw_path.decode("ascii"))
    prepared = requests.Request("GET", url).prepare().url
    assert prepared is not None
    u3p = parse_url(prepared)
    add("requests+urllib3", u3p.scheme, u3p.host, u3p.port, u3p.path)
    sp = urlsplit(prepared)
    add("requests+urlsplit", sp.scheme, sp.hostname, sp.port, sp.path)
    return views


def assert_transports_agree(ours: BaseURL, url: str) -> None:
    """Every HTTP stack reads ``url`` (a base URL plus the API path) as our pieces say."""
    expected = (ours.scheme, _host_key(ours.host), ours.effective_port, unquote(ours.path + SUFFIX))
    for name, view in transport_views(url + SUFFIX).items():
        assert view == expected, f"{name} reads {view}, we validated {expected}"


def test_naive_base_url_of_the_evil_example_is_caught_by_the_checker() -> None:
    """What the old validation accepted: urlsplit saw one host, urllib3 connects elsewhere."""
    host = "https://evil.example\\.api.plugzapi.com.br"
    naive = BaseURL("https", urlsplit(host).hostname or "", None, "")
    with pytest.raises(AssertionError, match="urllib3 reads"):
        assert_transports_agree(naive, host)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        pytest.param(None, None, "https://api.plugzapi.com.br", id="default"),
        pytest.param("api.plugzapi.com.br", None, "https://api.plugzapi.com.br", id="bare"),
        pytest.param("API.PlugzAPI.com.BR", None, "https://api.plugzapi.com.br", id="upper-case"),
        pytest.param("HTTPS://api.example:0443/", None, "https://api.example:443", id="upper-scheme"),
        pytest.param("  api.example\n", None, "https://api.example", id="pasted-with-newline"),
        pytest.param("https://proxy.example/plugz/v1/", None, "https://proxy.example/plugz/v1", id="path"),
        pytest.param(
            "https://proxy.example/a;b=1,c!$&'()*+:@~_-.x/%7Eme",
            None,
            "https://proxy.example/a;b=1,c!$&'()*+:@~_-.x/%7Eme",
            id="path-rfc3986-chars",
        ),
        pytest.param("xn--bcher-kva.example", None, "https://xn--bcher-kva.example", id="punycode"),
        pytest.param("203.0.113.7", 8443, "https://203.0.113.7:8443", id="ipv4-port-field"),
        pytest.param("https://[2001:db8::1]:8443", None, "https://[2001:db8::1]:8443", id="ipv6"),
        pytest.param("[::1]", 8080, "http://[::1]:8080", id="ipv6-loopback-port-field"),
        pytest.param("localhost", 8080, "http://localhost:8080", id="localhost-port-field"),
        pytest.param("api.example", "8443", "https://api.example:8443", id="port-field-string"),
        pytest.param("a-b.c-d.e", None, "https://a-b.c-d.e", id="hyphens"),
        pytest.param("1password.example", None, "https://1password.example", id="digit-first-label"),
        pytest.param("x" * 63 + ".example", None, f"https://{'x' * 63}.example", id="63-char-label"),
    ],
)
def test_accepted_hosts_mean_the_same_to_every_transport(host: str | None, port: Any, expected: str) -> None:
    ours = parse_base_url(host, port)
    assert ours.url == expected
    assert_transports_agree(ours, ours.url)
    assert parse_connection(make_connection(host=host, port=port)).base_url == expected


INVALID_NAME = "host is not a valid host name"
INVALID_URL = "host is not a valid URL"
NOT_HERE = "host must not contain credentials, '?' or '#'"


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        pytest.param("https://evil.example\\.api.plugzapi.com.br", INVALID_NAME, id="evil-backslash"),
        pytest.param("evil.example\\.api.plugzapi.com.br", INVALID_NAME, id="evil-backslash-bare"),
        pytest.param("https://evil.example\\@api.plugzapi.com.br", NOT_HERE, id="evil-backslash-at"),
        pytest.param("https://api.plugzapi.com.br@evil.example", NOT_HERE, id="evil-userinfo"),
        pytest.param("https://evil.example#.api.plugzapi.com.br", NOT_HERE, id="evil-fragment"),
        pytest.param("https://evil.example?.api.plugzapi.com.br", NOT_HERE, id="evil-query"),
        pytest.param("https://evil.example%2f.api.plugzapi.com.br", INVALID_NAME, id="evil-percent-slash"),
        pytest.param("https://evil.example%00.api.plugzapi.com.br", INVALID_NAME, id="evil-percent-nul"),
        pytest.param("https://evil.example\t.api.plugzapi.com.br", "whitespace", id="evil-tab"),
        pytest.param("https://evil.example\r\n.api.plugzapi.com.br", "whitespace", id="evil-crlf"),
        pytest.param("https://evil.example .api.plugzapi.com.br", "whitespace", id="evil-space"),
        pytest.param("https://evil.example\x00.api.plugzapi.com.br", "control", id="evil-nul"),
        pytest.param("https://evil.example\x7f.api.plugzapi.com.br", "control", id="evil-del"),
        pytest.param("https://evil.example\u3002api.plugzapi.com.br", "punycode", id="evil-ideographic-dot"),
        pytest.param("https://evil.example\uff0fapi.plugzapi.com.br", "punycode", id="evil-fullwidth-slash"),
        pytest.param("https://api.plugzapi\u200b.com.br", "punycode", id="zero-width-space"),
        pytest.param("https://api.plugzapi.com.br\u202e", "punycode", id="bidi-override"),
        pytest.param("https://\u0430pi.plugzapi.com.br", "punycode", id="cyrillic-lookalike"),
        pytest.param("https://b\u00fccher.example", "punycode", id="unicode-idn"),
        pytest.param("https://[evil.example]", INVALID_NAME, id="brackets-around-name"),
        pytest.param("https://[::1", INVALID_NAME, id="unclosed-bracket"),
        pytest.param("https://::1]", INVALID_NAME, id="stray-bracket"),
        pytest.param("https://[fe80::1%25eth0]", INVALID_NAME, id="ipv6-zone-id"),
        pytest.param("https://[::1]evil.example", INVALID_NAME, id="text-after-bracket"),
        pytest.param("2001:db8::7", INVALID_NAME, id="ipv6-unbracketed"),
        pytest.param("https://api..plugzapi.com.br", INVALID_NAME, id="empty-label"),
        pytest.param("https://.api.plugzapi.com.br", INVALID_NAME, id="leading-dot"),
        pytest.param("https://api.plugzapi.com.br.", INVALID_NAME, id="trailing-dot"),
        pytest.param("https://-api.example", INVALID_NAME, id="label-leading-hyphen"),
        pytest.param("https://api-.example", INVALID_NAME, id="label-trailing-hyphen"),
        pytest.param("https://api_1.example", INVALID_NAME, id="underscore"),
        pytest.param(f"https://{'x' * 64}.example", INVALID_NAME, id="64-char-label"),
        pytest.param("https://" + ".".join(["x" * 60] * 5), INVALID_NAME, id="name-over-253"),
        pytest.param("https://127.1", INVALID_NAME, id="short-ipv4"),
        pytest.param("https://0x7f000001", INVALID_NAME, id="hex-ipv4"),
        pytest.param("https://2130706433", INVALID_NAME, id="decimal-ipv4"),
        pytest.param("https://127.000.0.1", INVALID_NAME, id="zero-padded-ipv4"),
        pytest.param("https://256.1.1.1", INVALID_NAME, id="ipv4-out-of-range"),
        pytest.param("https://", INVALID_NAME, id="no-host"),
        pytest.param("https:///plugz", INVALID_NAME, id="no-host-path"),
        pytest.param("//api.example", INVALID_NAME, id="scheme-relative"),
        pytest.param("https:api.example", INVALID_URL, id="scheme-without-slashes"),
        pytest.param("https://api.example:", INVALID_URL, id="empty-port"),
        pytest.param("https://api.example:+443", INVALID_URL, id="signed-port"),
        pytest.param("https://api.example:4_43", INVALID_URL, id="underscore-port"),
        pytest.param("https://api.example:443:443", INVALID_NAME, id="two-ports"),
        pytest.param("https://api.example:0", INVALID_URL, id="port-zero"),
        pytest.param("https://api.example:65536", INVALID_URL, id="port-too-big"),
        pytest.param("https://api.example:000000443", INVALID_URL, id="port-too-long"),
        pytest.param("https://api.example//evil.example", INVALID_URL, id="path-empty-segment"),
        pytest.param("https://api.example/a/../b", INVALID_URL, id="path-dotdot"),
        pytest.param("https://api.example/./b", INVALID_URL, id="path-dot"),
        pytest.param("https://api.example/%2e%2E", INVALID_URL, id="path-encoded-dotdot"),
        pytest.param("https://api.example/a%zz", INVALID_URL, id="path-bad-escape"),
        pytest.param("https://api.example/a%2", INVALID_URL, id="path-short-escape"),
        pytest.param("https://api.example/a[b]", INVALID_URL, id="path-brackets"),
        pytest.param("https://api.example/a\\b", INVALID_URL, id="path-backslash"),
        pytest.param('https://api.example/a"b', INVALID_URL, id="path-quote"),
        pytest.param("https://api.example/a{b}", INVALID_URL, id="path-braces"),
        pytest.param("javascript://api.example", "host must be an http(s) URL", id="other-scheme"),
        pytest.param("1https://api.example", "host must be an http(s) URL", id="not-a-scheme"),
    ],
)
def test_refused_hosts(host: str, problem: str) -> None:
    with pytest.raises(PlugzConfigurationError) as info:
        parse_connection(make_connection(host=host, extra={"client_token": CLIENT_TOKEN}))
    message = str(info.value)
    assert problem in message
    assert "evil" not in message
    assert host.strip() not in message
    assert message.isascii()
    assert message.isprintable()


@pytest.mark.parametrize(
    ("port", "problem"),
    [
        pytest.param(0, "port must be between 1 and 65535", id="zero"),
        pytest.param(65536, "port must be between 1 and 65535", id="too-big"),
        pytest.param(-1, "port must be between 1 and 65535", id="negative"),
        pytest.param("80a", "port must be a whole number", id="text"),
        pytest.param(True, "port must be a whole number", id="bool"),
        pytest.param(443.5, "port must be a whole number", id="float"),
    ],
)
def test_refused_port_field(port: Any, problem: str) -> None:
    with pytest.raises(PlugzConfigurationError, match=problem):
        parse_base_url("api.example", port)


# Characters that parsers treat differently, or that disguise a host name.
_HOSTILE = "\\/@:[]%#?\t\r\n\x00\x7f "
_INVISIBLE = (
    "\u200b\u200c\u200d\u2060\ufeff\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_LOOKALIKE = "\u3002\uff0e\uff0f\uff20\uff03\u2024\ufe52\u0430\u0435\u043e\u00e9\u0131"
_host_chars = st.sampled_from(
    list(_HOSTILE + _INVISIBLE + _LOOKALIKE + ".-" + string.digits + string.ascii_letters)
) | st.characters(categories=("L",))
free_hosts = st.tuples(
    st.sampled_from(["", "https://", "http://", "HTTPS://", "//"]), st.text(_host_chars, max_size=40)
).map("".join)

_label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_names = st.lists(_label, min_size=1, max_size=4).map(".".join) | st.sampled_from(
    [
        "api.plugzapi.com.br",
        "127.0.0.1",
        "203.0.113.7",
        "localhost",
        "[::1]",
        "[2001:db8::1]",
        "xn--bcher-kva.example",
    ]
)
_pieces = st.sampled_from(
    [
        "evil.example\\", "\\", "\\\\evil.example\\", "@evil.example", "@", "evil.example#", "#", "?",
        "%", "%2e%2e", "%2F", "%5C", "%40evil.example", "%zz", ":", ":evil", "[", "]", "/", "//", "/..",
        "..", ".", "\t", " ", "\r\n", "\x00", "\x7f", "\u200b", "\u202e", "\ufeff", "\u3002", "\uff0e",
        "\uff0f", "\uff20", "\uff45vil", "\u00e9", "evil.example/", "evil.example:443", "[::1]",
    ]
)  # fmt: skip


@st.composite
def near_valid_hosts(draw: st.DrawFn) -> str:
    """A good base URL with one hostile piece (or none) inserted anywhere."""
    url = (
        draw(st.sampled_from(["https://", "http://", ""]))
        + draw(_names)
        + draw(st.sampled_from(["", ":8443", ":1", ":65535", ":0", ":65536", ":", ":08080", ":80"]))
        + draw(st.sampled_from(["", "/", "/plugz", "/a/b/", "/v1;x=1", "/%7Euser", "/a:b@c"]))
    )
    piece = draw(_pieces | st.just(""))
    at = draw(st.integers(0, len(url)))
    return url[:at] + piece + url[at:]


def _check_host(host: str) -> None:
    """Refused with a clean message, or read identically by us and every HTTP stack."""
    extra = {"client_token": CLIENT_TOKEN, "allow_insecure_http": True}
    try:
        config = parse_connection(make_connection(host=host, extra=extra))
    except PlugzConfigurationError as err:
        message = str(err)
        assert message.isascii()
        assert message.isprintable()
        assert "evil" not in message
        return
    ours = parse_base_url(host)
    assert config.base_url == ours.url
    assert_transports_agree(ours, config.base_url)


@settings(max_examples=400, deadline=None)
@given(host=free_hosts)
@example(host="https://evil.example\\.api.plugzapi.com.br")
@example(host="https://evil.example\\@api.plugzapi.com.br")
def test_property_free_text_hosts(host: str) -> None:
    _check_host(host)


@settings(max_examples=400, deadline=None)
@given(host=near_valid_hosts())
def test_property_near_valid_hosts(host: str) -> None:
    _check_host(host)


@pytest.fixture
def network_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every DNS lookup and socket connect made, recorded on top of the conftest's loopback guard."""
    calls: list[str] = []
    guarded_getaddrinfo = socket.getaddrinfo
    guarded_connect = socket.socket.connect
    guarded_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(f"getaddrinfo {host!r}")
        return guarded_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        calls.append(f"connect {address!r}")
        return guarded_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        calls.append(f"connect_ex {address!r}")
        return guarded_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return calls


def _point_default_at(monkeypatch: pytest.MonkeyPatch, host: str, **extra: Any) -> None:
    conn = {
        "conn_type": "plugz",
        "host": host,
        "login": INSTANCE_ID,
        "password": INSTANCE_TOKEN,
        "extra": {"client_token": CLIENT_TOKEN, **extra},
    }
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))


def _get_pin_status(run: str) -> None:
    """One PIN-status call on ``plugz_default``, through the sync or the async transport."""
    from airflow_provider_plugz.hooks.plugz import PlugzHook

    if run == "sync":
        PlugzHook().get_pin_status()
    else:
        asyncio.run(PlugzHook().aget_pin_status())


@pytest.mark.parametrize("run", [pytest.param("sync", id="sync"), pytest.param("async", id="async")])
@pytest.mark.parametrize(
    "host",
    [
        pytest.param("https://evil.example\\.api.plugzapi.com.br", id="backslash"),
        pytest.param("https://api.plugzapi.com.br\\@evil.example", id="backslash-at"),
        pytest.param("https://api.plugzapi\u200b.com.br", id="zero-width"),
        pytest.param("https://127.0.0.1%2f.evil.example", id="percent"),
        pytest.param("https://127.1:1", id="short-ipv4"),
    ],
)
def test_refused_host_costs_no_lookup_and_no_packet(
    monkeypatch: pytest.MonkeyPatch, network_calls: list[str], host: str, run: str
) -> None:
    _point_default_at(monkeypatch, host)
    with pytest.raises(PlugzConfigurationError, match="host"):
        _get_pin_status(run)
    assert network_calls == []


@pytest.mark.parametrize("run", [pytest.param("sync", id="sync"), pytest.param("async", id="async")])
def test_network_spy_sees_an_accepted_host(
    monkeypatch: pytest.MonkeyPatch, network_calls: list[str], run: str
) -> None:
    """The spy above works: a valid host (nothing listens on port 1) is looked up and connected to."""
    from airflow_provider_plugz.exceptions import PlugzConnectionError

    _point_default_at(monkeypatch, "http://127.0.0.1:1", max_attempts=1)
    with pytest.raises(PlugzConnectionError):
        _get_pin_status(run)
    assert any(call.startswith("connect") for call in network_calls)


# --- number extras: bounded -----------------------------------------------------------------

SECONDS_EXTRAS = [
    "connect_timeout",
    "read_timeout",
    "total_timeout",
    "retry_backoff",
    "retry_backoff_max",
    "retry_budget",
]
POSITIVE_EXTRAS = {"connect_timeout", "read_timeout", "total_timeout"}
BAD_NUMBERS = [
    pytest.param(1e20, "at most 86400 (one day)", id="huge"),
    pytest.param("1e20", "at most 86400 (one day)", id="huge-text"),
    pytest.param(10**400, "must be a number of seconds", id="huge-int"),
    pytest.param("1e400", "must be a number of seconds", id="overflow-text"),
    pytest.param(86400.001, "at most 86400 (one day)", id="just-over-a-day"),
    pytest.param(-1, "must be a number of seconds", id="negative"),
    pytest.param("-0.5", "must be a number of seconds", id="negative-text"),
    pytest.param(float("inf"), "must be a number of seconds", id="inf"),
    pytest.param("inf", "must be a number of seconds", id="inf-text"),
    pytest.param(float("-inf"), "must be a number of seconds", id="minus-inf"),
    pytest.param(float("nan"), "must be a number of seconds", id="nan"),
    pytest.param("NaN", "must be a number of seconds", id="nan-text"),
    pytest.param(True, "must be a number of seconds", id="bool-true"),
    pytest.param(False, "must be a number of seconds", id="bool-false"),
    pytest.param("soon", "must be a number of seconds", id="word"),
    pytest.param("5s", "must be a number of seconds", id="unit"),
    pytest.param([5], "must be a number of seconds", id="list"),
    pytest.param({"s": 5}, "must be a number of seconds", id="object"),
]


@pytest.mark.parametrize("key", SECONDS_EXTRAS)
@pytest.mark.parametrize(("value", "problem"), BAD_NUMBERS)
def test_seconds_extras_refused(key: str, value: Any, problem: str) -> None:
    conn = make_connection(extra={"client_token": CLIENT_TOKEN, key: value})
    with pytest.raises(PlugzConfigurationError) as info:
        parse_connection(conn)
    message = str(info.value)
    assert f"extra {key!r} must be a number of seconds" in message
    assert problem in message


@pytest.mark.parametrize("key", SECONDS_EXTRAS)
def test_zero_seconds_only_where_it_makes_sense(key: str) -> None:
    conn = make_connection(extra={"client_token": CLIENT_TOKEN, key: 0})
    if key in POSITIVE_EXTRAS:
        with pytest.raises(
            PlugzConfigurationError, match=rf"extra '{key}' .*greater than 0 and at most 86400"
        ):
            parse_connection(conn)
    else:
        parse_connection(conn)  # no retry waits / no budget is a valid policy


@pytest.mark.parametrize("key", SECONDS_EXTRAS)
@pytest.mark.parametrize("value", [pytest.param(86400, id="a-day"), pytest.param("86400.0", id="a-day-text")])
def test_seconds_extras_up_to_a_day(key: str, value: Any) -> None:
    config = parse_connection(make_connection(extra={"client_token": CLIENT_TOKEN, key: value}))
    read = {
        "connect_timeout": config.connect_timeout,
        "read_timeout": config.read_timeout,
        "total_timeout": config.total_timeout,
        "retry_backoff": config.retry.backoff,
        "retry_backoff_max": config.retry.backoff_max,
        "retry_budget": config.retry.budget,
    }
    assert read[key] == MAX_SECONDS


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param(101, "at least 1 and at most 100", id="over-100"),
        pytest.param("1e20", "at least 1 and at most 100", id="huge-text"),
        pytest.param(10**400, "must be a whole number", id="huge-int"),
        pytest.param(0, "at least 1 and at most 100", id="zero"),
        pytest.param(-3, "at least 1 and at most 100", id="negative"),
        pytest.param(2.5, "at least 1 and at most 100", id="fraction"),
        pytest.param(float("inf"), "must be a whole number", id="inf"),
        pytest.param(float("nan"), "must be a whole number", id="nan"),
        pytest.param(True, "must be a whole number", id="bool"),
        pytest.param("three", "must be a whole number", id="word"),
    ],
)
def test_max_attempts_refused(value: Any, problem: str) -> None:
    conn = make_connection(extra={"client_token": CLIENT_TOKEN, "max_attempts": value})
    with pytest.raises(PlugzConfigurationError) as info:
        parse_connection(conn)
    assert "extra 'max_attempts' must be a whole number" in str(info.value)
    assert problem in str(info.value)


@pytest.mark.parametrize(
    "value", [pytest.param(100, id="int"), pytest.param("100", id="text"), pytest.param(100.0, id="float")]
)
def test_max_attempts_up_to_100(value: Any) -> None:
    conn = make_connection(extra={"client_token": CLIENT_TOKEN, "max_attempts": value})
    assert parse_connection(conn).retry.max_attempts == 100


# --- total_timeout ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param({}, 35.0, id="default-5-plus-30"),
        pytest.param({"connect_timeout": 2, "read_timeout": "7"}, 9.0, id="default-connect-plus-read"),
        pytest.param({"total_timeout": "12.5"}, 12.5, id="explicit-text"),
        pytest.param({"total_timeout": 3, "read_timeout": 60}, 3.0, id="explicit-below-read"),
        pytest.param({"total_timeout": ""}, 35.0, id="empty-is-default"),
        pytest.param(
            {"connect_timeout": 86400, "read_timeout": 86400}, MAX_SECONDS, id="default-capped-a-day"
        ),
    ],
)
def test_total_timeout(extra: dict[str, Any], expected: float) -> None:
    conn = make_connection(extra={"client_token": CLIENT_TOKEN, **extra})
    assert parse_connection(conn).total_timeout == expected


def test_config_total_timeout_default_keeps_old_constructors_working() -> None:
    config = PlugzConfig("c", DEFAULT_BASE_URL, INSTANCE_ID, INSTANCE_TOKEN, CLIENT_TOKEN)
    assert config.total_timeout == config.connect_timeout + config.read_timeout == 35.0


# --- require_conn_type ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conn_type", "shown"),
    [
        pytest.param("http", "has type 'http', not 'plugz'", id="http"),
        pytest.param("postgres", "has type 'postgres', not 'plugz'", id="postgres"),
        pytest.param("Plugz", "has type 'Plugz', not 'plugz'", id="wrong-case"),
        pytest.param("plugz " + "x" * 60, "has type 'plugz " + "x" * 30 + "..., not", id="long-cut"),
        pytest.param("a\r\nb", "has type 'a\\r\\nb', not 'plugz'", id="control-chars-escaped"),
    ],
)
def test_require_conn_type_refuses_other_types(conn_type: str, shown: str) -> None:
    conn = make_connection(conn_type=conn_type)
    with pytest.raises(PlugzConfigurationError) as info:
        parse_connection(conn, require_conn_type=True)
    message = str(info.value)
    assert message.startswith(f"Plugz connection 'plugz_default' {shown}")
    assert "Use a connection of type Plugz" in message
    assert "\n" not in message
    assert not any(secret in message for secret in (*SECRETS, INSTANCE_ID))


def test_require_conn_type_checked_before_anything_else() -> None:
    conn = make_connection(conn_type="http", login=None, password="a/b", extra={})
    with pytest.raises(PlugzConfigurationError, match="has type 'http'"):
        parse_connection(conn, require_conn_type=True)


@pytest.mark.parametrize(
    ("conn_type", "require"),
    [
        pytest.param("plugz", True, id="plugz-required"),
        pytest.param("plugz", False, id="plugz"),
        pytest.param("http", False, id="http-not-required"),
    ],
)
def test_conn_type_accepted(conn_type: str, require: bool) -> None:
    config = parse_connection(make_connection(conn_type=conn_type), require_conn_type=require)
    assert config.instance_token == INSTANCE_TOKEN


@pytest.mark.parametrize(
    ("instance_id", "redacted"),
    [
        pytest.param("x", False, id="one-letter-id-not-redacted-as-text"),
        pytest.param("abc1234", False, id="seven-characters"),
        pytest.param("abc12345", True, id="eight-characters"),
        pytest.param(INSTANCE_ID, True, id="real-length"),
    ],
)
def test_instance_id_is_a_secret_when_distinctive(instance_id: str, redacted: bool) -> None:
    config = parse_connection(make_connection(login=instance_id))
    assert (instance_id in config.secrets) is redacted
    assert {INSTANCE_TOKEN, CLIENT_TOKEN} <= set(config.secrets)
