"""Response checking as one pure table: status, headers and body in, a result or the exact
error class out, with the advice and redaction each message carries. The status mapping is the
table of tests/support/statuses.py, asserted here for every endpoint. No HTTP here: the fault
matrix (test_faults.py) runs the same rules over real connections, through every runner."""

from __future__ import annotations

import json
from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from airflow_provider_plugz._declarations import Endpoint
from airflow_provider_plugz._protocol import PlugzRequest, build_request, read_answer
from airflow_provider_plugz._redaction import WITHHELD
from airflow_provider_plugz.connection import PlugzConfig
from airflow_provider_plugz.endpoints import (
    DEVICE,
    INSTANCE_STATUS,
    PIN_STATUS,
    SEND_TEXT,
    SET_PIN,
    DeviceInfo,
    InstanceStatus,
    PinStatus,
    SentMessage,
)
from airflow_provider_plugz.exceptions import (
    PlugzAPIError,
    PlugzAuthenticationError,
    PlugzBadRequestError,
    PlugzError,
    PlugzInstanceNotSupportedError,
    PlugzMalformedResponseError,
    PlugzMethodNotAllowedError,
    PlugzNotFoundError,
    PlugzQueueFullError,
    PlugzRateLimitedError,
    PlugzRedirectError,
    PlugzRefusedError,
    PlugzServerError,
    PlugzSubscriptionError,
    PlugzUnsupportedMediaTypeError,
)
from airflow_provider_plugz.transports.body import MAX_BODY_BYTES
from tests.conftest import (
    CLIENT_TOKEN,
    INSTANCE_ID,
    INSTANCE_TOKEN,
    SECRETS,
    assert_no_secrets,
    zapi_device_answer,
    zapi_device_examples,
)
from tests.support.statuses import STATUS_TABLE, StatusRow

CONFIG = PlugzConfig(
    conn_id="plugz_default",
    base_url="https://api.plugzapi.com.br",
    instance_id=INSTANCE_ID,
    instance_token=INSTANCE_TOKEN,
    client_token=CLIENT_TOKEN,
)
URL = f"https://api.plugzapi.com.br/instances/{INSTANCE_ID}/token/{INSTANCE_TOKEN}/security/two-fa-code"
REQUEST = PlugzRequest(endpoint=PIN_STATUS, url=URL, headers={})


def answer(
    status: int, body: Any = None, headers: dict[str, str] | None = None, request: PlugzRequest = REQUEST
) -> Any:
    """What the hook does with a transport's answer to ``request``, without the transport."""
    all_headers = CaseInsensitiveDict(headers or {})
    if isinstance(body, (dict, list)):
        raw = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        raw = body.encode()
        all_headers.setdefault("Content-Type", "text/html")
    else:
        raw = body or b""
    return read_answer(CONFIG, request, (status, all_headers, raw, None))


def assert_no_secret(text: str) -> None:
    assert_no_secrets(text, secrets=(*SECRETS, INSTANCE_ID, URL))


BODY_CASES = [
    pytest.param(b"", "empty", id="empty"),
    pytest.param(b"   ", "empty", id="blank"),
    pytest.param(b"<!DOCTYPE html><html>login</html>", "HTML", id="html"),
    pytest.param(b'{"success": true, "hasCo', "not valid JSON", id="truncated-json"),
    pytest.param(b"not json at all", "not valid JSON", id="text"),
    pytest.param(b"[true]", "not an object", id="array"),
    pytest.param(b'"true"', "not an object", id="string"),
    pytest.param(b"null", "not an object", id="null"),
    pytest.param(b'{"success": true}', "no 'hasCode'", id="missing-hasCode"),
    pytest.param(b'{"success": true, "hasCode": "true"}', "not a boolean", id="string-hasCode"),
    pytest.param(b'{"success": true, "hasCode": 1}', "not a boolean", id="int-hasCode"),
    pytest.param(b'{"success": true, "hasCode": null}', "not a boolean", id="null-hasCode"),
    pytest.param(
        b'{"success": "false", "hasCode": true}', "'success' is string, not a boolean", id="success-text"
    ),
    pytest.param(b'{"success": 0, "message": "no"}', "'success' is number, not a boolean", id="success-zero"),
    pytest.param(
        b'{"success": null, "hasCode": true}', "'success' is null, not a boolean", id="success-null"
    ),
    pytest.param(b"\xff\xfe\x00garbage", "not valid JSON", id="binary"),
    pytest.param(b"[" * 100_000, "not valid JSON", id="deeply-nested"),
]


@pytest.mark.parametrize(
    ("body", "echoed"),
    [
        pytest.param({"error": f"Client-Token {CLIENT_TOKEN} not allowed"}, CLIENT_TOKEN, id="ours"),
        pytest.param(
            {"error": "Client-Token SOMEOTHERTOKEN123 not allowed"}, "SOMEOTHERTOKEN123", id="another"
        ),
    ],
)
def test_an_echoed_client_token_is_redacted(body: dict[str, str], echoed: str) -> None:
    with pytest.raises(PlugzAuthenticationError) as info:
        answer(403, body)
    assert info.value.server_message == "Client-Token *** not allowed"
    assert echoed not in str(info.value)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"Retry-After": "7"}, 7.0, id="seconds"),
        pytest.param({}, None, id="absent"),
        pytest.param({"Retry-After": "soon"}, None, id="garbage"),
        pytest.param({"Retry-After": "\u00b2"}, None, id="superscript-two"),
    ],
)
def test_rate_limit_retry_after(headers: dict[str, str], expected: float | None) -> None:
    with pytest.raises(PlugzRateLimitedError) as info:
        answer(429, None, headers)
    assert info.value.retry_after == expected


