"""PlugzHook over real HTTP against the sandbox, through both transports (requests and httpx)."""

from __future__ import annotations

import asyncio
import gzip
import logging
import threading
import tracemalloc
import zlib
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz._compat import AIRFLOW_V3
from airflow_provider_plugz.exceptions import (
    PlugzConnectError,
    PlugzConnectionError,
    PlugzError,
    PlugzMalformedResponseError,
    PlugzRateLimitedError,
    PlugzReadTimeoutError,
    PlugzRedirectError,
    PlugzServerError,
    PlugzTimeoutError,
)
from airflow_provider_plugz.hooks.plugz import PinStatus, PlugzHook
from airflow_provider_plugz.testing import Fault
from airflow_provider_plugz.transports.body import MAX_BODY_BYTES
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN
from tests.support.hooks import TRANSPORTS, set_connection

if TYPE_CHECKING:
    from airflow_provider_plugz.testing import PlugzSandbox

MIB = 1024 * 1024


def pin_status(transport: str, hook: PlugzHook | None = None) -> PinStatus:
    hook = hook or PlugzHook()
    if transport == "sync":
        return hook.get_pin_status()

    async def run() -> PinStatus:
        try:
            return await hook.aget_pin_status()
        finally:
            await hook.aclose()

    return asyncio.run(run())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pin_state_follows_the_server(sandbox: PlugzSandbox, transport: str) -> None:
    assert pin_status(transport) == PinStatus(has_code=False)
    sandbox.set_has_code(INSTANCE_ID, True)
    assert pin_status(transport) == PinStatus(has_code=True)
    request = sandbox.requests[-1]
    assert request.method == "GET"
    assert request.body == b""
    assert request.headers["client-token"] == CLIENT_TOKEN
    assert request.path == f"/instances/{INSTANCE_ID}/token/{INSTANCE_TOKEN}/security/two-fa-code"


def test_sync_hook_reuses_one_connection(sandbox: PlugzSandbox) -> None:
    hook = PlugzHook()
    for _ in range(5):
        hook.get_pin_status()
    assert sandbox.request_count == 5
    assert sandbox.connections_accepted == 1


