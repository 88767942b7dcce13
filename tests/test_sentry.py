"""The Sentry scrubber: real sentry-sdk events of real hook calls, Airflow's own wiring, the walk.

Every event goes to an in-memory transport: nothing is ever sent.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
import sentry_sdk
from sentry_sdk.transport import Transport

from airflow_provider_plugz import _redaction
from airflow_provider_plugz import sentry as plugz_sentry
from airflow_provider_plugz._compat import AIRFLOW_V3
from airflow_provider_plugz.exceptions import PlugzAuthenticationError
from airflow_provider_plugz.hooks.plugz import PlugzHook
from airflow_provider_plugz.testing import Fault
from tests.conftest import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN

if TYPE_CHECKING:
    from collections.abc import Callable

    from sentry_sdk.envelope import Envelope

    from airflow_provider_plugz.testing import PlugzSandbox

DSN = "http://public@127.0.0.1:9/1"  # never contacted: every client here has a MemoryTransport
PIN = "794613"
SCRUBBED = plugz_sentry.SCRUBBED

# The walk's own secrets, distinct from conftest's: registering those here would hide a hook
# that forgot to register them itself.
WALK_TOKEN = "W4LK70KEN5ECRET000000000000001"
WALK_CLIENT_TOKEN = "W4LKC11E7T0KEN00000000000001"
WALK_URL = f"http://127.0.0.1:1/instances/W4LK1D/token/{WALK_TOKEN}/security/two-fa-code"
WALK_URL_SCRUBBED = "http://127.0.0.1:1/instances/***/token/***/security/two-fa-code"


class MemoryTransport(Transport):
    """A sentry-sdk transport that keeps envelopes in a list instead of sending them."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        return [event for envelope in self.envelopes if (event := envelope.get_event()) is not None]

    def text(self) -> str:
        """Everything the envelopes would have put on the wire, as text."""
        return "".join(envelope.serialize().decode("utf-8", errors="replace") for envelope in self.envelopes)


def leaked(text: str) -> set[str]:
    """Which of the sandbox's secrets (and the PIN) appear in ``text``, in any letter case."""
    secrets = {"instance token": INSTANCE_TOKEN, "Client-Token": CLIENT_TOKEN, "instance id": INSTANCE_ID}
    found = {name for name, secret in secrets.items() if secret.lower() in text.lower()}
    return found | ({"PIN"} if PIN in text else set())


def _reset_sentry() -> None:
    client = sentry_sdk.get_client()
    if client.is_active():
        client.close()
    sentry_sdk.get_global_scope().set_client(None)
    for scope in (sentry_sdk.get_isolation_scope(), sentry_sdk.get_current_scope()):
        scope.clear_breadcrumbs()
    from sentry_sdk.integrations.dedupe import DedupeIntegration

    DedupeIntegration.reset_last_seen()


@pytest.fixture
def clean_sentry() -> Iterator[None]:
    """No Sentry client and no breadcrumbs before the test, and none left behind after it."""
    _reset_sentry()
    yield
    _reset_sentry()


@pytest.fixture
def start_sentry(clean_sentry: None) -> Callable[..., MemoryTransport]:
    """``start_sentry(**options)`` inits the real sentry-sdk on a new MemoryTransport."""

    def start(**options: Any) -> MemoryTransport:
        transport = MemoryTransport()
        sentry_sdk.init(dsn=DSN, transport=transport, **options)
        return transport

    return start


@pytest.fixture
def walk_secrets() -> None:
    _redaction.remember(WALK_TOKEN, WALK_CLIENT_TOKEN)


# --------------------------------------------------------------------------- real hook calls


