"""Coverage and gap rules (DESIGN.md, "Coverage and gap rules"), evaluated at any date.

Plain functions over querysets and dates: no request, task or HTTP in sight, so the scan,
the pages, the API and the exports all call the same code. Evaluation is read-only and
set-based: a fixed number of queries, whatever the number of provisions.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import gc
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from django.conf import settings
from django.db.models import Max

from provisions.explanations import GapFacts, ProvisionFact, explain
from provisions.models import (
    Capability,
    Coverage,
    CoverageState,
    Domain,
    Extent,
    GapKind,
    GapRuleThresholds,
    Level,
    MarkingsReader,
    Position,
    Provision,
    Stance,
    Status,
    StatusChange,
)

SubjectType = Literal["capability", "provision"]

# Enum members by value, and their rank and weight, as plain dicts: Status(value), .rank and
# .weight go through the enum machinery (about 1 µs each), hundreds of thousands of times in a
# full evaluation.
# The dates the rules are evaluated at: a partnership's lifetime, with room either side (beyond them,
# date arithmetic of the charts and reports would overflow).
EARLIEST_AS_OF = datetime.date(1900, 1, 1)
LATEST_AS_OF = datetime.date(2999, 12, 31)


def parse_as_of(text: str) -> datetime.date:
    """An `as_of` date from a page or API parameter; ValueError says what is wrong with it."""
    try:
        as_of = datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    if not EARLIEST_AS_OF <= as_of <= LATEST_AS_OF:
        raise ValueError(f"{text} is outside {EARLIEST_AS_OF} to {LATEST_AS_OF}")
    return as_of


_STATUS_BY_VALUE = {status.value: status for status in Status}
_LEVEL_BY_VALUE = {level.value: level for level in Level}
_RANK_BY_STATUS = {status: status.rank for status in Status}
_WEIGHT_BY_LEVEL = {level: level.weight for level in Level}


@dataclass(frozen=True)
class Thresholds:
    secured_status: Status
    warning_days: int
    urgent_days: int
    stall_days: int

    @classmethod
    def from_settings(cls) -> Thresholds:
        return cls(
            secured_status=Status(settings.SECURED_STATUS),
            warning_days=settings.WARNING_DAYS,
            urgent_days=settings.URGENT_DAYS,
            stall_days=settings.STALL_DAYS,
        )

    @classmethod
    def current(cls) -> Thresholds:
        """The thresholds the administrators set (one query), or the settings' until they do."""
        row = GapRuleThresholds.objects.filter(pk=1).first()
        if row is None:
            return cls.from_settings()
        return cls(
            secured_status=Status(row.secured_status),
            warning_days=row.warning_days,
            urgent_days=row.urgent_days,
            stall_days=row.stall_days,
        )

    @functools.cached_property
    def secured_rank(self) -> int:
        return self.secured_status.rank or 0  # settings only accept ladder statuses


@dataclass(frozen=True)
class ProvisionAt:
    """A provision as it stood at the as-of date: its status then and when it last moved."""

    id: int
    reference: str
    domain: str
    status: Status
    last_moved_on: datetime.date
    marking: str
    title: str

    @property
    def active(self) -> bool:
        return self.status is not Status.WITHDRAWN

    def secured(self, thresholds: Thresholds) -> bool:
        rank = _RANK_BY_STATUS[self.status]  # suspended and withdrawn have none
        return rank is not None and rank >= thresholds.secured_rank


@dataclass(frozen=True)
class CapabilityRow:
    id: int
    code: str
    name: str
    domain: str
    criticality: Level
    lapses_on: datetime.date | None
    fallback: str

    @property
    def has_fallback(self) -> bool:
        return bool(self.fallback.strip())


