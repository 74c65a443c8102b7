"""Coverage and gap rules (DESIGN.md, "Coverage and gap rules", rules v2), evaluated at any date.

Plain functions over the record at T (provisions.rules.record): no request, task or HTTP in sight,
so the scan, the pages, the API and the exports all call the same code. Read-only and set-based: a
fixed number of queries, whatever the number of provisions.
"""

from __future__ import annotations

import datetime
import operator
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from provisions.collector import collector_paused
from provisions.explanations import GapFacts, ProvisionFact, explain
from provisions.models import CoverageState, Domain, Extent, GapKind, Level, MarkingsReader, Status
from provisions.rules.record import (
    WEIGHT_BY_LEVEL,
    CapabilityAt,
    ProvisionAt,
    Record,
    record_at,
)
from provisions.rules.thresholds import Thresholds

SubjectType = Literal["capability", "provision"]


@dataclass(slots=True)
class CoverageAt:
    """A capability's coverage state at T, when its coverage ends, and the provisions behind it.

    A full evaluation lists the provisions (`covering`, `securing`) only of the capabilities it
    found a gap in; a scoped one (evaluate_gaps with ids), of every capability it evaluated."""

    state: CoverageState
    ends_on: datetime.date | None  # the latest expiry of the securing ones (None: never, or none securing)
    listed: tuple[tuple[ProvisionAt, ...], tuple[ProvisionAt, ...]] | None = None  # (covering, securing)

    @property
    def covering(self) -> tuple[ProvisionAt, ...]:
        """The active covering provisions, by reference."""
        return self._listed()[0]

    @property
    def securing(self) -> tuple[ProvisionAt, ...]:
        """The secured provisions whose links give the state, by reference."""
        return self._listed()[1]

    @property
    def covering_references(self) -> tuple[str, ...]:
        return tuple(provision.reference for provision in self.covering)

    def _listed(self) -> tuple[tuple[ProvisionAt, ...], tuple[ProvisionAt, ...]]:
        if self.listed is None:
            raise LookupError(
                "a full evaluation lists the provisions behind a capability's coverage only where it "
                "found a gap: evaluate the capability by id (evaluate_gaps(capability_ids=...))"
            )
        return self.listed


@dataclass(slots=True)
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
    lapses_on: datetime.date | None  # for an expiring gap: the day its coverage ends
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

    def rank(self) -> int:
        """Severity (critical first), lapse date (empty last), kind (by its code), as one number."""
        lapses = self.lapses_on
        day = _NO_LAPSE if lapses is None else lapses.toordinal()
        return ((_TOP_WEIGHT - WEIGHT_BY_LEVEL[self.severity]) << 23 | day) << 3 | _KIND_ORDER[self.kind]

    def sort_key(self) -> tuple[int, str]:
        """The report's order: severity (critical first), lapse date (empty last), kind, subject code."""
        return (self.rank(), self.subject_code)


# Finding.rank's parts: a missing lapse date counts as 2**22, after every date's ordinal (date.max's
# is 3,652,059) and below 2**23, where the severity starts; the kind, by its code, takes 3 bits.
_NO_LAPSE = 1 << 22
_TOP_WEIGHT = max(WEIGHT_BY_LEVEL.values())
_KIND_ORDER = {kind: index for index, kind in enumerate(sorted(GapKind, key=lambda kind: kind.value))}


def sort_findings(findings: list[Finding]) -> None:
    """Sort in place by Finding.sort_key, as two stable passes over plain keys (code, then rank): half
    the time of one pass over the pairs at 350,000 findings, where the sort is a tenth of a full
    evaluation."""
    findings.sort(key=operator.attrgetter("subject_code"))
    findings.sort(key=Finding.rank)


@dataclass
class Evaluation:
    """The result of one evaluation: findings sorted as the report sorts them, plus coverage."""

    as_of: datetime.date
    findings: list[Finding]
    coverage: dict[int, CoverageAt] = field(default_factory=dict)  # by capability id
    capabilities: dict[int, CapabilityAt] = field(default_factory=dict)
    provisions: dict[int, ProvisionAt] = field(default_factory=dict)  # existing at T
    evaluated_subjects: int = 0  # capabilities and provisions whose gaps were evaluated

    def states_counted(self) -> Counter[str]:
        """The evaluated capabilities counted by coverage state."""
        return Counter(coverage.state.value for coverage in self.coverage.values())


# --- the rules ----------------------------------------------------------------------------------------------


