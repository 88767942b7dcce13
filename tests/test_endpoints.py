"""The endpoint declarations: each answer -> its typed result or the exact error, and that one
declaration is all a new call needs (the hook's generic path does the rest)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import TYPE_CHECKING, Any

import pytest
import requests
import requests_mock as rm

from airflow_provider_plugz._protocol import Answer, Endpoint
from airflow_provider_plugz._redaction import WITHHELD
from airflow_provider_plugz.endpoints import (
    FACTS,
    INSTANCE_STATUS,
    DeviceInfo,
    InstanceStatus,
    PinStatus,
    QueueInfo,
    SentMessage,
    fact,
)
from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzBadRequestError,
    PlugzConfigurationError,
    PlugzConnectionError,
    PlugzConnectTimeoutError,
    PlugzError,
    PlugzMalformedResponseError,
    PlugzNotFoundError,
    PlugzRefusedError,
    PlugzServerError,
    PlugzTimeoutError,
)
from airflow_provider_plugz.hooks.plugz import PlugzHook
from tests.conftest import (
    CLIENT_TOKEN,
    INSTANCE_ID,
    INSTANCE_TOKEN,
    PHONE_ECHOES,
    SECRETS,
    assert_no_phone,
    fullwidth,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_plugz.testing import PlugzSandbox

BASE = f"https://api.plugzapi.com.br/instances/{INSTANCE_ID}/token/{INSTANCE_TOKEN}"
CONN = {
    "conn_type": "plugz",
    "login": INSTANCE_ID,
    "password": INSTANCE_TOKEN,
    "extra": {"client_token": CLIENT_TOKEN, "max_attempts": 1},
}


@pytest.fixture(autouse=True)
def _plugz_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(CONN))


@pytest.fixture
def mock() -> Iterator[rm.Mocker]:
    with rm.Mocker() as m:
        yield m


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        pytest.param(
            200,
            {"connected": True, "session": True, "smartphoneConnected": True},
            InstanceStatus(connected=True, session=True, smartphone_connected=True),
            id="connected",
        ),
        pytest.param(
            200,
            {
                "connected": False,
                "session": False,
                "smartphoneConnected": False,
                "error": "You are not connected.",
            },
            InstanceStatus(False, False, False, "You are not connected."),
            id="disconnected-error-is-state",
        ),
        pytest.param(
            200,
            {"connected": True, "smartphoneConnected": False, "error": "You need to restore the session."},
            InstanceStatus(True, None, False, "You need to restore the session."),
            id="z-api-has-no-session-field",
        ),
        pytest.param(
            200,
            {"connected": False, "smartphoneConnected": False, "error": f"echo {CLIENT_TOKEN}\nforged"},
            InstanceStatus(False, None, False, WITHHELD),
            id="state-text-that-echoes-a-secret-is-withheld",
        ),
        pytest.param(
            200,
            {"error": "your client-token is not configured"},
            PlugzAuthenticationError,
            id="error-without-state-is-a-failure",
        ),
        pytest.param(
            200, {"connected": "yes", "smartphoneConnected": True}, PlugzMalformedResponseError, id="not-bool"
        ),
        pytest.param(200, {"connected": True}, PlugzMalformedResponseError, id="smartphone-missing"),
        pytest.param(
            200,
            {"connected": True, "session": "no", "smartphoneConnected": True},
            PlugzMalformedResponseError,
            id="session-not-bool",
        ),
        pytest.param(404, {"error": "Instance not found"}, PlugzNotFoundError, id="404"),
    ],
)
def test_instance_status(mock: rm.Mocker, status: int, body: dict[str, Any], expected: Any) -> None:
    mock.get(f"{BASE}/status", status_code=status, json=body)
    if isinstance(expected, InstanceStatus):
        assert PlugzHook().get_instance_status() == expected
    else:
        with pytest.raises(expected) as info:
            PlugzHook().get_instance_status()
        assert type(info.value) is expected
        assert "instance status check" in str(info.value)
        for secret in SECRETS:
            assert secret not in str(info.value)
    assert mock.last_request.method == "GET"


def test_a_new_call_is_one_declaration(mock: rm.Mocker) -> None:
    """A call the provider does not have yet: declared here, called through the generic path
    with the same checks, redaction and retries as every other."""
    queue = Endpoint("GET", "queue", "queue listing", lambda answer: len(answer.payload["messages"]))
    mock.get(f"{BASE}/queue", json={"messages": [1, 2, 3]})
    assert PlugzHook().call(queue) == 3
    mock.get(f"{BASE}/queue", status_code=403, json={"error": f"Client-Token {CLIENT_TOKEN} not allowed"})
    with pytest.raises(
        PlugzAuthenticationError, match=r"Plugz queue listing failed .* Client-Token \*\*\* not"
    ):
        PlugzHook().call(queue)


def test_an_endpoint_without_a_body_takes_no_arguments() -> None:
    with pytest.raises(TypeError, match="takes no arguments"):
        PlugzHook().call(INSTANCE_STATUS, "unexpected")


def test_answer_text_is_server_text() -> None:
    answer = Answer({"error": "a\x1b[31m" + "x" * 400, "n": 3, "none": None}, secrets=())
    text = answer.text("error")
    assert text is not None
    assert text.isprintable()
    assert text.endswith("...")
    assert answer.text("n") == "3"
    assert answer.text("none") is None
    assert answer.text("missing") is None


def test_results_are_frozen() -> None:
    status = InstanceStatus(True, True, True)
    with pytest.raises(AttributeError):
        status.connected = False  # type: ignore[misc]


PHONE = "5511987654321"
TEXT = "Número sem PIN: configure a verificação em duas etapas."


def test_send_text_posts_the_documented_json(mock: rm.Mocker) -> None:
    mock.post(f"{BASE}/send-text", json={"zaapId": "Z1", "messageId": "M1", "id": "M1"})
    sent = PlugzHook().send_text(PHONE, TEXT, delay_message=2)
    assert sent == SentMessage(zaap_id="Z1", message_id="M1")
    request = mock.last_request
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {"phone": PHONE, "message": TEXT, "delayMessage": 2}


@pytest.mark.parametrize(
    ("phone", "message", "kwargs", "says"),
    [
        pytest.param("+55 11 98765-4321", TEXT, {}, "the phone must be digits only", id="formatted-phone"),
        pytest.param("1234", TEXT, {}, "the phone must be digits only", id="too-short"),
        pytest.param("1" * 16, TEXT, {}, "the phone must be digits only", id="too-long"),
        pytest.param(5511987654321, TEXT, {}, "the phone must be digits only", id="not-text"),
        pytest.param(PHONE, "   ", {}, "the message is empty", id="blank-message"),
        pytest.param(PHONE, "x" * 4097, {}, "at most 4096", id="message-too-long"),
        pytest.param(PHONE, TEXT, {"delay_message": 30}, "delayMessage must be", id="delay-out-of-range"),
        pytest.param(PHONE, TEXT, {"delay_typing": True}, "delayTyping must be", id="delay-bool"),
        pytest.param(PHONE, TEXT, {"message_id": " "}, "message_id", id="blank-reply-id"),
    ],
)
def test_send_text_checks_before_sending(
    mock: rm.Mocker, phone: Any, message: Any, kwargs: dict[str, Any], says: str
) -> None:
    with pytest.raises(PlugzConfigurationError) as info:
        PlugzHook().send_text(phone, message, **kwargs)
    assert says in str(info.value)
    assert str(phone) not in str(info.value)
    assert TEXT not in str(info.value)
    assert mock.call_count == 0


@pytest.mark.parametrize(
    "group",
    [
        pytest.param("120363019502650977-group", id="group"),
        pytest.param("5511987654321-1623281429", id="legacy"),
    ],
)
def test_send_text_accepts_group_ids(mock: rm.Mocker, group: str) -> None:
    mock.post(f"{BASE}/send-text", json={"zaapId": "Z1", "messageId": "M1"})
    assert PlugzHook().send_text(group, TEXT).message_id == "M1"


@pytest.mark.parametrize(
    ("answer", "error", "calls"),
    [
        pytest.param(
            {"status_code": 503, "json": {"error": "busy"}}, PlugzServerError, 1, id="503-never-resent"
        ),
        pytest.param({"exc": requests.ConnectionError}, PlugzConnectionError, 1, id="dropped-never-resent"),
        pytest.param({"exc": requests.ReadTimeout}, PlugzTimeoutError, 1, id="read-timeout-never-resent"),
        pytest.param(
            {"exc": requests.ConnectTimeout}, PlugzConnectTimeoutError, 4, id="connect-timeout-retried"
        ),
        pytest.param(
            {"status_code": 400, "json": {"error": f"bad phone {PHONE}: {TEXT}"}},
            PlugzBadRequestError,
            1,
            id="echo-of-phone-and-text-redacted",
        ),
        pytest.param(
            {"status_code": 200, "json": {"zaapId": "Z1"}}, PlugzMalformedResponseError, 1, id="no-id"
        ),
    ],
)
def test_a_message_is_sent_at_most_once(
    mock: rm.Mocker,
    monkeypatch: pytest.MonkeyPatch,
    answer: dict[str, Any],
    error: type[PlugzError],
    calls: int,
) -> None:
    # The default policy (4 attempts), so that "sent once" is the endpoint's doing.
    monkeypatch.setenv(
        "AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps({**CONN, "extra": {"client_token": CLIENT_TOKEN}})
    )
    mock.post(f"{BASE}/send-text", **answer)
    with pytest.raises(error) as info:
        PlugzHook().send_text(PHONE, TEXT)
    assert mock.call_count == calls
    assert PHONE not in str(info.value)
    assert TEXT not in str(info.value)


def test_device_over_http(sandbox: PlugzSandbox) -> None:
    device = PlugzHook().get_device()
    assert device.phone.startswith("5511")
    assert device.platform == "android"
    assert device.model == "Plugz Sandbox Phone"
    assert device.phone not in repr(device)  # personal data: 4 digits in reprs
    assert device.masked_phone == f"***{device.phone[-4:]}"

    async def run() -> DeviceInfo:
        hook = PlugzHook()
        try:
            return await hook.aget_device()
        finally:
            await hook.aclose()

    assert asyncio.run(run()) == device


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param({"imgUrl": None}, "it has no 'phone' field", id="no-phone"),
        pytest.param(
            {"phone": "5511987654321", "device": ["x"]}, "'device' is not an object", id="device-list"
        ),
        pytest.param(
            {"phone": "", "sessionId": "66"}, "'sessionId' is not a whole number", id="session-id-text"
        ),
    ],
)
def test_device_malformed(mock: rm.Mocker, body: dict[str, Any], error: str) -> None:
    mock.get(f"{BASE}/device", json=body)
    with pytest.raises(PlugzMalformedResponseError, match=error):
        PlugzHook().get_device()


@pytest.mark.parametrize(
    ("body", "model", "platform"),
    [
        pytest.param(
            {"phone": "", "imgUrl": None, "device": {"device_model": "SM-N975F", "platform": "smba"}},
            "SM-N975F",
            "smba",
            id="plugz-layout-not-paired",
        ),
        pytest.param(
            {
                "phone": "",
                "name": "",
                "device": {"sessionName": "Z-API", "device_model": "Z-API"},
                "sessionId": 66,
                "isBusiness": True,
            },
            None,
            None,
            id="z-api-layout-not-paired",
        ),
    ],
)
def test_device_not_paired_is_a_result(
    mock: rm.Mocker, body: dict[str, Any], model: str | None, platform: str | None
) -> None:
    """A number not paired yet (both references' own example) is a DeviceInfo without a phone."""
    mock.get(f"{BASE}/device", json=body)
    device = PlugzHook().get_device()
    assert (device.phone, device.masked_phone, device.model, device.platform) == (None, None, model, platform)


# Every call of the provider, as the hook makes it.
CALLS = {
    "pin-status": ("get", "security/two-fa-code", lambda hook: hook.get_pin_status()),
    "set-pin": ("post", "security/two-fa-code", lambda hook: hook.set_pin("482913")),
    "status": ("get", "status", lambda hook: hook.get_instance_status()),
    "device": ("get", "device", lambda hook: hook.get_device()),
    "send-text": ("post", "send-text", lambda hook: hook.send_text(PHONE, TEXT)),
}


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"success": False}, id="bare"),
        pytest.param({"success": False, "message": f"not now, {PHONE}"}, id="with-message"),
    ],
)
def test_success_false_is_a_refusal_never_retried(
    mock: rm.Mocker, monkeypatch: pytest.MonkeyPatch, call: str, body: dict[str, Any]
) -> None:
    # The default policy (4 attempts): one request means the refusal is final.
    monkeypatch.setenv(
        "AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps({**CONN, "extra": {"client_token": CLIENT_TOKEN}})
    )
    method, path, run = CALLS[call]
    mock.register_uri(method.upper(), f"{BASE}/{path}", json=body)
    with pytest.raises(PlugzRefusedError, match=r"HTTP 200, success: false") as info:
        run(PlugzHook())
    assert mock.call_count == 1
    assert PHONE not in str(info.value)
    assert "482913" not in str(info.value)