@dataclass(frozen=True)
class CoverageAt:
    """A capability's coverage state at the as-of date and the provisions behind it."""

    state: CoverageState
    covering: tuple[ProvisionAt, ...]  # active covering provisions, by reference
    partially_securing: tuple[ProvisionAt, ...]  # secured provisions covering it only in part

    @property
    def covering_references(self) -> tuple[str, ...]:
        return tuple(provision.reference for provision in self.covering)


@dataclass(frozen=True)
class Finding:
    """One gap found by evaluation: what a person checking the tables by hand would write down."""

    kind: GapKind
    severity: Level
    subject_type: SubjectType
    subject_id: int
    subject_code: str
    subject_name: str
    domain: str
    coverage_state: CoverageState | None
    lapses_on: datetime.date | None
    days_to_lapse: int | None
    covering_provisions: tuple[str, ...]
    facts: GapFacts  # what the explanation says, as data (rendered for each reader)

    @property
    def identity(self) -> tuple[str, SubjectType, int]:
        return (self.kind.value, self.subject_type, self.subject_id)

    @property
    def explanation(self) -> str:
        """The explanation with nothing withheld (a reader's comes from provisions.redaction)."""
        return explain(self.facts)

    def sort_key(self) -> tuple[int, int, datetime.date, str, str]:
        """Severity (critical first), lapse date (empty last), kind, subject code."""
        return (
            -_WEIGHT_BY_LEVEL[self.severity],
            self.lapses_on is None,
            self.lapses_on or datetime.date.min,
            self.kind.value,
            self.subject_code,
        )


@dataclass
class Evaluation:
    """The result of one evaluation: findings sorted as the report sorts them, plus coverage."""

    as_of: datetime.date
    findings: list[Finding]
    coverage: dict[int, CoverageAt] = field(default_factory=dict)  # by capability id
    capabilities: dict[int, CapabilityRow] = field(default_factory=dict)
    evaluated_subjects: int = 0  # capabilities and provisions whose gaps were evaluated


# --- reads ------------------------------------------------------------------------------------------------


def provisions_at(
    as_of: datetime.date, *, provision_ids: Collection[int] | None = None
) -> dict[int, ProvisionAt]:
    """Provisions that existed at the date, with their status then (two queries)."""
    later = StatusChange.objects.filter(changed_on__gt=as_of)
    if provision_ids is not None:
        later = later.filter(provision_id__in=provision_ids)
    fields = ("reference", "domain__code", "marking", "title")
    if not later.exists():
        # Nothing moved after the date (a scan of today): the status then is the current status,
        # which the status service keeps equal to the latest change's; no need to rank the history.
        current = Provision.objects.order_by()
        if provision_ids is not None:
            current = current.filter(pk__in=provision_ids)
        rows: Iterable[tuple[Any, ...]] = (
            current.annotate(last_moved_on=Max("status_changes__changed_on"))
            .filter(last_moved_on__isnull=False)
            .values_list("id", "status", "last_moved_on", *fields)
        )
    else:
        changes = StatusChange.objects.latest_per_provision(on_or_before=as_of).order_by()
        if provision_ids is not None:
            changes = changes.filter(provision_id__in=provision_ids)
        rows = changes.values_list(
            "provision_id", "to_status", "changed_on", *(f"provision__{name}" for name in fields)
        )
    return {
        pk: ProvisionAt(pk, reference, domain, _STATUS_BY_VALUE[status], moved_on, marking, title)
        for pk, status, moved_on, reference, domain, marking, title in rows
    }


def _capability_rows(capability_ids: Collection[int] | None) -> dict[int, CapabilityRow]:
    capabilities = Capability.objects.all()
    if capability_ids is not None:
        capabilities = capabilities.filter(pk__in=capability_ids)
    rows = capabilities.values_list(
        "id", "code", "name", "domain__code", "criticality", "lapses_on", "fallback"
    ).order_by()
    return {
        pk: CapabilityRow(pk, code, name, domain, _LEVEL_BY_VALUE[criticality], lapses_on, fallback)
        for pk, code, name, domain, criticality, lapses_on, fallback in rows
    }