# A capability's coverage state is the highest level among the links that count for it at T: a link
# from a provision that does not exist or is withdrawn gives nothing, an active one `in_negotiation`,
# a secured one `partial` or, covering it fully, `secured`. The state's securing provisions are those
# whose links give its level; its coverage ends on the latest of their expiries (never, if one of them
# has none). coverage_state_of says it for one capability's links; the full evaluation (_evaluate)
# applies the same three functions to every link at once.
STATE_AT_LEVEL = (
    CoverageState.UNCOVERED,
    CoverageState.IN_NEGOTIATION,
    CoverageState.PARTIAL,
    CoverageState.SECURED,
)
_SECURING_LEVEL = 2  # `partial` and above have securing provisions
_NOT_YET: Any = object()  # no securing provision met yet


def standing_of(provision: ProvisionAt | None, secured_rank: int) -> int:
    """0: the provision covers nothing at T (it did not exist, or is withdrawn); 1: it is active;
    2: it is secured."""
    if provision is None or not provision.active:
        return 0
    return 2 if provision.secured(secured_rank) else 1


def link_level(standing: int, extent: str) -> int:
    """The coverage level a link gives its capability (an index of STATE_AT_LEVEL)."""
    return 3 if standing == 2 and extent == Extent.FULL else standing


def later_end(ends_on: Any, expires_on: datetime.date | None) -> datetime.date | None:
    """The coverage's end with one more securing provision: the later expiry, None (never) once one
    of them never expires."""
    if ends_on is _NOT_YET:
        return expires_on
    if ends_on is None or expires_on is None:
        return None
    return max(ends_on, expires_on)


def coverage_state_of(links: Iterable[tuple[ProvisionAt | None, str]], secured_rank: int) -> CoverageAt:
    """The coverage state from the links that count at T: (provision at T, or None if it did not
    exist then; extent)."""
    covering: list[ProvisionAt] = []
    by_level: list[list[ProvisionAt]] = [[], [], [], []]
    for provision, extent in links:
        standing = standing_of(provision, secured_rank)
        if provision is not None and standing:
            covering.append(provision)
            by_level[link_level(standing, extent)].append(provision)
    level = max((level for level in range(4) if by_level[level]), default=0)
    securing = by_level[level] if level >= _SECURING_LEVEL else []
    ends_on = _NOT_YET
    for provision in securing:
        ends_on = later_end(ends_on, provision.expires_on)
    return CoverageAt(
        STATE_AT_LEVEL[level],
        None if ends_on is _NOT_YET else ends_on,
        (_by_reference(covering), _by_reference(securing)),
    )


_reference = operator.attrgetter("reference")


def _by_reference(provisions: list[ProvisionAt]) -> tuple[ProvisionAt, ...]:
    return tuple(sorted(provisions, key=_reference)) if len(provisions) > 1 else tuple(provisions)


def capability_gap(
    capability: CapabilityAt, coverage: CoverageAt, as_of: datetime.date, thresholds: Thresholds
) -> tuple[GapKind, Level] | None:
    """The capability gap the table gives, if any: the first rule that matches wins."""
    criticality = capability.criticality
    days = None if capability.lapses_on is None else (capability.lapses_on - as_of).days
    state = coverage.state
    if days is not None and days <= 0 and state in (CoverageState.IN_NEGOTIATION, CoverageState.UNCOVERED):
        return GapKind.LAPSED, criticality if capability.has_fallback else criticality.raised()
    if state == CoverageState.UNCOVERED:
        warned = days is not None and days <= thresholds.warning_days
        return GapKind.UNCOVERED, criticality if warned else criticality.lowered()
    if state in (CoverageState.SECURED, CoverageState.PARTIAL) and coverage.ends_on is not None:
        ends_in = (coverage.ends_on - as_of).days
        if ends_in <= thresholds.warning_days:
            return (
                GapKind.EXPIRING,
                criticality if ends_in <= thresholds.urgent_days else criticality.lowered(),
            )
    if (
        state in (CoverageState.IN_NEGOTIATION, CoverageState.PARTIAL)
        and days is not None
        and 0 < days <= thresholds.warning_days
    ):
        return GapKind.AT_RISK, criticality if days <= thresholds.urgent_days else criticality.lowered()
    if state == CoverageState.PARTIAL:
        return GapKind.PARTIAL, criticality.lowered()
    return None


def stalled(provision: ProvisionAt, as_of: datetime.date, thresholds: Thresholds) -> bool:
    """Active, below the secured status on the ladder (not suspended), and no activity for
    STALL_DAYS."""
    rank = provision.rank  # None for suspended (and withdrawn): off the ladder
    return (
        provision.active
        and rank is not None
        and rank < thresholds.secured_rank
        and (as_of - provision.last_activity).days >= thresholds.stall_days
    )