@pytest.mark.parametrize(
    ("scrubber", "auto_install", "expected_leaks"),
    [
        pytest.param(plugz_sentry.before_send, False, set(), id="scrubbed"),
        # No setting at all: the hook installs the scrubber when it reads its connection.
        pytest.param(None, True, set(), id="installed-by-the-hook"),
        # The control run proves the events do carry every secret, so the runs above can fail.
        pytest.param(
            None, False, {"instance token", "Client-Token", "instance id", "PIN"}, id="control-unscrubbed"
        ),
    ],
)
def test_hook_secrets_never_reach_sentry(
    sandbox: PlugzSandbox,
    start_sentry: Callable[..., MemoryTransport],
    monkeypatch: pytest.MonkeyPatch,
    scrubber: Any,
    auto_install: bool,
    expected_leaks: set[str],
) -> None:
    if not auto_install:
        monkeypatch.setattr(plugz_sentry, "install", lambda client=None: False)
    # Default integrations: the stdlib one records every http.client request URL as a breadcrumb.
    transport = start_sentry(
        before_send=scrubber, include_local_variables=True, auto_enabling_integrations=False
    )

    assert PlugzHook().get_pin_status().has_code is False
    # The real API echoes a rejected Client-Token; the body sits unredacted in check_response's locals.
    sandbox.inject(Fault.status(403, {"error": f"Client-Token {CLIENT_TOKEN} not allowed"}))
    with pytest.raises(PlugzAuthenticationError) as caught:
        PlugzHook().set_pin(PIN)
    sentry_sdk.capture_exception(caught.value)
    sentry_sdk.flush()

    (event,) = transport.events()
    assert leaked(transport.text()) == expected_leaks
    # The event is still useful: the error, the frames and their locals, the request breadcrumbs.
    (error,) = event["exception"]["values"]
    assert error["type"] == "PlugzAuthenticationError"
    assert "HTTP 403" in error["value"]
    frames = {frame["function"]: frame for frame in error["stacktrace"]["frames"]}
    assert "set_pin" in frames
    assert "code" in frames["set_pin"]["vars"]
    urls = [crumb["data"]["url"] for crumb in event["breadcrumbs"]["values"] if crumb.get("type") == "http"]
    assert len(urls) == 2  # the GET and the POST
    if scrubber is not None:
        assert urls == [f"{sandbox.base_url}/instances/***/token/***/security/two-fa-code"] * 2
        assert frames["set_pin"]["vars"]["code"] == "'***'"


def test_before_breadcrumb_scrubs_at_record_time(
    sandbox: PlugzSandbox, start_sentry: Callable[..., MemoryTransport]
) -> None:
    """For ``sentry_sdk.init`` called by hand: breadcrumbs are clean already when recorded."""
    transport = start_sentry(
        before_breadcrumb=plugz_sentry.before_breadcrumb, auto_enabling_integrations=False
    )

    PlugzHook().get_pin_status()
    sentry_sdk.capture_message("after the PIN status check")  # no before_send: crumbs as recorded
    sentry_sdk.flush()

    (event,) = transport.events()
    urls = [crumb["data"]["url"] for crumb in event["breadcrumbs"]["values"] if crumb.get("type") == "http"]
    assert urls == [f"{sandbox.base_url}/instances/***/token/***/security/two-fa-code"]
    assert leaked(transport.text()) == set()


# --------------------------------------------------------------------------- Airflow's own wiring


def airflow_sentry_client(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Configure ``[sentry]`` through the environment and init sentry-sdk the way Airflow does.

    Airflow 3: ``ConfiguredSentry.prepare_to_enrich_errors``, which every task process runs before
    the task. Airflow 2: ``airflow.sentry``'s import-time ``ConfiguredSentry()`` (a private copy of
    the module is executed, so the one Airflow already imported stays as it is).
    """
    monkeypatch.setenv("AIRFLOW__SENTRY__SENTRY_ON", "True")
    monkeypatch.setenv("AIRFLOW__SENTRY__SENTRY_DSN", DSN)
    monkeypatch.setenv("AIRFLOW__SENTRY__BEFORE_SEND", "airflow_provider_plugz.sentry.before_send")
    monkeypatch.setenv("AIRFLOW__SENTRY__TRANSPORT", f"{__name__}.MemoryTransport")
    monkeypatch.setenv("AIRFLOW__SENTRY__INCLUDE_LOCAL_VARIABLES", "True")
    if AIRFLOW_V3:
        from airflow.sdk.execution_time.sentry.configured import ConfiguredSentry

        ConfiguredSentry().prepare_to_enrich_errors("")
    else:
        spec = importlib.util.find_spec("airflow.sentry")
        assert spec is not None
        assert spec.loader is not None
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    client = sentry_sdk.get_client()
    assert client.is_active()
    if not isinstance(client.transport, MemoryTransport):
        # Airflow 3 (up to 3.3.2 at least) hands [sentry] transport over as a string too (#69464),
        # so sentry-sdk built its HTTP transport: swap it out before it can send anything.
        client.transport.kill()
        client.transport = MemoryTransport(client.options)
    return client


def capture_leaky_error() -> None:
    """An error whose message, locals and breadcrumbs carry the sandbox's secrets."""
    url = f"http://127.0.0.1:1/instances/{INSTANCE_ID}/token/{INSTANCE_TOKEN}/security/two-fa-code"
    sentry_sdk.add_breadcrumb(type="http", category="httplib", data={"url": url, "method": "GET"})
    headers = {"Client-Token": CLIENT_TOKEN}
    try:
        raise RuntimeError(f"GET {url} failed with headers {headers}")
    except RuntimeError as exc:
        sentry_sdk.capture_exception(exc)
    sentry_sdk.flush()


