"""The audit's report: :class:`AuditReport`, one entry per connection id and the counts, built
from a fan-out's run, written to XCom and read back from it; and one report of a fleet audited
in chunks from the reports of its chunks (:func:`merge_chunk_reports`): each number from the
chunk that owns it, nothing counted twice or lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from airflow_provider_plugz.audit.arguments import check_chunks
from airflow_provider_plugz.audit.checks import FactsRead, PinAndStatus
from airflow_provider_plugz.audit.columns import FactResult
from airflow_provider_plugz.audit.entries import CheckResult
from airflow_provider_plugz.audit.texts import ids_text, numbers_text
from airflow_provider_plugz.audit.xcom import COUNTS, MAX_REPORT_ENTRIES, expect_keys, is_conn_id, kind
from airflow_provider_plugz.endpoints import FACTS, PIN

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from airflow_provider_plugz.audit.fanout import FleetRun
    from airflow_provider_plugz.hooks.plugz import PinStatus


@dataclass(frozen=True, repr=False)
class AuditReport:
    """The audit's outcome: one :class:`CheckResult` per connection id, in the order given, and
    the counts. ``errors`` counts every entry without a PIN answer, ``timed_out`` the part of
    them the audit's deadline came before. For each other fact in ``checks`` (the names of
    :data:`~airflow_provider_plugz.endpoints.FACTS`; ``status_checked``, the operator's
    ``check_status``, is the connection's) it also counts the numbers in each of the fact's
    states and those whose column could not be read (for the connection: each of
    :data:`CONNECTION_STATES` and ``status_errors``); those add up to ``total``. Every count is
    an attribute (``report.with_pin``, ``report.connected``) and in :attr:`counts`.
    :meth:`to_xcom` is the JSON the task returns."""

    results: Mapping[str, CheckResult]
    status_checked: bool = False
    checks: tuple[str, ...] = ()
    counts: Mapping[str, int] = field(init=False)

    def __post_init__(self) -> None:
        results = MappingProxyType(dict(self.results))  # read-only, and no longer the caller's
        for conn_id, result in results.items():
            if not isinstance(conn_id, str) or not isinstance(result, CheckResult):
                raise ValueError(
                    "an AuditReport's results map connection ids (strings) to CheckResults, got "
                    f"{kind(conn_id)} to {kind(result)}"
                )
        unknown = [name for name in self.checks if name not in FACTS]
        if unknown:
            raise ValueError(f"an AuditReport's checks name no known fact: {', '.join(map(repr, unknown))}")
        wanted = {*self.checks, *(("connection",) if self.status_checked else ())} - {PIN.name}
        checks = tuple(name for name in FACTS if name in wanted)
        read = {name for r in results.values() for name, column in r.columns.items() if column is not None}
        if read - set(checks):
            names = ", ".join(sorted(read - set(checks)))
            raise ValueError(
                f"an AuditReport with {names} columns in its results needs them in checks"
                + (" (status_checked=True)" if "connection" in read - set(checks) else "")
            )
        counts = {"total": len(results)}
        for fact in FACTS.values():
            column = [
                (r.has_code if r.has_code is not None else None)
                if fact is PIN
                else (None if (c := r.columns.get(fact.name)) is None else c.state)
                for r in results.values()
            ]
            for state, name in fact.states.items():
                counts[name] = sum(1 for value in column if value is not None and value == state)
            answered = sum(counts[name] for name in fact.states.values())
            counts[fact.errors_count] = len(results) - answered if fact is PIN or fact.name in checks else 0
        counts["timed_out"] = sum(1 for r in results.values() if r.timed_out)
        object.__setattr__(self, "results", results)
        object.__setattr__(self, "checks", checks)
        object.__setattr__(self, "status_checked", "connection" in checks)
        object.__setattr__(self, "counts", MappingProxyType(counts))

    def __getattr__(self, name: str) -> int:
        # Each count as an attribute: report.with_pin, report.connected, ...
        counts = self.__dict__.get("counts")
        if counts is not None and name in counts:
            return int(counts[name])
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"AuditReport({', '.join(f'{name}={self.counts[name]}' for name in self.count_names)})"

    @property
    def count_names(self) -> tuple[str, ...]:
        """The counts its XCom holds, in order: every report's, then each checked fact's."""
        return COUNTS + tuple(count for name in self.checks for count in FACTS[name].counts)

    @classmethod
    def from_run(
        cls,
        run: FleetRun[PinStatus | PinAndStatus | FactsRead],
        *,
        deadline_seconds: float,
        status_checked: bool = False,
        checks: tuple[str, ...] = (),
    ) -> AuditReport:
        """The report of a fan-out that had ``deadline_seconds`` to finish: of PIN checks
        (``PinStatus`` values), of PIN-and-status checks (:class:`PinAndStatus` values, with
        ``status_checked``) or of the facts in ``checks`` (:class:`FactsRead` values)."""
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
        return cls(results, status_checked=status_checked, checks=checks)

    def findings(self, fact: str) -> list[str]:
        """The connection ids whose ``fact`` was read and is in a bad state (``fail_if_*``)."""
        declared = FACTS[fact]
        if declared is PIN:
            return [c for c, r in self.results.items() if r.has_code is not None and PIN.is_bad(r.has_code)]
        return [
            c
            for c, r in self.results.items()
            if (column := r.columns.get(fact)) is not None
            and column.state is not None
            and declared.is_bad(column.state)
        ]

    def unread(self, fact: str) -> list[str]:
        """The connection ids whose ``fact``'s call failed (for the PIN: timed-out ones too)."""
        if fact == PIN.name:
            return [c for c, r in self.results.items() if r.has_code is None]
        return [
            c
            for c, r in self.results.items()
            if (column := r.columns.get(fact)) is not None and column.state is None
        ]

    @property
    def missing_pin(self) -> list[str]:
        """The connection ids whose account has no PIN."""
        return self.findings(PIN.name)

    @property
    def failed(self) -> list[str]:
        """The connection ids that could not be checked (timed-out ones included)."""
        return self.unread(PIN.name)

    @property
    def not_connected(self) -> list[str]:
        """The connection ids whose status was read and is not ``connected``."""
        return self.findings("connection")

    @property
    def status_failed(self) -> list[str]:
        """The connection ids whose status call failed."""
        return self.unread("connection")

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
        checks = tuple(
            name
            for name, fact in FACTS.items()
            if fact is not PIN and any(count in xcom for count in fact.counts)
        )
        names = COUNTS + tuple(count for name in checks for count in FACTS[name].counts)
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
                results[conn_id] = CheckResult.from_xcom(entry, checks=checks)
            except ValueError as err:
                raise ValueError(f"the entry of {conn_id!r}: {err}") from None
        report = cls(results, checks=checks)
        wrong = [name for name in names if xcom[name] != report.counts[name]]
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
        each checked fact's counts and column only when it was checked."""
        xcom: dict[str, Any] = {name: self.counts[name] for name in self.count_names}
        xcom["results"] = {conn_id: r.to_xcom(checks=self.checks) for conn_id, r in self.results.items()}
        return xcom