def may_diverge(provision: ProvisionAt, opposing_parties: Sequence[str], thresholds: Thresholds) -> bool:
    """Active, not secured, and a party opposes it: divergent if it covers a capability lapsing soon."""
    return provision.active and bool(opposing_parties) and not provision.secured(thresholds.secured_rank)


def provision_gaps(
    provision: ProvisionAt,
    covered: Sequence[CapabilityAt],
    opposing_parties: list[str],
    as_of: datetime.date,
    thresholds: Thresholds,
) -> list[tuple[GapKind, Level]]:
    """The provision gaps the table gives (both may hold)."""
    is_stalled = stalled(provision, as_of, thresholds)
    divergent = may_diverge(provision, opposing_parties, thresholds) and any(
        capability.lapses_on is not None and (capability.lapses_on - as_of).days <= thresholds.warning_days
        for capability in covered
    )
    if not (is_stalled or divergent):  # most provisions: skip finding the highest criticality
        return []
    highest = max(
        (capability.criticality for capability in covered), key=WEIGHT_BY_LEVEL.__getitem__, default=None
    )
    gaps: list[tuple[GapKind, Level]] = []
    if is_stalled:
        gaps.append((GapKind.STALLED, highest.lowered() if highest else Level.LOW))
    if divergent and highest is not None:
        gaps.append((GapKind.DIVERGENT, highest))
    return gaps


# --- what an explanation says -------------------------------------------------------------------------------


def _fact(provision: ProvisionAt) -> ProvisionFact:
    return ProvisionFact(provision.reference, provision.status.value)


def capability_gap_facts(
    kind: GapKind, capability: CapabilityAt, coverage: CoverageAt, as_of: datetime.date
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
        securing=tuple(_fact(provision) for provision in coverage.securing),
        coverage_ends=coverage.ends_on if kind == GapKind.EXPIRING else None,
    )