@pytest.mark.xfail(
    AIRFLOW_V3,
    reason="Airflow 3 (3.2 - 3.3.2 at least) passes [sentry] before_send to sentry-sdk as a string, which "
    "then drops every event (apache/airflow#69464); a pass here means Airflow fixed it: update the README",
    raises=AssertionError,
    strict=True,
)
def test_airflow_config_makes_the_scrubber_what_sentry_calls(
    monkeypatch: pytest.MonkeyPatch, clean_sentry: None
) -> None:
    _redaction.remember(INSTANCE_TOKEN, CLIENT_TOKEN, INSTANCE_ID)
    client = airflow_sentry_client(monkeypatch)
    assert client.options["before_send"] is plugz_sentry.before_send

    capture_leaky_error()

    (event,) = client.transport.events()
    assert event["exception"]["values"][0]["type"] == "RuntimeError"
    assert leaked(client.transport.text()) == set()


def test_install_makes_airflows_client_scrub(monkeypatch: pytest.MonkeyPatch, clean_sentry: None) -> None:
    """Whatever Airflow handed sentry-sdk (a string on Airflow 3), install() makes it our scrubber."""
    _redaction.remember(INSTANCE_TOKEN, CLIENT_TOKEN, INSTANCE_ID)
    client = airflow_sentry_client(monkeypatch)

    assert plugz_sentry.install() is True
    assert plugz_sentry.install() is True  # idempotent

    # [sentry] before_send named our own scrubber: it is not chained to itself.
    assert client.options["before_send"] is plugz_sentry.before_send
    assert client.options["before_breadcrumb"] is plugz_sentry.before_breadcrumb
    capture_leaky_error()
    (event,) = client.transport.events()
    assert event["exception"]["values"][0]["type"] == "RuntimeError"
    assert leaked(client.transport.text()) == set()


# --------------------------------------------------------------------------- install()


def _tag_event(event: Any, hint: Any) -> Any:
    """A user's own before_send: it adds a secret, which the scrubber after it must remove."""
    return {**event, "extra": {"added": WALK_TOKEN}}


def _drop_event(event: Any, hint: Any) -> None:
    return None


def fake_client(**options: Any) -> Any:
    return SimpleNamespace(options=options, is_active=lambda: True)


