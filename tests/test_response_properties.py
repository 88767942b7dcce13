"""Property-based tests of the response parser: any answer in, a PinStatus or a PlugzError out."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from airflow_provider_plugz._protocol import PIN_STATUS, PinStatus, check_response, parse_pin_status
from airflow_provider_plugz.connection import PlugzConfig
from airflow_provider_plugz.exceptions import PlugzError, PlugzMalformedResponseError
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN

CONFIG = PlugzConfig(
    conn_id="plugz_default",
    base_url="https://api.plugzapi.com.br",
    instance_id=INSTANCE_ID,
    instance_token=INSTANCE_TOKEN,
    client_token=CLIENT_TOKEN,
)

statuses = st.integers(min_value=100, max_value=599)
content_types = st.sampled_from(
    ["application/json", "text/html", "text/plain", "", "application/json; charset=utf-8"]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Bodies shaped like the API's, with any value under its keys, secrets sprinkled in.
secrets = st.sampled_from([INSTANCE_TOKEN, CLIENT_TOKEN, f"Client-Token {CLIENT_TOKEN} not allowed"])
api_like = st.fixed_dictionaries(
    {},
    optional={
        "success": json_values,
        "hasCode": json_values,
        "error": json_values | secrets,
        "message": json_values | secrets,
    },
)


def outcome(status: int, content_type: str, body: bytes) -> PinStatus | PlugzError:
    headers = CaseInsensitiveDict({"Content-Type": content_type})
    try:
        return parse_pin_status(CONFIG, check_response(CONFIG, PIN_STATUS, status, headers, body))
    except PlugzError as err:
        return err


def assert_safe(result: PinStatus | PlugzError) -> None:
    assert isinstance(result, (PinStatus, PlugzError))
    if isinstance(result, PlugzError):
        for text in (str(result), repr(result), str(result.server_message)):
            assert INSTANCE_TOKEN not in text
            assert CLIENT_TOKEN not in text


@settings(max_examples=200, deadline=None)
@given(status=statuses, content_type=content_types, body=st.binary(max_size=512))
def test_any_bytes(status: int, content_type: str, body: bytes) -> None:
    assert_safe(outcome(status, content_type, body))


@settings(max_examples=200, deadline=None)
@given(status=statuses, body=json_values)
def test_any_json(status: int, body: Any) -> None:
    assert_safe(outcome(status, "application/json", json.dumps(body).encode()))


@settings(max_examples=200, deadline=None)
@given(status=statuses, body=api_like)
def test_api_shaped_json(status: int, body: dict[str, Any]) -> None:
    result = outcome(status, "application/json", json.dumps(body).encode())
    assert_safe(result)
    # Success only for a 2xx with a real boolean hasCode, no error text and success not false.
    if isinstance(result, PinStatus):
        assert 200 <= status < 300
        assert result.has_code is body["hasCode"]
        assert body.get("error") in (None, False, "")
        assert body.get("success") is not False


@settings(max_examples=200, deadline=None)
@given(has_code=json_values.filter(lambda v: not isinstance(v, bool)))
def test_has_code_must_be_a_real_boolean(has_code: Any) -> None:
    body = json.dumps({"success": True, "hasCode": has_code}).encode()
    assert isinstance(outcome(200, "application/json", body), PlugzMalformedResponseError)