def provision_gap_facts(
    kind: GapKind,
    provision: ProvisionAt,
    covered: Sequence[CapabilityAt],
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
    stalled = kind == GapKind.STALLED
    return GapFacts(
        kind=kind.value,
        as_of=as_of,
        subject_code=provision.reference,
        subject_name=provision.title,
        status=provision.status.value,
        last_moved_on=provision.last_moved_on if stalled else None,
        last_activity=provision.last_activity if stalled else None,
        stall_days=thresholds.stall_days if stalled else None,
        opposing_parties=tuple(opposing_parties) if kind == GapKind.DIVERGENT else (),
        first_lapse=first_lapse,
    )


# --- evaluation ---------------------------------------------------------------------------------------------


def evaluate_gaps(
    *,
    as_of: datetime.date,
    capability_ids: Collection[int] | None = None,
    provision_ids: Collection[int] | None = None,
    thresholds: Thresholds | None = None,
) -> Evaluation:
    """Every gap the rules find at `as_of` (the record as it stood that day), read-only, in a fixed
    number of queries.

    With no ids, every capability and provision is a subject. With ids, only those subjects are
    evaluated (a scan of what a write touched); whatever they depend on is still read.
    """
    thresholds = thresholds or Thresholds.current()
    with collector_paused():
        record = record_at(as_of, capability_ids=capability_ids, provision_ids=provision_ids)
        scoped = capability_ids is not None or provision_ids is not None
        return _evaluate(
            record,
            set(capability_ids or ()) if scoped else None,
            set(provision_ids or ()) if scoped else None,
            thresholds,
        )


def _evaluate(
    record: Record,
    subject_capabilities: set[int] | None,
    subject_provisions: set[int] | None,
    thresholds: Thresholds,
) -> Evaluation:
    as_of, capabilities, provisions = record.as_of, record.capabilities, record.provisions
    secured_rank = thresholds.secured_rank
    # The passes over every provision and link keep what they find in arrays indexed by id, not in
    # dictionaries of objects: at a million provisions, lookups into structures larger than the
    # processor's caches were most of what the evaluation spent (README, Performance). They are as
    # long as the largest id, which a sequence gives: about the number of rows ever written.
    provision_span = max(provisions, default=0) + 1
    standings = bytearray(provision_span)  # standing_of each provision
    candidates = bytearray(provision_span)  # may have a provision gap: its covered capabilities are listed
    candidate_provisions: list[ProvisionAt] = []
    expiries: dict[int, datetime.date | None] = {}  # of the secured provisions
    evaluated_provisions = 0
    for provision_id, provision in provisions.items():
        standing = standing_of(provision, secured_rank)
        standings[provision_id] = standing
        if standing == 2:
            expiries[provision_id] = provision.expires_on
        if subject_provisions is not None and provision_id not in subject_provisions:
            continue
        evaluated_provisions += 1
        if stalled(provision, as_of, thresholds) or may_diverge(
            provision, record.opposing.get(provision_id, ()), thresholds
        ):
            candidates[provision_id] = 1
            candidate_provisions.append(provision)

    # Each capability's level: the highest its links give, and where securing, when its coverage ends.
    capability_span = max(capabilities, default=0) + 1
    levels = bytearray(capability_span)
    ends_at: tuple[dict[int, Any], dict[int, Any]] = ({}, {})  # at the `partial` and `secured` levels
    level_of = {
        extent: bytes(link_level(standing, extent) for standing in range(3)) for extent in Extent.values
    }
    for provision_id, capability_id, extent in record.links:
        if provision_id >= provision_span or capability_id >= capability_span:
            continue  # a provision that did not exist at T, or a capability no subject depends on
        standing = standings[provision_id]
        if standing:
            level = level_of[extent][standing]
            if level > levels[capability_id]:
                levels[capability_id] = level
            if level >= _SECURING_LEVEL:
                ends = ends_at[level - _SECURING_LEVEL]
                ends[capability_id] = later_end(ends.get(capability_id, _NOT_YET), expiries[provision_id])

    coverage_by_capability: dict[int, CoverageAt] = {}
    listing = bytearray(capability_span)  # capabilities whose covering provisions are listed
    listed_capabilities: list[CapabilityAt] = []
    for capability_id, capability in capabilities.items():
        if subject_capabilities is not None and capability_id not in subject_capabilities:
            continue
        level = levels[capability_id]
        ends_on = ends_at[level - _SECURING_LEVEL][capability_id] if level >= _SECURING_LEVEL else None
        coverage = coverage_by_capability[capability_id] = CoverageAt(STATE_AT_LEVEL[level], ends_on)
        if subject_capabilities is not None or capability_gap(capability, coverage, as_of, thresholds):
            listing[capability_id] = 1
            listed_capabilities.append(capability)

    # The links again, for the few subjects whose findings name what covers them or what they cover.
    links_of: defaultdict[int, list[tuple[ProvisionAt | None, str]]] = defaultdict(list)
    covered_by_provision: defaultdict[int, list[CapabilityAt]] = defaultdict(list)
    for provision_id, capability_id, extent in record.links:
        if capability_id >= capability_span:
            continue
        if listing[capability_id]:
            links_of[capability_id].append((provisions.get(provision_id), extent))
        if provision_id < provision_span and candidates[provision_id]:
            linked = capabilities.get(capability_id)
            if linked is not None:
                covered_by_provision[provision_id].append(linked)

    findings: list[Finding] = []
    for capability in listed_capabilities:
        coverage = coverage_by_capability[capability.id] = coverage_state_of(
            links_of.get(capability.id, ()), secured_rank
        )
        gap = capability_gap(capability, coverage, as_of, thresholds)
        if gap is None:
            continue
        kind, severity = gap
        lapses_on = coverage.ends_on if kind == GapKind.EXPIRING else capability.lapses_on
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
                lapses_on=lapses_on,
                days_to_lapse=None if lapses_on is None else (lapses_on - as_of).days,
                covering_provisions=coverage.covering_references,
                facts=capability_gap_facts(kind, capability, coverage, as_of),
            )
        )

    for provision in candidate_provisions:
        covered = covered_by_provision.get(provision.id, ())
        parties = record.opposing.get(provision.id, [])
        for kind, severity in provision_gaps(provision, covered, parties, as_of, thresholds):
            earliest = min((c.lapses_on for c in covered if c.lapses_on is not None), default=None)
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
                    facts=provision_gap_facts(kind, provision, covered, parties, as_of, thresholds),
                )
            )
    sort_findings(findings)
    return Evaluation(
        as_of=as_of,
        findings=findings,
        coverage=coverage_by_capability,
        capabilities=capabilities,
        provisions=provisions,
        evaluated_subjects=len(coverage_by_capability) + evaluated_provisions,
    )


def coverage_by_domain(*, evaluation: Evaluation, reader: MarkingsReader) -> list[dict[str, Any]]:
    """One row per domain: its capabilities by coverage state at the evaluation's date, the
    provisions (that the reader may see) by status then, and the share of capabilities secured.
    Reads the provisions the evaluation read: give it a full one."""
    states: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for capability_id, coverage in evaluation.coverage.items():
        states[evaluation.capabilities[capability_id].domain][coverage.state.value] += 1
    statuses: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for provision in evaluation.provisions.values():
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