def coverage_state_of(links: Iterable[tuple[ProvisionAt | None, str]], thresholds: Thresholds) -> CoverageAt:
    """The coverage state from (provision at T or None if it did not exist, extent) pairs."""
    covering: list[ProvisionAt] = []
    secured_full = False
    partially_securing: list[ProvisionAt] = []
    for provision, extent in links:
        if provision is None or not provision.active:
            continue
        covering.append(provision)
        if provision.secured(thresholds):
            if extent == Extent.FULL:
                secured_full = True
            else:
                partially_securing.append(provision)
    if secured_full:
        state = CoverageState.SECURED
    elif partially_securing:
        state = CoverageState.PARTIAL
    elif covering:
        state = CoverageState.IN_NEGOTIATION
    else:
        state = CoverageState.UNCOVERED
    by_reference = sorted(covering, key=lambda provision: provision.reference)
    return CoverageAt(
        state, tuple(by_reference), tuple(sorted(partially_securing, key=lambda p: p.reference))
    )


# --- rules ------------------------------------------------------------------------------------------------


def capability_gap(
    capability: CapabilityRow, coverage: CoverageAt, as_of: datetime.date, thresholds: Thresholds
) -> tuple[GapKind, Level] | None:
    """The capability gap the tables give, if any: the first rule that matches wins."""
    criticality = capability.criticality
    days = None if capability.lapses_on is None else (capability.lapses_on - as_of).days
    state = coverage.state
    if days is not None and days <= 0 and state != CoverageState.SECURED:
        return GapKind.LAPSED, criticality if capability.has_fallback else criticality.raised()
    if state == CoverageState.UNCOVERED:
        warned = days is not None and days <= thresholds.warning_days
        return GapKind.UNCOVERED, criticality if warned else criticality.lowered()
    if (
        state in (CoverageState.IN_NEGOTIATION, CoverageState.PARTIAL)
        and days is not None
        and days <= thresholds.warning_days
    ):
        return GapKind.AT_RISK, criticality if days <= thresholds.urgent_days else criticality.lowered()
    if state == CoverageState.PARTIAL:
        return GapKind.PARTIAL, criticality.lowered()
    return None


def provision_gaps(
    provision: ProvisionAt,
    covered: list[CapabilityRow],
    opposing_parties: list[str],
    as_of: datetime.date,
    thresholds: Thresholds,
) -> list[tuple[GapKind, Level]]:
    """The provision gaps the tables give (both may hold)."""
    if not provision.active:
        return []
    rank = _RANK_BY_STATUS[provision.status]  # None for suspended (and withdrawn): off the ladder
    stalled = (
        rank is not None
        and rank < thresholds.secured_rank
        and (as_of - provision.last_moved_on).days >= thresholds.stall_days
    )
    divergent = (
        bool(opposing_parties)
        and not provision.secured(thresholds)
        and any(
            capability.lapses_on is not None
            and (capability.lapses_on - as_of).days <= thresholds.warning_days
            for capability in covered
        )
    )
    if not (stalled or divergent):  # most provisions: skip finding the highest criticality
        return []
    highest = max(
        (capability.criticality for capability in covered), key=_WEIGHT_BY_LEVEL.__getitem__, default=None
    )
    gaps: list[tuple[GapKind, Level]] = []
    if stalled:
        gaps.append((GapKind.STALLED, highest.lowered() if highest else Level.LOW))
    if divergent and highest is not None:
        gaps.append((GapKind.DIVERGENT, highest))
    return gaps


# --- what an explanation says -----------------------------------------------------------------------------


def _fact(provision: ProvisionAt) -> ProvisionFact:
    return ProvisionFact(provision.reference, provision.status.value)


