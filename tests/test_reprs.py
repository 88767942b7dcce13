"""No repr shows a secret or personal data: walk every class of the package, build each with
distinctive values, and look for them in its ``repr()`` and ``str()``.

Every class defined in ``airflow_provider_plugz`` (found by importing every module) is in exactly
one of three places:

- built automatically (dataclasses, NamedTuples, exceptions): each field filled from its
  annotation, every free text with :data:`POISON` (a token, a Client-Token, a PIN, a phone and a
  message text at once) unless :data:`SHOWN` says the field is shown by design (an id, a
  method) or :data:`SERVER_TEXTS` says it is a server's or our own text (redacted where it is
  made, and quoting at most a phone number, which the repr must mask);
- built by an explicit factory in :data:`FACTORIES` (validated data, classes with ``__init__``);
- listed in :data:`NO_VALUES` with the reason it can hold none of these values, a reason the
  test checks (a Protocol, an enum, the default ``object`` repr).

A new class the tables do not cover fails :func:`test_every_class_is_covered`; a repr or str
holding any distinctive value (or more than a phone's last 4 digits) fails
:func:`test_repr_and_str_hold_no_secret_nor_personal_data`. Nested objects are covered by
checking the outer text, which holds their reprs.
"""

from __future__ import annotations

import collections
import collections.abc
import dataclasses
import enum
import importlib
import inspect
import pkgutil
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import pytest

import airflow_provider_plugz
from tests.conftest import LOOPBACK_PORT

# --- distinctive values --------------------------------------------------------------------------

TOKEN = "TOKEN0123456789abcdefTOKEN012345"
CLIENT_TOKEN = "CLIENTfedcbaZYXWVUTSRQCLIENTqpon"
PIN = "987123"
PHONE = "5511987654321"
TEXT = "Paciente Joao HIV+"
#: What every free-text field gets: all of the above at once, as a URL path and a JSON text would.
POISON = f"/instances/i/token/{TOKEN} Client-Token {CLIENT_TOKEN} code {PIN} to +{PHONE}: {TEXT}"
#: A text a server (or our own error message) may hold once secrets are redacted where it is made:
#: a phone number, which whoever shows it must mask.
SERVER_TEXT = f"You are not connected. Number +{PHONE} must restore the session."
#: What an ``Any`` field gets: a request body of a message and a PIN.
ANY_VALUE = {"phone": PHONE, "message": TEXT, "token": TOKEN, "clientToken": CLIENT_TOKEN, "code": PIN}

_RUN = 8  # a run of this many characters of a token shown is a leak (redaction's MIN_RUN)


def leaks(text: str) -> list[str]:
    """The distinctive values ``text`` shows, by name."""
    found = [
        f"the {name} (or {_RUN} characters of it)"
        for name, value in (("instance token", TOKEN), ("Client-Token", CLIENT_TOKEN))
        if any(value[i : i + _RUN] in text for i in range(len(value) - _RUN + 1))
    ]
    if PIN in text:
        found.append("the PIN")
    if PHONE[-5:] in LOOPBACK_PORT.sub("", text):  # masking keeps the last 4 digits; a fifth is too many
        found.append("the phone number (more than its last 4 digits)")
    found += [f"the message text ({word!r})" for word in TEXT.split() if word in text]
    return found


def _innocent_function() -> None:
    """A callable for fields that hold one."""


# --- discovery ---------------------------------------------------------------------------------


def _modules() -> list[types.ModuleType]:
    package = airflow_provider_plugz
    modules = [package]
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        modules.append(importlib.import_module(info.name))  # no module is skipped: an error fails
    return modules


MODULES = _modules()
CLASSES: dict[type, str] = {}  # class -> "module.QualName", each class once (aliases too)
for _module in MODULES:
    for _value in vars(_module).values():
        if inspect.isclass(_value) and _value.__module__ == _module.__name__:
            CLASSES.setdefault(_value, f"{_module.__name__}.{_value.__qualname__}")


def _name(cls: type) -> str:
    return CLASSES.get(cls, f"{cls.__module__}.{cls.__qualname__}")


def _short(cls: type) -> str:
    """``module.Class`` without the package prefix, as the tables key fields."""
    return _name(cls).removeprefix("airflow_provider_plugz.")


