"""``PlugzPinAuditOperator``: check the PIN of a whole fleet of WhatsApp numbers in one task.

Cheap to import: DAG files import this on every parse, so asyncio, the hook, httpx and
requests are loaded only when the task runs.

How it runs: one event loop (in ``execute``) and ``max_concurrency`` workers, each taking the
next connection id when it is free, reading that Airflow connection and asking for the PIN
status. A worker's hooks share one httpx client (:attr:`PlugzPinAuditOperator.connections_per_client`
workers per client), so its HTTP connection is kept alive and reused from one number to the
next on the same host, and there are never more than ``max_concurrency`` connections. The
clients (and with them httpx and the TLS context) are built before the workers start, so that
nothing slow runs on the event loop between requests.

The whole audit has a deadline (``audit_timeout``, and never later than the task's
``execution_timeout`` allows): at the deadline the checks still running are cancelled, the
numbers not checked by then are reported as timed out, and the report is written as usual.
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from airflow_provider_plugz._compat import BaseOperator
from airflow_provider_plugz.exceptions import PlugzAuditError, PlugzError, PlugzTimeoutError

if TYPE_CHECKING:
    from collections.abc import Collection, Coroutine, Sequence

    import httpx
    from airflow.sdk import Context

    from airflow_provider_plugz.hooks.plugz import PlugzHook

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

_T = TypeVar("_T")

_SEPARATORS = re.compile(r"[\s,]+")


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

    The report is returned (XCom ``return_value``) and also pushed under the XCom key
    ``report``, which is written before the task fails because of ``fail_if_missing_pin`` or
    ``fail_on_error``. A summary table goes to the task log.

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
        results, started_ids = _run(self._check_all(conn_ids, started + seconds))
        timed_out = [conn_id for conn_id in conn_ids if conn_id not in results]
        for conn_id in timed_out:
            results[conn_id] = self._timed_out(seconds, in_flight=conn_id in started_ids)
        if timed_out:
            cancelled = sum(1 for conn_id in timed_out if conn_id in started_ids)
            self.log.warning(
                "Plugz PIN audit deadline of %s reached: %d number(s) not checked (%d cancelled in "
                "flight, %d never started); reporting them as %s.",
                _seconds(seconds),
                len(timed_out),
                cancelled,
                len(timed_out) - cancelled,
                TIMED_OUT_ERROR_CLASS,
            )
        report = build_report(conn_ids, results, timed_out)
        self._log_summary(report, time.monotonic() - started)
        context["ti"].xcom_push(key=REPORT_XCOM_KEY, value=report)
        problems = self._problems(report)
        if problems:
            raise PlugzAuditError(problems)
        return report

    # ---------------------------------------------------------------- checking

    async def _check_all(
        self, conn_ids: list[str], deadline: float
    ) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """Check ``conn_ids`` until done or until ``deadline`` (``time.monotonic()``).

        Returns the finished results and the ids whose check had started; an id in neither
        was not reached in time, one only in the second was cancelled in flight.
        """
        import asyncio
        import time

        # Everything slow to load or build comes first, while nothing is in flight: the hook
        # module, httpx (imported by new_async_client), the transport modules httpcore would
        # import on the first request, the TLS context, the clients, and the exception class
        # _failure looks for.
        from airflow.exceptions import AirflowNotFoundException  # type: ignore[attr-defined]  # noqa: F401

        from airflow_provider_plugz.hooks.plugz import PlugzHook, new_async_client, preload_async_transport

        preload_async_transport()

        results: dict[str, dict[str, Any]] = {}
        begun: set[str] = set()
        workers = min(self.max_concurrency, len(conn_ids))
        size = self.connections_per_client
        clients = [new_async_client(max_connections=min(size, workers - n)) for n in range(0, workers, size)]
        todo = iter(conn_ids)  # shared by the workers: each takes the next id when it is free

        async def worker(client: httpx.AsyncClient) -> None:
            for conn_id in todo:
                begun.add(conn_id)
                hook = PlugzHook(conn_id, async_client=client, require_conn_type=True)
                results[conn_id] = await self._check_one(conn_id, hook)

        # max_concurrency workers, so as many checks (and HTTP connections) at most; one hook
        # alive per worker, however long the list.
        tasks = [asyncio.ensure_future(worker(clients[n // size])) for n in range(workers)]
        try:
            done, _ = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
            for task in done:
                task.result()  # a bug in a worker is raised, not hidden as a timeout
        finally:
            for task in tasks:  # still running at the deadline, or the audit was interrupted
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for client in clients:
                with contextlib.suppress(Exception):  # one failing close must not skip the others
                    await client.aclose()
        return results, begun

    async def _check_one(self, conn_id: str, hook: PlugzHook) -> dict[str, Any]:
        try:
            status = await hook.aget_pin_status()
        except Exception as err:
            return self._failure(conn_id, err)
        finally:
            with contextlib.suppress(Exception):  # only a hook-owned client to close; the result is in
                await hook.aclose()
        return {"has_code": status.has_code}

    def _timed_out(self, seconds: float, *, in_flight: bool) -> dict[str, Any]:
        """The report entry of a number the audit did not check before its deadline."""
        if in_flight:
            what = (
                "its check was still running (reading the connection or waiting for Plugz, "
                "retries included) and was cancelled"
            )
        else:
            what = (
                f"its check never started: all {self.max_concurrency} workers were busy with slower numbers"
            )
        return {
            "error_class": TIMED_OUT_ERROR_CLASS,
            "message": (
                f"not checked within the audit's {_seconds(seconds)} deadline; {what}. Raise "
                "audit_timeout (and the task's execution_timeout, which caps it) or max_concurrency, "
                "or check why this number's Plugz instance answers slowly."
            ),
        }

    def _failure(self, conn_id: str, err: Exception) -> dict[str, Any]:
        """The report entry for a failed check: the error class and a text known to be secret-free."""
        # The same class on Airflow 2 and 3 (3 re-exports the task SDK's from here).
        from airflow.exceptions import AirflowNotFoundException  # type: ignore[attr-defined]

        if isinstance(err, (PlugzError, AirflowNotFoundException)):
            # PlugzError texts are redacted at the source; Airflow's "conn_id `x` isn't defined"
            # names only the connection id.
            return {"error_class": type(err).__name__, "message": str(err)}
        # Anything else is a bug somewhere; its text may quote a URL (and so the instance
        # token): keep only the class and where it was raised.
        where = _raised_at(err)
        self.log.error(
            "Plugz PIN audit: unexpected %s for connection %r%s", type(err).__name__, conn_id, where
        )
        return {
            "error_class": type(err).__name__,
            "message": (
                f"unexpected {type(err).__name__}{where} while checking connection {conn_id!r}; "
                "this is not a Plugz error: please report it to airflow-provider-plugz."
            ),
        }

    # ---------------------------------------------------------------- reporting

    def _log_summary(self, report: dict[str, Any], seconds: float) -> None:
        self.log.info(
            "Plugz PIN audit of %d connection(s) in %.2f s (max_concurrency=%d): "
            "%d with PIN, %d WITHOUT PIN, %d could not be checked (%d of them not within the deadline).",
            report["total"],
            seconds,
            self.max_concurrency,
            report["with_pin"],
            report["without_pin"],
            report["errors"],
            report["timed_out"],
        )
        rows = sorted(report["results"].items(), key=lambda item: _severity(item[1]))
        shown = rows[: self.max_log_rows]
        width = max((len(conn_id) for conn_id, _ in shown), default=0)
        lines = [f"  {conn_id:<{width}}  {_describe(result)}" for conn_id, result in shown]
        if len(rows) > len(shown):
            hidden = rows[len(shown) :]
            hidden_ok = sum(1 for _, result in hidden if result.get("has_code") is True)
            lines.append(
                f"  ... and {len(hidden)} more ({hidden_ok} with PIN, {len(hidden) - hidden_ok} "
                f"problem(s)); the full report is in XCom {REPORT_XCOM_KEY!r}."
            )
        if lines:
            self.log.info("Plugz PIN audit results (problems first):\n%s", "\n".join(lines))

    def _problems(self, report: dict[str, Any]) -> str | None:
        """The failure message asked for by ``fail_*``, or None when the task should succeed."""
        results: dict[str, dict[str, Any]] = report["results"]
        parts = []
        if self.fail_if_missing_pin:
            missing = [conn_id for conn_id, result in results.items() if result.get("has_code") is False]
            if missing:
                parts.append(f"{len(missing)} WhatsApp number(s) have NO PIN: {self._ids(missing)}")
        if self.fail_on_error:
            failed = [f"{c} ({r['error_class']})" for c, r in results.items() if "error_class" in r]
            if failed:
                parts.append(f"{len(failed)} connection(s) could not be checked: {self._ids(failed)}")
        if not parts:
            return None
        return (
            f"Plugz PIN audit of {report['total']} connection(s) failed: {'; '.join(parts)}. "
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


def build_report(
    conn_ids: list[str], results: dict[str, dict[str, Any]], timed_out: Collection[str] = ()
) -> dict[str, Any]:
    """The JSON-safe report, in the order the connection ids were given.

    ``timed_out`` names the ids not checked before the audit's deadline (their entries are
    errors too); a read timeout of a check that did finish is an ordinary error.
    """
    ordered = {conn_id: results[conn_id] for conn_id in conn_ids}
    with_pin = sum(1 for result in ordered.values() if result.get("has_code") is True)
    without_pin = sum(1 for result in ordered.values() if result.get("has_code") is False)
    return {
        "total": len(ordered),
        "with_pin": with_pin,
        "without_pin": without_pin,
        "errors": len(ordered) - with_pin - without_pin,
        "timed_out": len(set(timed_out)),
        "results": ordered,
    }


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


def _run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run``, but without waiting at the end for threads of cancelled checks.

    ``asyncio.run`` joins the loop's thread pool before returning: a connection read still
    running there (a secrets backend that hangs, say) would hold the report back past the
    deadline until Airflow kills the task. Those threads end on their own; the report does not
    wait for them.
    """
    import asyncio

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # as asyncio.run does
    try:
        return loop.run_until_complete(coroutine)
    finally:
        try:
            # Interrupted (a signal, Airflow stopping the task): let every task run its cleanup.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()  # shuts its thread pool down without waiting


def _seconds(value: float) -> str:
    """``1.5 s``, ``90 s``, ``1,740 s``: for messages."""
    return f"{value:,.0f} s" if value >= 100 else f"{value:.3g} s"


def _severity(result: dict[str, Any]) -> int:
    return 2 if result.get("has_code") is True else 1 if result.get("has_code") is False else 0


def _describe(result: dict[str, Any]) -> str:
    if "has_code" in result:
        return "PIN set" if result["has_code"] else "NO PIN"
    return f"ERROR {result['error_class']}: {result['message']}"


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
