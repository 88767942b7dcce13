"""Fleet audit: every day, check the PIN and connection of every WhatsApp number - in one task,
or for a large fleet in chunks mapped over Airflow's workers, merged into one report - then
WhatsApp the on-call phone one summary of the numbers that need attention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, Param, Variable, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models import Variable
    from airflow.models.param import Param

from airflow_provider_plugz.notifications.plugz import PlugzNotifier
from airflow_provider_plugz.operators.audit import (
    DEFAULT_CHUNK_SIZE,
    REPORT_XCOM_KEY,
    PlugzAuditMergeOperator,
    PlugzPinAuditOperator,
    audit_chunks,
)

#: The Airflow Variable holding the on-call phone (digits with country and area code, or a group id).
ONCALL_VARIABLE = "plugz_oncall_phone"


def send_to_oncall(message: str, context: Any) -> None:
    """WhatsApp ``message`` to the on-call phone from the ``plugz_alerts`` number.

    ``notify()`` sends the text as it is: it holds what Plugz answered, which must never be
    rendered as a Jinja template (as a notifier's templated ``message`` would be).
    """
    from airflow_provider_plugz.exceptions import PlugzConfigurationError

    phone = Variable.get(ONCALL_VARIABLE, None)
    if not phone:
        raise PlugzConfigurationError(
            f"Plugz fleet audit: the Variable {ONCALL_VARIABLE!r} (the phone alerts go to) is not "
            "set; set it to digits with country and area code, e.g. 5511999999999 (Admin > "
            "Variables or AIRFLOW_VAR_PLUGZ_ONCALL_PHONE)."
        )
    PlugzNotifier(phone=str(phone), message=message).notify(context)


with DAG(
    dag_id="plugz_fleet_audit",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["plugz", "security"],
    # plugz_conn_ids below renders to a real list, not to its text.
    render_template_as_native_obj=True,
    params={
        "plugz_conn_ids": Param(
            None,
            type=["null", "array"],
            items={"type": "string", "minLength": 1},
            minItems=1,
            description="Audit these Plugz connection ids instead of the Variable plugz_fleet_conn_ids.",
        ),
        "chunk_size": Param(
            DEFAULT_CHUNK_SIZE,
            type="integer",
            minimum=1,
            description="Numbers audited in one task; more are audited in mapped chunks of this size.",
        ),
    },
    doc_md="""
### Plugz fleet audit

Every day, checks whether **every** WhatsApp number of the company has a two-step-verification
PIN — dozens or thousands of numbers, one Airflow connection of type **Plugz** each. Each
task of `audit_pins` runs its checks concurrently (at most 32 at a time, over pooled HTTP
connections); `merge_reports` combines what they found into one report. Then it branches:

- some number has **no PIN**, is **not connected** or **could not be checked** -> `alert`
  sends **one** WhatsApp message listing those numbers and why, to the on-call phone in the
  Variable `plugz_oncall_phone`, from the connection `plugz_alerts` (a number of its own: an
  alert that a number is disconnected cannot go out from that number); it returns the text;
- otherwise -> `all_good`.

A missing `plugz_alerts` connection or `plugz_oncall_phone` Variable fails `alert` with a
message saying what to set. Plugz *queues* messages: while `plugz_alerts` is disconnected the
summary waits and goes out when it reconnects (the task log warns). Logs show the phone masked,
the text's length and the connection ids listed, never the text.

**Which numbers.** The connection ids come from the Airflow Variable `plugz_fleet_conn_ids`,
a JSON list such as `["plugz_sales", "plugz_support"]`: edit it in Admin > Variables as the
fleet changes, no deploy needed. A manual run can audit other numbers by passing
`{"plugz_conn_ids": ["plugz_sales"]}` as its run configuration (the DAG param wins over the
Variable). With neither, the DAG audits `plugz_default` alone.

**Large fleets: the `chunk_size` param** (default 500). `fleet_chunks` splits the ids into
chunks of at most `chunk_size`: a fleet of up to `chunk_size` numbers is one chunk, audited in
one task; a larger one is several, and `audit_pins` is mapped over them (Airflow's dynamic task
mapping: one task instance per chunk, run on whichever workers the executor has, each reading
only its own connections). Never more chunks than `[core] max_map_length` (1024 by default):
beyond it the chunks grow instead (the task log warns). `merge_reports` runs when every chunk
is done, whatever its state, and makes one report of the same shape from theirs, counts
recomputed; the numbers of a chunk that ended without a report (killed, out of memory) are
reported as `PlugzAuditError` "not checked", never dropped. It is given the chunks (`chunks=`)
so it knows which chunk owns each number and trusts only that chunk about it: an entry a
report holds for another chunk's number is ignored (the log says so), a number missing from
its chunk's report is "not checked" too, and a malformed report fails it naming the chunk.
How many chunks run at once is the executor's: its slots, `pool`, and
`max_active_tis_per_dag` on `audit_pins`.

**Only Plugz connections are used.** Anyone who can trigger a run can name connection ids, so
an id whose connection is not of type `plugz` (an `http` or `postgres` connection, say) is
refused: it gets a `PlugzConfigurationError` entry in the report, and nothing is sent with
its credentials.

**Deadline.** The task has `execution_timeout=30 minutes`; the audit itself stops ~1 minute
before that (`audit_timeout`, default 30 minutes, is capped at the `execution_timeout` less
10% of it, 5 s to 60 s, left for writing the report), so a slow or hanging Plugz instance
can never cost the whole report. Numbers not checked by then are reported as
`PlugzTimeoutError` ("not checked within the audit's N s deadline; ...") and counted under
`errors` and `timed_out`; the others keep their results. The task log says which deadline
applied.

**The report** (XCom key `report` of `merge_reports`, also its `return_value`; each task of
`audit_pins` pushes the same shape for its chunk): `total`,
`with_pin`, `without_pin`, `errors`, `timed_out`, and under `results` one entry per connection id:
`{"has_code": true}` or `{"error_class": "PlugzNotFoundError", "message": "..."}`. One number
failing never hides the others.

**Connection status.** `audit_pins` runs with `check_status=True`: after each number's PIN it
asks for its status (two requests per number, still at most 32 at a time), so every entry also
has `"status"`, e.g. `{"state": "session_lost", "connected": false, "session": false,
"smartphone_connected": true, "reason": "You need to restore the session."}` (`state` is
`connected`, `disconnected`, `session_lost` or `phone_offline`), an `error_class`/`message` when
only the status call failed (the PIN answer is kept), or `null` when the PIN check had already
failed. The report counts `connected`, `disconnected`, `session_lost`, `phone_offline` and
`status_errors`; the task log lists them too.

To fail the run instead of branching, set `fail_if_missing_pin=True`,
`fail_if_disconnected=True` (any number not `connected`) and/or `fail_on_error=True` (a PIN or
status call that failed, or a chunk that did not report) on `merge_reports`, not on
`audit_pins`: they then apply to the whole fleet, a finding in any chunk fails that one task,
and the merged report is still pushed first.
""",
) as dag:
    # [START howto_operator_plugz_audit_chunks]
    # The ids, validated and split; rendered as real values (render_template_as_native_obj).
    @task
    def fleet_chunks(plugz_conn_ids: Any, chunk_size: int) -> list[list[str]]:
        chunks = audit_chunks(plugz_conn_ids, chunk_size)
        sizes = sorted({len(chunk) for chunk in chunks})
        print(f"Auditing {sum(map(len, chunks))} number(s) in {len(chunks)} chunk(s) of {sizes} number(s).")
        return chunks

    chunks = fleet_chunks(
        "{{ params.plugz_conn_ids or var.json.get('plugz_fleet_conn_ids', ['plugz_default']) }}",
        "{{ params.chunk_size }}",
    )
    # One task instance per chunk. No fail_* here: merge_reports applies them to the whole fleet.
    audit = PlugzPinAuditOperator.partial(
        task_id="audit_pins",
        max_concurrency=32,
        # Each number's connection state beside its PIN (see "Connection status" above).
        check_status=True,
        # The audit ends about a minute before this (see "Deadline" above).
        execution_timeout=timedelta(minutes=30),
    ).expand(plugz_conn_ids=chunks)
    # chunks: which chunk (map index) owns which number, so no chunk reports on another's.
    merged = PlugzAuditMergeOperator(
        task_id="merge_reports", reports=audit.output[REPORT_XCOM_KEY], chunks=chunks
    )
    report = merged.output
    # [END howto_operator_plugz_audit_chunks]

    @task.branch
    def route(report: dict[str, Any]) -> str:
        not_connected = report["total"] - report.get("connected", report["total"])
        return "alert" if report["without_pin"] or report["errors"] or not_connected else "all_good"

    # The text goes to a person: XCom keeps it; the log shows its length and the phone masked only.
    @task(show_return_value_in_logs=False)
    def alert(report: dict[str, Any], **context: Any) -> str:
        lines, needing = [], []
        for conn_id, result in report["results"].items():
            issues = []
            if result.get("has_code") is False:
                issues.append("NO two-step-verification PIN; set one in WhatsApp > Settings")
            elif "error_class" in result:
                issues.append(f"could not be checked ({result['error_class']}): {result['message']}")
            status = result.get("status") or {}
            if status.get("state") not in (None, "connected"):
                issues.append(f"{status['state'].replace('_', ' ')} ({status.get('reason')})")
            elif "error_class" in status:
                issues.append(f"connection state unknown ({status['error_class']})")
            if issues:
                needing.append(conn_id)
                lines.append(f"- {conn_id}: " + "; ".join(issues))
        message = f"{len(lines)} of {report['total']} WhatsApp number(s) need attention:\n" + "\n".join(lines)
        send_to_oncall(message, context)
        print(f"Sent the on-call phone one summary of {len(lines)} number(s): {', '.join(needing)}")
        return message

    @task
    def all_good(report: dict[str, Any]) -> str:
        message = (
            f"All {report['total']} WhatsApp number(s) have a two-step-verification PIN and are connected."
        )
        print(message)
        return message

    route(report) >> [alert(report), all_good(report)]
