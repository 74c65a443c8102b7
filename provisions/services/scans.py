"""Gap scans: asking for one after a write, and running one (evaluate today, reconcile the gap table)."""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import time
from collections import Counter
from collections.abc import Collection, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from provisions.models import (
    Capability,
    Coverage,
    CoverageSnapshot,
    CoverageState,
    Domain,
    Gap,
    GapRuleThresholds,
    GapScan,
    Provision,
    ScanRequest,
    ScanTrigger,
)
from provisions.permissions import Reader, can_acknowledge_gaps, can_administer, ensure
from provisions.rules import CoverageAt, Finding, Thresholds, evaluate_gaps
from provisions.services.escalations import gap_escalations
from provisions.services.queueing import RUN_REQUESTED_SCANS, task_queue_on_commit
from provisions.services.watch import notify_gap_changes
from provisions.services.webhooks import events_record_gap_changes

logger = logging.getLogger(__name__)

# Any constant key: all scans take the same PostgreSQL advisory lock, so they run one at a time.
_SCAN_LOCK_KEY = 0x5CA11
_REQUESTS_LOCK_KEY = 0x5CA12


@dataclass
class _PendingScope:
    provision_ids: set[int] = field(default_factory=set)
    capability_ids: set[int] = field(default_factory=set)
    full: bool = False


_batch: ContextVar[_PendingScope | None] = ContextVar("scan_request_batch", default=None)


def scan_request(
    *,
    provision_ids: Collection[int] = (),
    capability_ids: Collection[int] = (),
    full: bool = False,
    trigger: ScanTrigger = ScanTrigger.CHANGE,
) -> ScanRequest | None:
    """Ask for a scan of what a write touched, once the write commits.

    The request is a row written in the caller's transaction (it survives a broker outage;
    the periodic job sends it again); the task is queued on commit. Inside
    `scan_requests_batched()` requests are merged into one row, so an import queues one scan.
    """
    batch = _batch.get()
    if batch is not None:
        batch.provision_ids.update(provision_ids)
        batch.capability_ids.update(capability_ids)
        batch.full = batch.full or full
        return None
    request = ScanRequest.objects.create(
        trigger=trigger,
        provision_ids=sorted(provision_ids),
        capability_ids=sorted(capability_ids),
        full=full,
    )
    task_queue_on_commit(RUN_REQUESTED_SCANS)
    return request


@contextlib.contextmanager
def scan_requests_batched() -> Iterator[None]:
    """Merge every scan request made inside the block into one, written when the block ends."""
    if _batch.get() is not None:  # already batching: the outer block writes the request
        yield
        return
    scope = _PendingScope()
    token = _batch.set(scope)
    try:
        yield
    finally:
        _batch.reset(token)
    if scope.full or scope.provision_ids or scope.capability_ids:
        scan_request(provision_ids=scope.provision_ids, capability_ids=scope.capability_ids, full=scope.full)


@dataclass(frozen=True)
class ScanOutcome:
    scan: GapScan
    opened: list[Gap]
    resolved: list[Gap]


def _lock_scans() -> None:
    """Serialise scans and a full scan's batches (SQLite allows one writer at a time already)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SCAN_LOCK_KEY])


@contextlib.contextmanager
def _requests_handled_one_at_a_time() -> Iterator[None]:
    """Hold a session-level advisory lock, not a transaction: two workers do not handle the same
    requests twice, and a full scan's batches commit as they go (scoped scans still run between them)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [_REQUESTS_LOCK_KEY])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_REQUESTS_LOCK_KEY])


