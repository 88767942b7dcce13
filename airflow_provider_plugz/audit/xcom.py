"""The report's XCom form: its key, its counts, the bounds on what a report read back from XCom
may hold, and the checks of each field (they say what is wrong, never quoting a text).

:class:`~airflow_provider_plugz.audit.report.AuditReport` writes it
(:meth:`~airflow_provider_plugz.audit.report.AuditReport.to_xcom`) and reads it back
(:meth:`~airflow_provider_plugz.audit.report.AuditReport.from_xcom`).
"""

from __future__ import annotations

import re
from typing import Any

# The JSON checks every column of a report shares live with the facts' machinery.
from airflow_provider_plugz._declarations import MAX_TEXT_LENGTH, checked_text, cut, expect_keys, kind
from airflow_provider_plugz.endpoints import CONNECTION, PIN

__all__ = [
    "COUNTS",
    "ERROR_CLASS_PATTERN",
    "MAX_CONN_ID_LENGTH",
    "MAX_ERROR_CLASS_LENGTH",
    "MAX_REPORT_ENTRIES",
    "MAX_TEXT_LENGTH",
    "REPORT_XCOM_KEY",
    "STATUS_COUNTS",
    "checked_error_class",
    "checked_text",
    "cut",
    "expect_keys",
    "is_conn_id",
    "kind",
]

#: XCom key of the report; it is pushed before the task fails on ``fail_*``, so it is never lost.
REPORT_XCOM_KEY = "report"
#: The report's counts that ``check_status`` adds: one per state, and the numbers whose status
#: could not be read. They add up to ``total``.
STATUS_COUNTS = CONNECTION.counts
#: The counts of every report (each other fact checked adds its own, e.g. :data:`STATUS_COUNTS`).
COUNTS = ("total", *PIN.counts, "timed_out")

#: Bounds on what a report read back from XCom may hold (:meth:`AuditReport.from_xcom`); the
#: audit's own entries stay within them (texts are cut at :data:`MAX_TEXT_LENGTH`).
#: A connection id: at most Airflow's own limit, no whitespace or control characters.
MAX_CONN_ID_LENGTH = 250
#: An entry's ``error_class``: a Python class name.
MAX_ERROR_CLASS_LENGTH = 100
#: Entries of one report read back without a chunk list to bound them (a chunk report holds
#: at most its chunk's ids).
MAX_REPORT_ENTRIES = 1_000_000

_CONN_ID = re.compile(rf"\S{{1,{MAX_CONN_ID_LENGTH}}}")
ERROR_CLASS_PATTERN = re.compile(rf"[^\W\d]\w{{0,{MAX_ERROR_CLASS_LENGTH - 1}}}")


def checked_error_class(value: Any, what: str) -> str:
    """A report's ``error_class``: a Python class name."""
    if not isinstance(value, str) or not ERROR_CLASS_PATTERN.fullmatch(value):
        raise ValueError(
            f"{what} must be a Python class name (at most {MAX_ERROR_CLASS_LENGTH} letters, digits "
            f"or _), got {kind(value)}"
        )
    return value


def is_conn_id(value: Any) -> bool:
    """A connection id: a string of 1 to 250 printable characters, none of them whitespace."""
    return isinstance(value, str) and bool(_CONN_ID.fullmatch(value)) and value.isprintable()