# Annotations are strings (``from __future__ import annotations``) and may name what a module
# imports for type checking only: resolve them in the module first, then in the whole package.
_NAMESPACE: dict[str, Any] = {}
for _module in MODULES:
    for _key, _value in vars(_module).items():
        _NAMESPACE.setdefault(_key, _value)
_NAMESPACE.update(
    {name: getattr(typing, name) for name in ("Any", "Literal", "Generic", "TypeVar", "ClassVar")}
)
_NAMESPACE.update(
    {name: getattr(collections.abc, name) for name in ("Callable", "Mapping", "Iterable", "Sequence")}
)
_NAMESPACE["collections"] = collections


# --- the tables --------------------------------------------------------------------------------

#: Fields shown by design ("module.Class.field"): the value the test gives and why it may show.
SHOWN: dict[str, tuple[Any, str]] = {
    "_declarations.Endpoint.method": ("GET", "an HTTP method"),
    "_declarations.Endpoint.path": ("status", "the path below the credentials, e.g. 'status'"),
    "_declarations.Endpoint.action": ("status check", "the words messages use for the call"),
    "connection.PlugzConfig.conn_id": ("plugz_repr", "an Airflow connection id"),
    "connection.PlugzConfig.base_url": ("https://api.example.invalid", "validated: no credentials"),
    "connection.PlugzConfig.ca_bundle": ("/etc/ssl/ca.pem", "a file path"),
    "connection.BaseURL.scheme": ("https", "validated URL part"),
    "connection.BaseURL.host": ("api.example.invalid", "validated URL part: no credentials"),
    "connection.BaseURL.path": ("/v1", "validated URL part: the API's prefix"),
    "endpoints.QueueInfo.oldest_created": ("2026-12-07T20:00:00+00:00", "a timestamp"),
    "endpoints.SentMessage.zaap_id": ("ZAAP-ID-1", "Plugz's id of the message"),
    "endpoints.SentMessage.message_id": ("WA-ID-1", "WhatsApp's id of the message"),
    "_declarations.Endpoint.array_key": ("messages", "the key a JSON array answer is read under"),
    "audit.columns.StatusResult.error_class": ("PlugzServerError", "an exception class name"),
    "audit.columns.FactResult.error_class": ("PlugzServerError", "an exception class name"),
    "audit.columns.FactResult.fact": ("connection", "a fact's name"),
    "audit.entries.CheckResult.error_class": ("PlugzNotFoundError", "an exception class name"),
    "audit.report.MergedReport.warnings": (
        ("chunk 2 of audit_pins reported no report",),
        "sentences we write about chunk reports: task ids and counts",
    ),
    "operators._once.Attempt.state": ("sent", "a ledger state"),
    "operators._once.Attempt.at": ("2026-12-07T20:00:00+00:00", "a timestamp"),
    "operators._once.Attempt.result": (
        {"zaap_id": "ZAAP-ID-1", "message_id": "WA-ID-1"},
        "what the ledger records: the message's ids (messages.py)",
    ),
    "audit.fanout.FleetRun.conn_ids": (("plugz_a", "plugz_b"), "Airflow connection ids"),
    "audit.fanout.FleetRun.cancelled": (("plugz_c",), "Airflow connection ids"),
    "audit.fanout.FleetRun.never_started": (("plugz_d",), "Airflow connection ids"),
    "testing.dag_run.DagRunReport.dag_id": ("plugz_dag", "an Airflow DAG id"),
    "testing.dag_run.DagRunReport.run_id": ("manual__1", "an Airflow run id"),
    "testing.dag_run.DagRunReport.state": ("failed", "a run state"),
    "testing.dag_run.DagRunReport.task_states": ({"send": "failed"}, "task ids and states"),
    "testing.sandbox._api.ApiHandler.handler": (_innocent_function, "a function"),
    "testing.sandbox._http.Route.handler": (_innocent_function, "a function"),
    "testing.sandbox._http.Request.method": ("POST", "an HTTP method"),
    "testing.sandbox._http.Request.authority": ("127.0.0.1:9", "host and port, validated: no user info"),
    "testing.sandbox._http.Target.authority": ("127.0.0.1:9", "host and port, validated: no user info"),
    "testing.sandbox._state._Stored.instance_id": ("sandbox-a", "a sandbox fixture id"),
    "testing.sandbox._state._Stored.zaap_id": ("ZAAP-ID-1", "the sandbox's id of the message"),
    "testing.sandbox._state._Stored.message_id": ("WA-ID-1", "the sandbox's id of the message"),
    "testing.sandbox._http.Reply.content_type": ("application/json", "a media type"),
    "testing.sandbox._faults.Fault.content_type": ("text/html", "a media type"),
    "testing.sandbox._models.RecordedRequest.method": ("POST", "an HTTP method"),
    "testing.sandbox._models.RecordedRequest.instance_id": ("sandbox-a", "a sandbox fixture id"),
    "testing.sandbox._models.SandboxInstance.instance_id": ("sandbox-a", "a sandbox fixture id"),
    "testing.sandbox._models.SentText.instance_id": ("sandbox-a", "a sandbox fixture id"),
    "testing.sandbox._models.SentText.zaap_id": ("ZAAP-ID-1", "the sandbox's id of the message"),
    "testing.sandbox._models.SentText.message_id": ("WA-ID-1", "the sandbox's id of the message"),
    "testing.sandbox._cli.InstanceSpec.instance_id": ("sandbox-a", "a sandbox fixture id"),
    "testing.sandbox._state._PendingFault.instance_id": ("sandbox-a", "a sandbox fixture id"),
}