@pytest.mark.parametrize(("body", "fragment"), BODY_CASES)
def test_malformed_bodies(body: bytes, fragment: str) -> None:
    with pytest.raises(PlugzMalformedResponseError) as info:
        answer(200, body)
    assert fragment in str(info.value)
    assert str(info.value).endswith(PlugzMalformedResponseError.advice)
    assert_no_secret(str(info.value))


@pytest.mark.parametrize(
    ("body", "has_code"),
    [
        pytest.param({"success": True, "hasCode": True}, True, id="pin"),
        pytest.param({"hasCode": False}, False, id="no-success-key"),
        pytest.param(
            {"success": True, "hasCode": False, "message": "ok", "error": None}, False, id="null-error"
        ),
    ],
)
def test_successes(body: dict[str, Any], has_code: bool) -> None:
    assert answer(200, body) == PinStatus(has_code=has_code)


def test_oversized_body() -> None:
    body = json.dumps({"success": True, "hasCode": True, "pad": "x" * MAX_BODY_BYTES}).encode()
    with pytest.raises(PlugzMalformedResponseError, match="larger than 1048576 bytes"):
        answer(200, body)


# --- the new endpoints: status, device, send-text -------------------------------------------------

PHONE = "5511987654321"
TEXT = "Disk 93% full on db-7; page Marina"
PLUGZ_DEVICE = {
    "wa_version": "2.21.10.16",
    "mcc": "724",
    "mnc": "039",
    "os_version": "7.1.2",
    "device_manufacturer": "samsung",
    "device_model": "SM-N975F",
    "osbuildnumber": "samsung-user 7.1.2 20171130.276299 release-keys",
    "platform": "smba",
}
ZAPI_DEVICE = zapi_device_answer(PHONE)
STATUS_REQUEST = build_request(CONFIG, INSTANCE_STATUS)
DEVICE_REQUEST = build_request(CONFIG, DEVICE)
SEND_REQUEST = build_request(CONFIG, SEND_TEXT, PHONE, TEXT)
NEW_REQUESTS = {"status": STATUS_REQUEST, "device": DEVICE_REQUEST, "send-text": SEND_REQUEST}


def assert_private(text: str) -> None:
    """No secret, and neither the recipient nor the text of a message."""
    assert_no_secret(text)
    assert_no_secrets(text, secrets=(PHONE, TEXT))


@pytest.mark.parametrize(
    ("body", "expected", "state"),
    [
        pytest.param(
            {"connected": True, "session": True, "smartphoneConnected": True},
            InstanceStatus(connected=True, session=True, smartphone_connected=True),
            "connected",
            id="connected",
        ),
        pytest.param(
            {"connected": True, "smartphoneConnected": True},
            InstanceStatus(connected=True, session=None, smartphone_connected=True),
            "connected",
            id="no-session-field-z-api",
        ),
        pytest.param(
            {"connected": True, "session": None, "smartphoneConnected": False},
            InstanceStatus(connected=True, session=None, smartphone_connected=False),
            "phone_offline",
            id="phone-offline-null-session",
        ),
        pytest.param(
            {"connected": True, "session": False, "smartphoneConnected": True},
            InstanceStatus(connected=True, session=False, smartphone_connected=True),
            "session_lost",
            id="connected-without-session",
        ),
        pytest.param(
            {
                "connected": False,
                "session": False,
                "smartphoneConnected": True,
                "error": "You need to restore the session.",
            },
            InstanceStatus(False, False, True, error="You need to restore the session."),
            "session_lost",
            id="200-error-is-state-session-lost",
        ),
        pytest.param(
            {"connected": False, "smartphoneConnected": False, "error": "You are not connected."},
            InstanceStatus(False, None, False, error="You are not connected."),
            "disconnected",
            id="200-error-is-state-disconnected",
        ),
    ],
)
def test_instance_status_successes(body: dict[str, Any], expected: InstanceStatus, state: str) -> None:
    result = answer(200, body, request=STATUS_REQUEST)
    assert result == expected
    assert result.state == state


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {
                "phone": " 5511987654321 ",
                "imgUrl": "https://pps.whatsapp.net/x.jpg",
                "device": {
                    "wa_version": "2.24.1",
                    "platform": "android",
                    "os_version": "14",
                    "osbuildnumber": "UP1A",
                    "device_manufacturer": "samsung",
                    "device_model": "SM-S911B",
                    "mcc": "724",
                    "mnc": "05",
                },
            },
            DeviceInfo(
                phone=PHONE,
                img_url="https://pps.whatsapp.net/x.jpg",
                wa_version="2.24.1",
                platform="android",
                os_version="14",
                os_build_number="UP1A",
                manufacturer="samsung",
                model="SM-S911B",
                mcc="724",
                mnc="05",
            ),
            id="full",
        ),
        pytest.param({"phone": PHONE}, DeviceInfo(phone=PHONE), id="phone-only"),
        pytest.param({"phone": PHONE, "device": None, "imgUrl": None}, DeviceInfo(phone=PHONE), id="nulls"),
        pytest.param(
            {"phone": "+55 (11) 98765-4321"}, DeviceInfo(phone="+55 (11) 98765-4321"), id="phone-as-written"
        ),
        # Plugz's page, verbatim: a number not paired yet has an empty phone.
        pytest.param(
            {"phone": "", "imgUrl": None, "device": PLUGZ_DEVICE},
            DeviceInfo(
                phone=None,
                wa_version="2.21.10.16",
                platform="smba",
                os_version="7.1.2",
                # Server text: its 17-digit run reads as a phone number, masked as any would be.
                os_build_number="samsung-user *** release-keys",
                manufacturer="samsung",
                model="SM-N975F",
                mcc="724",
                mnc="039",
            ),
            id="plugz-docs-example-empty-phone",
        ),
        *zapi_device_examples(PHONE),  # Z-API's pages, verbatim
        pytest.param(
            {"phone": None, "device": {"device_model": "Z-API"}, "sessionId": 0},
            DeviceInfo(phone=None, session_id=0),
            id="z-api-layout-without-session-name",
        ),
        pytest.param(
            {"phone": "  ", "device": {"device_model": "Z-API"}, "isBusiness": None},
            DeviceInfo(phone=None),
            id="z-api-layout-by-is-business-blank-phone",
        ),
        pytest.param(
            {"phone": PHONE, "originalDevice": "iphone", "device": {"platform": "smbi", "device_model": "x"}},
            DeviceInfo(phone=PHONE, platform="smbi"),
            id="mixed-layout-keeps-plugz-platform-drops-model",
        ),
        pytest.param(
            {"phone": PHONE, "name": f"on call {CLIENT_TOKEN}", "device": {"wa_version": INSTANCE_TOKEN}},
            DeviceInfo(phone=PHONE, wa_version=WITHHELD, name=WITHHELD),
            id="echoed-secrets-withheld",
        ),
    ],
)
def test_device_successes(body: dict[str, Any], expected: DeviceInfo) -> None:
    result = answer(200, body, request=DEVICE_REQUEST)
    assert result == expected
    assert result.masked_phone == (None if expected.phone is None else "***4321")
    assert result.model != "Z-API"  # the session software is never reported as the phone's model
    assert PHONE not in repr(result)
    assert_no_secret(repr(result))


