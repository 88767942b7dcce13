"""The audit's arguments, read and checked: the connection ids (:func:`conn_id_list`), the
deadline (:func:`timeout_seconds`, :func:`audit_deadline`), the chunks of a large fleet
(:func:`audit_chunks`), the merge's ``chunks`` and ``reports``, and which facts are checked
(:func:`check_names`, :func:`needed_check`) and fail the task (:func:`pop_fail_options`,
:func:`failing_facts`).
Every bad value is a ``PlugzConfigurationError`` that says what to do and quotes none of it.
"""

from __future__ import annotations

import ast
import json
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_plugz.audit.texts import seconds_text
from airflow_provider_plugz.audit.xcom import MAX_CONN_ID_LENGTH, REPORT_XCOM_KEY, is_conn_id, kind
from airflow_provider_plugz.endpoints import FACTS, PIN

if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_MAX_CONCURRENCY = 32
#: How long the whole audit may take when the task has no shorter ``execution_timeout``.
DEFAULT_AUDIT_TIMEOUT = timedelta(minutes=30)
#: Under an ``execution_timeout``, the audit ends this share of it earlier (at least
#: ``REPORT_MARGIN_MIN``, at most ``REPORT_MARGIN_MAX`` seconds, and never more than half of
#: it), so that the report is logged and pushed before Airflow kills the task.
REPORT_MARGIN_SHARE = 0.1
REPORT_MARGIN_MIN = 5.0
REPORT_MARGIN_MAX = 60.0
#: Numbers per chunk task when a fleet is audited in chunks (see :func:`audit_chunks`).
DEFAULT_CHUNK_SIZE = 500
#: ``plugz_conn_ids`` given as text (ample for 100,000 ids).
MAX_CONN_IDS_TEXT = 8 * 1024 * 1024

_SEPARATORS = re.compile(r"[\s,]+")
#: String literals of JSON or Python text (for counting the brackets outside them).
_STRING_LITERALS = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'""", re.DOTALL)


def conn_id_list(value: Any) -> list[str]:
    """Validate ``plugz_conn_ids`` after templating: a non-empty list of ids, duplicates dropped.

    A string is read as a JSON or Python literal when it starts with ``[`` (or ``{``), otherwise as
    ids separated by commas or whitespace (Airflow connection ids contain neither). Text is at
    most :data:`MAX_CONN_IDS_TEXT` characters and a literal a flat list, checked before it is
    parsed; each id is a string of 1 to :data:`MAX_CONN_ID_LENGTH` printable characters
    without whitespace (surrounding whitespace is dropped).

    :raises PlugzConfigurationError: saying what is wrong; it quotes none of the value (a
        wrongly templated list may hold phone numbers).
    """
    from airflow_provider_plugz.exceptions import PlugzConfigurationError

    items: Any = value
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_CONN_IDS_TEXT:
            raise PlugzConfigurationError(
                f"plugz_conn_ids is {len(text):,} characters of text, more than {MAX_CONN_IDS_TEXT:,}: "
                "check the DAG param or Variable it is rendered from, or audit such a fleet in chunks"
            )
        if text[:1] in ("[", "{"):
            items = _list_literal(text)
        else:
            items = [part for part in _SEPARATORS.split(text) if part]
    if not isinstance(items, (list, tuple)):
        raise PlugzConfigurationError(
            "plugz_conn_ids must be a list of Plugz connection ids (or a string holding one), "
            f"got {kind(items)}"
        )
    conn_ids: dict[str, None] = {}
    for number, item in enumerate(items, 1):
        conn_id = item.strip() if isinstance(item, str) else item
        if not is_conn_id(conn_id):
            if not isinstance(item, str):
                why = kind(item)
            elif not conn_id:
                why = "empty"
            elif len(conn_id) > MAX_CONN_ID_LENGTH:
                why = f"{len(conn_id):,} characters long"
            else:
                why = "holding whitespace or control characters"
            raise PlugzConfigurationError(
                "plugz_conn_ids must hold non-empty strings only, each an Airflow connection id "
                f"(at most {MAX_CONN_ID_LENGTH} characters, no whitespace or control characters); "
                f"item {number} is {why}"
            )
        conn_ids[conn_id] = None
    if not conn_ids:
        raise PlugzConfigurationError(
            "plugz_conn_ids is empty: give at least one Plugz connection id (check the DAG param "
            "or Variable it is rendered from)"
        )
    return list(conn_ids)


