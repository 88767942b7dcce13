"""``PlugzPinAuditOperator``: check the PIN of a whole fleet of WhatsApp numbers in one task.

Cheap to import: DAG files import this on every parse, so asyncio, the hook, httpx and
requests are loaded only when the task runs.

The operator is the Airflow side of the audit: it reads and validates its arguments, works out
the deadline (``audit_timeout``, never later than the task's ``execution_timeout`` allows),
hands the connection ids to the fan-out (:func:`airflow_provider_plugz.hooks.fleet.check_fleet`:
``max_concurrency`` workers over shared, kept-alive HTTP connections, cancelled at the
deadline), turns what came back into an :class:`AuditReport` (one :class:`CheckResult` per
connection, and the counts), logs a summary, pushes :meth:`AuditReport.to_xcom` and applies
the ``fail_*`` options.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_plugz._compat import BaseOperator
from airflow_provider_plugz.exceptions import PlugzAuditError, PlugzError, PlugzTimeoutError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Context

    from airflow_provider_plugz.hooks.fleet import FleetRun
    from airflow_provider_plugz.hooks.plugz import PinStatus, PlugzHook

#: XCom key of the report; it is pushed before the task fails on ``fail_*``, so it is never lost.
REPORT_XCOM_KEY = "report"
DEFAULT_MAX_CONCURRENCY = 32
#: How long the whole audit may take when the task has no shorter ``execution_timeout``.
DEFAULT_AUDIT_TIMEOUT = timedelta(minutes=30)
#: Under an ``execution_timeout``, the audit ends this share of it earlier (at least
#: ``REPORT_MARGIN_MIN``, at most ``REPORT_MARGIN_MAX`` seconds, and never more than half of
#: it), so that the report is logged and pushed before Airflow kills the task.
REPORT_MARGIN_SHARE = 0.1
REPORT_MARGIN_MIN = 5.0
REPORT_MARGIN_MAX = 60.0
#: ``error_class`` of a number the audit did not get to check before its deadline.
TIMED_OUT_ERROR_CLASS = PlugzTimeoutError.__name__

_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class CheckResult:
    """One connection's entry in the report: its PIN answer, or why there is none.

    Exactly one of ``has_code`` and ``error_class`` is set; ``message`` goes with
    ``error_class`` and never holds a secret. ``timed_out`` marks a number the audit's own
    deadline came before (a ``PlugzTimeoutError`` of one HTTP attempt is an ordinary error).
    Build one with :meth:`pin`, :meth:`failure` or :meth:`not_checked`.
    """

    has_code: bool | None = None
    error_class: str | None = None
    message: str | None = None
    timed_out: bool = False

    def __post_init__(self) -> None:
        if self.has_code is None:
            if not self.error_class or self.message is None:
                raise ValueError("a CheckResult without has_code needs an error_class and a message")
        elif not isinstance(self.has_code, bool):
            raise ValueError(f"has_code must be a bool, got {type(self.has_code).__name__}")
        elif self.error_class is not None or self.message is not None or self.timed_out:
            raise ValueError("a CheckResult with has_code has no error_class, message or timed_out")

    @classmethod
    def pin(cls, has_code: bool) -> CheckResult:
        """A number that was checked: whether its WhatsApp account has a PIN."""
        return cls(has_code=has_code)

    @classmethod
    def failure(cls, conn_id: str, err: BaseException) -> CheckResult:
        """A check that raised: its class and a text known to be secret-free."""
        if _is_reportable(err):
            return cls(error_class=type(err).__name__, message=str(err))
        # Anything else is a bug somewhere; its text may quote a URL (and so the instance
        # token): keep only the class and where it was raised.
        name = type(err).__name__
        return cls(
            error_class=name,
            message=(
                f"unexpected {name}{_raised_at(err)} while checking connection {conn_id!r}; "
                "this is not a Plugz error: please report it to airflow-provider-plugz."
            ),
        )

    @classmethod
    def not_checked(cls, deadline_seconds: float, *, in_flight: bool, max_concurrency: int) -> CheckResult:
        """A number the audit did not finish checking before its deadline."""
        if in_flight:
            what = (
                "its check was still running (reading the connection or waiting for Plugz, "
                "retries included) and was cancelled"
            )
        else:
            what = f"its check never started: all {max_concurrency} workers were busy with slower numbers"
        return cls(
            error_class=TIMED_OUT_ERROR_CLASS,
            message=(
                f"not checked within the audit's {_seconds(deadline_seconds)} deadline; {what}. Raise "
                "audit_timeout (and the task's execution_timeout, which caps it) or max_concurrency, "
                "or check why this number's Plugz instance answers slowly."
            ),
            timed_out=True,
        )

    @property
    def severity(self) -> int:
        """0 could not be checked, 1 no PIN, 2 PIN set: the log lists problems first."""
        return 0 if self.has_code is None else 2 if self.has_code else 1

    def describe(self) -> str:
        """The result in a few words, for the task log."""
        if self.has_code is not None:
            return "PIN set" if self.has_code else "NO PIN"
        return f"ERROR {self.error_class}: {self.message}"

    def to_xcom(self) -> dict[str, Any]:
        """``{"has_code": bool}`` or ``{"error_class": str, "message": str}``."""
        if self.has_code is not None:
            return {"has_code": self.has_code}
        return {"error_class": self.error_class, "message": self.message}


@dataclass(frozen=True)
class AuditReport:
    """The audit's outcome: one :class:`CheckResult` per connection id, in the order given, and
    the counts. ``errors`` counts every entry without a PIN answer, ``timed_out`` the part of
    them the audit's deadline came before. :meth:`to_xcom` is the JSON the task returns."""

    results: Mapping[str, CheckResult] = field(repr=False)
    total: int = field(init=False)
    with_pin: int = field(init=False)
    without_pin: int = field(init=False)
    errors: int = field(init=False)
    timed_out: int = field(init=False)

    def __post_init__(self) -> None:
        results = MappingProxyType(dict(self.results))  # read-only, and no longer the caller's
        with_pin = sum(1 for r in results.values() if r.has_code is True)
        without_pin = sum(1 for r in results.values() if r.has_code is False)
        for name, value in (
            ("results", results),
            ("total", len(results)),
            ("with_pin", with_pin),
            ("without_pin", without_pin),
            ("errors", len(results) - with_pin - without_pin),
            ("timed_out", sum(1 for r in results.values() if r.timed_out)),
        ):
            object.__setattr__(self, name, value)

    @classmethod
    def from_run(cls, run: FleetRun[PinStatus], *, deadline_seconds: float) -> AuditReport:
        """The report of a fan-out of PIN checks that had ``deadline_seconds`` to finish."""
        results: dict[str, CheckResult] = {}
        for conn_id in run.conn_ids:
            if conn_id in run.values:
                results[conn_id] = CheckResult.pin(run.values[conn_id].has_code)
            elif conn_id in run.errors:
                results[conn_id] = CheckResult.failure(conn_id, run.errors[conn_id])
            else:
                results[conn_id] = CheckResult.not_checked(
                    deadline_seconds,
                    in_flight=conn_id in run.cancelled,
                    max_concurrency=run.max_concurrency,
                )
        return cls(results)

    @property
    def missing_pin(self) -> list[str]:
        """The connection ids whose account has no PIN."""
        return [conn_id for conn_id, r in self.results.items() if r.has_code is False]

    @property
    def failed(self) -> list[str]:
        """The connection ids that could not be checked (timed-out ones included)."""
        return [conn_id for conn_id, r in self.results.items() if r.has_code is None]

    def to_xcom(self) -> dict[str, Any]:
        """The JSON-safe report: counts, then ``results`` (see :class:`PlugzPinAuditOperator`)."""
        return {
            "total": self.total,
            "with_pin": self.with_pin,
            "without_pin": self.without_pin,
            "errors": self.errors,
            "timed_out": self.timed_out,
            "results": {conn_id: r.to_xcom() for conn_id, r in self.results.items()},
        }