#: Texts a server sent, or we wrote from what it sent: secrets are redacted where they are made
#: (``Answer.text``, ``check_response``); a phone number may remain, and reprs mask it.
SERVER_TEXTS = {
    "endpoints.InstanceStatus.error",
    *(
        f"_device.DeviceInfo.{name}"
        for name in (
            "wa_version",
            "platform",
            "os_version",
            "os_build_number",
            "manufacturer",
            "model",
            "mcc",
            "mnc",
            "session_name",
        )
    ),
}


def _sandbox_state() -> Any:
    from airflow_provider_plugz.testing.sandbox._state import SandboxState

    state = SandboxState(CLIENT_TOKEN)
    state.add_instance("sandbox-a", TOKEN, has_code=True, kind="mobile", expired=False, phone=PHONE)
    return state


def _exception(cls: type[BaseException]) -> BaseException:
    from airflow_provider_plugz.exceptions import PlugzError

    if issubclass(cls, PlugzError):
        # ``server_message`` is kept for callers; the texts show only the message we wrote.
        return cls("Plugz said no. Check the connection.", http_status=400, server_message=POISON)
    return cls("Plugz said no. Check the connection.")


def _status_results() -> tuple[Any, ...]:
    from airflow_provider_plugz.operators.audit import StatusResult

    return (
        StatusResult(connected=False, session=None, smartphone_connected=True, reason=SERVER_TEXT),
        StatusResult(error_class="PlugzServerError", message=SERVER_TEXT),
    )


def _fact_results() -> tuple[Any, ...]:
    from airflow_provider_plugz.audit.columns import FactResult
    from airflow_provider_plugz.endpoints import CONNECTION, FACTS, InstanceStatus

    status = InstanceStatus(connected=False, session=None, smartphone_connected=True, error=SERVER_TEXT)
    return (
        FactResult.of(CONNECTION, status),
        *(FactResult.failure(fact, "plugz_a", _exception(_plugz_error())) for fact in FACTS.values()),
    )


def _plugz_error() -> type[BaseException]:
    from airflow_provider_plugz.exceptions import PlugzServerError

    return PlugzServerError


def _facts_read() -> tuple[Any, ...]:
    from airflow_provider_plugz.audit.checks import FactsRead
    from airflow_provider_plugz.endpoints import InstanceStatus, PinStatus

    status = InstanceStatus(connected=False, session=None, smartphone_connected=True, error=SERVER_TEXT)
    return (
        FactsRead(PinStatus(True), {"connection": status}),
        FactsRead(_exception(_plugz_error()), {"connection": _exception(_plugz_error())}),  # type: ignore[arg-type]
    )


def _check_results() -> tuple[Any, ...]:
    from airflow_provider_plugz.operators.audit import CheckResult

    answered, failed = _status_results()
    return (
        CheckResult(has_code=True, status=answered),
        CheckResult(error_class="PlugzNotFoundError", message=SERVER_TEXT, status=failed),
    )