def capability_gap_facts(
    kind: GapKind, capability: CapabilityRow, coverage: CoverageAt, as_of: datetime.date
) -> GapFacts:
    return GapFacts(
        kind=kind.value,
        as_of=as_of,
        subject_code=capability.code,
        subject_name=capability.name,
        lapses_on=capability.lapses_on,
        fallback=capability.fallback if kind == GapKind.LAPSED else "",
        coverage_state=coverage.state.value,
        covering=tuple(_fact(provision) for provision in coverage.covering)
        if coverage.state == CoverageState.IN_NEGOTIATION
        else (),
        securing=tuple(_fact(provision) for provision in coverage.partially_securing)
        if coverage.state == CoverageState.PARTIAL
        else (),
    )


def provision_gap_facts(
    kind: GapKind,
    provision: ProvisionAt,
    covered: list[CapabilityRow],
    opposing_parties: list[str],
    as_of: datetime.date,
    thresholds: Thresholds,
) -> GapFacts:
    first_lapse = None
    if kind == GapKind.DIVERGENT:  # the capability that lapses first (divergence concerns dated ones)
        lapses_on, code = min(
            (capability.lapses_on, capability.code) for capability in covered if capability.lapses_on
        )
        first_lapse = (code, lapses_on)
    return GapFacts(
        kind=kind.value,
        as_of=as_of,
        subject_code=provision.reference,
        subject_name=provision.title,
        status=provision.status.value,
        last_moved_on=provision.last_moved_on if kind == GapKind.STALLED else None,
        stall_days=thresholds.stall_days if kind == GapKind.STALLED else None,
        opposing_parties=tuple(opposing_parties) if kind == GapKind.DIVERGENT else (),
        first_lapse=first_lapse,
    )


