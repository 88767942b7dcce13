"""The audit's report: :class:`AuditReport`, one entry per connection id and the counts, built
from a fan-out's run, written to XCom and read back from it; and one report of a fleet audited
in chunks from the reports of its chunks (:func:`merge_chunk_reports`): each number from the
chunk that owns it, nothing counted twice or lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from airflow_provider_plugz._vocabulary import CONNECTION_STATES
from airflow_provider_plugz.audit.arguments import check_chunks
from airflow_provider_plugz.audit.checks import PinAndStatus
from airflow_provider_plugz.audit.entries import CheckResult, StatusResult
from airflow_provider_plugz.audit.texts import ids_text, numbers_text
from airflow_provider_plugz.audit.xcom import (
    COUNTS,
    MAX_REPORT_ENTRIES,
    STATUS_COUNTS,
    expect_keys,
    is_conn_id,
    kind,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from airflow_provider_plugz.audit.fanout import FleetRun
    from airflow_provider_plugz.hooks.plugz import PinStatus


@dataclass(frozen=True, repr=False)
class AuditReport:
    """The audit's outcome: one :class:`CheckResult` per connection id, in the order given, and
    the counts. ``errors`` counts every entry without a PIN answer, ``timed_out`` the part of
    them the audit's deadline came before. With ``status_checked`` (the operator's
    ``check_status``) it also counts each of :data:`CONNECTION_STATES` and ``status_errors``, the
    numbers whose status could not be read; those five add up to ``total``. :meth:`to_xcom` is
    the JSON the task returns."""

    results: Mapping[str, CheckResult]
    status_checked: bool = False
    total: int = field(init=False)
    with_pin: int = field(init=False)
    without_pin: int = field(init=False)
    errors: int = field(init=False)
    timed_out: int = field(init=False)
    connected: int = field(init=False)
    disconnected: int = field(init=False)
    session_lost: int = field(init=False)
    phone_offline: int = field(init=False)
    status_errors: int = field(init=False)

    def __post_init__(self) -> None:
        results = MappingProxyType(dict(self.results))  # read-only, and no longer the caller's
        for conn_id, result in results.items():
            if not isinstance(conn_id, str) or not isinstance(result, CheckResult):
                raise ValueError(
                    "an AuditReport's results map connection ids (strings) to CheckResults, got "
                    f"{kind(conn_id)} to {kind(result)}"
                )
        if not self.status_checked and any(r.status is not None for r in results.values()):
            raise ValueError("an AuditReport with statuses in its results needs status_checked=True")
        with_pin = sum(1 for r in results.values() if r.has_code is True)
        without_pin = sum(1 for r in results.values() if r.has_code is False)
        states = [r.status.state for r in results.values() if r.status is not None]
        per_state = {state: states.count(state) for state in CONNECTION_STATES}
        status_errors = len(results) - sum(per_state.values()) if self.status_checked else 0
        for name, value in (
            ("results", results),
            ("total", len(results)),
            ("with_pin", with_pin),
            ("without_pin", without_pin),
            ("errors", len(results) - with_pin - without_pin),
            ("timed_out", sum(1 for r in results.values() if r.timed_out)),
            *per_state.items(),
            ("status_errors", status_errors),
        ):
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        names = COUNTS + (STATUS_COUNTS if self.status_checked else ())
        return f"AuditReport({', '.join(f'{name}={getattr(self, name)}' for name in names)})"

    @classmethod
    def from_run(
        cls,
        run: FleetRun[PinStatus | PinAndStatus],
        *,
        deadline_seconds: float,
        status_checked: bool = False,
    ) -> AuditReport:
        """The report of a fan-out that had ``deadline_seconds`` to finish: of PIN checks
        (``PinStatus`` values), or with ``status_checked`` of PIN-and-status checks
        (:class:`PinAndStatus` values)."""
        results: dict[str, CheckResult] = {}
        for conn_id in run.conn_ids:
            if conn_id in run.values:
                results[conn_id] = _checked(conn_id, run.values[conn_id])
            elif conn_id in run.errors:
                results[conn_id] = CheckResult.failure(conn_id, run.errors[conn_id])
            else:
                results[conn_id] = CheckResult.not_checked(
                    deadline_seconds,
                    in_flight=conn_id in run.cancelled,
                    max_concurrency=run.max_concurrency,
                )
        return cls(results, status_checked=status_checked)

    @property
    def missing_pin(self) -> list[str]:
        """The connection ids whose account has no PIN."""
        return [conn_id for conn_id, r in self.results.items() if r.has_code is False]

    @property
    def failed(self) -> list[str]:
        """The connection ids that could not be checked (timed-out ones included)."""
        return [conn_id for conn_id, r in self.results.items() if r.has_code is None]

    @property
    def not_connected(self) -> list[str]:
        """The connection ids whose status was read and is not ``connected``."""
        return [
            conn_id
            for conn_id, r in self.results.items()
            if r.status is not None and r.status.state not in (None, "connected")
        ]

    @property
    def status_failed(self) -> list[str]:
        """The connection ids whose status call failed."""
        return [
            conn_id for conn_id, r in self.results.items() if r.status is not None and r.status.state is None
        ]

    @classmethod
    def from_xcom(cls, xcom: Any, *, max_entries: int = MAX_REPORT_ENTRIES) -> AuditReport:
        """The report :meth:`to_xcom` gave, read back (a chunk's, for :meth:`merge`).

        Nothing in it is trusted: its keys must be exactly a report's, every count an integer
        (``true`` and ``1.0`` are not counts) equal to the count recomputed from the entries,
        every entry under a connection id and of the exact types :meth:`CheckResult.to_xcom`
        writes, its texts at most :data:`MAX_TEXT_LENGTH` characters, and at most
        ``max_entries`` entries.

        :raises ValueError: saying what does not fit; it quotes no entry's text.
        """
        if not isinstance(xcom, dict) or not isinstance(xcom.get("results"), dict):
            raise ValueError(
                "not a Plugz PIN audit report: expected a JSON object with 'results', got "
                f"{kind(xcom) if not isinstance(xcom, dict) else 'an object without it'}"
            )
        status_checked = any(name in xcom for name in STATUS_COUNTS)
        names = COUNTS + (STATUS_COUNTS if status_checked else ())
        expect_keys(xcom, {*names, "results"}, "the report")
        for name in names:
            if type(xcom[name]) is not int:  # bool and float are not counts
                raise ValueError(f"its count {name} must be an integer, not {kind(xcom[name])}")
        entries = xcom["results"]
        if len(entries) > max_entries:
            raise ValueError(f"it holds {len(entries):,} entries, more than the {max_entries:,} it may")
        results: dict[str, CheckResult] = {}
        for conn_id, entry in entries.items():
            if not is_conn_id(conn_id):
                raise ValueError(f"it holds an entry under {kind(conn_id)}, which is not a connection id")
            try:
                results[conn_id] = CheckResult.from_xcom(entry, with_status=status_checked)
            except ValueError as err:
                raise ValueError(f"the entry of {conn_id!r}: {err}") from None
        report = cls(results, status_checked=status_checked)
        wrong = [name for name in names if xcom[name] != getattr(report, name)]
        if wrong:
            raise ValueError(f"its counts do not match its entries: {', '.join(wrong)}")
        return report

    @classmethod
    def merge(
        cls,
        reports: Iterable[AuditReport | None],
        *,
        chunks: Sequence[Sequence[str]] | None = None,
        task_id: str = "audit_pins",
    ) -> AuditReport:
        """One report of the whole fleet from the reports of its chunks, counts recomputed:
        :func:`merge_chunk_reports` without the list of what it did not trust."""
        return merge_chunk_reports(reports, chunks=chunks, task_id=task_id).report

    def to_xcom(self) -> dict[str, Any]:
        """The JSON-safe report: counts, then ``results`` (see :class:`PlugzPinAuditOperator`);
        the status counts and each entry's ``status`` only with ``status_checked``."""
        xcom: dict[str, Any] = {
            "total": self.total,
            "with_pin": self.with_pin,
            "without_pin": self.without_pin,
            "errors": self.errors,
            "timed_out": self.timed_out,
        }
        if self.status_checked:
            xcom.update((name, getattr(self, name)) for name in STATUS_COUNTS)
        xcom["results"] = {
            conn_id: r.to_xcom(with_status=self.status_checked) for conn_id, r in self.results.items()
        }
        return xcom


def _checked(conn_id: str, value: PinStatus | PinAndStatus) -> CheckResult:
    """The entry of a number whose check returned."""
    if not isinstance(value, PinAndStatus):
        return CheckResult.pin(value.has_code)
    if isinstance(value.status, Exception):
        status = StatusResult.failure(conn_id, value.status)
    else:
        status = StatusResult.of(value.status)
    if isinstance(value.pin, Exception):
        return CheckResult.failure(conn_id, value.pin, status=status)
    return CheckResult.pin(value.pin.has_code, status=status)


@dataclass(frozen=True)
class MergedReport:
    """What :func:`merge_chunk_reports` made of the chunk reports: the fleet's ``report`` and,
    one sentence each, what it refused to trust (``warnings``, for the task log)."""

    report: AuditReport
    warnings: tuple[str, ...] = ()


def merge_chunk_reports(
    reports: Iterable[AuditReport | None],
    *,
    chunks: Sequence[Sequence[str]] | None = None,
    task_id: str = "audit_pins",
) -> MergedReport:
    """One report of the whole fleet from the reports of its chunks, counts recomputed.

    ``reports`` come in map-index order (as Airflow gives a mapped task's XComs), ``None``
    where a chunk pushed nothing. With ``chunks`` (the ids each mapped task was given, in
    map-index order: what :func:`audit_chunks` returned) every id has one owner, the chunk
    that lists it, and only its owner's report speaks for it:

    - the entries come in the order of ``chunks``; ids no chunk lists never get one;
    - a report is its chunk's by position when there are as many reports as chunks, else
      (some chunk pushed nothing) by its ids, which must then all be one chunk's: a report
      holding ids of several chunks, or two reports of one chunk, are not used;
    - entries a report holds for ids of other chunks are ignored (never counted twice), and
      each id of a chunk without a usable report, or missing from its report, gets a
      ``PlugzAuditError`` "not checked" entry naming ``task_id`` and the map index, so that
      ``fail_on_error`` fails on it; each case is one of the ``warnings``.

    Without ``chunks`` the entries come in the order of ``reports``, and an id that two reports
    hold gets such a "not checked" entry: nothing says which of them owns it. The ids of a
    chunk that did not report cannot be known, so they are missing (give ``chunks``).

    :raises ValueError: the reports disagree on ``status_checked`` (one operator's chunks never
        do), ``chunks`` is not a list of disjoint lists of connection ids, or there are more
        reports than chunks.
    """
    given = list(reports)
    checked = {r.status_checked for r in given if r is not None}
    if len(checked) > 1:
        raise ValueError(
            "the chunk reports disagree on check_status: some hold each number's connection "
            "status, some do not; give every chunk the same check_status"
        )
    status_checked = checked.pop() if checked else False
    if chunks is None:
        return _merge_without_owners(given, status_checked)
    chunk_lists = check_chunks(chunks)
    if len(given) > len(chunk_lists):
        raise ValueError(
            f"there are {len(given)} chunk reports for {len(chunk_lists)} chunks: give chunks= the "
            "list the audit was expanded over, and reports= that audit's reports"
        )
    owner = {conn_id: index for index, chunk in enumerate(chunk_lists) for conn_id in chunk}
    warnings: list[str] = []
    claims = _claims(given, len(chunk_lists), owner, warnings)
    unmatched = bool(warnings)  # reports that could not be told to be any one chunk's
    results: dict[str, CheckResult] = {}
    for index, chunk in enumerate(chunk_lists):
        where = f"({task_id!r}, map index {index})"
        positions = claims.get(index, [])
        if not positions:
            if not unmatched:
                entry = CheckResult.not_reported(index, task_id)
            else:
                entry = CheckResult.not_merged(
                    f"no report could be matched to its chunk {where}: that task ended without "
                    "one, or its report held ids of other chunks too (see the merge's log). Clear "
                    "that task instance to audit the chunk again."
                )
            results.update(dict.fromkeys(chunk, entry))
            continue
        if len(positions) > 1:
            warnings.append(
                f"chunk reports {numbers_text(positions)} all hold ids of chunk {index} {where} only; "
                "which one is its own cannot be told, so none of them is used for it"
            )
            entry = CheckResult.not_merged(
                f"{len(positions)} chunk reports hold entries for the ids of its chunk {where}, and "
                "which one is that chunk's own cannot be told. Clear that task instance to audit "
                "the chunk again."
            )
            results.update(dict.fromkeys(chunk, entry))
            continue
        report = given[positions[0]]
        assert report is not None  # only reports are claimed
        foreign = [c for c in report.results if owner.get(c) != index]
        if foreign:
            warnings.append(
                f"the report of chunk {index} {where} holds {len(foreign)} entr"
                f"{'y' if len(foreign) == 1 else 'ies'} for connection ids it was not given "
                f"({ids_text(foreign, 10)}): ignored, only the chunk that lists an id reports on it"
            )
        lost = [c for c in chunk if c not in report.results]
        if lost:
            warnings.append(
                f"the report of chunk {index} {where} has no entry for {len(lost)} of its "
                f"{len(chunk)} connection id(s) ({ids_text(lost, 10)}): reported as not checked"
            )
        absent = CheckResult.not_merged(
            f"the report of its chunk {where} has no entry for it. See that task instance's "
            "log, then clear it to audit the chunk again."
        )
        for conn_id in chunk:
            results[conn_id] = report.results.get(conn_id, absent)
    return MergedReport(AuditReport(results, status_checked=status_checked), tuple(warnings))


def _claims(
    given: list[AuditReport | None], chunks: int, owner: Mapping[str, int], warnings: list[str]
) -> dict[int, list[int]]:
    """Which chunk each report is (chunk -> positions in ``given``), for :func:`merge_chunk_reports`:
    by position when every chunk has a place in ``given``, else by its ids; a report that
    can be no one chunk's is in none (and in ``warnings``)."""
    if len(given) == chunks:  # every chunk reported (or pushed None): by position
        return {index: [index] for index, report in enumerate(given) if report is not None}
    claims: dict[int, list[int]] = {}
    missing = chunks - sum(1 for r in given if r is not None)
    for position, report in enumerate(given):
        if report is None:
            continue
        owners = sorted({owner[c] for c in report.results if c in owner})
        if len(owners) == 1:
            claims.setdefault(owners[0], []).append(position)
            continue
        holds = "no id of any chunk" if not owners else f"ids of chunks {numbers_text(owners)}"
        warnings.append(
            f"chunk report {position} (in map-index order) holds {holds}; with {missing} chunk "
            "report(s) missing, which chunk it is cannot be told, so none of its entries is used"
        )
    return claims


def _merge_without_owners(given: list[AuditReport | None], status_checked: bool) -> MergedReport:
    """:func:`merge_chunk_reports` without ``chunks``: an id two reports hold is not trusted."""
    holders: dict[str, list[int]] = {}
    for position, report in enumerate(given):
        for conn_id in () if report is None else report.results:
            holders.setdefault(conn_id, []).append(position)
    results: dict[str, CheckResult] = {}
    disputed: list[str] = []
    for conn_id, positions in holders.items():
        if len(positions) == 1:
            report = given[positions[0]]
            assert report is not None
            results[conn_id] = report.results[conn_id]
            continue
        disputed.append(conn_id)
        results[conn_id] = CheckResult.not_merged(
            f"chunk reports {numbers_text(positions)} each hold an entry for it, and without the "
            "chunk list the merge cannot tell which chunk owns it. Give PlugzAuditMergeOperator "
            "chunks= (what the audit was expanded over)."
        )
    warnings = []
    if disputed:
        warnings.append(
            f"{len(disputed)} connection id(s) are in more than one chunk report ({ids_text(disputed, 10)}): "
            "reported as not checked; give chunks= so the merge knows which chunk owns each id"
        )
    return MergedReport(AuditReport(results, status_checked=status_checked), tuple(warnings))