def _audit_report() -> tuple[Any, ...]:
    from airflow_provider_plugz.operators.audit import AuditReport

    pin, error = _check_results()
    return (AuditReport({"plugz_a": pin, "plugz_b": error}, status_checked=True),)


def _fleet_run() -> tuple[Any, ...]:
    from airflow_provider_plugz.exceptions import PlugzNotFoundError
    from airflow_provider_plugz.hooks.fleet import FleetRun

    return (
        FleetRun(
            conn_ids=("plugz_a", "plugz_b"),
            max_concurrency=2,
            values={"plugz_a": build_one(_class("_device.DeviceInfo"))},
            errors={"plugz_b": _exception(PlugzNotFoundError)},
            cancelled=(),
            never_started=(),
        ),
    )


def _dag_run_report() -> tuple[Any, ...]:
    from airflow_provider_plugz.testing.dag_run import DagRunReport

    return (
        DagRunReport(
            dag_id="plugz_dag",
            run_id="manual__1",
            state="failed",
            task_states={"send": "failed", "render": "success"},
            # A user's own task may push anything, and raise anything.
            xcom={"render": {"return_value": ANY_VALUE, "text": POISON}},
            errors={"send": ValueError(POISON), "render": POISON},
        ),
    )


def _operators() -> dict[str, Any]:
    from airflow_provider_plugz.endpoints import FACTS
    from airflow_provider_plugz.operators.audit import (
        PlugzAuditMergeOperator,
        PlugzFleetAuditOperator,
        PlugzPinAuditOperator,
    )
    from airflow_provider_plugz.operators.messages import PlugzSendMessageOperator
    from airflow_provider_plugz.operators.plugz import (
        PlugzInstanceStatusOperator,
        PlugzPinBranchOperator,
        PlugzPinStatusOperator,
        PlugzQueueOperator,
        PlugzSetPinOperator,
    )
    from airflow_provider_plugz.sensors.plugz import (
        PlugzInstanceStatusSensor,
        PlugzPinStatusSensor,
        PlugzPollingSensor,
    )

    conn = {"plugz_conn_id": "plugz_repr"}
    return {
        "operators.messages.PlugzSendMessageOperator": lambda: PlugzSendMessageOperator(
            task_id="send", phone=PHONE, message=POISON, **conn
        ),
        "operators.plugz.PlugzPinStatusOperator": lambda: PlugzPinStatusOperator(task_id="pin", **conn),
        "operators.plugz.PlugzInstanceStatusOperator": lambda: PlugzInstanceStatusOperator(
            task_id="status", **conn
        ),
        "operators.plugz.PlugzQueueOperator": lambda: PlugzQueueOperator(task_id="queue", **conn),
        "operators.plugz.PlugzPinBranchOperator": lambda: PlugzPinBranchOperator(
            task_id="branch", if_pin_set="a", if_pin_missing="b", **conn
        ),
        "operators.plugz.PlugzSetPinOperator": lambda: PlugzSetPinOperator(
            task_id="set_pin", pin_variable="plugz_pin", **conn
        ),
        "operators.audit.PlugzPinAuditOperator": lambda: PlugzPinAuditOperator(
            task_id="audit", plugz_conn_ids=["plugz_a", "plugz_b"]
        ),
        "operators.audit.PlugzFleetAuditOperator": lambda: PlugzFleetAuditOperator(
            task_id="audit", plugz_conn_ids=["plugz_a", "plugz_b"], checks=list(FACTS)
        ),
        "operators.audit_merge.PlugzAuditMergeOperator": lambda: PlugzAuditMergeOperator(
            task_id="merge", reports=[]
        ),
        "sensors.plugz.PlugzPollingSensor": lambda: PlugzPollingSensor(task_id="wait", **conn),
        "sensors.plugz.PlugzPinStatusSensor": lambda: PlugzPinStatusSensor(task_id="wait_pin", **conn),
        "sensors.plugz.PlugzInstanceStatusSensor": lambda: PlugzInstanceStatusSensor(
            task_id="wait_status", **conn
        ),
    }