# --- server texts of successful answers: phone numbers masked like in error texts ---------------


@pytest.mark.parametrize(("echo", "shown"), PHONE_ECHOES)
def test_answer_text_masks_phones(echo: str, shown: str) -> None:
    assert Answer({"error": echo}).text("error") == shown


@pytest.mark.parametrize(("echo", "shown"), PHONE_ECHOES)
def test_a_status_reason_masks_the_phones_it_echoes(mock: rm.Mocker, echo: str, shown: str) -> None:
    mock.get(f"{BASE}/status", json={"connected": False, "smartphoneConnected": False, "error": echo})
    status = PlugzHook().get_instance_status()
    assert status.error == shown
    assert_no_phone(repr(status), json.dumps(dataclasses.asdict(status)))


# Each text a /device answer may hold, in either layout: (the answer around a text, its field).
DEVICE_TEXTS = [
    *(
        pytest.param(lambda text, key=key: {"phone": "", "device": {key: text}}, ours, id=f"device-{key}")
        for ours, key in (
            ("model", "device_model"),
            ("wa_version", "wa_version"),
            ("platform", "platform"),
            ("os_version", "os_version"),
            ("os_build_number", "osbuildnumber"),
            ("manufacturer", "device_manufacturer"),
            ("mcc", "mcc"),
            ("mnc", "mnc"),
        )
    ),
    pytest.param(
        lambda text: {"phone": "", "device": {"sessionName": text}}, "session_name", id="session-name"
    ),
    pytest.param(lambda text: {"phone": "", "originalDevice": text}, "platform", id="original-device"),
    pytest.param(lambda text: {"phone": "", "name": text}, "name", id="profile-name"),
    pytest.param(lambda text: {"phone": "", "about": text}, "about", id="profile-about"),
]