def test_device_repr_keeps_personal_data_out() -> None:
    """The profile's name, status text and picture never show; nor does a number in another field."""
    other = "5521912345678"
    device = DeviceInfo(
        phone=PHONE,
        img_url=f"https://pps.whatsapp.net/v/{PHONE}.jpg",
        name="Marina",
        about=f"call me at {other}",
        os_build_number=f"build {other}",
        session_name="Z-API",
        session_id=175,
    )
    shown = repr(device)
    for private in (PHONE, other, "Marina", "call me", "pps.whatsapp.net"):
        assert private not in shown
    assert shown.startswith("DeviceInfo(phone='***4321', ")
    assert "os_build_number='build ***'" in shown
    assert "session_name='Z-API', session_id=175" in shown
    assert "phone=None" in repr(DeviceInfo(phone=None))
    assert DeviceInfo(phone=None).masked_phone is None


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            {"zaapId": "3999984263738042930CD6ECDE9VDWSA", "messageId": "D241XXXX732339502B68"}, id="ids"
        ),
        pytest.param({"zaapId": "z1", "messageId": "m1", "id": "m1", "extra": [1]}, id="extra-fields"),
    ],
)
def test_send_text_successes(body: dict[str, Any]) -> None:
    assert answer(200, body, request=SEND_REQUEST) == SentMessage(
        zaap_id=body["zaapId"], message_id=body["messageId"]
    )