class PlugzPinAuditOperator(BaseOperator):
    """Check whether every listed Plugz connection's WhatsApp account has a PIN, concurrently.

    One failing instance never hides the others: each connection gets its own entry in
    the report, either ``{"has_code": bool}`` or ``{"error_class": "PlugzNotFoundError",
    "message": "..."}`` (the provider's error text, which never holds a secret)::

        {
            "total": 4, "with_pin": 1, "without_pin": 1, "errors": 2, "timed_out": 1,
            "results": {
                "plugz_a": {"has_code": true},
                "plugz_b": {"has_code": false},
                "plugz_c": {"error_class": "PlugzNotFoundError", "message": "Plugz PIN status ..."},
                "plugz_d": {"error_class": "PlugzTimeoutError",
                            "message": "not checked within the audit's 1,740 s deadline; ..."},
            },
        }

    Only connections of type ``plugz`` are used: any other id (an ``http`` or ``postgres``
    connection, say, named in a run's configuration) gets a ``PlugzConfigurationError`` entry
    and no request is made with its credentials.

    **Deadline.** The audit as a whole ends after ``audit_timeout`` and, when the task has an
    ``execution_timeout``, before it: at most ``execution_timeout`` less a margin of 10% (5 s
    to 60 s, never more than half of it) left for writing the report. At the deadline the
    checks in flight are cancelled, every HTTP client is closed, and each number not checked
    by then gets a ``PlugzTimeoutError`` entry ("not checked within the audit's N s
    deadline; ..."), counted under ``errors`` and under ``timed_out``; the finished ones are
    kept. The log says which deadline applied.

    The report is built as an :class:`AuditReport` (one :class:`CheckResult` per connection)
    and returned as its :meth:`~AuditReport.to_xcom` JSON (XCom ``return_value``), also pushed
    under the XCom key ``report``, which is written before the task fails because of
    ``fail_if_missing_pin`` or ``fail_on_error``. A summary table goes to the task log. The
    checks themselves run in :func:`airflow_provider_plugz.hooks.fleet.check_fleet`.

    :param plugz_conn_ids: the Plugz connection ids (templated). After templating: a list of
        ids, or a string holding a JSON/Python list or ids separated by commas or whitespace
        (what ``"{{ var.value.my_list }}"`` or a non-native Jinja render of a list gives).
        Duplicates are dropped, first occurrence kept; an empty list is an error.
    :param max_concurrency: the most PIN checks (and HTTP connections) at a time.
    :param audit_timeout: how long the whole audit may take, in seconds or as a ``timedelta``
        (default 30 minutes); the ``execution_timeout`` clamps it as above.
    :param fail_if_missing_pin: fail the task when any account has no PIN.
    :param fail_on_error: fail the task when any connection could not be checked (timed-out
        numbers included).
    """

    template_fields: Sequence[str] = ("plugz_conn_ids",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"plugz_conn_ids": "json"}
    ui_color = "#25d366"

    #: Per-connection lines in the log summary; beyond this, problems first, then counts.
    max_log_rows = 50
    #: Connection ids named in the failure message; the rest are counted.
    max_ids_in_message = 50
    #: HTTP connections per pooled client (a worker always uses the same client). httpcore
    #: re-scans its whole pool, quadratically when connections sit idle, on every request:
    #: one small pool per worker costs far less CPU than one big shared pool (benchmarks/).
    connections_per_client = 1

    def __init__(
        self,
        *,
        plugz_conn_ids: str | Sequence[str],
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        audit_timeout: float | timedelta = DEFAULT_AUDIT_TIMEOUT,
        fail_if_missing_pin: bool = False,
        fail_on_error: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be an integer >= 1, got {max_concurrency!r}")
        if isinstance(plugz_conn_ids, (list, tuple)):
            # Nothing templating can fix: say so when the DAG file is parsed.
            conn_id_list(plugz_conn_ids)
        self.plugz_conn_ids = plugz_conn_ids
        self.max_concurrency = max_concurrency
        #: seconds (validated here, when the DAG file is parsed).
        self.audit_timeout = timeout_seconds(audit_timeout)
        self.fail_if_missing_pin = fail_if_missing_pin
        self.fail_on_error = fail_on_error

    def execute(self, context: Context) -> dict[str, Any]:
        import time

        from airflow_provider_plugz.hooks import fleet

        started = time.monotonic()  # execution_timeout counts from about here
        conn_ids = conn_id_list(self.plugz_conn_ids)
        seconds, why = audit_deadline(self.audit_timeout, self.execution_timeout)
        self.log.info(
            "Plugz PIN audit of %d connection(s), max_concurrency=%d, deadline %s: %s.",
            len(conn_ids),
            self.max_concurrency,
            _seconds(seconds),
            why,
        )
        run = fleet.run_in_new_loop(
            fleet.check_fleet(
                conn_ids,
                _pin_status,
                deadline=started + seconds,
                max_concurrency=self.max_concurrency,
                connections_per_client=self.connections_per_client,
            )
        )
        self._log_unexpected(run.errors)
        if run.deadline_reached:
            self.log.warning(
                "Plugz PIN audit deadline of %s reached: %d number(s) not checked (%d cancelled in "
                "flight, %d never started); reporting them as %s.",
                _seconds(seconds),
                len(run.timed_out),
                len(run.cancelled),
                len(run.never_started),
                TIMED_OUT_ERROR_CLASS,
            )
        report = AuditReport.from_run(run, deadline_seconds=seconds)
        self._log_summary(report, time.monotonic() - started)
        xcom = report.to_xcom()
        context["ti"].xcom_push(key=REPORT_XCOM_KEY, value=xcom)
        problems = self._problems(report)
        if problems:
            raise PlugzAuditError(problems)
        return xcom

    def _log_unexpected(self, errors: Mapping[str, Exception]) -> None:
        """One ERROR line per check that failed with something other than a Plugz error (a bug)."""
        for conn_id, err in errors.items():
            if not _is_reportable(err):
                self.log.error(
                    "Plugz PIN audit: unexpected %s for connection %r%s",
                    type(err).__name__,
                    conn_id,
                    _raised_at(err),
                )

    # ---------------------------------------------------------------- reporting

    def _log_summary(self, report: AuditReport, seconds: float) -> None:
        self.log.info(
            "Plugz PIN audit of %d connection(s) in %.2f s (max_concurrency=%d): "
            "%d with PIN, %d WITHOUT PIN, %d could not be checked (%d of them not within the deadline).",
            report.total,
            seconds,
            self.max_concurrency,
            report.with_pin,
            report.without_pin,
            report.errors,
            report.timed_out,
        )
        rows = sorted(report.results.items(), key=lambda item: item[1].severity)
        shown = rows[: self.max_log_rows]
        width = max((len(conn_id) for conn_id, _ in shown), default=0)
        lines = [f"  {conn_id:<{width}}  {result.describe()}" for conn_id, result in shown]
        if len(rows) > len(shown):
            hidden = rows[len(shown) :]
            hidden_ok = sum(1 for _, result in hidden if result.has_code is True)
            lines.append(
                f"  ... and {len(hidden)} more ({hidden_ok} with PIN, {len(hidden) - hidden_ok} "
                f"problem(s)); the full report is in XCom {REPORT_XCOM_KEY!r}."
            )
        if lines:
            self.log.info("Plugz PIN audit results (problems first):\n%s", "\n".join(lines))

    def _problems(self, report: AuditReport) -> str | None:
        """The failure message asked for by ``fail_*``, or None when the task should succeed."""
        parts = []
        if self.fail_if_missing_pin:
            missing = report.missing_pin
            if missing:
                parts.append(f"{len(missing)} WhatsApp number(s) have NO PIN: {self._ids(missing)}")
        if self.fail_on_error:
            failed = [f"{c} ({report.results[c].error_class})" for c in report.failed]
            if failed:
                parts.append(f"{len(failed)} connection(s) could not be checked: {self._ids(failed)}")
        if not parts:
            return None
        return (
            f"Plugz PIN audit of {report.total} connection(s) failed: {'; '.join(parts)}. "
            f"The full report is in XCom {REPORT_XCOM_KEY!r} and in the log above."
        )

    def _ids(self, items: list[str]) -> str:
        shown = ", ".join(items[: self.max_ids_in_message])
        more = len(items) - self.max_ids_in_message
        return f"{shown} and {more} more" if more > 0 else shown


def conn_id_list(value: Any) -> list[str]:
    """Validate ``plugz_conn_ids`` after templating: a non-empty list of ids, duplicates dropped.

    A string is read as a JSON or Python literal when it starts with ``[`` (or ``{``), otherwise as
    ids separated by commas or whitespace (Airflow connection ids contain neither).

    :raises ValueError: saying what is wrong; ids are not secrets, so it may quote them.
    """
    items: Any = value
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("[", "{"):
            items = _list_literal(text)
        else:
            items = [part for part in _SEPARATORS.split(text) if part]
    if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple)):
        raise ValueError(
            "plugz_conn_ids must be a list of Plugz connection ids (or a string holding one), "
            f"got {type(value).__name__}"
        )
    bad = [item for item in items if not isinstance(item, str) or not item.strip()]
    if bad:
        raise ValueError(f"plugz_conn_ids must hold non-empty strings only, got {bad[0]!r}")
    conn_ids = list(dict.fromkeys(item.strip() for item in items))
    if not conn_ids:
        raise ValueError(
            "plugz_conn_ids is empty: give at least one Plugz connection id (check the DAG param "
            "or Variable it is rendered from)"
        )
    return conn_ids


