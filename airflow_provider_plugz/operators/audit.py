"""``PlugzPinAuditOperator``: check the PIN of a whole fleet of WhatsApp numbers in one task.

Cheap to import: DAG files import this on every parse, so asyncio, the hook, httpx and
requests are loaded only when the task runs.

How it runs: one event loop (``asyncio.run`` in ``execute``) and ``max_concurrency``
workers, each taking the next connection id when it is free, reading that Airflow connection
(``aget_connection``) and asking for the PIN status. A worker's hooks share one httpx client
(:attr:`PlugzPinAuditOperator.connections_per_client` workers per client), so its HTTP
connection is kept alive and reused from one number to the next on the same host, and there
are never more than ``max_concurrency`` connections.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_plugz._compat import BaseOperator
from airflow_provider_plugz.exceptions import PlugzAuditError, PlugzError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import httpx
    from airflow.sdk import Context

    from airflow_provider_plugz.hooks.plugz import PlugzHook

#: XCom key of the report; it is pushed before the task fails on ``fail_*``, so it is never lost.
REPORT_XCOM_KEY = "report"
DEFAULT_MAX_CONCURRENCY = 32

_SEPARATORS = re.compile(r"[\s,]+")


class PlugzPinAuditOperator(BaseOperator):
    """Check whether every listed Plugz connection's WhatsApp account has a PIN, concurrently.

    One failing instance never hides the others: each connection gets its own entry in
    the report, either ``{"has_code": bool}`` or ``{"error_class": "PlugzNotFoundError",
    "message": "..."}`` (the provider's error text, which never holds a secret)::

        {
            "total": 3, "with_pin": 1, "without_pin": 1, "errors": 1,
            "results": {
                "plugz_a": {"has_code": true},
                "plugz_b": {"has_code": false},
                "plugz_c": {"error_class": "PlugzNotFoundError", "message": "Plugz PIN status ..."},
            },
        }

    The report is returned (XCom ``return_value``) and also pushed under the XCom key
    ``report``, which is written before the task fails because of ``fail_if_missing_pin`` or
    ``fail_on_error``. A summary table goes to the task log.

    :param plugz_conn_ids: the Plugz connection ids (templated). After templating: a list of
        ids, or a string holding a JSON/Python list or ids separated by commas or whitespace
        (what ``"{{ var.value.my_list }}"`` or a non-native Jinja render of a list gives).
        Duplicates are dropped, first occurrence kept; an empty list is an error.
    :param max_concurrency: the most PIN checks (and HTTP connections) at a time.
    :param fail_if_missing_pin: fail the task when any account has no PIN.
    :param fail_on_error: fail the task when any connection could not be checked.
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
        self.fail_if_missing_pin = fail_if_missing_pin
        self.fail_on_error = fail_on_error

    def execute(self, context: Context) -> dict[str, Any]:
        import asyncio
        import time

        conn_ids = conn_id_list(self.plugz_conn_ids)
        started = time.monotonic()
        results = asyncio.run(self._check_all(conn_ids))
        report = build_report(conn_ids, results)
        self._log_summary(report, time.monotonic() - started)
        context["ti"].xcom_push(key=REPORT_XCOM_KEY, value=report)
        problems = self._problems(report)
        if problems:
            raise PlugzAuditError(problems)
        return report

    # ---------------------------------------------------------------- checking

    async def _check_all(self, conn_ids: list[str]) -> dict[str, dict[str, Any]]:
        import asyncio

        from airflow_provider_plugz.hooks.plugz import PlugzHook, new_async_client

        results: dict[str, dict[str, Any]] = {}
        workers = min(self.max_concurrency, len(conn_ids))
        size = self.connections_per_client
        clients = [new_async_client(max_connections=min(size, workers - n)) for n in range(0, workers, size)]
        todo = iter(conn_ids)  # shared by the workers: each takes the next id when it is free

        async def worker(client: httpx.AsyncClient) -> None:
            for conn_id in todo:
                results[conn_id] = await self._check_one(conn_id, PlugzHook(conn_id, async_client=client))

        # max_concurrency workers, so as many checks (and HTTP connections) at most; one hook
        # alive per worker, however long the list.
        tasks = [asyncio.ensure_future(worker(clients[n // size])) for n in range(workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:  # only left running when the audit itself was interrupted
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for client in clients:
                await client.aclose()
        return results

    async def _check_one(self, conn_id: str, hook: PlugzHook) -> dict[str, Any]:
        try:
            status = await hook.aget_pin_status()
        except Exception as err:
            return self._failure(conn_id, err)
        finally:
            with contextlib.suppress(Exception):  # only a hook-owned client to close; the result is in
                await hook.aclose()
        return {"has_code": status.has_code}

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
            "%d with PIN, %d WITHOUT PIN, %d could not be checked.",
            report["total"],
            seconds,
            self.max_concurrency,
            report["with_pin"],
            report["without_pin"],
            report["errors"],
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


def build_report(conn_ids: list[str], results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The JSON-safe report, in the order the connection ids were given."""
    ordered = {conn_id: results[conn_id] for conn_id in conn_ids}
    with_pin = sum(1 for result in ordered.values() if result.get("has_code") is True)
    without_pin = sum(1 for result in ordered.values() if result.get("has_code") is False)
    return {
        "total": len(ordered),
        "with_pin": with_pin,
        "without_pin": without_pin,
        "errors": len(ordered) - with_pin - without_pin,
        "results": ordered,
    }


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