NEW_MALFORMED = [
    pytest.param(
        "status", {"session": True, "smartphoneConnected": True}, "no 'connected'", id="status-no-connected"
    ),
    pytest.param(
        "status",
        {"connected": "true", "smartphoneConnected": True},
        "'connected' is not a boolean",
        id="status-connected-string",
    ),
    pytest.param("status", {"connected": True}, "no 'smartphoneConnected'", id="status-no-smartphone"),
    pytest.param(
        "status",
        {"connected": True, "session": "yes", "smartphoneConnected": True},
        "'session' is not a boolean",
        id="status-session-string",
    ),
    pytest.param(
        "status",
        {"connected": 1, "smartphoneConnected": 1},
        "'connected' is not a boolean",
        id="status-ints",
    ),
    pytest.param("status", [True], "not an object", id="status-array"),
    pytest.param("device", {"imgUrl": None}, "it has no 'phone' field", id="device-no-phone"),
    pytest.param("device", {"phone": 5511987654321}, "'phone' is not a text", id="device-phone-number"),
    pytest.param("device", {"phone": [PHONE]}, "'phone' is not a text", id="device-phone-list"),
    pytest.param("device", {"phone": False}, "'phone' is not a text", id="device-phone-false"),
    pytest.param("device", {"phone": "n/a"}, "'phone' is not a phone number", id="device-phone-words"),
    pytest.param("device", {"phone": "5" * 40}, "'phone' is not a phone number", id="device-phone-too-long"),
    pytest.param(
        "device", {"phone": f"{PHONE}\n{PHONE}"}, "'phone' is not a phone number", id="device-phone-two-lines"
    ),
    pytest.param("device", {"phone": PHONE, "device": ["x"]}, "'device' is not an object", id="device-list"),
    pytest.param(
        "device", {"phone": PHONE, "device": "Z-API"}, "'device' is not an object", id="device-text"
    ),
    pytest.param(
        "device",
        {"phone": PHONE, "device": {"device_model": 8}},
        "'device.device_model' is not a text",
        id="device-model-number",
    ),
    pytest.param(
        "device",
        {"phone": PHONE, "device": {"mcc": 724}},
        "'device.mcc' is not a text",
        id="device-mcc-number",
    ),
    pytest.param(
        "device",
        {"phone": PHONE, "device": {"sessionName": {"n": 1}}},
        "'device.sessionName' is not a text",
        id="device-session-name-object",
    ),
    pytest.param("device", {"phone": PHONE, "name": 7}, "'name' is not a text", id="device-name-number"),
    pytest.param("device", {"phone": PHONE, "about": True}, "'about' is not a text", id="device-about-true"),
    pytest.param("device", {"phone": PHONE, "imgUrl": {}}, "'imgUrl' is not a text", id="device-img-object"),
    pytest.param(
        "device",
        {"phone": PHONE, "originalDevice": 1},
        "'originalDevice' is not a text",
        id="device-original-1",
    ),
    pytest.param(
        "device",
        {**ZAPI_DEVICE, "isBusiness": "false"},
        "'isBusiness' is not a boolean",
        id="device-business-text",
    ),
    pytest.param(
        "device", {**ZAPI_DEVICE, "isBusiness": 0}, "'isBusiness' is not a boolean", id="device-business-zero"
    ),
    *(
        pytest.param(
            "device", {**ZAPI_DEVICE, "sessionId": value}, "'sessionId' is not a whole number", id=name
        )
        for name, value in (
            ("device-session-id-text", "175"),
            ("device-session-id-true", True),
            ("device-session-id-fraction", 1.5),
            ("device-session-id-float", 175.0),
            ("device-session-id-negative", -1),
            ("device-session-id-huge", 10**30),
            ("device-session-id-list", [175]),
        )
    ),
    pytest.param("send-text", {"messageId": "m1"}, "no 'zaapId' text", id="send-no-zaap-id"),
    pytest.param(
        "send-text", {"zaapId": "", "messageId": ""}, "no 'zaapId' or 'messageId'", id="send-empty-ids"
    ),
    pytest.param("send-text", {"zaapId": 7, "messageId": "m"}, "no 'zaapId' text", id="send-int-id"),
    pytest.param(
        "send-text", {"phone": PHONE, "message": TEXT}, "no 'zaapId' or 'messageId'", id="send-echo-only"
    ),
    pytest.param("send-text", b"", "empty", id="send-empty-body"),
    pytest.param("send-text", b'{"zaapId": "z1", "messa', "not valid JSON", id="send-truncated"),
]


@pytest.mark.parametrize(("endpoint", "body", "fragment"), NEW_MALFORMED)
def test_new_endpoint_malformed_bodies(endpoint: str, body: Any, fragment: str) -> None:
    with pytest.raises(PlugzMalformedResponseError) as info:
        answer(200, body, request=NEW_REQUESTS[endpoint])
    assert type(info.value) is PlugzMalformedResponseError
    assert fragment in str(info.value)
    assert NEW_REQUESTS[endpoint].endpoint.action in str(info.value)
    assert str(info.value).endswith(PlugzMalformedResponseError.advice)
    assert_private(str(info.value))
    assert_private(repr(info.value))


# --- the status mapping (tests/support/statuses.py), for every endpoint -----------------------

ENDPOINT_REQUESTS = {"pin": REQUEST, **NEW_REQUESTS}


@pytest.mark.parametrize("endpoint", list(ENDPOINT_REQUESTS))
@pytest.mark.parametrize("row", STATUS_TABLE)
def test_error_statuses(row: StatusRow, endpoint: str) -> None:
    request = ENDPOINT_REQUESTS[endpoint]
    location = (
        {"Location": f"https://elsewhere.example/{INSTANCE_TOKEN}"} if 300 <= row.status < 400 else None
    )
    with pytest.raises(row.error) as info:
        answer(row.status, row.body, location, request=request)
    assert type(info.value) is row.error
    message = str(info.value)
    assert f"HTTP {row.status}" in message
    for fragment in row.says:
        assert fragment.format(method=request.endpoint.method) in message
    assert "'plugz_default'" in message
    assert message.endswith(row.error.advice)  # every message ends with its class's advice
    assert info.value.http_status == row.status
    for text in (message, repr(info.value), str(info.value.server_message)):
        assert_no_secrets(text, secrets=(*SECRETS, INSTANCE_ID, request.url, *row.hidden))
        assert_private(text)