def _factories() -> dict[str, Any]:
    """``module.Class`` -> a function returning one instance or a tuple of instances."""
    from airflow_provider_plugz import _client_logs, _redaction, endpoints, sentry
    from airflow_provider_plugz.hooks import plugz as hooks
    from airflow_provider_plugz.notifications.plugz import PlugzNotifier, _Variables
    from airflow_provider_plugz.operators import _once
    from airflow_provider_plugz.testing.sandbox import (
        _api,
        _app,
        _control,
        _faults,
        _http,
        _models,
        _render,
        _server,
        _wire,
    )
    from airflow_provider_plugz.transports import async_httpx, body, sync_requests
    from airflow_provider_plugz.transports import requests_deadline as deadline
    from airflow_provider_plugz.triggers import events
    from airflow_provider_plugz.triggers import plugz as triggers

    def index() -> Any:
        made = _redaction._Index()
        made.add([TOKEN, CLIENT_TOKEN, PIN])
        return made

    def sandbox() -> Any:
        made = _server.PlugzSandbox(CLIENT_TOKEN)
        made.add_instance("sandbox-a", TOKEN, phone=PHONE, has_code=True)
        return made

    def detector() -> Any:
        made = events.ChangeDetector("plugz_repr", ("has_code", "state"), False)
        made.feed({"has_code": True, "state": "connected"})
        return made

    def ledger() -> Any:
        return _once.AttemptLedger(_once.VariableStore(("plugz_dag", "send", PHONE)), "k", 1, "a message")

    return {
        **_operators(),
        "transports.body.BodyReader": lambda: body.BodyReader(None),
        "_redaction.Secret": lambda: (_redaction.Secret(PIN), _redaction.Secret(TOKEN)),
        "_redaction._Index": index,
        "hooks.plugz.PlugzHook": lambda: hooks.PlugzHook(plugz_conn_id="plugz_repr"),
        "transports.sync_requests._Session": sync_requests._Session,
        "transports.async_httpx._Progress": async_httpx._Progress,
        "_client_logs._RedactCredentialUrls": _client_logs._RedactCredentialUrls,
        "transports.requests_deadline._Watch": lambda: deadline._Watch(30.0),
        "transports.requests_deadline._Watched": lambda: deadline._Watched("api.example.invalid"),
        "transports.requests_deadline._WatchedHTTPConnection": lambda: deadline._WatchedHTTPConnection(
            "api.example.invalid"
        ),
        "transports.requests_deadline._WatchedHTTPSConnection": lambda: deadline._WatchedHTTPSConnection(
            "api.example.invalid"
        ),
        "transports.requests_deadline._WatchedHTTPPool": lambda: deadline._WatchedHTTPPool(
            "api.example.invalid"
        ),
        "transports.requests_deadline._WatchedHTTPSPool": lambda: deadline._WatchedHTTPSPool(
            "api.example.invalid"
        ),
        "transports.requests_deadline.DeadlineAdapter": deadline.DeadlineAdapter,
        "audit.fanout.FleetRun": _fleet_run,
        "notifications.plugz.PlugzNotifier": lambda: PlugzNotifier(PHONE, POISON, plugz_conn_id="plugz_repr"),
        "notifications.plugz._Variables": lambda: (_Variables(), _Variables(deserialize_json=True)),
        "operators._once.AttemptLedger": ledger,
        "operators._once.VariableStore": lambda: _once.VariableStore(("plugz_dag", "send", PHONE, TEXT)),
        "audit.columns.StatusResult": _status_results,
        "audit.columns.FactResult": _fact_results,
        "audit.checks.FactsRead": _facts_read,
        "_declarations.Fact": lambda: tuple(endpoints.FACTS.values()),
        "audit.entries.CheckResult": _check_results,
        "audit.report.AuditReport": _audit_report,
        "sentry._Walk": sentry._Walk,
        "testing.dag_run.DagRunReport": _dag_run_report,
        "testing.sandbox._models.Headers": lambda: _models.Headers(
            {"client-token": CLIENT_TOKEN, "x-recipient": PHONE, "content-type": "application/json"}
        ),
        "testing.sandbox._state.SandboxState": _sandbox_state,
        "testing.sandbox._faults.Fault": lambda: (
            _faults.Fault("status", 400, POISON.encode(), "application/json", (("X-Echo", POISON),)),
            _faults.Fault.status(400, {"error": POISON}),
        ),
        # Header names are the sandbox's own (a fault's are validated); the values may echo anything.
        "testing.sandbox._http.Reply": lambda: _http.Reply(
            200, POISON.encode(), headers=(("X-Echo", POISON),), raw=POISON.encode()
        ),
        # Its message says why a target is refused, never quoting it (the target holds a token).
        "testing.sandbox._http.TargetError": lambda: _http.TargetError(
            400, "the request target is malformed"
        ),
        "testing.sandbox._api.PlugzApi": lambda: _api.PlugzApi(_sandbox_state()),
        "testing.sandbox._app.SandboxApp": lambda: _app.SandboxApp(_sandbox_state()),
        "testing.sandbox._control.ControlApi": lambda: _control.ControlApi(_sandbox_state()),
        "testing.sandbox._http.Router": lambda: _http.Router(
            {("GET", "/instances/{instance_id}/token/{token}/status"): _innocent_function}
        ),
        "testing.sandbox._server.PlugzSandbox": sandbox,
        "testing.sandbox._render._DateCache": _render._DateCache,
        "testing.sandbox._wire.HttpServer": lambda: _wire.HttpServer(
            _app.SandboxApp(_sandbox_state()), idle_timeout=1.0, max_connections=1
        ),
        "triggers.events.ChangeDetector": detector,
        "triggers.events._Track": lambda: events._Track(
            reported="connected", recent=collections.deque(["connected", "session_lost"])
        ),
        "triggers.events.PlugzSecurityEventTrigger": lambda: events.PlugzSecurityEventTrigger("plugz_repr"),
        "triggers.plugz.PlugzPollingTrigger": lambda: triggers.PlugzPollingTrigger(
            "plugz_repr", {"has_code": True}
        ),
        "triggers.plugz.PlugzPinStatusTrigger": lambda: triggers.PlugzPinStatusTrigger("plugz_repr"),
        "triggers.plugz.PlugzInstanceStatusTrigger": lambda: triggers.PlugzInstanceStatusTrigger(
            "plugz_repr", {"state": "connected"}
        ),
    }


