"""PlugzSendMessageOperator against the sandbox: the text lands in its outbox, sent once, personal
data kept out of logs and errors."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.exceptions import (
    PlugzConfigurationError,
    PlugzOutcomeUnknownError,
    PlugzQueueFullError,
)
from airflow_provider_plugz.operators.messages import PlugzSendMessageOperator
from airflow_provider_plugz.testing import Fault
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN, task_context
from tests.testing.conftest import send_texts

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