def test_the_status_table_covers_every_class_a_status_maps_to() -> None:
    rows = [param.values[0] for param in STATUS_TABLE]
    assert {row.error for row in rows} == {
        PlugzAuthenticationError,
        PlugzBadRequestError,
        PlugzInstanceNotSupportedError,
        PlugzMethodNotAllowedError,
        PlugzNotFoundError,
        PlugzRateLimitedError,
        PlugzRedirectError,
        PlugzServerError,
        PlugzSubscriptionError,
        PlugzUnsupportedMediaTypeError,
    }
    assert {row.status // 100 for row in rows} == {2, 3, 4, 5}


NEW_FAILURES = [
    # What only some endpoints' answers hold (the status mapping itself: STATUS_TABLE above).
    # A 200 with an error text and no boolean 'connected' is a failure, as on any endpoint.
    pytest.param(
        "status",
        200,
        {"connected": "false", "error": "You are not connected."},
        PlugzBadRequestError,
        "You are not connected.",
        id="status-200-error-connected-not-bool",
    ),
    pytest.param(
        "send-text",
        400,
        {"error": f"phone {PHONE} is not on WhatsApp"},
        PlugzBadRequestError,
        "phone *** is not on WhatsApp",
        id="send-400-echoes-phone",
    ),
    pytest.param(
        "send-text",
        400,
        {"error": f"message '{TEXT}' refused"},
        PlugzBadRequestError,
        f"HTTP 400: {WITHHELD}.",
        id="send-400-echoes-text",
    ),
    pytest.param(
        "send-text",
        500,
        {"error": f"could not deliver {TEXT} to {PHONE}"},
        PlugzServerError,
        f"HTTP 500: {WITHHELD}.",
        id="send-500-echoes-both",
    ),
    pytest.param(
        "send-text",
        200,
        {"error": f"unknown recipient {PHONE}"},
        PlugzBadRequestError,
        "unknown recipient ***",
        id="send-200-error-echoes-phone",
    ),
    pytest.param(
        "send-text",
        200,
        # "full" is a word of the message too: withheld, though the class still comes from the words.
        {"error": f"queue full for {PHONE}"},
        PlugzQueueFullError,
        WITHHELD,
        id="send-200-error-echoes-phone-and-a-word-of-the-text",
    ),
    pytest.param(
        "send-text",
        400,
        {"error": "The message queue is full"},
        PlugzQueueFullError,
        "reconnect",
        id="send-400-queue-full",
    ),
    pytest.param(
        "send-text",
        400,
        {"error": "fully booked queue"},
        PlugzBadRequestError,
        "fully booked",
        id="send-400-full-but-not-queue-full",
    ),
    pytest.param(
        "send-text",
        200,
        {"connected": False, "error": "You are not connected."},
        PlugzBadRequestError,
        "You are not connected.",
        id="send-200-connected-false-is-a-failure",
    ),
]


@pytest.mark.parametrize(("endpoint", "status", "body", "error_class", "fragment"), NEW_FAILURES)
def test_new_endpoint_failures(
    endpoint: str, status: int, body: Any, error_class: type[PlugzError], fragment: str
) -> None:
    with pytest.raises(error_class) as info:
        answer(status, body, request=NEW_REQUESTS[endpoint])
    assert type(info.value) is error_class
    message = str(info.value)
    assert f"HTTP {status}" in message
    assert fragment in message
    assert "'plugz_default'" in message
    assert message.endswith(error_class.advice)
    assert info.value.http_status == status
    for text in (message, repr(info.value), str(info.value.server_message)):
        assert_private(text)


# --- success: false, the API's documented refusal (every endpoint) -----------------------------

NEW_PIN = "731946"
REFUSAL_REQUESTS = {
    "pin": REQUEST,
    "set-pin": build_request(CONFIG, SET_PIN, NEW_PIN),
    **NEW_REQUESTS,
}
NO_REASON = "HTTP 200, success: false (the API gave no reason)"

REFUSALS = [
    pytest.param("pin", 200, {"success": False}, PlugzRefusedError, NO_REASON, id="pin-bare"),
    pytest.param(
        "pin", 200, {"success": False, "hasCode": True}, PlugzRefusedError, NO_REASON, id="pin-with-has-code"
    ),
    pytest.param(
        "pin",
        200,
        {"success": False, "message": "Não foi possível consultar o PIN"},
        PlugzRefusedError,
        "HTTP 200, success: false: Não foi possível consultar o PIN.",
        id="pin-with-message",
    ),
    pytest.param(
        "pin",
        201,
        {"success": False, "message": "busy"},
        PlugzRefusedError,
        "HTTP 201, success",
        id="pin-201",
    ),
    pytest.param(
        "pin",
        200,
        {"success": False, "message": "", "error": None},
        PlugzRefusedError,
        NO_REASON,
        id="pin-empty-message-null-error",
    ),
    pytest.param("set-pin", 200, {"success": False}, PlugzRefusedError, NO_REASON, id="set-pin-bare"),
    pytest.param(
        "set-pin",
        200,
        {"success": False, "message": f"PIN {NEW_PIN} was not accepted for {PHONE}"},
        PlugzRefusedError,
        f"success: false: {WITHHELD}.",
        id="set-pin-echoes-pin-and-phone",
    ),
    pytest.param(
        "set-pin",
        200,
        {"success": False, "message": f"Client-Token {CLIENT_TOKEN} lacks rights on /instances/x/token/y/z"},
        PlugzAuthenticationError,
        f"success: false: {WITHHELD}.",
        id="set-pin-echoes-token-and-url",
    ),
    pytest.param(
        "set-pin",
        200,
        {"success": False, "message": f"{INSTANCE_TOKEN[2:20]} refused"},
        PlugzRefusedError,
        f"success: false: {WITHHELD}.",
        id="set-pin-echoes-part-of-the-instance-token",
    ),
    pytest.param(
        "pin",
        200,
        {"success": False, "message": "This feature is only available for mobile instances"},
        PlugzInstanceNotSupportedError,
        "success: false: This feature is only available for mobile instances",
        id="pin-message-web-instance",
    ),
    pytest.param(
        "set-pin",
        200,
        {
            "success": False,
            "message": "To continue sending a message, you must subscribe to this instance again",
        },
        PlugzSubscriptionError,
        "Renew",
        id="set-pin-message-expired",
    ),
    pytest.param(
        "pin",
        200,
        {"success": False, "message": "Instance not found"},
        PlugzNotFoundError,
        "success: false: Instance not found",
        id="pin-message-not-found",
    ),
    # An ``error`` key still wins: its text is classified as on any 200 with an error.
    pytest.param(
        "pin",
        200,
        {"success": False, "error": "null not allowed"},
        PlugzAuthenticationError,
        "HTTP 200: null not allowed",
        id="pin-error-key-wins",
    ),
    pytest.param(
        "set-pin",
        200,
        {"success": False, "error": "something odd", "message": "more"},
        PlugzBadRequestError,
        "HTTP 200: something odd: more",
        id="set-pin-error-and-message",
    ),
    pytest.param(
        "pin",
        200,
        {"success": False, "message": {"reason": CLIENT_TOKEN}},
        PlugzRefusedError,
        "success: false: (a JSON object)",
        id="pin-message-an-object",
    ),
    pytest.param(
        "pin",
        200,
        {"success": False, "message": "line one\nline two \x1b[31mred\x00"},
        PlugzRefusedError,
        "success: false: line one line two ?[31mred?.",
        id="pin-message-control-characters",
    ),
    pytest.param(
        "pin",
        200,
        {"success": False, "message": "x" * 100_000},
        PlugzRefusedError,
        "xxx...",
        id="pin-huge-message",
    ),
    # Any endpoint: success: false is never a success, and a /status answer's state does not hide it.
    pytest.param(
        "status",
        200,
        {
            "connected": False,
            "smartphoneConnected": False,
            "error": "You are not connected.",
            "success": False,
        },
        PlugzRefusedError,
        "success: false: You are not connected.",
        id="status-state-with-success-false",
    ),
    pytest.param(
        "status",
        200,
        {"connected": True, "smartphoneConnected": True, "success": False},
        PlugzRefusedError,
        NO_REASON,
        id="status-connected-but-success-false",
    ),
    pytest.param(
        "device",
        200,
        {"phone": PHONE, "success": False},
        PlugzRefusedError,
        NO_REASON,
        id="device-success-false",
    ),
    pytest.param(
        "send-text",
        200,
        {"zaapId": "z1", "messageId": "m1", "success": False, "message": f"'{TEXT}' to {PHONE} not queued"},
        PlugzRefusedError,
        f"success: false: {WITHHELD}.",
        id="send-success-false-echoes-text-and-phone",
    ),
]


@pytest.mark.parametrize(("endpoint", "status", "body", "error_class", "fragment"), REFUSALS)
def test_success_false_is_a_refusal(
    endpoint: str, status: int, body: Any, error_class: type[PlugzError], fragment: str
) -> None:
    request = REFUSAL_REQUESTS[endpoint]
    with pytest.raises(error_class) as info:
        answer(status, body, request=request)
    err = info.value
    assert type(err) is error_class
    assert isinstance(err, PlugzAPIError)  # the server said no: permanent, never retried
    message = str(err)
    assert f"Plugz {request.endpoint.action} failed for connection 'plugz_default': HTTP {status}" in message
    assert fragment in message
    assert message.endswith(error_class.advice)
    assert message.isprintable()
    assert err.http_status == status
    assert len(err.server_message or "") <= 303  # a bounded line, "..." when cut
    for text in (message, repr(err), str(err.server_message)):
        assert_private(text)
        assert NEW_PIN not in text


# --- issue 22, point 2: a server text that repeats what we sent is withheld whole ------------------

ALERT = "*ALERTA*\nPaciente:\nJoao S.\nHIV+\nLeito 12"
ALERT_REQUEST = build_request(CONFIG, SEND_TEXT, PHONE, ALERT)
# Every line of the alert, and every run of it across lines, that an echo could leave behind.
ALERT_PIECES = ("ALERTA", "Paciente", "Joao", "HIV", "Leito 12", "S. HIV", "Joao S.")


def assert_nothing_of_the_alert(text: str) -> None:
    folded = text.casefold()
    for piece in ALERT_PIECES:
        assert piece.casefold() not in folded
    assert_private(text)


@pytest.mark.parametrize(
    ("status", "body", "error_class", "said"),
    [
        pytest.param(
            400,
            {"error": f"Invalid message: {ALERT}"},
            PlugzBadRequestError,
            "HTTP 400: ",
            id="issue-example",
        ),
        pytest.param(
            400,
            {"error": "Invalid message: " + ALERT.replace("\n", "\\n")},
            PlugzBadRequestError,
            "HTTP 400: ",
            id="breaks-written-as-backslash-n",
        ),
        pytest.param(
            400,
            {"error": "Invalid message: " + ALERT.upper().replace("\n", "\r\n  ")},
            PlugzBadRequestError,
            "HTTP 400: ",
            id="re-cased-and-re-spaced",
        ),
        pytest.param(
            400, {"error": "bad word: HIV+"}, PlugzBadRequestError, "HTTP 400: ", id="a-short-line-alone"
        ),
        pytest.param(
            400,
            {"error": "rejected", "message": "Joao S."},
            PlugzBadRequestError,
            "HTTP 400: ",
            id="in-message",
        ),
        pytest.param(500, {"error": f"could not deliver {ALERT}"}, PlugzServerError, "HTTP 500: ", id="500"),
        pytest.param(200, {"error": f"{ALERT} not sent"}, PlugzBadRequestError, "HTTP 200: ", id="200-error"),
        pytest.param(
            200,
            {"success": False, "message": f"'{ALERT}' not queued"},
            PlugzRefusedError,
            "HTTP 200, success: false: ",
            id="200-success-false",
        ),
        pytest.param(
            400,
            {"error": f"The message queue is full: {ALERT}"},
            PlugzQueueFullError,
            "HTTP 400: ",
            id="classified-all-the-same",
        ),
    ],
)
def test_a_server_text_that_repeats_the_message_is_withheld(
    status: int, body: dict[str, Any], error_class: type[PlugzError], said: str
) -> None:
    with pytest.raises(error_class) as info:
        answer(status, body, request=ALERT_REQUEST)
    err = info.value
    assert type(err) is error_class
    assert err.server_message == WITHHELD
    assert f"{said}{WITHHELD}. {error_class.advice}" in str(err)
    for text in (str(err), repr(err), str(err.server_message)):
        assert_nothing_of_the_alert(text)


@pytest.mark.parametrize(
    ("status", "body", "shown"),
    [
        pytest.param(
            400, {"error": f"phone {PHONE} is not on WhatsApp"}, "phone *** is not on WhatsApp", id="phone"
        ),
        pytest.param(
            403,
            {"error": f"Client-Token {CLIENT_TOKEN} not allowed"},
            "Client-Token *** not allowed",
            id="token",
        ),
        pytest.param(
            400, {"error": "Invalid message: too long"}, "Invalid message: too long", id="unrelated"
        ),
    ],
)
def test_a_server_text_that_repeats_nothing_of_the_message_is_shown(
    status: int, body: dict[str, Any], shown: str
) -> None:
    """Phone numbers and echoed tokens are removed whole wherever they are: the rest stays useful."""
    with pytest.raises(PlugzError) as info:
        answer(status, body, request=ALERT_REQUEST)
    assert info.value.server_message == shown
    assert_nothing_of_the_alert(str(info.value))


@pytest.mark.parametrize(
    ("endpoint", "body", "field"),
    [
        pytest.param(
            "status",
            {
                "connected": False,
                "smartphoneConnected": False,
                "error": f"token {INSTANCE_TOKEN[:6]}\n{INSTANCE_TOKEN[6:12]} expired",
            },
            "error",
            id="status-error-splits-a-token-across-lines",
        ),
        pytest.param(
            "device",
            {"phone": PHONE, "name": f"on call\n{CLIENT_TOKEN[:5]}\n{CLIENT_TOKEN[5:10]}"},
            "name",
            id="device-name",
        ),
    ],
)
def test_a_successful_answers_text_that_repeats_what_was_sent_is_withheld(
    endpoint: str, body: dict[str, Any], field: str
) -> None:
    result = answer(200, body, request=NEW_REQUESTS[endpoint])
    assert getattr(result, field) == WITHHELD
    assert_no_secret(repr(result))


def test_an_os_reason_never_holds_the_requests_values() -> None:
    from airflow_provider_plugz.transports.failures import TransportFailure, transport_error

    request = build_request(CONFIG, SET_PIN, NEW_PIN)
    err = transport_error(
        CONFIG, request, TransportFailure.NETWORK, OSError(f"[Errno 5] code {NEW_PIN} lost")
    )
    assert "[Errno 5] code *** lost" in str(err)
    assert NEW_PIN not in str(err)


# --- issue 22, point 3: classified on what the server said, whatever we sent -----------------------


def _config_with_client_token(client_token: str) -> PlugzConfig:
    return PlugzConfig(
        conn_id="plugz_default",
        base_url="https://api.plugzapi.com.br",
        instance_id=INSTANCE_ID,
        instance_token=INSTANCE_TOKEN,
        client_token=client_token,
    )


# (the server's text, the class it calls for, a message that holds its classifying words)
TEXT_CLASSES = [
    pytest.param(
        "Instance not found", PlugzNotFoundError, "Check the instance status page", id="instance-not-found"
    ),
    pytest.param(
        "To continue sending a message, you must subscribe to this instance again",
        PlugzSubscriptionError,
        "Please subscribe to the on-call list",
        id="subscribe",
    ),
    pytest.param(
        "The message queue is full", PlugzQueueFullError, "Disk queue is full again", id="queue-full"
    ),
    pytest.param(
        "This feature is only available for mobile instances",
        PlugzInstanceNotSupportedError,
        "Mobile instances down",
        id="mobile",
    ),
    pytest.param(
        "your client-token is not configured",
        PlugzAuthenticationError,
        "rotate the client-token today",
        id="client-token",
    ),
    pytest.param("null not allowed", PlugzAuthenticationError, "Login not allowed for bob", id="not-allowed"),
    pytest.param(
        "Unable to find matching target resource method",
        PlugzNotFoundError,
        "no matching target resource for NOT_FOUND",
        id="not-found-body",
    ),
]


@pytest.mark.parametrize(("server_text", "error_class", "message"), TEXT_CLASSES)
@pytest.mark.parametrize(
    ("status", "key"),
    [
        pytest.param(400, "error", id="400"),
        pytest.param(200, "error", id="200-error"),
        pytest.param(200, "message", id="200-success-false"),
    ],
)
def test_errors_are_classified_on_what_the_server_said(
    server_text: str, error_class: type[PlugzError], message: str, status: int, key: str
) -> None:
    """A message (private) holding the classifying words neither hides the server's words from
    the classifier (it used to redact "instance" out of "Instance not found") nor, quoted back
    verbatim, classifies the answer itself."""
    request = build_request(CONFIG, SEND_TEXT, PHONE, f"{message} {server_text}")
    body: dict[str, Any] = {key: server_text} if key == "error" else {"success": False, key: server_text}
    with pytest.raises(error_class) as info:
        answer(status, body, request=request)
    assert type(info.value) is error_class
    assert info.value.server_message == server_text  # a documented text says nothing of ours
    assert str(info.value).endswith(error_class.advice)

    # The message quoted back alone: the server's words are only "Invalid message".
    quoted = {key: f"Invalid message: {message} {server_text}"}
    if key == "message":
        quoted["success"] = False  # type: ignore[assignment]
    expected = PlugzRefusedError if key == "message" else PlugzBadRequestError
    with pytest.raises(expected) as info:
        answer(status, quoted, request=request)
    assert type(info.value) is expected
    assert info.value.server_message == WITHHELD


@pytest.mark.parametrize(
    ("client_token", "server_text", "error_class"),
    [
        pytest.param(
            "INSTANCE0000000000000000000001", "Instance not found", PlugzNotFoundError, id="instance"
        ),
        pytest.param(
            "SUBSCRIBE000000000000000000001",
            "you must subscribe again",
            PlugzSubscriptionError,
            id="subscribe",
        ),
        pytest.param(
            "MOBILE-ONLY0000000000000000001",
            "This feature is mobile-only",
            PlugzInstanceNotSupportedError,
            id="mobile",
        ),
    ],
)
def test_a_secret_holding_the_classifying_words_does_not_change_the_class(
    client_token: str, server_text: str, error_class: type[PlugzError]
) -> None:
    config = _config_with_client_token(client_token)
    with pytest.raises(error_class) as info:
        read_answer(
            config, REQUEST, (400, CaseInsensitiveDict(), json.dumps({"error": server_text}).encode(), None)
        )
    assert type(info.value) is error_class
    assert client_token not in str(info.value)


# --- answers that are a bare JSON array (Endpoint.array_key) --------------------------------------

LISTING = Endpoint("GET", "things", "thing listing", lambda a: a.payload, array_key="things")


@pytest.mark.parametrize(
    ("endpoint", "body", "expected"),
    [
        pytest.param(
            LISTING, [{"a": 1}, {"a": 2}], {"things": [{"a": 1}, {"a": 2}]}, id="array-read-under-its-key"
        ),
        pytest.param(LISTING, [], {"things": []}, id="empty-array"),
        pytest.param(LISTING, {"things": [1]}, {"things": [1]}, id="an-object-still-works"),
        pytest.param(PIN_STATUS, [{"hasCode": True}], PlugzMalformedResponseError, id="no-array-key-refuses"),
        pytest.param(LISTING, b"42", PlugzMalformedResponseError, id="a-number-is-neither"),
    ],
)
def test_an_endpoint_with_an_array_key_reads_a_bare_array(endpoint: Any, body: Any, expected: Any) -> None:
    request = PlugzRequest(endpoint=endpoint, url=URL, headers={})
    if isinstance(expected, type):
        said = "neither an object nor an array" if endpoint.array_key else "the JSON is not an object"
        with pytest.raises(expected, match=said):
            answer(200, body, request=request)
    else:
        assert answer(200, body, request=request) == expected


@pytest.mark.parametrize(
    ("max_body", "size", "refused"),
    [
        pytest.param(MAX_BODY_BYTES, MAX_BODY_BYTES - 100, False, id="default-under"),
        pytest.param(MAX_BODY_BYTES, MAX_BODY_BYTES + 10, True, id="default-over"),
        pytest.param(4 * MAX_BODY_BYTES, 3 * MAX_BODY_BYTES, False, id="an-endpoints-own-limit"),
        pytest.param(4 * MAX_BODY_BYTES, 4 * MAX_BODY_BYTES + 10, True, id="over-its-own-limit"),
    ],
)
def test_an_endpoint_may_read_larger_answers(max_body: int, size: int, refused: bool) -> None:
    endpoint = Endpoint(
        "GET",
        "things",
        "thing listing",
        lambda a: len(a.payload["things"]),
        array_key="things",
        max_body=max_body,
    )
    body = json.dumps(["x" * 1000] * (size // 1006)).encode()
    body += b" " * (size - len(body))  # JSON allows trailing whitespace: exactly ``size`` bytes
    request = PlugzRequest(endpoint=endpoint, url=URL, headers={})
    raw = (200, CaseInsensitiveDict({"Content-Type": "application/json"}), body, None)
    if refused:
        with pytest.raises(PlugzMalformedResponseError, match=f"larger than {max_body} bytes"):
            read_answer(CONFIG, request, raw)
    else:
        assert read_answer(CONFIG, request, raw) == size // 1006