@pytest.mark.parametrize(("echo", "shown"), PHONE_ECHOES)
@pytest.mark.parametrize(("answer", "field"), DEVICE_TEXTS)
def test_device_texts_mask_the_phones_they_echo(
    mock: rm.Mocker, answer: Any, field: str, echo: str, shown: str
) -> None:
    """In the field itself, so also in its repr and in whatever it is copied to (XCom, logs)."""
    mock.get(f"{BASE}/device", json=answer(echo))
    device = PlugzHook().get_device()
    assert getattr(device, field) == shown
    assert_no_phone(repr(device), json.dumps(dataclasses.asdict(device)))


def test_device_repr_shows_the_paired_phone_as_its_last_4_digits_only(mock: rm.Mocker) -> None:
    mock.get(
        f"{BASE}/device",
        json={
            "phone": "5511987654321",
            "imgUrl": "https://pps.whatsapp.net/v/5511987654321.jpg",
            "device": {"device_model": fullwidth("+55 (11) 98765-4321"), "wa_version": "2.24.10"},
        },
    )
    device = PlugzHook().get_device()
    assert (device.phone, device.img_url, device.model) == ("5511987654321", None, "***")
    assert repr(device).startswith("DeviceInfo(phone='***4321', ")
    assert_no_phone(repr(device).replace("'***4321'", "", 1))


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        pytest.param("https://exemplo.com/foto-perfil.jpg", True, id="plain"),
        pytest.param("https://pps.example/v/2026/12/07/p.jpg?oe=67A0B1C2", True, id="date-kept"),
        pytest.param("https://pps.example/v/5511987654321.jpg", False, id="phone"),
        pytest.param(f"https://pps.example/v/{fullwidth('5511987654321')}.jpg", False, id="fullwidth-phone"),
        pytest.param("https://pps.example/v/id5511987654321_n.jpg", False, id="phone-glued-to-letters"),
        pytest.param("https://pps.example/p?to=%2B55%2011%2098765-4321", False, id="percent-encoded-phone"),
        pytest.param(f"https://pps.example/p.jpg?t={INSTANCE_TOKEN}", False, id="secret"),
        pytest.param("https://pps.example/instances/abc/token/xyz/p.jpg", False, id="instance-credentials"),
        pytest.param("https://pps.example/p.jpg\nX-Forged: 1", False, id="two-lines"),
        pytest.param("https://pps.example/" + "a" * 2100, False, id="too-long-to-keep-whole"),
    ],
)
def test_device_picture_link_is_kept_whole_or_not_at_all(mock: rm.Mocker, url: str, kept: bool) -> None:
    """A link with a number masked or cut short is neither usable nor safe: it is None."""
    mock.get(f"{BASE}/device", json={"phone": "", "imgUrl": url})
    device = PlugzHook().get_device()
    assert device.img_url == (url if kept else None)