def _full_scan_batches() -> Iterator[tuple[list[int], list[int]]]:
    """Every provision and capability, as (provision ids, capability ids) of at most about
    GAP_SCAN_BATCH_SUBJECTS subjects together, domain by domain (what a subject depends on is mostly
    in its domain, so a batch reads little beyond itself)."""
    provisions = list(Provision.objects.order_by("domain_id", "id").values_list("id", flat=True))
    capabilities = list(Capability.objects.order_by("domain_id", "id").values_list("id", flat=True))
    parts = max(1, math.ceil((len(provisions) + len(capabilities)) / settings.GAP_SCAN_BATCH_SUBJECTS))
    for part in range(parts):
        yield (
            provisions[part * len(provisions) // parts : (part + 1) * len(provisions) // parts],
            capabilities[part * len(capabilities) // parts : (part + 1) * len(capabilities) // parts],
        )


def gaps_scan(
    *,
    trigger: ScanTrigger,
    provision_ids: Collection[int] | None = None,
    capability_ids: Collection[int] | None = None,
) -> ScanOutcome:
    """Evaluate today and reconcile the gap table; record the scan.

    With no ids every subject is scanned, in batches of its own transaction each (a million
    provisions do not hold one transaction for minutes, nor their whole evaluation in memory); with
    ids only those subjects (and only their gaps can be opened or resolved), in one transaction.
    Scans and batches run one at a time, so two at once leave one consistent set.
    """
    started = time.perf_counter()
    if provision_ids is None and capability_ids is None:
        return _full_scan(trigger, started)
    with transaction.atomic():
        _lock_scans()
        as_of = timezone.localdate()
        scan = GapScan.objects.create(as_of=as_of, trigger=trigger, full=False)
        provision_ids, capability_ids = _dependent_subjects(provision_ids or (), capability_ids or ())
        outcome, _ = _scan_subjects(scan, provision_ids, capability_ids, Thresholds.current())
        _scan_finished(scan, started)
    return outcome


def _full_scan(trigger: ScanTrigger, started: float) -> ScanOutcome:
    """Every subject, batch by batch; the day's coverage snapshot once all are reconciled. A scan
    that dies half-way leaves its batches reconciled and its row unfinished (no duration)."""
    thresholds = Thresholds.current()
    scan = GapScan.objects.create(as_of=timezone.localdate(), trigger=trigger, full=True)
    outcome = ScanOutcome(scan=scan, opened=[], resolved=[])
    states: Counter[str] = Counter()
    for provision_ids, capability_ids in _full_scan_batches():
        with transaction.atomic():
            _lock_scans()
            batch, counted = _scan_subjects(scan, set(provision_ids), set(capability_ids), thresholds)
        outcome.opened.extend(batch.opened)
        outcome.resolved.extend(batch.resolved)
        states.update(counted)
    with transaction.atomic():
        coverage_snapshot_record(as_of=scan.as_of, counts=states)
        _scan_finished(scan, started)
    return outcome


def _scan_subjects(
    scan: GapScan, provision_ids: set[int], capability_ids: set[int], thresholds: Thresholds
) -> tuple[ScanOutcome, Counter[str]]:
    """Evaluate the subjects at the scan's day, reconcile their open gaps and keep their coverage
    states; the scan's counts grow by what they did. Returns the capabilities counted by state."""
    evaluation = evaluate_gaps(
        as_of=scan.as_of, provision_ids=provision_ids, capability_ids=capability_ids, thresholds=thresholds
    )
    open_gaps = Gap.objects.open().order_by()
    open_gaps = open_gaps.filter(capability_id__id_in=capability_ids) | open_gaps.filter(
        provision_id__id_in=provision_ids
    )
    outcome = gaps_reconcile(scan=scan, findings=evaluation.findings, open_gaps=list(open_gaps))
    _record_coverage_states(evaluation.coverage)
    scan.evaluated_subjects += evaluation.evaluated_subjects
    scan.save(update_fields=["evaluated_subjects"])
    return outcome, evaluation.states_counted()


def _scan_finished(scan: GapScan, started: float) -> None:
    scan.duration_ms = round((time.perf_counter() - started) * 1000)
    scan.updated_at = timezone.now()
    scan.save(update_fields=["duration_ms", "updated_at"])


def _record_coverage_states(coverage: dict[int, CoverageAt]) -> None:
    """Keep each evaluated capability's coverage state on it, for today's dashboards."""
    stored = dict(
        Capability.objects.filter(id__id_in=coverage).order_by().values_list("pk", "coverage_state")
    )
    changed = [
        Capability(pk=pk, coverage_state=at.state.value)
        for pk, at in coverage.items()
        if stored.get(pk) != at.state.value
    ]
    Capability.objects.bulk_update(changed, ["coverage_state"], batch_size=2000)


def coverage_snapshot_record(*, as_of: datetime.date, counts: Counter[str]) -> CoverageSnapshot:
    """Every capability's count by coverage state on the day (from a full evaluation or scan), as
    the snapshot of that day."""
    snapshot, _ = CoverageSnapshot.objects.update_or_create(
        as_of=as_of,
        defaults={state: counts[state] for state in CoverageState.values} | {"recorded_at": timezone.now()},
    )
    return snapshot


def _dependent_subjects(
    provision_ids: Collection[int], capability_ids: Collection[int]
) -> tuple[set[int], set[int]]:
    """Widen a scope to every subject whose gaps it can change: a provision's status changes the
    coverage of what it covers; a capability's lapse date or criticality changes the provision
    gaps of what covers it."""
    provisions, capabilities = set(provision_ids), set(capability_ids)
    links = Coverage.objects.filter(provision_id__in=provisions) | Coverage.objects.filter(
        capability_id__in=capabilities
    )
    for provision_id, capability_id in links.order_by().values_list("provision_id", "capability_id"):
        if provision_id in provisions:
            capabilities.add(capability_id)
        if capability_id in capability_ids:
            provisions.add(provision_id)
    return provisions, capabilities


def gaps_reconcile(*, scan: GapScan, findings: list[Finding], open_gaps: list[Gap]) -> ScanOutcome:
    """Open gaps found and not open, update those still found, resolve open ones no longer found;
    the scan's counts grow by what it did (a full scan reconciles batch by batch).

    A capability moving from at_risk to lapsed resolves one gap and opens another (identity is
    kind and subject), so the history shows the escalation.
    """
    now = timezone.now()
    domain_ids = dict(Domain.objects.values_list("code", "pk"))  # findings name their subject's by code
    severities_before = {gap.pk: gap.severity for gap in open_gaps}  # to tell escalations apart
    open_by_identity: dict[Any, Gap] = {gap.identity: gap for gap in open_gaps}
    to_open: list[Gap] = []
    to_update: list[Gap] = []
    for finding in findings:
        existing = open_by_identity.pop(finding.identity, None)
        if existing is None:
            to_open.append(
                Gap(
                    kind=finding.kind,
                    severity=finding.severity,
                    capability_id=finding.subject_id if finding.subject_type == "capability" else None,
                    provision_id=finding.subject_id if finding.subject_type == "provision" else None,
                    domain_id=domain_ids[finding.domain],
                    explanation=finding.explanation,
                    detail=finding.facts.to_json(),
                    coverage_state=finding.coverage_state or "",
                    lapses_on=finding.lapses_on,
                    covering_provisions=";".join(finding.covering_provisions),
                    opened_at=now,
                    updated_at=now,
                    opened_by_scan=scan,
                )
            )
        else:
            seen = {
                "severity": finding.severity.value,
                "domain_id": domain_ids[finding.domain],
                "explanation": finding.explanation,
                "detail": finding.facts.to_json(),
                "coverage_state": finding.coverage_state or "",
                "lapses_on": finding.lapses_on,
                "covering_provisions": ";".join(finding.covering_provisions),
            }
            if any(getattr(existing, name) != value for name, value in seen.items()):
                for name, value in seen.items():
                    setattr(existing, name, value)
                existing.updated_at = now
                to_update.append(existing)
    to_resolve = list(open_by_identity.values())
    Gap.objects.bulk_create(to_open, batch_size=2000)
    Gap.objects.bulk_update(
        to_update,
        [
            "severity",
            "domain",
            "explanation",
            "detail",
            "coverage_state",
            "lapses_on",
            "covering_provisions",
            "updated_at",
        ],
        batch_size=2000,
    )
    Gap.objects.filter(id__id_in=[gap.pk for gap in to_resolve]).update(
        resolved_at=now, resolved_by_scan=scan, updated_at=now
    )
    for gap in to_resolve:
        gap.resolved_at, gap.resolved_by_scan, gap.updated_at = now, scan, now
    scan.opened += len(to_open)
    scan.updated += len(to_update)
    scan.resolved += len(to_resolve)
    scan.unchanged += len(findings) - len(to_open) - len(to_update)
    scan.save(update_fields=["opened", "updated", "resolved", "unchanged"])
    escalated = gap_escalations(
        opened=to_open, resolved=to_resolve, updated=to_update, before=severities_before
    )
    events_record_gap_changes(
        opened=to_open, updated=to_update, resolved=to_resolve, escalated=escalated, as_of=scan.as_of
    )
    notify_gap_changes(opened=to_open, resolved=to_resolve, escalated=escalated)
    return ScanOutcome(scan=scan, opened=to_open, resolved=to_resolve)


def gaps_run_requested() -> ScanOutcome | None:
    """Handle every pending scan request with one scan of their merged scope; None if none pend.

    The requests are deleted once their scan is done: if the worker dies mid-scan, they stay and the
    scan is done again when the task is redelivered (a scoped scan is one transaction, a full scan
    keeps the batches it finished, which the second one finds already reconciled).
    """
    with _requests_handled_one_at_a_time():
        requests = list(ScanRequest.objects.order_by("id"))
        if not requests:
            return None
        trigger = ScanTrigger(requests[0].trigger)
        handled = ScanRequest.objects.filter(pk__in=[request.pk for request in requests])
        if any(request.full for request in requests):
            outcome = gaps_scan(trigger=trigger)
            handled.delete()
        else:
            with transaction.atomic():
                outcome = gaps_scan(
                    trigger=trigger,
                    provision_ids={pk for request in requests for pk in request.provision_ids},
                    capability_ids={pk for request in requests for pk in request.capability_ids},
                )
                handled.delete()
    logger.info("Scan %s handled %d request(s)", outcome.scan.pk, len(requests))
    return outcome


def gap_thresholds_set(
    *, by: Reader, secured_status: str, warning_days: int, urgent_days: int, stall_days: int
) -> GapRuleThresholds:
    """Set the gap rules' thresholds (administrators only) and ask for a full scan: every gap may
    change with them. A bad value raises ValidationError naming the field; nothing is saved."""
    ensure(can_administer(by), "only administrators set the gap rules' thresholds")
    with transaction.atomic():
        thresholds = GapRuleThresholds.objects.select_for_update().filter(pk=1).first() or GapRuleThresholds(
            pk=1
        )
        thresholds.secured_status = secured_status
        thresholds.warning_days = warning_days
        thresholds.urgent_days = urgent_days
        thresholds.stall_days = stall_days
        thresholds.updated_by = by.user
        thresholds.full_clean(exclude=["updated_by"])
        thresholds.save()
        scan_request(full=True, trigger=ScanTrigger.WEB)
    return thresholds


def gap_acknowledge(*, gap: Gap, by: Reader, note: str) -> Gap:
    """Acknowledge an open gap with a note; it stays open until the rules clear it."""
    ensure(can_acknowledge_gaps(by), "you may not acknowledge gaps")
    if gap.provision_id is not None:
        ensure(by.sees(gap.provision.marking) if gap.provision else False, "no such gap")
    if gap.resolved_at is not None:
        raise ValidationError({"gap": "this gap is resolved; only open gaps can be acknowledged"})
    if not note.strip():
        raise ValidationError({"note": "an acknowledgement needs a note"})
    gap.acknowledged_at, gap.acknowledged_by, gap.acknowledgement_note = timezone.now(), by.user, note.strip()
    gap.updated_at = gap.acknowledged_at
    with transaction.atomic():
        gap.save(update_fields=["acknowledged_at", "acknowledged_by", "acknowledgement_note", "updated_at"])
        events_record_gap_changes(updated=[gap], as_of=timezone.localdate())
    return gap