def _list_literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)  # "['a', 'b']": how Jinja renders a list as text
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(
            "plugz_conn_ids looks like a list but is neither JSON nor a Python literal"
        ) from None


def timeout_seconds(value: Any) -> float:
    """Validate ``audit_timeout``: a positive, finite number of seconds or ``timedelta``.

    :raises ValueError: saying what is wrong, when the DAG file is parsed.
    """
    seconds: Any = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ValueError(
            "audit_timeout must be a number of seconds or a datetime.timedelta "
            f"(e.g. timedelta(minutes=30)), got {type(value).__name__}"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(
            f"audit_timeout must be more than 0 seconds and finite, got {value!r}: give how long "
            "the whole audit may take (the default is 30 minutes)"
        )
    return float(seconds)


def audit_deadline(audit_timeout: float, execution_timeout: timedelta | None) -> tuple[float, str]:
    """The audit's deadline in seconds from the start of ``execute``, and which limit set it.

    An ``execution_timeout`` leaves a margin (:data:`REPORT_MARGIN_SHARE` of it, within
    :data:`REPORT_MARGIN_MIN`-:data:`REPORT_MARGIN_MAX`, at most half of it) for writing the
    report before Airflow kills the task.
    """
    if execution_timeout is None:
        return audit_timeout, "audit_timeout (the task has no execution_timeout)"
    limit = execution_timeout.total_seconds()
    margin = min(REPORT_MARGIN_MAX, max(REPORT_MARGIN_MIN, limit * REPORT_MARGIN_SHARE), limit / 2)
    capped = limit - margin
    if capped < audit_timeout:
        return capped, (
            f"the task's execution_timeout of {_seconds(limit)} less {_seconds(margin)} kept for "
            f"writing the report, shorter than audit_timeout={_seconds(audit_timeout)}"
        )
    return audit_timeout, f"audit_timeout, within the task's execution_timeout of {_seconds(limit)}"


def _seconds(value: float) -> str:
    """``1.5 s``, ``90 s``, ``1,740 s``: for messages."""
    return f"{value:,.0f} s" if value >= 100 else f"{value:.3g} s"


async def _pin_status(hook: PlugzHook) -> PinStatus:
    """The audit's check of one connection, for :func:`~airflow_provider_plugz.hooks.fleet.check_fleet`."""
    return await hook.aget_pin_status()


def _is_reportable(err: BaseException) -> bool:
    """Whether ``err``'s text may go into the report as it is."""
    # The same class on Airflow 2 and 3 (3 re-exports the task SDK's from here).
    from airflow.exceptions import AirflowNotFoundException  # type: ignore[attr-defined]

    # PlugzError texts are redacted at the source; Airflow's "conn_id `x` isn't defined"
    # names only the connection id.
    return isinstance(err, (PlugzError, AirflowNotFoundException))


def _raised_at(err: BaseException) -> str:
    """`` in module.function`` of the innermost frame, with no values from it."""
    tb = err.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    module = tb.tb_frame.f_globals.get("__name__", "?")
    return f" in {module}.{code.co_name}"