# --- the facts: each declared fact holds together -------------------------------------------------

FACT_RESULTS: dict[str, list[Any]] = {
    "pin": [PinStatus(True), PinStatus(False)],
    "connection": [
        InstanceStatus(connected=True, session=True, smartphone_connected=True),
        InstanceStatus(connected=False, session=None, smartphone_connected=True, error="You need to restore"),
        InstanceStatus(connected=True, session=True, smartphone_connected=False),
        InstanceStatus(connected=False, session=False, smartphone_connected=False),
    ],
    "queue": [
        QueueInfo(0),
        QueueInfo(3, "2026-12-07T20:00:00+00:00"),
        QueueInfo(2, None, complete=False),
    ],
}


def test_every_fact_has_example_results() -> None:
    assert sorted(FACT_RESULTS) == sorted(FACTS)


@pytest.mark.parametrize("name", list(FACTS))
def test_a_facts_declaration_holds_together(name: str) -> None:
    """Its call is a read; every result's column reads back as itself, with a declared state that
    has words, and a describable text; its option and names are what users type."""
    fact = FACTS[name]
    assert fact.name == name
    assert fact.endpoint.method == "GET"
    assert fact.endpoint.idempotent
    assert fact.endpoint.body is None
    assert fact.fail_option.startswith("fail_if_")
    assert fact.fail_option.isidentifier()
    assert set(fact.words) == set(fact.states)
    assert any(fact.is_bad(state) for state in fact.states)
    assert any(not fact.is_bad(state) for state in fact.states)
    for result in FACT_RESULTS[name]:
        fields = fact.fields(result)
        assert json.loads(json.dumps(fields)) == fields  # JSON-safe, as XCom needs
        assert fact.read_fields(json.loads(json.dumps(fields))) == fields
        assert fact.state(fields) in fact.states
        assert fact.describe(fields)
    bad = [state for state in fact.states if fact.is_bad(state)]
    good = [state for state in fact.states if not fact.is_bad(state)]
    assert fact.change(good[0], bad[0]) != fact.change(bad[0], good[0])
    assert fact.baseline
    assert fact.baseline.isidentifier()


@pytest.mark.parametrize("name", list(FACTS))
@pytest.mark.parametrize(
    "xcom",
    [
        pytest.param(None, id="null"),
        pytest.param([], id="array"),
        pytest.param({}, id="empty"),
        pytest.param({"unexpected": 1}, id="unknown-key"),
    ],
)
def test_a_facts_column_refuses_what_it_did_not_write(name: str, xcom: Any) -> None:
    with pytest.raises(ValueError, match=r"must be a JSON object|lacks|unexpected"):
        FACTS[name].read_fields(xcom)


def test_fact_names_the_known_ones_when_asked_for_another() -> None:
    with pytest.raises(KeyError, match="known: pin, connection"):
        fact("nonsense")
