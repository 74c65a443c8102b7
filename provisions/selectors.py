"""Reads the pages need, as of a date and for a reader: plain functions over querysets and the rules."""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet

from provisions.models import (
    AimCapability,
    Capability,
    CoverageState,
    Domain,
    Gap,
    GapKind,
    GapQuerySet,
    Level,
    Provision,
    Status,
    StatusChange,
    sees_every_marking,
)
from provisions.permissions import Reader
from provisions.redaction import Redaction, finding_rows, gap_rows
from provisions.rules import AimAt, Evaluation, aims_from

SEVERITIES = list(Level)


@dataclass(frozen=True)
class Lapse:
    """A capability that lapses next: its lapse date as it stood at the date asked about."""

    code: str
    name: str
    lapses_on: datetime.date
    days: int
    state: str
    gap_kind: str | None

    @property
    def state_label(self) -> str:
        return CoverageState(self.state).label

    @property
    def gap_label(self) -> str | None:
        return GapKind(self.gap_kind).label if self.gap_kind else None


def visible_gaps(reader: Reader) -> GapQuerySet:
    """Gaps the reader may see, with what their rows show (provisions.redaction.gap_row)."""
    return Gap.objects.visible_to(reader).select_related(
        "capability__domain", "provision__domain", "acknowledged_by"
    )


def persisted_gap_rows(reader: Reader, gaps: Any, *, today: datetime.date) -> list[dict[str, Any]]:
    """Report rows of the given gaps (a page of them), as the reader may see them."""
    return gap_rows(gaps, Redaction.for_reader(reader), today=today)


def evaluated_gap_rows(reader: Reader, evaluation: Evaluation) -> list[dict[str, Any]]:
    """Report rows of an evaluation's findings (time travel), as the reader may see them."""
    return finding_rows(evaluation.findings, Redaction.for_reader(reader))


def gaps_by_severity(rows: list[dict[str, Any]]) -> list[tuple[Level, int]]:
    counts = Counter(row["severity"] for row in rows)
    return [(level, counts[level.value]) for level in SEVERITIES]


def next_lapses(evaluation: Evaluation, *, as_of: datetime.date, limit: int = 8) -> list[Lapse]:
    """The capabilities that lapse next (on or after the date, by their lapse date then), with their
    coverage then. Reads the evaluation (a full one): no query."""
    gap_kind = {f.subject_id: f.kind.value for f in evaluation.findings if f.subject_type == "capability"}
    upcoming = sorted(
        (c for c in evaluation.capabilities.values() if c.lapses_on is not None and c.lapses_on >= as_of),
        key=lambda c: (c.lapses_on, c.code),
    )
    return [
        Lapse(
            code=capability.code,
            name=capability.name,
            lapses_on=capability.lapses_on,
            days=(capability.lapses_on - as_of).days,
            state=evaluation.coverage[capability.id].state.value
            if capability.id in evaluation.coverage
            else CoverageState.UNCOVERED.value,
            gap_kind=gap_kind.get(capability.id),
        )
        for capability in upcoming[:limit]
        if capability.lapses_on is not None
    ]


def recent_movements(reader: Reader, *, as_of: datetime.date, limit: int = 10) -> QuerySet[StatusChange]:
    changes = StatusChange.objects.filter(changed_on__lte=as_of)
    if not sees_every_marking(reader):  # no join to filter through for one who sees every provision
        changes = changes.filter(provision__marking__in=reader.markings)
    return changes.select_related("provision", "changed_by").order_by("-changed_on", "-id")[:limit]


def domain_provisions(domain: Domain, reader: Reader) -> QuerySet[Provision]:
    return Provision.objects.visible_to(reader).filter(domain=domain).with_related().order_by("reference")


def coverage_by_domain_as_scanned(reader: Reader) -> list[dict[str, Any]]:
    """coverage_by_domain's rows for today, from the states the last scans recorded (three queries,
    whatever the size of the partnership) instead of evaluating the rules again. Counted by domain
    id, without a join: at a million provisions PostgreSQL counts them from the (domain, status)
    index in a third of the time."""
    domains = list(Domain.objects.order_by("id").values_list("id", "code", "name"))
    codes = {pk: code for pk, code, _ in domains}
    states: dict[str, Counter[str]] = {}
    for domain_id, state, count in (
        Capability.objects.order_by().values_list("domain_id", "coverage_state").annotate(n=Count("*"))
    ):
        states.setdefault(codes[domain_id], Counter())[state or "unscanned"] += count
    statuses: dict[str, Counter[str]] = {}
    for domain_id, status, count in (
        Provision.objects.visible_to(reader)
        .order_by()
        .values_list("domain_id", "status")
        .annotate(n=Count("*"))
    ):
        statuses.setdefault(codes[domain_id], Counter())[status] += count
    rows = []
    for _, code, name in domains:
        counted = states.get(code, Counter())
        total = sum(counted.values())
        rows.append(
            {
                "domain": code,
                "name": name,
                "capabilities": total,
                "capabilities_by_state": {state: counted[state] for state in CoverageState.values},
                "unscanned": counted["unscanned"],
                "provisions_by_status": {s: statuses.get(code, Counter())[s] for s in Status.values},
                "coverage_ratio": round(counted[CoverageState.SECURED] / total, 4) if total else None,
            }
        )
    return rows


def open_gap_severities(reader: Reader) -> list[tuple[Level, int]]:
    """Open gaps the reader may see, counted by severity (one query)."""
    counts = dict(
        Gap.objects.open().visible_to(reader).order_by().values_list("severity").annotate(n=Count("*"))
    )
    return [(level, counts.get(level.value, 0)) for level in SEVERITIES]


def next_lapses_as_scanned(*, today: datetime.date, limit: int = 8) -> list[Lapse]:
    upcoming = list(
        Capability.objects.filter(lapses_on__gte=today)
        .select_related("domain")
        .order_by("lapses_on", "code")[:limit]
    )
    kinds = dict(
        Gap.objects.open().filter(capability__in=upcoming).order_by().values_list("capability_id", "kind")
    )
    return [
        Lapse(
            code=capability.code,
            name=capability.name,
            lapses_on=capability.lapses_on,
            days=(capability.lapses_on - today).days,
            state=capability.coverage_state or CoverageState.UNCOVERED.value,
            gap_kind=kinds.get(capability.pk),
        )
        for capability in upcoming
        if capability.lapses_on is not None
    ]


def aims_as_scanned() -> list[AimAt]:
    """The aims today, from the coverage states the last scans recorded (three queries)."""
    serving = AimCapability.objects.values("capability_id")  # not every capability: the aims' few
    recorded = (
        Capability.objects.exclude(coverage_state="")
        .filter(pk__in=serving)
        .values_list("pk", "coverage_state")
    )
    return aims_from({pk: CoverageState(state) for pk, state in recorded})