def _list_literal(text: str) -> Any:
    """``text`` (at most :data:`MAX_CONN_IDS_TEXT` characters) as JSON or a Python literal,
    refused before parsing when it nests: a list of ids is flat, and deep nesting would
    exhaust the parser's stack."""
    from airflow_provider_plugz.exceptions import PlugzConfigurationError

    outside = _STRING_LITERALS.sub("", text)
    if sum(outside.count(bracket) for bracket in "[{(") > 1:
        raise PlugzConfigurationError(
            "plugz_conn_ids must be a flat list of Plugz connection ids, but its text nests lists, "
            "objects or tuples"
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError, MemoryError):
        pass
    try:
        return ast.literal_eval(text)  # "['a', 'b']": how Jinja renders a list as text
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise PlugzConfigurationError(
            "plugz_conn_ids looks like a list but is neither JSON nor a Python literal"
        ) from None


def timeout_seconds(value: Any) -> float:
    """Validate ``audit_timeout``: seconds or a ``timedelta``, within :mod:`.._intervals`' bounds.

    :raises PlugzConfigurationError: saying what is wrong, when the DAG file is parsed.
    """
    from airflow_provider_plugz import _intervals

    return _intervals.seconds(
        value,
        name="audit_timeout",
        maximum=_intervals.MAX_TIMEOUT,
        hint="give how long the whole audit may take, e.g. timedelta(minutes=30) (the default).",
    )


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
            f"the task's execution_timeout of {seconds_text(limit)} less {seconds_text(margin)} kept for "
            f"writing the report, shorter than audit_timeout={seconds_text(audit_timeout)}"
        )
    return audit_timeout, f"audit_timeout, within the task's execution_timeout of {seconds_text(limit)}"


def audit_chunks(
    plugz_conn_ids: Any, chunk_size: int = DEFAULT_CHUNK_SIZE, *, max_map_length: int | None = None
) -> list[list[str]]:
    """The ids of a fleet (validated like ``plugz_conn_ids``: :func:`conn_id_list`) in chunks
    of at most ``chunk_size``, for ``PlugzPinAuditOperator.partial(...).expand(plugz_conn_ids=...)``.

    Never more chunks than ``max_map_length`` (default: Airflow's ``[core] max_map_length``,
    1024 unless configured), the most task instances one mapped task may have: beyond it the
    chunks grow past ``chunk_size`` (a warning says so) rather than the run failing. The
    chunks are balanced (see :func:`airflow_provider_plugz.audit.fanout.chunked`); a fleet of
    up to ``chunk_size`` numbers is one chunk, so one task.

    :raises PlugzConfigurationError: the ids are not valid, or ``chunk_size``/``max_map_length``
        is not an integer >= 1.
    """
    from airflow_provider_plugz.audit.fanout import chunked
    from airflow_provider_plugz.exceptions import PlugzConfigurationError

    conn_ids = conn_id_list(plugz_conn_ids)
    if max_map_length is None:
        from airflow.configuration import conf

        max_map_length = conf.getint("core", "max_map_length")
    try:
        chunks = chunked(conn_ids, chunk_size, max_chunks=max_map_length)
    except ValueError as err:
        raise PlugzConfigurationError(f"Plugz PIN audit chunks: {err}") from None
    if len(chunks[0]) > chunk_size:
        import logging

        # Logged as the operators' module, where this function has always been imported from.
        logging.getLogger("airflow_provider_plugz.operators.audit").warning(
            "Plugz PIN audit: %d numbers in chunks of %d would be more than [core] max_map_length=%d "
            "mapped tasks; auditing them in %d chunks of up to %d instead. Raise chunk_size, or "
            "max_map_length in airflow.cfg, to choose yourself.",
            len(conn_ids),
            chunk_size,
            max_map_length,
            len(chunks),
            len(chunks[0]),
        )
    return chunks


