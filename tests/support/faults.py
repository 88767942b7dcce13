"""Shared pieces of the fault suites (tests/test_faults.py, tests/test_faults_health.py).

The row type (:class:`Case`), the values rows put in connections and answers, the sandbox
fixtures shared by both modules (imported by name there), the helpers that break and heal
the sandbox and check an outcome, and the rows every endpoint meets: :func:`wire_rows` (the
wire) and :func:`status_rows` (the status mapping of tests/support/statuses.py, over HTTP).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import ssl
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_plugz.exceptions import (
    PlugzAuthenticationError,
    PlugzBadRequestError,
    PlugzConfigurationError,
    PlugzError,
    PlugzMalformedResponseError,
    PlugzReadTimeoutError,
    PlugzRefusedError,
    PlugzTransientError,
)
from airflow_provider_plugz.testing import Fault
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN, trigger_events
from tests.support.statuses import STATUS_TABLE, StatusRow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from _pytest.mark import ParameterSet

    from airflow_provider_plugz.testing import PlugzSandbox

# Values some rows put in the connection or the server's answer; they must never come back.
WRONG_CLIENT_TOKEN = "WR0NGC11E7T0KEN5ECRET0000009"
WRONG_INSTANCE_TOKEN = "WR0NGT0KEN5ECRET00000000000009"
UNKNOWN_INSTANCE_ID = "UNKN0WN1NSTANCE000000000000009"
SECRETS = (INSTANCE_TOKEN, CLIENT_TOKEN, INSTANCE_ID)

MIB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    """One row: how to break things, and the hook's one exact outcome.

    Setup: ``conn`` replaces top-level connection fields (``"{base}"``/``"{port}"`` are filled
    with the sandbox's), ``extra`` merges into the extras (``None`` removes a key), ``faults``
    are ``(fault, times)`` queued in order, ``instance`` is passed to ``add_instance``.

    Outcome: ``has_code`` (success) or ``error`` + ``match`` (a fragment of its message);
    ``requests`` the sandbox sees; ``attempts`` the hook makes (default: ``requests``; 0 when
    the connection is refused before any attempt); ``waits`` the exact retry waits, when fixed.
    ``hidden`` are more values no text may contain. ``bug`` (for the runners in ``bug_in``,
    default all) marks a row the code gets wrong today: a strict xfail with that reason.
    """

    conn: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    faults: tuple[tuple[Fault, int], ...] = ()
    instance: Mapping[str, Any] = field(default_factory=dict)
    has_code: bool | None = None
    error: type[PlugzError] | None = None
    match: str = ""
    requests: int = 0
    attempts: int | None = None
    waits: tuple[float, ...] | None = None
    hidden: tuple[str, ...] = ()
    bug: str = ""
    bug_in: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        assert (self.has_code is None) != (self.error is None), "a row succeeds or fails, not both"
        assert self.error is None or self.match, "a failing row names a message fragment"

    @property
    def tries(self) -> int:
        return self.requests if self.attempts is None else self.attempts

    @property
    def transient(self) -> bool:
        return self.error is not None and issubclass(self.error, PlugzTransientError)


def config_error(match: str, **setup: Any) -> Case:
    """A connection refused while it is parsed: no attempt, no request."""
    return Case(error=PlugzConfigurationError, match=match, requests=0, **setup)


def fault(f: Fault, times: int = 1) -> tuple[tuple[Fault, int], ...]:
    return ((f, times),)


def body(status: int, payload: Any, **kwargs: Any) -> tuple[tuple[Fault, int], ...]:
    return fault(Fault.status(status, body=payload, **kwargs))


GAVE_UP_4 = "gave up after 4 attempt(s): no attempts left"
PIN = {"has_code": True}
TOKEN_URL = f"http://127.0.0.1:1/instances/{INSTANCE_ID}/token/{INSTANCE_TOKEN}/security/two-fa-code"
BIG_BODY = json.dumps({"success": True, "hasCode": True, "padding": "x" * (MIB + 10)})
PIN_JSON = b'{"success":true,"hasCode":true}'
# 16 MiB of JSON that gzip packs into ~16 KiB: it must never be inflated past the 1 MiB limit.
GZIP_BOMB = gzip.compress(b'{"success":true,"hasCode":true,"x":"' + b"0" * (16 * MIB) + b'"}', 9)
# gzip of gzip: ~1 KiB that a decoder honouring both layers inflates to 16 MiB.
STACKED_BOMB = gzip.compress(GZIP_BOMB, 9)
FAR_FUTURE = "Fri, 31 Dec 9999 23:59:59 GMT"


def encoded(data: bytes, encoding: str, status: int = 200) -> tuple[tuple[Fault, int], ...]:
    return fault(
        Fault.status(
            status, body=data, headers={"Content-Encoding": encoding, "Content-Type": "application/json"}
        )
    )


def deadline(**extra: Any) -> dict[str, Any]:
    """Extras that make the per-attempt deadline (0.3 s) the only thing that can stop a drip."""
    return {"read_timeout": 5, "total_timeout": 0.3, **extra}


@pytest.fixture(scope="module")
def server() -> Iterator[PlugzSandbox]:
    from airflow_provider_plugz.testing import PlugzSandbox

    with PlugzSandbox(client_token=CLIENT_TOKEN) as sb:
        yield sb


@pytest.fixture
def sandbox(server: PlugzSandbox, monkeypatch: pytest.MonkeyPatch) -> PlugzSandbox:
    """The module's sandbox, reset: one mobile instance without PIN, no faults, no requests."""
    server.reset()
    server.add_instance(INSTANCE_ID, INSTANCE_TOKEN)
    point_connection(monkeypatch, server, None)
    return server


@pytest.fixture(scope="module")
def tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


@pytest.fixture(autouse=True)
def _one_tls_context(monkeypatch: pytest.MonkeyPatch, tls_context: ssl.SSLContext) -> None:
    """Load the default CAs once, not in every httpx client (~60 ms each: it doubled this file's time).

    Only the CA loading is shared: the sandbox speaks plain http and every client keeps the
    hook's own rules (no redirects, no proxies from the environment).
    """
    from airflow_provider_plugz.hooks import plugz

    real = plugz.new_async_client

    def new_async_client(max_connections: int | None = None, verify: Any = True) -> Any:
        return real(max_connections, tls_context if verify is True else verify)

    monkeypatch.setattr(plugz, "new_async_client", new_async_client)


def point_connection(monkeypatch: pytest.MonkeyPatch, sb: PlugzSandbox, case: Case | None) -> None:
    """``plugz_default`` at the sandbox, with the row's connection changes (if any)."""
    conn = json.loads(sb.connection_json(INSTANCE_ID))
    if case is not None:
        for key, value in case.extra.items():
            if value is None:
                conn["extra"].pop(key, None)
            else:
                conn["extra"][key] = value
        for key, value in case.conn.items():
            conn[key] = value.format(base=sb.base_url, port=sb.port) if isinstance(value, str) else value
    monkeypatch.setenv("AIRFLOW_CONN_PLUGZ_DEFAULT", json.dumps(conn))


def break_things(monkeypatch: pytest.MonkeyPatch, sb: PlugzSandbox, case: Case) -> None:
    point_connection(monkeypatch, sb, case)
    sb.add_instance(INSTANCE_ID, INSTANCE_TOKEN, **case.instance)
    for queued, times in case.faults:
        sb.inject(queued, times=times)


def heal(monkeypatch: pytest.MonkeyPatch, sb: PlugzSandbox, *, has_code: bool) -> None:
    """A good connection, no faults, a healthy mobile instance."""
    point_connection(monkeypatch, sb, None)
    sb.clear_faults()
    sb.add_instance(INSTANCE_ID, INSTANCE_TOKEN, has_code=has_code)


def assert_clean(case: Case, *texts: str) -> None:
    for text in texts:
        for secret in (*SECRETS, *case.hidden):
            assert secret not in text


def assert_error(case: Case, err: BaseException) -> None:
    assert type(err) is case.error, f"{type(err).__name__}: {err}"
    assert isinstance(err, PlugzError)
    assert case.match in str(err)
    assert str(err).isprintable(), "a message is one line of printable characters"
    if case.tries:
        assert err.attempts == case.tries
    assert_clean(case, "".join(traceback.format_exception(err)), repr(err), str(err.server_message))


# --- the runners --------------------------------------------------------------------------------

# ("returns", has_code) | ("raises", PlugzError) | ("keeps poking", None) | ("reschedules", None)
# | ("defers", TaskDeferred) | ("crashes", any other exception)
Observed = tuple[str, Any]


def observe(call: Callable[[], Any]) -> Observed:
    """Sort what a call did into the outcome vocabulary; any other exception is a crash (a bug)."""
    from tests.airflow_compat import AirflowRescheduleException, TaskDeferred

    try:
        value = call()
    except PlugzError as err:
        return "raises", err
    except AirflowRescheduleException:
        return "reschedules", None
    except TaskDeferred as deferred:
        return "defers", deferred
    except Exception as exc:  # reported by the caller's assertion, with a short traceback
        return "crashes", exc
    return "returns", value


# --- the faults every endpoint meets ------------------------------------------------------------

OK = True  # a succeeding row (Case needs has_code xor error)
DEADLINE = "did not complete within its 0.3 s deadline"
MALFORMED = "HTTP 200 answer is malformed"


def echo_rows(name: str, phone: str, **setup: Any) -> list[ParameterSet]:
    """What every endpoint meets when the server repeats what it must not: a 400 and a 200
    ``success: false`` quoting a phone (masked in the message) and a refused Client-Token it echoes
    (redacted), for the endpoint ``name``; ``setup`` (its ``instance``, its ``hidden`` values) goes
    to every row."""
    hidden = tuple(setup.pop("hidden", ()))
    echoed = f"{name} of {phone} unavailable"
    rows = {
        "400-echoes-phone-redacted": Case(
            faults=body(400, {"error": echoed}),
            error=PlugzBadRequestError,
            match=f"HTTP 400: {name} of *** unavailable",
            requests=1,
            hidden=(phone, *hidden),
            **setup,
        ),
        "200-success-false-echoes-phone-redacted": Case(
            faults=body(200, {"success": False, "message": echoed}),
            error=PlugzRefusedError,
            match=f"HTTP 200, success: false: {name} of *** unavailable",
            requests=1,
            hidden=(phone, *hidden),
            **setup,
        ),
        "wrong-client-token": Case(
            extra={"client_token": WRONG_CLIENT_TOKEN},
            error=PlugzAuthenticationError,
            match="Client-Token *** not allowed",
            requests=1,
            hidden=(WRONG_CLIENT_TOKEN, phone, *hidden),
            **setup,
        ),
    }
    return [pytest.param(case, id=f"{name}-{row}") for row, case in rows.items()]


@functools.cache
def gzip_bomb(limit: int) -> bytes:
    """JSON 16 times ``limit`` once inflated, a thousandth of it on the wire (:data:`GZIP_BOMB` for 1 MiB)."""
    if limit == MIB:
        return GZIP_BOMB
    return gzip.compress(b'{"x":"' + b"0" * (16 * limit) + b'"}', 6)


def wire_rows(
    name: str,
    answer: str,
    *,
    sent_once: bool = False,
    arrays: bool = False,
    max_body: int = MIB,
    **setup: Any,
) -> list[ParameterSet]:
    """The faults every endpoint meets the same way on the wire, for the endpoint ``name`` whose
    success body is ``answer``, a JSON object (its statuses: :func:`status_rows`). A read retries
    a transient failure as the PIN read does; a send (``sent_once``) never retries once the request
    may have left. An endpoint that also takes a bare JSON array (``arrays``: a list of things,
    ``Endpoint.array_key``) is given a bare number where the others are given an array; one that
    reads larger answers (``max_body``, ``Endpoint.max_body``) gets bodies and bombs past that.
    ``setup`` goes to every row."""
    retried = 1 if sent_once else 2

    def malformed(faults: tuple[Any, ...], match: str) -> Case:
        return Case(faults=faults, error=PlugzMalformedResponseError, match=match, requests=1, **setup)

    rows = {
        "body-200-html": malformed(fault(Fault.html(200)), f"{MALFORMED}: it is an HTML page, not JSON"),
        "body-200-empty": malformed(body(200, b""), f"{MALFORMED}: the body is empty"),
        "body-200-truncated": malformed(
            fault(Fault.malformed(body=answer[:-3].encode())), f"{MALFORMED}: the body is not valid JSON"
        ),
        "body-200-array": malformed(
            body(200, [json.loads(answer)]), f"{MALFORMED}: the JSON is not an object"
        ),
        "body-200-too-big": malformed(
            body(200, answer[:-1] + ', "padding": "' + "x" * (max_body + 10) + '"}'),
            f"the body is larger than {max_body} bytes",
        ),
        "gzip-bomb": malformed(
            encoded(gzip_bomb(max_body), "gzip"), f"the body is larger than {max_body} bytes"
        ),
        "gzip-stacked": malformed(
            encoded(STACKED_BOMB, "gzip, gzip"), "it has stacked Content-Encodings, which are refused"
        ),
        "encoding-unknown": malformed(
            encoded(answer.encode(), "br"), "it has an unsupported Content-Encoding"
        ),
        "gzip-corrupt": malformed(
            encoded(b"\x1f\x8b\x08\x00garbage-not-gzip", "gzip"), "its encoded body is corrupt"
        ),
        "gzip-truncated": malformed(
            encoded(gzip.compress(answer.encode())[:-12], "gzip"), "its encoded body is truncated"
        ),
        # the JSON is whole, but without the gzip trailer nothing proves it is what was sent
        "gzip-without-its-trailer": malformed(
            encoded(gzip.compress(answer.encode())[:-8], "gzip"), "its encoded body is truncated"
        ),
        "drip-body-deadline": Case(
            extra=deadline(max_attempts=2),
            faults=fault(Fault.drip(0.05), 2),
            error=PlugzReadTimeoutError,
            match=DEADLINE,
            requests=retried,
            **setup,
        ),
        "drip-headers-deadline": Case(
            extra=deadline(max_attempts=2),
            faults=fault(Fault.drip(0.05, head=True), 2),
            error=PlugzReadTimeoutError,
            match=DEADLINE,
            requests=retried,
            **setup,
        ),
    }
    if arrays:  # an array is an answer here; a bare number still is none
        del rows["body-200-array"]
        rows["body-200-number"] = malformed(
            body(200, b"42"), f"{MALFORMED}: the JSON is neither an object nor an array"
        )
    if not sent_once:  # a send answered by a fault never reaches the outbox: no success rows
        rows["gzip-body"] = Case(
            faults=encoded(gzip.compress(answer.encode()), "gzip"), has_code=OK, requests=1, **setup
        )
        rows["drip-then-200"] = Case(
            extra=deadline(), faults=fault(Fault.drip(0.05)), has_code=OK, requests=2, **setup
        )
    return [pytest.param(case, id=f"{name}-{row}") for row, case in rows.items()]


def status_answer(row: StatusRow) -> Fault:
    """The sandbox's answer for a row of the status table: its status and body (an HTML page as
    ``text/html``); a 3xx is the sandbox's redirect, to a ``Location`` holding the token."""
    if 300 <= row.status < 400:
        return Fault.redirect(TOKEN_URL, row.status)
    if isinstance(row.body, str):
        return Fault.status(row.status, body=row.body, headers={"Content-Type": "text/html"})
    return Fault.status(row.status, body=b"" if row.body is None else row.body)


def status_rows(name: str, *ids: str, sent_once: bool = False, **setup: Any) -> list[ParameterSet]:
    """The rows of the status table (tests/support/statuses.py; those named by ``ids``, or all)
    for the endpoint ``name``: the row's error and first fragment, after the retries a read
    makes of a ``retried`` row (all four, then its advice and why it gave up); a send
    (``sent_once``) is never repeated. ``setup`` goes to every row."""
    hidden = tuple(setup.pop("hidden", ()))
    params = [param for param in STATUS_TABLE if not ids or param.id in ids]
    assert len(params) == len(ids) or not ids, f"no such rows: {set(ids) - {p.id for p in params}}"
    rows = []
    for param in params:
        row = param.values[0]
        assert isinstance(row, StatusRow)
        retried = row.retried and not sent_once
        match = f"{row.says[0]}. {row.error.advice} ({GAVE_UP_4})" if retried else row.says[0]
        case = Case(
            faults=fault(status_answer(row), 4 if row.retried else 1),
            error=row.error,
            match=match,
            requests=4 if retried else 1,
            hidden=(*row.hidden, *hidden),
            **setup,
        )
        rows.append(pytest.param(case, id=f"{name}-{param.id}"))
    return rows


# --- the runners' shared vocabulary -------------------------------------------------------------

# What a waiting runner does on a transient error ("not yet"), instead of raising it.
WAITS_ON_TRANSIENT = {"poke": "keeps poking", "reschedule": "reschedules", "deferrable": "defers"}


def run_trigger(trigger: Any) -> dict[str, Any]:
    """Run a deferred sensor's trigger to its end (bounded); it must fire exactly one event."""
    (event,) = asyncio.run(asyncio.wait_for(trigger_events(trigger), timeout=10))
    return event