# --- evaluation -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _without_garbage_collection() -> Iterator[None]:
    """An evaluation builds about a million small objects and no reference cycles: the cyclic
    collector would rescan them over and over (a third of the time at 100,000 provisions)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def evaluate_gaps(
    *,
    as_of: datetime.date,
    capability_ids: Collection[int] | None = None,
    provision_ids: Collection[int] | None = None,
    thresholds: Thresholds | None = None,
) -> Evaluation:
    """Every gap the rules find at `as_of`, read-only, in a fixed number of queries.

    With no ids, every capability and provision is a subject. With ids, only those subjects
    are evaluated (a scan of what a write touched); whatever they depend on is still read.
    """
    with _without_garbage_collection():
        return _evaluate(as_of, capability_ids, provision_ids, thresholds or Thresholds.current())


def _evaluate(
    as_of: datetime.date,
    capability_ids: Collection[int] | None,
    provision_ids: Collection[int] | None,
    thresholds: Thresholds,
) -> Evaluation:
    subject_capabilities: set[int] | None = None
    subject_provisions: set[int] | None = None
    needed_capabilities: set[int] | None = None
    needed_provisions: set[int] | None = None
    links = Coverage.objects.order_by()
    opposed = Position.objects.filter(stance=Stance.OPPOSES).order_by("party_id")
    if capability_ids is not None or provision_ids is not None:
        subject_capabilities, subject_provisions = set(capability_ids or ()), set(provision_ids or ())
        links = links.filter(capability_id__in=subject_capabilities) | links.filter(
            provision_id__in=subject_provisions
        )
        opposed = opposed.filter(provision_id__in=subject_provisions)
    link_rows = list(links.values_list("provision_id", "capability_id", "extent"))
    if subject_capabilities is not None and subject_provisions is not None:
        needed_capabilities = subject_capabilities | {capability for _, capability, _ in link_rows}
        needed_provisions = subject_provisions | {provision for provision, _, _ in link_rows}
    capabilities = _capability_rows(needed_capabilities)
    provisions = provisions_at(as_of, provision_ids=needed_provisions)
    opposing: defaultdict[int, list[str]] = defaultdict(list)
    for provision_id, party in opposed.values_list("provision_id", "party__code"):
        opposing[provision_id].append(party)

    links_by_capability: defaultdict[int, list[tuple[ProvisionAt | None, str]]] = defaultdict(list)
    covered_by_provision: defaultdict[int, list[CapabilityRow]] = defaultdict(list)
    for provision_id, capability_id, extent in link_rows:
        links_by_capability[capability_id].append((provisions.get(provision_id), extent))
        if capability_id in capabilities:
            covered_by_provision[provision_id].append(capabilities[capability_id])

    findings: list[Finding] = []
    coverage_by_capability: dict[int, CoverageAt] = {}
    for capability in capabilities.values():
        if subject_capabilities is not None and capability.id not in subject_capabilities:
            continue
        coverage = coverage_state_of(links_by_capability[capability.id], thresholds)
        coverage_by_capability[capability.id] = coverage
        gap = capability_gap(capability, coverage, as_of, thresholds)
        if gap is None:
            continue
        kind, severity = gap
        findings.append(
            Finding(
                kind=kind,
                severity=severity,
                subject_type="capability",
                subject_id=capability.id,
                subject_code=capability.code,
                subject_name=capability.name,
                domain=capability.domain,
                coverage_state=coverage.state,
                lapses_on=capability.lapses_on,
                days_to_lapse=None if capability.lapses_on is None else (capability.lapses_on - as_of).days,
                covering_provisions=coverage.covering_references,
                facts=capability_gap_facts(kind, capability, coverage, as_of),
            )
        )

    flagged_provisions: list[tuple[ProvisionAt, GapKind, Level, GapFacts, datetime.date | None]] = []
    evaluated_provisions = 0
    for provision in provisions.values():
        if subject_provisions is not None and provision.id not in subject_provisions:
            continue
        evaluated_provisions += 1
        covered = covered_by_provision[provision.id]
        parties = opposing.get(provision.id, [])
        for kind, severity in provision_gaps(provision, covered, parties, as_of, thresholds):
            earliest = min((c.lapses_on for c in covered if c.lapses_on is not None), default=None)
            facts = provision_gap_facts(kind, provision, covered, parties, as_of, thresholds)
            flagged_provisions.append((provision, kind, severity, facts, earliest))
    for provision, kind, severity, facts, earliest in flagged_provisions:
        findings.append(
            Finding(
                kind=kind,
                severity=severity,
                subject_type="provision",
                subject_id=provision.id,
                subject_code=provision.reference,
                subject_name=provision.title,
                domain=provision.domain,
                coverage_state=None,
                lapses_on=earliest,
                days_to_lapse=None if earliest is None else (earliest - as_of).days,
                covering_provisions=(),
                facts=facts,
            )
        )
    findings.sort(key=Finding.sort_key)
    return Evaluation(
        as_of=as_of,
        findings=findings,
        coverage=coverage_by_capability,
        capabilities=capabilities,
        evaluated_subjects=len(coverage_by_capability) + evaluated_provisions,
    )


def coverage_by_domain(*, evaluation: Evaluation, reader: MarkingsReader) -> list[dict[str, Any]]:
    """One row per domain: its capabilities by coverage state at the evaluation's date, the
    provisions (that the reader may see) by status then, and the share of capabilities secured."""
    as_of = evaluation.as_of
    states: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for capability_id, coverage in evaluation.coverage.items():
        states[evaluation.capabilities[capability_id].domain][coverage.state.value] += 1
    statuses: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for provision in provisions_at(as_of).values():
        if provision.marking in reader.markings:
            statuses[provision.domain][provision.status.value] += 1
    rows: list[dict[str, Any]] = []
    for code, name in Domain.objects.order_by("id").values_list("code", "name"):
        total = sum(states[code].values())
        rows.append(
            {
                "domain": code,
                "name": name,
                "capabilities": total,
                "capabilities_by_state": {state: states[code][state] for state in CoverageState.values},
                "provisions_by_status": {status: statuses[code][status] for status in Status.values},
                "coverage_ratio": round(states[code][CoverageState.SECURED] / total, 4) if total else None,
            }
        )
    return rows
