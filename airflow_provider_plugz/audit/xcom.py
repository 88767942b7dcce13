"""The report's XCom form: its key, its counts, the bounds on what a report read back from XCom
may hold, and the checks of each field (they say what is wrong, never quoting a text).

:class:`~airflow_provider_plugz.audit.report.AuditReport` writes it
(:meth:`~airflow_provider_plugz.audit.report.AuditReport.to_xcom`) and reads it back
(:meth:`~airflow_provider_plugz.audit.report.AuditReport.from_xcom`).
"""

from __future__ import annotations

import re
from typing import Any

from airflow_provider_plugz._vocabulary import CONNECTION_STATES

#: XCom key of the report; it is pushed before the task fails on ``fail_*``, so it is never lost.
REPORT_XCOM_KEY = "report"
#: The report's counts that ``check_status`` adds: one per state, and the numbers whose status
#: could not be read. They add up to ``total``.
STATUS_COUNTS = (*CONNECTION_STATES, "status_errors")
#: The counts of every report (those of :data:`STATUS_COUNTS` come with ``check_status``).
COUNTS = ("total", "with_pin", "without_pin", "errors", "timed_out")

#: Bounds on what a report read back from XCom may hold (:meth:`AuditReport.from_xcom`); the
#: audit's own entries stay within them (texts are cut at :data:`MAX_TEXT_LENGTH`).
#: A connection id: at most Airflow's own limit, no whitespace or control characters.
MAX_CONN_ID_LENGTH = 250
#: An entry's ``message`` and a status ``reason``.
MAX_TEXT_LENGTH = 4096
#: An entry's ``error_class``: a Python class name.
MAX_ERROR_CLASS_LENGTH = 100
#: Entries of one report read back without a chunk list to bound them (a chunk report holds
#: at most its chunk's ids).
MAX_REPORT_ENTRIES = 1_000_000

_CONN_ID = re.compile(rf"\S{{1,{MAX_CONN_ID_LENGTH}}}")
ERROR_CLASS_PATTERN = re.compile(rf"[^\W\d]\w{{0,{MAX_ERROR_CLASS_LENGTH - 1}}}")
#: A key name short and plain enough to be quoted in a message.
_KEY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


def expect_keys(xcom: dict[Any, Any], keys: set[str], what: str) -> None:
    """ValueError unless ``xcom`` has exactly ``keys``; quotes only short key names."""
    if set(xcom) == keys:
        return
    missing = sorted(keys.difference(xcom))
    extra = [key for key in xcom if key not in keys]
    parts = []
    if missing:
        parts.append(f"lacks {', '.join(map(repr, missing))}")
    if extra:
        named = [repr(key) for key in extra[:5] if isinstance(key, str) and _KEY_NAME.fullmatch(key)]
        others = len(extra) - len(named)
        shown = ", ".join([*named, *([f"{others} other(s)"] if others else [])])
        parts.append(f"has unexpected keys ({shown})")
    raise ValueError(f"{what} {' and '.join(parts)}; expected exactly {', '.join(sorted(keys))}")


def kind(value: Any) -> str:
    """What ``value`` is, for a message, never what it holds (it may be a phone number)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"a string of {len(value):,} character(s)"
    name = type(value).__name__
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def checked_text(value: Any, what: str) -> str:
    """A report's text field: a string of at most :data:`MAX_TEXT_LENGTH` characters."""
    if not isinstance(value, str) or len(value) > MAX_TEXT_LENGTH:
        raise ValueError(
            f"{what} must be a string of at most {MAX_TEXT_LENGTH:,} characters, got {kind(value)}"
        )
    return value


def checked_error_class(value: Any, what: str) -> str:
    """A report's ``error_class``: a Python class name."""
    if not isinstance(value, str) or not ERROR_CLASS_PATTERN.fullmatch(value):
        raise ValueError(
            f"{what} must be a Python class name (at most {MAX_ERROR_CLASS_LENGTH} letters, digits "
            f"or _), got {kind(value)}"
        )
    return value


def cut(text: str) -> str:
    """``text`` within :data:`MAX_TEXT_LENGTH` characters, so that its report reads back."""
    return text if len(text) <= MAX_TEXT_LENGTH else text[: MAX_TEXT_LENGTH - 1] + "…"


def is_conn_id(value: Any) -> bool:
    """A connection id: a string of 1 to 250 printable characters, none of them whitespace."""
    return isinstance(value, str) and bool(_CONN_ID.fullmatch(value)) and value.isprintable()