#: Classes that hold none of these values, and why; ``_holds`` checks each reason.
NO_VALUES: dict[str, str] = {
    "_intervals._Log": "protocol",
    "connection.ConnectionLike": "protocol",
    "operators._once.RecordStore": "protocol",
    "transports.failures.TransportFailure": "enum",
    # Built only around a running event loop's sockets and streams.
    "testing.sandbox._wire._Connection": "object repr",
    # Registers a fork hook per instance; one lives in its module.
    "transports.requests_deadline._Watchdog": "object repr",
    # A mixin: its operators and sensors are built in _operators(); it holds only a conn id.
    "operators._base.PlugzHookMixin": "object repr",
}


def _holds(cls: type, reason: str) -> bool:
    if reason == "protocol":
        return bool(getattr(cls, "_is_protocol", False))
    if reason == "enum":
        return issubclass(cls, enum.Enum)
    if reason == "object repr":
        return cls.__repr__ is object.__repr__ and cls.__str__ is object.__str__
    raise AssertionError(f"unknown reason {reason!r}")


# --- building --------------------------------------------------------------------------------


def _class(short: str) -> type:
    for cls in CLASSES:
        if _short(cls) == short:
            return cls
    raise AssertionError(f"no class {short} in the package")


def _automatic(cls: type) -> bool:
    """Built from its fields' annotations: dataclasses, NamedTuples and exceptions."""
    return dataclasses.is_dataclass(cls) or hasattr(cls, "_fields") or issubclass(cls, BaseException)


def _fields(cls: type) -> list[str]:
    if dataclasses.is_dataclass(cls):
        return [item.name for item in dataclasses.fields(cls) if item.init]
    return list(cls._fields)  # type: ignore[attr-defined]


def _value(tp: Any, where: str) -> Any:
    if where in SHOWN:
        return SHOWN[where][0]
    if where in SERVER_TEXTS:
        return SERVER_TEXT
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any or isinstance(tp, TypeVar):
        return ANY_VALUE
    if origin in (Union, types.UnionType):
        return _value(next(arg for arg in args if arg is not type(None)), where)
    if origin is Literal:
        return args[0]
    if tp is str:
        return POISON
    if tp is bytes:
        return POISON.encode()
    if tp is bool:
        return True
    if tp is int:
        return 7
    if tp is float:
        return 0.5
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return (_value(args[0], where),)
        return tuple(_value(arg, where) for arg in args)
    if origin is list:
        return [_value(args[0], where)]
    if origin in (dict, collections.abc.Mapping):
        return {_value(args[0], where): _value(args[1], where)}
    if origin is collections.deque:
        return collections.deque([_value(args[0], where)])
    if origin is collections.abc.Callable:
        return _innocent_function
    if isinstance(tp, type) and issubclass(tp, BaseException):
        return _exception(tp if tp in CLASSES else _class("exceptions.PlugzError"))
    if isinstance(tp, type) and tp in CLASSES:
        return build_one(tp)
    if origin in CLASSES:  # a generic class, e.g. Endpoint[Any]
        return build_one(origin)
    raise AssertionError(f"{where}: cannot fill a {tp!r}; add a factory for the class")