def _checked(conn_id: str, value: PinStatus | PinAndStatus | FactsRead) -> CheckResult:
    """The entry of a number whose check returned."""
    if isinstance(value, PinAndStatus):
        value = FactsRead(value.pin, {"connection": value.status})
    if not isinstance(value, FactsRead):
        return CheckResult.pin(value.has_code)
    columns: dict[str, FactResult | None] = {}
    for name, read in value.columns.items():
        fact = FACTS[name]
        columns[name] = (
            FactResult.failure(fact, conn_id, read)
            if isinstance(read, Exception)
            else FactResult.of(fact, read)
        )
    if isinstance(value.pin, Exception):
        return CheckResult.failure(conn_id, value.pin, columns=columns)
    return CheckResult.pin(value.pin.has_code, columns=columns)


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

    :raises ValueError: the reports disagree on what they checked (one operator's chunks never
        do), ``chunks`` is not a list of disjoint lists of connection ids, or there are more
        reports than chunks.
    """
    given = list(reports)
    checked = {r.checks for r in given if r is not None}
    if len(checked) > 1:
        raise ValueError(
            "the chunk reports disagree on check_status (the facts checked: "
            f"{'; '.join(', '.join(c) or 'the PIN only' for c in sorted(checked))}); give every chunk "
            "the same check_status and checks"
        )
    checks = checked.pop() if checked else ()
    if chunks is None:
        return _merge_without_owners(given, checks)
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
    return MergedReport(AuditReport(results, checks=checks), tuple(warnings))


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


def _merge_without_owners(given: list[AuditReport | None], checks: tuple[str, ...]) -> MergedReport:
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
    return MergedReport(AuditReport(results, checks=checks), tuple(warnings))