@pytest.mark.parametrize(
    ("configured", "event", "expected"),
    [
        pytest.param(None, {"message": WALK_URL}, {"message": WALK_URL_SCRUBBED}, id="none"),
        pytest.param(
            plugz_sentry.before_send, {"message": WALK_URL}, {"message": WALK_URL_SCRUBBED}, id="ours"
        ),
        pytest.param(
            "airflow_provider_plugz.sentry.before_send",
            {"message": WALK_URL},
            {"message": WALK_URL_SCRUBBED},
            id="ours-as-a-dotted-path",
        ),
        pytest.param(
            _tag_event, {"message": "m"}, {"message": "m", "extra": {"added": "***"}}, id="theirs-first"
        ),
        pytest.param(
            f"{__name__}._tag_event",
            {"message": "m"},
            {"message": "m", "extra": {"added": "***"}},
            id="theirs-as-a-dotted-path",
        ),
        pytest.param(_drop_event, {"message": WALK_URL}, None, id="theirs-drops-the-event"),
        pytest.param(
            "no_such_module.before_send", {"message": WALK_URL}, {"message": WALK_URL_SCRUBBED}, id="bad-path"
        ),
    ],
)
def test_install_chains_the_configured_callback(
    walk_secrets: None, configured: Any, event: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    client = fake_client(before_send=configured)

    assert plugz_sentry.install(client) is True
    installed = client.options["before_send"]
    assert installed(event, {}) == expected
    plugz_sentry.install(client)
    assert client.options["before_send"] is installed  # never chained twice
    for name in ("before_send_transaction", "before_send_log", "before_breadcrumb"):
        assert client.options[name] is getattr(plugz_sentry, name)


def test_install_warns_about_a_bad_dotted_path(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="airflow_provider_plugz.sentry"):
        plugz_sentry.install(fake_client(before_send="no_such_module.before_send"))
    assert "before_send='no_such_module.before_send' is not an importable callable" in caplog.text


class _ReadOnlyDict(dict[str, Any]):
    def __setitem__(self, key: str, value: Any) -> None:
        raise TypeError("read-only")


@pytest.mark.parametrize(
    "client",
    [
        pytest.param(SimpleNamespace(options={}, is_active=lambda: False), id="inactive"),
        pytest.param(SimpleNamespace(), id="no-options"),
        pytest.param(SimpleNamespace(options=_ReadOnlyDict(), is_active=lambda: True), id="options-refuse"),
    ],
)
def test_install_without_a_running_client(client: Any, clean_sentry: None) -> None:
    assert plugz_sentry.install(client) is False


def test_install_without_a_running_sentry(clean_sentry: None) -> None:
    assert not sentry_sdk.get_client().is_active()
    assert plugz_sentry.install() is False


# --------------------------------------------------------------------------- the walk


class _RaisingMapping(Mapping[str, Any]):
    """A mapping that cannot be read: its scrubbing fails, and only it is lost."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("unreadable")

    def __len__(self) -> int:
        return 1


OBJECT = object()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(WALK_URL, WALK_URL_SCRUBBED, id="instance-url"),
        pytest.param(f"token={WALK_TOKEN.lower()}", "token=***", id="secret-in-another-case"),
        pytest.param(
            "Client-Token S0MEWR0NGT0KEN not allowed",
            "Client-Token *** not allowed",
            id="echoed-client-token",
        ),
        pytest.param(
            {"breadcrumbs": {"values": [{"data": {"url": WALK_URL}, "level": "info"}]}},
            {"breadcrumbs": {"values": [{"data": {"url": WALK_URL_SCRUBBED}, "level": "info"}]}},
            id="nested-dicts-and-lists",
        ),
        pytest.param(("a", [WALK_TOKEN, ("b",)]), ("a", ["***", ("b",)]), id="tuples-stay-tuples"),
        pytest.param(
            {"n": 3, "x": 2.5, "ok": True, "none": None, 7: "seven", "object": OBJECT},
            {"n": 3, "x": 2.5, "ok": True, "none": None, 7: "seven", "object": OBJECT},
            id="non-string-scalars-untouched",
        ),
        pytest.param(
            {f"key {WALK_CLIENT_TOKEN}": "v"}, {"key ***": "v"}, id="a-key-holding-a-secret-is-redacted"
        ),
        pytest.param(
            {"body": f'{{"error":"Client-Token {WALK_CLIENT_TOKEN} not allowed"}}'.encode()},
            {"body": '{"error":"Client-Token *** not allowed"}'},
            id="bytes-redacted-as-text",
        ),
        pytest.param(
            {"ok": "fine", "bad": _RaisingMapping()}, {"ok": "fine", "bad": SCRUBBED}, id="unreadable-value"
        ),
    ],
)
def test_scrub(walk_secrets: None, value: Any, expected: Any) -> None:
    assert plugz_sentry.scrub(value) == expected


WALK_PIN = "202612"


def test_a_remembered_pin_is_scrubbed_only_where_it_stands_whole(walk_secrets: None) -> None:
    """A short secret (a PIN, as the hook registers it) leaves longer numbers and ids alone, and is
    still removed from a local (sentry-sdk records its repr), a value equal to it and a JSON body."""
    _redaction.remember(WALK_PIN)
    event = {
        "message": "build 20261207 order 202612-A, release 1.202612, job 202612_x",
        "exception": {
            "values": [
                {
                    "value": f"PIN {WALK_PIN} refused",
                    "stacktrace": {"frames": [{"vars": {"code": f"'{WALK_PIN}'", "build": "'20261207'"}}]},
                }
            ]
        },
        "extra": {"pin": WALK_PIN, "body": f'{{"code":"{WALK_PIN}"}}'.encode()},
    }
    assert plugz_sentry.scrub(event) == {
        "message": "build 20261207 order 202612-A, release 1.202612, job 202612_x",
        "exception": {
            "values": [
                {
                    "value": "PIN *** refused",
                    "stacktrace": {"frames": [{"vars": {"code": "'***'", "build": "'20261207'"}}]},
                }
            ]
        },
        "extra": {"pin": "***", "body": '{"code":"***"}'},
    }


def test_scrub_leaves_the_input_alone(walk_secrets: None) -> None:
    event = {"message": WALK_URL, "tags": [WALK_TOKEN]}
    plugz_sentry.scrub(event)
    assert event == {"message": WALK_URL, "tags": [WALK_TOKEN]}


@pytest.fixture
def redactions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every string the walk hands to the redaction, recorded."""
    seen: list[str] = []
    real = plugz_sentry._redact

    def spy(text: str) -> str:
        seen.append(text)
        return real(text)

    monkeypatch.setattr(plugz_sentry, "_redact", spy)
    return seen


def test_a_huge_event_costs_a_bounded_number_of_redactions(redactions: list[str]) -> None:
    crumbs = [{"message": f"crumb {i}", "data": {"i": i}} for i in range(plugz_sentry.MAX_VALUES)]

    scrubbed = plugz_sentry.before_send({"breadcrumbs": {"values": crumbs}}, {})

    values = scrubbed["breadcrumbs"]["values"]
    assert len(values) == len(crumbs)
    assert values[0] == {"message": "crumb 0", "data": {"i": 0}}
    assert values[-1] == SCRUBBED
    assert len(redactions) <= plugz_sentry.MAX_VALUES


def test_shared_subtrees_do_not_explode_the_walk(redactions: list[str]) -> None:
    """A list holding itself twice, 100 levels down, is 2**100 strings if walked naively."""
    value: Any = "leaf"
    for _ in range(100):
        value = [value, value]

    scrubbed = plugz_sentry.scrub(value)

    assert len(redactions) <= plugz_sentry.MAX_VALUES
    assert scrubbed[0] != SCRUBBED  # the top is kept; what lies too deep is replaced
    deepest = scrubbed
    for _ in range(plugz_sentry.MAX_DEPTH):
        deepest = deepest[0]
    assert deepest == SCRUBBED


def test_deep_nesting_is_cut_not_a_recursion_error() -> None:
    value: Any = "leaf"
    for _ in range(50_000):
        value = {"v": value}

    scrubbed = plugz_sentry.scrub(value)

    for _ in range(plugz_sentry.MAX_DEPTH):
        scrubbed = scrubbed["v"]
    assert scrubbed == SCRUBBED


def test_long_strings_are_redacted_up_to_a_character_budget(redactions: list[str]) -> None:
    chunk = "x" * (1024 * 1024)
    count = plugz_sentry.MAX_CHARS // len(chunk) + 4

    scrubbed = plugz_sentry.scrub([chunk] * count)

    assert sum(map(len, redactions)) <= plugz_sentry.MAX_CHARS
    assert scrubbed[0] == chunk
    assert scrubbed[-1] == SCRUBBED


def _poisoned(text: str) -> str:
    if "poison" in text:
        raise ValueError("redaction failed")
    return _redaction.redact_known(text)


def test_a_value_that_breaks_redaction_is_lost_not_the_event(
    walk_secrets: None, monkeypatch: pytest.MonkeyPatch, start_sentry: Callable[..., MemoryTransport]
) -> None:
    monkeypatch.setattr(plugz_sentry, "_redact", _poisoned)
    transport = start_sentry(before_send=plugz_sentry.before_send, default_integrations=False)

    sentry_sdk.capture_event({"message": WALK_URL, "extra": {"bad": "poison pill", "good": "kept"}})
    sentry_sdk.flush()

    (event,) = transport.events()
    assert event["message"] == WALK_URL_SCRUBBED
    assert event["extra"] == {"bad": SCRUBBED, "good": "kept"}


def test_an_event_that_cannot_be_read_is_dropped_not_sent() -> None:
    assert plugz_sentry.before_send(_RaisingMapping(), {}) is None