def chunk_lists(value: Any) -> list[list[str]] | None:
    """The merge's ``chunks`` after templating (see :func:`check_chunks`), or None."""
    if value is None:
        return None
    from airflow_provider_plugz.exceptions import PlugzConfigurationError

    try:
        return check_chunks(value)
    except ValueError as err:
        raise PlugzConfigurationError(f"Plugz PIN audit merge: {err}.") from None


def report_list(value: Any) -> list[Any]:
    """The merge's ``reports`` after templating: a list (a lazy XCom sequence too) of reports."""
    from collections.abc import Iterable as _Iterable

    if value is None:  # no chunk pushed a report
        return []
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, _Iterable):
        from airflow_provider_plugz.exceptions import PlugzConfigurationError

        raise PlugzConfigurationError(
            "Plugz PIN audit merge: reports must be the chunk reports, "
            f"<the mapped audit>.output[{REPORT_XCOM_KEY!r}], got {kind(value)}."
        )
    return list(value)


def check_chunks(value: Any) -> list[list[str]]:
    """The merge's ``chunks``: a list (a lazy XCom sequence too) of non-empty lists of
    connection ids, no id in two places; a copy.

    :raises ValueError: saying which chunk is wrong and how (no id is quoted unless valid).
    """
    from collections.abc import Iterable as _Iterable

    if isinstance(value, (str, bytes, dict)) or not isinstance(value, _Iterable):
        raise ValueError(
            "chunks must be the list of id lists the audit was expanded over (what audit_chunks "
            f"returned), got {kind(value)}"
        )
    chunks: list[list[str]] = []
    owner: dict[str, int] = {}
    for index, chunk in enumerate(value):
        if not isinstance(chunk, (list, tuple)) or not chunk:
            raise ValueError(f"chunk {index} must be a non-empty list of connection ids, got {kind(chunk)}")
        for conn_id in chunk:
            if not is_conn_id(conn_id):
                raise ValueError(f"chunk {index} holds {kind(conn_id)}, which is not a connection id")
            if conn_id in owner:
                twice = (
                    f"chunk {index} lists"
                    if owner[conn_id] == index
                    else (f"chunks {owner[conn_id]} and {index} both list")
                )
                raise ValueError(
                    f"{twice} {conn_id!r}: each id belongs to one chunk only (give chunks= what "
                    "audit_chunks returned)"
                )
            owner[conn_id] = index
        chunks.append(list(chunk))
    return chunks


def check_names(checks: str | Sequence[str], check_status: bool) -> tuple[str, ...]:
    """The facts to read besides the PIN, in :data:`FACTS` order; ValueError naming the known ones."""
    names = (
        [checks] if isinstance(checks, str) else list(checks) if isinstance(checks, (list, tuple)) else None
    )
    if names is None or not all(isinstance(name, str) and name in FACTS for name in names):
        raise ValueError(
            f"checks must name facts among {', '.join(map(repr, FACTS))} (a name or a list of names), "
            f"got {checks!r}"
        )
    wanted = {*names, *(("connection",) if check_status else ())}
    return tuple(name for name in FACTS if name in wanted and name != PIN.name)


def pop_fail_options(kwargs: dict[str, Any], **given: Any) -> dict[str, bool]:
    """Every declared fact's ``fail_if_*`` option: those in ``kwargs`` (removed from it) and
    ``given`` (an operator's named ones), the rest False; ValueError for one that is not a bool."""
    options = {fact.fail_option: kwargs.pop(fact.fail_option, False) for fact in FACTS.values()}
    options.update(given)
    for name, value in options.items():
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    return options


def needed_check(fact: str) -> str:
    """The audit argument that reads ``fact`` (for messages: ``check_status=True``)."""
    return "check_status=True" if fact == "connection" else f"checks=[{fact!r}]"


def failing_facts(fail_options: dict[str, Any]) -> tuple[str, ...]:
    """The facts whose ``fail_if_*`` option is on, in :data:`FACTS` order."""
    return tuple(name for name, fact in FACTS.items() if fail_options.get(fact.fail_option))
