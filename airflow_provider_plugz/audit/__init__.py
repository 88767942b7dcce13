"""The fleet audit: ask many Plugz numbers the same questions in one task, report per number.

What it asks of each number is its PIN and every fact named in ``checks``, each declared beside
its endpoint (:data:`airflow_provider_plugz.endpoints.FACTS`): nothing here is written for one
fact. The operators are in :mod:`airflow_provider_plugz.operators.audit`
(``PlugzPinAuditOperator``, ``PlugzFleetAuditOperator``) and
:mod:`airflow_provider_plugz.operators.audit_merge` (``PlugzAuditMergeOperator``); the first
re-exports every public name below, as it always has. What they use lives here, one job per module:

- :mod:`.xcom` - the report's XCom form: its key, its counts, the bounds on what a report read
  back from XCom may hold and the checks of each field.
- :mod:`.checks` - what the audit asks of one number: its PIN, then each fact in ``checks``.
- :mod:`.columns` - one number's column for one fact (``FactResult``; ``StatusResult`` is the
  connection's), to and from XCom.
- :mod:`.entries` - one number's entry (``CheckResult``: its PIN answer and its columns).
- :mod:`.errors` - how an exception becomes an entry's class and a text with no secret in it.
- :mod:`.report` - ``AuditReport``: the entries and their counts, to and from XCom; and one
  report of a fleet audited in chunks, merged from the chunks' reports.
- :mod:`.arguments` - the operators' arguments, read and checked (connection ids, the deadline,
  the chunks, the merge's chunk list and reports, the facts checked and the ``fail_if_*`` options).
- :mod:`.texts` - what the audit writes: the log summary and the failure message.
- :mod:`.fanout` - the fan-out: one async check per connection id, a bounded number at a time,
  within a deadline (``airflow_provider_plugz.hooks.fleet`` re-exports it).

Cheap to import: DAG files import the operators on every parse, so nothing here but
:mod:`.fanout` (imported only when a task runs) loads asyncio, httpx, requests or the hook.
"""

from __future__ import annotations