def test_async_hook_reuses_one_connection(sandbox: PlugzSandbox) -> None:
    async def run() -> None:
        hook = PlugzHook()
        try:
            for _ in range(5):
                await hook.aget_pin_status()
        finally:
            await hook.aclose()

    asyncio.run(run())
    assert sandbox.connections_accepted == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_one_fault_is_retried_away(sandbox: PlugzSandbox, transport: str) -> None:
    sandbox.inject(Fault.status(503))
    sandbox.inject(Fault.drop())
    sandbox.set_has_code(INSTANCE_ID, True)
    assert pin_status(transport) == PinStatus(has_code=True)
    assert sandbox.request_count == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_read_timeout(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    set_connection(monkeypatch, sandbox, extra={"read_timeout": 0.05, "max_attempts": 2})
    sandbox.inject(Fault.slow(0.3), times=2)
    with pytest.raises(PlugzTimeoutError, match="waiting for the answer"):
        pin_status(transport)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connection_refused(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    set_connection(monkeypatch, sandbox, host="http://127.0.0.1:1")
    with pytest.raises(PlugzConnectError) as info:
        pin_status(transport)
    assert "could not connect" in str(info.value)
    assert "the request was not sent" in str(info.value)
    assert INSTANCE_TOKEN not in str(info.value)


def test_fixtures_point_plugz_default_at_the_sandbox(plugz_connection: PlugzSandbox) -> None:
    assert PlugzHook().get_pin_status().has_code is False
    assert PlugzHook().test_connection()[0] is True  # GET .../status, then the PIN
    assert plugz_connection.request_count == 3


def test_uri_connection_reaches_the_sandbox(sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_URI", sandbox.connection_uri(INSTANCE_ID))
    assert PlugzHook("plugz_uri").get_pin_status().has_code is False


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_http_client_logs_hold_no_credentials(
    sandbox: PlugzSandbox, transport: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx logs every request URL at INFO and urllib3 at DEBUG; the token is in that URL.
    # Whatever a deployment's logging config says, let them speak here.
    for name in ("httpx", "urllib3.connectionpool"):
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
        caplog.set_level(logging.DEBUG, logger=name)
    caplog.set_level(logging.DEBUG)
    pin_status(transport)
    assert "/token/***/security/two-fa-code" in caplog.text  # the client did log the request
    assert INSTANCE_TOKEN not in caplog.text
    assert INSTANCE_ID not in caplog.text


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_http_client_logger_is_redacted_children_included(
    sandbox: PlugzSandbox, transport: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A logger's filters do not apply to its children's records: each child needs the filter,
    # also one that only appears after the first hook was built.
    pin_status(transport)
    late = f"urllib3.late_child_{transport}"
    names = ["httpx", "httpcore.http11", "httpcore.connection", "urllib3.connectionpool", late]
    for name in names:
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
    caplog.set_level(logging.DEBUG)
    pin_status(transport)  # picks up the late child
    url = f"{sandbox.base_url}/instances/{INSTANCE_ID}/token/{INSTANCE_TOKEN}/security/two-fa-code"
    for name in names:
        logging.getLogger(name).debug("request to %s with %s", url, CLIENT_TOKEN)
    said = [record.getMessage() for record in caplog.records if record.name in names]
    assert len(said) >= len(names)
    for message in said:
        assert INSTANCE_TOKEN not in message
        assert INSTANCE_ID not in message
        assert CLIENT_TOKEN not in message


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_remembered_pin_leaves_ordinary_numbers_in_client_logs(
    sandbox: PlugzSandbox, transport: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PIN is redacted from the HTTP clients' log lines only as a whole number (issue 22)."""
    set_pin(transport, "202612")  # registers the PIN with our redaction, and puts the filter on
    name = "httpx" if transport == "async" else "urllib3.connectionpool"
    monkeypatch.setattr(logging.getLogger(name), "propagate", True)
    monkeypatch.setattr(logging.getLogger(name), "disabled", False)
    caplog.set_level(logging.DEBUG, logger=name)
    caplog.clear()  # only the lines below: the PIN call's own request line may be captured too
    logging.getLogger(name).debug("build %s order %s", "20261207", "202612-A")
    logging.getLogger(name).debug('body {"code":"%s"}', "202612")
    said = [record.getMessage() for record in caplog.records if record.name == name]
    assert said == ["build 20261207 order 202612-A", 'body {"code":"***"}']


def set_pin(transport: str, code: str) -> None:
    hook = PlugzHook()
    if transport == "sync":
        hook.set_pin(code)
        return

    async def run() -> None:
        try:
            await hook.aset_pin(code)
        finally:
            await hook.aclose()

    asyncio.run(run())


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("fault", "extra", "error"),
    [
        pytest.param(Fault.drop(), {}, PlugzConnectionError, id="dropped-after-the-body"),
        pytest.param(Fault.slow(1), {"read_timeout": 0.1}, PlugzReadTimeoutError, id="read-timeout"),
        pytest.param(
            Fault.drip(0.05), {"read_timeout": 5, "total_timeout": 0.3}, PlugzReadTimeoutError, id="deadline"
        ),
        pytest.param(Fault.status(502), {}, PlugzServerError, id="gateway-502"),
        pytest.param(Fault.status(503), {}, PlugzServerError, id="unavailable-503"),
        pytest.param(Fault.status(429), {}, PlugzRateLimitedError, id="throttled-429"),
    ],
)
def test_a_pin_post_that_may_have_left_is_sent_once(
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    transport: str,
    fault: Fault,
    extra: dict[str, Any],
    error: type[PlugzError],
) -> None:
    set_connection(monkeypatch, sandbox, extra=extra)
    sandbox.inject(fault, times=4)
    with pytest.raises(error) as info:
        set_pin(transport, "482913")
    assert type(info.value) is error
    assert info.value.attempts == 1
    posts = [r for r in sandbox.requests if r.method == "POST"]
    assert len(posts) == 1
    assert posts[0].json() == {"code": "482913"}  # the server did read the whole request
    assert "482913" not in str(info.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_pin_post_that_never_left_is_retried(
    sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch, transport: str, retry_sleeps: list[float]
) -> None:
    set_connection(monkeypatch, sandbox, host="http://127.0.0.1:1")  # nothing listens: connect fails
    with pytest.raises(PlugzConnectError) as info:
        set_pin(transport, "482913")
    assert info.value.attempts == 4
    assert len(retry_sleeps) == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("payload", "encoding"),
    [
        pytest.param(
            gzip.compress(b'{"success":true,"hasCode":true,"x":"' + b"0" * (32 * MIB) + b'"}', 9),
            "gzip",
            id="gzip-bomb-32-mib",
        ),
        pytest.param(
            gzip.compress(gzip.compress(b"0" * (32 * MIB), 9), 9), "gzip, gzip", id="stacked-gzip-32-mib"
        ),
        pytest.param(
            zlib.compress(b'{"success":true,"hasCode":true,"x":"' + b"0" * (32 * MIB) + b'"}', 9),
            "deflate",
            id="deflate-bomb-32-mib",
        ),
    ],
)
def test_decompression_stays_within_a_few_mib_of_the_limit(
    sandbox: PlugzSandbox, transport: str, payload: bytes, encoding: str
) -> None:
    pin_status("sync")  # warm up: imports, the TLS context and the first connection are not the answer's
    sandbox.inject(
        Fault.status(
            200, body=payload, headers={"Content-Encoding": encoding, "Content-Type": "application/json"}
        )
    )
    tracemalloc.start()
    try:
        with pytest.raises(PlugzMalformedResponseError, match=r"larger than 1048576 bytes|stacked"):
            pin_status(transport)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_BODY_BYTES + 4 * MIB, f"peak {peak / MIB:.1f} MiB"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_redirects_body_is_read_only_by_our_bounded_reader(sandbox: PlugzSandbox, transport: str) -> None:
    """requests read (and inflated) a 3xx body to prepare the redirect it would not follow."""
    pin_status("sync")  # warm up
    bomb = gzip.compress(b"0" * (32 * MIB), 9)
    sandbox.inject(
        Fault.status(
            301, body=bomb, headers={"Content-Encoding": "gzip", "Location": "https://elsewhere.invalid/"}
        )
    )
    tracemalloc.start()
    try:
        with pytest.raises(PlugzRedirectError):
            pin_status(transport)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_BODY_BYTES + 4 * MIB, f"peak {peak / MIB:.1f} MiB"


def test_a_redirect_with_a_garbage_second_encoding_ends(sandbox: PlugzSandbox) -> None:
    """Found by tests/test_protocol_properties.py: after requests had inflated this redirect's body,
    urllib3's stream() spun forever on a tail it would not decode (out of the deadline's reach)."""
    body = gzip.compress(b'{"success": true, "hasCode": true}')
    sandbox.inject(
        Fault.raw(
            b"HTTP/1.1 301 Moved\r\nContent-Encoding: gzip\r\nLocation: \x0f=\xc3\x9fI\xf2\r\n"
            b"Content-Encoding: Fri, 31 Dec 9999 23:59:59 GMT\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
    )
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            pin_status("sync")
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "the call still runs"
    (error,) = outcome
    assert isinstance(error, PlugzRedirectError)


def test_async_hook_does_its_blocking_work_off_the_event_loop(
    sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the connection, masking its secrets and loading TLS run in a worker thread: in the
    triggerer and the audit, other requests are in flight on the loop meanwhile."""
    from airflow_provider_plugz import _compat
    from airflow_provider_plugz.hooks import plugz
    from airflow_provider_plugz.transports import async_httpx

    on_loop: dict[str, list[bool]] = {"get_connection": [], "mask_secret": [], "tls_context": []}

    def running_loop() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def recorded(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            on_loop[name].append(running_loop())
            return real(*args, **kwargs)

        return call

    base = _compat.BaseHook
    real_get = base.get_connection
    monkeypatch.setattr(
        base,
        "get_connection",
        classmethod(lambda cls, conn_id: recorded("get_connection", real_get)(conn_id)),
    )
    monkeypatch.setattr(plugz, "mask_secret", recorded("mask_secret", plugz.mask_secret))
    monkeypatch.setattr(async_httpx, "tls_context", recorded("tls_context", async_httpx.tls_context))
    assert pin_status("async").has_code is False
    assert all(on_loop.values()), on_loop  # each was called ...
    assert not any(any(calls) for calls in on_loop.values()), on_loop  # ... and never on the loop


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("host", "extra", "fault", "says"),
    [
        pytest.param(
            "http://127.0.0.1:1/plugz-proxy", {}, None, "could not connect to 127.0.0.1:1 (", id="refused"
        ),
        pytest.param(
            "{base}/plugz-proxy",
            {},
            Fault.drop(),
            "got no usable answer from 127.0.0.1:{port} (",
            id="dropped",
        ),
        pytest.param(
            "{base}/plugz-proxy",
            {"read_timeout": 0.1},
            Fault.slow(1),
            "waiting for the answer from 127.0.0.1:{port} (",
            id="read-timeout",
        ),
        pytest.param(
            "{base}/plugz-proxy",
            {"read_timeout": 5, "total_timeout": 0.3},
            Fault.drip(0.05),
            "(127.0.0.1:{port} was too slow",
            id="deadline",
        ),
    ],
)
def test_connection_errors_name_the_host_never_the_path(
    sandbox: PlugzSandbox,
    monkeypatch: pytest.MonkeyPatch,
    transport: str,
    host: str,
    extra: dict[str, Any],
    fault: Fault | None,
    says: str,
) -> None:
    set_connection(
        monkeypatch, sandbox, host=host.format(base=sandbox.base_url), extra={"max_attempts": 1, **extra}
    )
    if fault is not None:
        sandbox.inject(fault)
    with pytest.raises(PlugzConnectionError) as info:
        pin_status(transport)
    message = str(info.value)
    assert says.format(port=sandbox.port) in message
    assert "plugz-proxy" not in message
    assert "/instances" not in message


@pytest.mark.skipif(not AIRFLOW_V3, reason="Airflow 2 has no supervisor channel")
def test_in_the_triggerer_the_channel_is_used_from_the_loop_only(
    sandbox: PlugzSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow 3's triggerer answers its channel through the event loop: a worker thread waiting on
    it deadlocks the triggerer's shutdown, so there every channel call comes from the loop thread."""
    from airflow.sdk.execution_time import task_runner

    calls: list[tuple[str, bool]] = []

    class LoopChannel:
        """Stands in for the triggerer's channel: sync sends from the loop thread, async sends."""

        _loop: asyncio.AbstractEventLoop | None = None

        def send(self, msg: Any) -> None:
            calls.append(("send", threading.get_ident() == loop_thread))

        async def asend(self, msg: Any) -> None:
            calls.append(("asend", threading.get_ident() == loop_thread))

    channel = LoopChannel()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", channel, raising=False)
    loop_thread = threading.get_ident()

    async def run() -> bool:
        channel._loop = asyncio.get_running_loop()
        hook = PlugzHook()
        try:
            return (await hook.aget_pin_status()).has_code
        finally:
            await hook.aclose()

    assert asyncio.run(run()) is False
    assert calls  # the connection's secrets were registered through the channel ...
    assert all(on_loop for _, on_loop in calls), calls  # ... never from a thread that waits on the loop


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_cookie_an_answer_sets_is_ever_sent(sandbox: PlugzSandbox, transport: str) -> None:
    """The API uses no cookies; one set by an answer (a proxy's, or a hostile server's) would
    travel with every later request of the client, which triggers of many connections share."""
    cookie = {"Set-Cookie": "tracker=T0KEN5ECRET; Path=/", "Content-Type": "application/json"}
    sandbox.inject(Fault.status(200, body={"success": True, "hasCode": False}, headers=cookie))
    hook = PlugzHook()
    if transport == "sync":
        calls = [hook.get_pin_status() for _ in range(2)]
    else:

        async def run() -> list[PinStatus]:
            try:
                return [await hook.aget_pin_status() for _ in range(2)]
            finally:
                await hook.aclose()

        calls = asyncio.run(run())
    assert calls == [PinStatus(has_code=False)] * 2
    assert sandbox.connections_accepted == 1  # the same client both times
    assert [request.headers.get("cookie") for request in sandbox.requests] == [None, None]
