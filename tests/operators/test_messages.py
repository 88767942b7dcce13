"""PlugzSendMessageOperator against the sandbox: the text lands in its outbox, sent once, personal
data kept out of logs and errors."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz._redaction import WITHHELD
from airflow_provider_plugz.exceptions import (
    PlugzBadRequestError,
    PlugzConfigurationError,
    PlugzError,
    PlugzNotFoundError,
    PlugzOutcomeUnknownError,
    PlugzQueueFullError,
)
from airflow_provider_plugz.operators.messages import PlugzSendMessageOperator
from airflow_provider_plugz.testing import Fault
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN, task_context
from tests.support.sandbox import send_texts

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox

PHONE = "5511987654321"
TEXT = "plugz_sales has NO two-step-verification PIN."


def run(**kwargs: Any) -> Any:
    return PlugzSendMessageOperator(task_id="send", **kwargs).execute(task_context())


def test_sends_and_returns_the_ids(
    sandbox: PlugzSandbox, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The operator's task log as plain records (Airflow 3 renders its own through structlog).
    logger = logging.getLogger("tests.send_message.task_log")
    monkeypatch.setattr(PlugzSendMessageOperator, "log", property(lambda self: logger))
    caplog.set_level(logging.INFO, logger=logger.name)
    result = run(phone=PHONE, message=TEXT)
    (sent,) = sandbox.messages
    assert (sent.instance_id, sent.phone, sent.message, sent.delivered) == (INSTANCE_ID, PHONE, TEXT, True)
    assert result == {"zaap_id": sent.zaap_id, "message_id": sent.message_id}
    assert "***4321" in caplog.text
    assert f"{len(TEXT)} character(s)" in caplog.text
    assert PHONE not in caplog.text
    assert TEXT not in caplog.text


def test_a_disconnected_sender_queues(sandbox: PlugzSandbox) -> None:
    sandbox.set_state(INSTANCE_ID, "disconnected")
    run(phone=PHONE, message=TEXT)
    assert [m.delivered for m in sandbox.messages] == [False]
    sandbox.set_state(INSTANCE_ID, "connected")
    assert [m.delivered for m in sandbox.messages] == [True]


def test_a_full_queue_is_its_own_error(sandbox: PlugzSandbox) -> None:
    """1,000 messages wait for a disconnected phone: the next is refused, with advice that fits."""
    sandbox.set_state(INSTANCE_ID, "disconnected")
    assert set(send_texts(sandbox, 1000, INSTANCE_ID, INSTANCE_TOKEN, CLIENT_TOKEN)) == {200}
    with pytest.raises(PlugzQueueFullError) as info:
        run(phone=PHONE, message=TEXT)
    message = str(info.value)
    assert "queue is full" in message
    assert message.endswith(PlugzQueueFullError.advice)
    assert "reconnect" in message
    assert PHONE not in message
    assert TEXT not in message
    assert len(sandbox.messages) == 1000  # refused, not queued: sending again later is no duplicate


@pytest.mark.parametrize(
    ("phone", "message"),
    [
        pytest.param("+55 11 98765-4321", TEXT, id="formatted-phone"),
        pytest.param(PHONE, "", id="empty-text"),
    ],
)
def test_bad_input_is_refused_before_sending(sandbox: PlugzSandbox, phone: str, message: str) -> None:
    with pytest.raises(PlugzConfigurationError) as info:
        run(phone=phone, message=message)
    assert phone not in str(info.value)
    assert sandbox.request_count == 0


def test_never_sent_twice(sandbox: PlugzSandbox) -> None:
    sandbox.inject(Fault.status(503), times=4)
    with pytest.raises(PlugzOutcomeUnknownError) as info:
        run(phone=PHONE, message=TEXT)
    assert sandbox.request_count == 1
    assert PHONE not in str(info.value)
    assert TEXT not in str(info.value)


def test_phone_and_message_are_templated() -> None:
    assert set(PlugzSendMessageOperator.template_fields) == {"phone", "message", "plugz_conn_id"}


# --- what the server says back: an echo of the text never comes back, and never steers the class ---

ALERT = "*ALERTA*\nPaciente:\nJoao S.\nHIV+\nLeito 12"


@pytest.mark.parametrize(
    "echo",
    [
        pytest.param(f"Invalid message: {ALERT}", id="the-whole-text"),
        pytest.param("Invalid message: " + ALERT.replace("\n", "\\n"), id="breaks-written-as-backslash-n"),
        pytest.param("Invalid message: HIV+", id="one-short-line"),
    ],
)
def test_an_echoed_text_never_comes_back(
    sandbox: PlugzSandbox, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, echo: str
) -> None:
    logger = logging.getLogger("tests.send_message.task_log")
    monkeypatch.setattr(PlugzSendMessageOperator, "log", property(lambda self: logger))
    caplog.set_level(logging.DEBUG)
    sandbox.inject(Fault.status(400, {"error": echo}))
    with pytest.raises(PlugzBadRequestError) as info:
        run(phone=PHONE, message=ALERT)
    assert info.value.server_message == WITHHELD
    assert f"HTTP 400: {WITHHELD}." in str(info.value)
    for text in (str(info.value), repr(info.value), caplog.text):
        for line in ("ALERTA", "Paciente", "Joao", "HIV", "Leito"):
            assert line not in text
        assert PHONE not in text


def test_a_text_with_the_servers_words_does_not_change_the_class(sandbox: PlugzSandbox) -> None:
    """The word "instance" in the text used to make "Instance not found" "*** not found": a bad request."""
    sandbox.inject(Fault.status(400, {"error": "Instance not found"}))
    with pytest.raises(PlugzNotFoundError) as info:
        run(phone=PHONE, message="Backup instance db-7 failed")
    assert info.value.server_message == "Instance not found"
    assert str(info.value).endswith(PlugzNotFoundError.advice)


# --- no secret leaves in a message --------------------------------------------------------------

URL_TOKEN = "UNKN0WNUR1T0KEN5ECRET00000008"  # known to nobody: only its place in the URL gives it away
MASKED_SECRET = "MA5KEDC11ENT70KEN5ECRET0000008"  # registered with Airflow's masker only
MASKED_PIN = "629384"  # registered with Airflow's masker only; stands alone in the text


@pytest.fixture
def masked_by_airflow(fresh_airflow_masker: None) -> None:
    from airflow_provider_plugz._compat import mask_secret

    mask_secret(MASKED_SECRET)
    mask_secret(MASKED_PIN)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(
            f"see https://api.plugzapi.com.br/instances/{INSTANCE_ID}/token/{URL_TOKEN}/status",
            "see https://api.plugzapi.com.br/instances/***/token/***/status",
            id="instance-url",
        ),
        pytest.param(
            f"client token {MASKED_SECRET}, PIN {MASKED_PIN}.",
            "client token ***, PIN ***.",
            id="airflow-masked",
        ),
        # The sending connection is read before the text is checked: its own token is known then.
        pytest.param(f"token {INSTANCE_TOKEN} / {CLIENT_TOKEN}", "token *** / ***", id="own-connection"),
        pytest.param(TEXT, TEXT, id="ordinary-text-kept"),
    ],
)
@pytest.mark.usefixtures("masked_by_airflow")
def test_a_message_never_carries_a_secret(sandbox: PlugzSandbox, message: str, expected: str) -> None:
    result = run(phone=PHONE, message=message)
    (sent,) = sandbox.messages
    assert sent.message == expected
    assert result == {"zaap_id": sent.zaap_id, "message_id": sent.message_id}
    for secret in (URL_TOKEN, MASKED_SECRET, MASKED_PIN, INSTANCE_TOKEN, CLIENT_TOKEN, INSTANCE_ID):
        assert secret not in sent.message


def test_redacting_never_makes_a_valid_message_too_long(sandbox: PlugzSandbox) -> None:
    """4,096 characters whose 1-character token becomes ``***``: still sent, cut to 4,096."""
    message = "x" * 4088 + "?token=a"
    run(phone=PHONE, message=message)
    (sent,) = sandbox.messages
    assert sent.message == "x" * 4088 + "?token=*"


def test_a_message_airflow_could_not_check_is_not_sent(
    sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message to a person is what was asked or nothing: unlike an alert, no notice replaces it."""
    from airflow_provider_plugz import _compat

    def broken(text: str) -> str:
        raise ValueError("Airflow's secrets masker failed (KeyError)")

    monkeypatch.setattr(_compat, "redact_registered", broken)
    with pytest.raises(PlugzError, match="was not sent: Airflow's secrets masker failed") as caught:
        run(phone=PHONE, message=f"client token {MASKED_SECRET}")
    assert sandbox.messages == []
    assert MASKED_SECRET not in str(caught.value)
    assert not isinstance(caught.value, PlugzOutcomeUnknownError)