def build(cls: type) -> tuple[Any, ...]:
    """Instances of ``cls`` holding the distinctive values."""
    factory = FACTORIES.get(_short(cls))
    if factory is not None:
        made = factory()
        return made if isinstance(made, tuple) and not hasattr(made, "_fields") else (made,)
    if issubclass(cls, BaseException):
        return (_exception(cls),)
    module = importlib.import_module(cls.__module__)
    hints = get_type_hints(cls, globalns=_NAMESPACE, localns=dict(vars(module)))
    return (cls(**{name: _value(hints[name], f"{_short(cls)}.{name}") for name in _fields(cls)}),)


def build_one(cls: type) -> Any:
    return build(cls)[0]


FACTORIES = _factories()


# --- the tests ---------------------------------------------------------------------------------


def test_every_class_is_covered() -> None:
    """Each class is built automatically, by a factory, or listed with a reason - exactly one."""
    automatic = {_short(cls) for cls in CLASSES if _automatic(cls)} - set(FACTORIES) - set(NO_VALUES)
    assert not set(FACTORIES) & set(NO_VALUES)
    discovered = {_short(cls) for cls in CLASSES}
    covered = automatic | set(FACTORIES) | set(NO_VALUES)
    assert sorted(discovered - covered) == [], "new classes: add a factory or a NO_VALUES entry"
    assert sorted(covered - discovered) == [], "stale entries: the class is gone"
    stale_fields = {where.rsplit(".", 1)[0] for where in (*SHOWN, *SERVER_TEXTS)} - discovered
    assert sorted(stale_fields) == []


def test_the_walk_finds_the_package() -> None:
    """The walk saw the modules and classes it must (so the tables above mean something)."""
    names = {module.__name__ for module in MODULES}
    assert {
        "airflow_provider_plugz._protocol",
        "airflow_provider_plugz.testing.sandbox._models",
        "airflow_provider_plugz.triggers.events",
        "airflow_provider_plugz.operators.audit",
    } <= names
    assert len(CLASSES) > 100


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(TOKEN, id="token"),
        pytest.param(f"TOKEN***{TOKEN[15:]}", id="most-of-a-token"),
        pytest.param(CLIENT_TOKEN[:10], id="start-of-client-token"),
        pytest.param(f"x{PIN}x", id="pin"),
        pytest.param(f"***{PHONE[-5:]}", id="five-digits-of-phone"),
        pytest.param("HIV+", id="word-of-text"),
        pytest.param(POISON, id="poison"),
        pytest.param(SERVER_TEXT, id="server-text"),
        pytest.param(repr(ANY_VALUE), id="any-value"),
    ],
)
def test_leaks_sees_each_value(text: str) -> None:
    assert leaks(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"***{PHONE[-4:]}", id="last-4-digits"),
        pytest.param("Body(json=<dict of 2 keys>, secrets=<1 hidden>, private=<2 hidden>)", id="body"),
        pytest.param("Secret('***')", id="secret"),
    ],
)
def test_leaks_lets_masked_values_pass(text: str) -> None:
    assert leaks(text) == []


@pytest.mark.parametrize("cls", [pytest.param(cls, id=_short(cls)) for cls in sorted(CLASSES, key=_short)])
def test_repr_and_str_hold_no_secret_nor_personal_data(cls: type) -> None:
    reason = NO_VALUES.get(_short(cls))
    if reason is not None:
        assert _holds(cls, reason), f"{_short(cls)} is listed as {reason!r}, which no longer holds"
        return
    for made in build(cls):
        texts = {"repr": repr(made), "str": str(made)}
        assert {kind: leaks(text) for kind, text in texts.items() if leaks(text)} == {}, texts
