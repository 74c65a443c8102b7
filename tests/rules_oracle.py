"""A second, deliberately simple implementation of DESIGN.md's rules (v2), to check the engine
against: one subject at a time, straight from the text, reading the models row by row. It shares no
code with provisions.rules (only the models' fields), is slow, and is meant to be obviously right.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from provisions.models import (
    Aim,
    Capability,
    CapabilityChange,
    Coverage,
    Discussion,
    Position,
    Provision,
    ProvisionChange,
    StatusChange,
)

LADDER = [
    "identified",
    "scoping",
    "proposed",
    "under_negotiation",
    "agreed_in_principle",
    "agreed",
    "signed",
    "in_force",
]
LEVELS = ["low", "medium", "high", "critical"]


def lower(level: str) -> str:
    return LEVELS[max(LEVELS.index(level) - 1, 0)]


def raise_(level: str) -> str:
    return LEVELS[min(LEVELS.index(level) + 1, 3)]


@dataclass(frozen=True)
class Thresholds:
    secured_status: str = "agreed"
    warning_days: int = 180
    urgent_days: int = 30
    stall_days: int = 60


def value_at(rows: list, name: str, column_value: object, day: datetime.date) -> object:
    """The base value overridden by every change dated on or before the day that sets it."""
    if not rows:
        return column_value
    base = [row for row in rows if row.at is None]
    value = getattr(base[0], name) if base else column_value
    for row in sorted((row for row in rows if row.at is not None), key=lambda row: (row.at, row.id)):
        if row.at <= day and name in row.sets():
            value = row.sets()[name]
    return value


def status_at(provision: Provision, day: datetime.date) -> str | None:
    changes = [c for c in StatusChange.objects.filter(provision=provision) if c.changed_on <= day]
    if not changes:
        return None
    return sorted(changes, key=lambda c: (c.changed_on, c.id))[-1].to_status


def last_move(provision: Provision, day: datetime.date) -> datetime.date:
    return max(c.changed_on for c in StatusChange.objects.filter(provision=provision) if c.changed_on <= day)


def expires_at(provision: Provision, day: datetime.date) -> datetime.date | None:
    rows = list(ProvisionChange.objects.filter(provision=provision))
    return value_at(rows, "expires_on", provision.expires_on, day)  # type: ignore[return-value]


def secured(provision: Provision, day: datetime.date, t: Thresholds) -> bool:
    status = status_at(provision, day)
    if status is None or status not in LADDER:
        return False
    if LADDER.index(status) < LADDER.index(t.secured_status):
        return False
    expiry = expires_at(provision, day)
    return expiry is None or expiry > day


def active(provision: Provision, day: datetime.date) -> bool:
    status = status_at(provision, day)
    return status is not None and status != "withdrawn"


def link_counts(link: Coverage, day: datetime.date) -> bool:
    return (
        status_at(link.provision, day) is not None
        and (link.valid_from is None or link.valid_from <= day)
        and (link.valid_until is None or link.valid_until > day)
    )


def capability_values(capability: Capability, day: datetime.date) -> tuple[str, datetime.date | None, str]:
    rows = list(CapabilityChange.objects.filter(capability=capability))
    return (
        value_at(rows, "criticality", capability.criticality, day),  # type: ignore[return-value]
        value_at(rows, "lapses_on", capability.lapses_on, day),  # type: ignore[return-value]
        value_at(rows, "fallback", capability.fallback, day),  # type: ignore[return-value]
    )


def coverage_of(capability: Capability, day: datetime.date, t: Thresholds) -> tuple[str, list, list]:
    """(state, active covering provisions, securing provisions)."""
    links = [link for link in Coverage.objects.filter(capability=capability) if link_counts(link, day)]
    covering = sorted(
        {link.provision for link in links if active(link.provision, day)}, key=lambda p: p.reference
    )
    full = [link.provision for link in links if link.extent == "full" and secured(link.provision, day, t)]
    part = [link.provision for link in links if link.extent == "partial" and secured(link.provision, day, t)]
    if full:
        return "secured", covering, full
    if part:
        return "partial", covering, part
    if covering:
        return "in_negotiation", covering, []
    return "uncovered", [], []


def capability_finding(capability: Capability, day: datetime.date, t: Thresholds) -> tuple | None:
    """(kind, severity, code, lapses_on or coverage end, covering references) or None."""
    criticality, lapses_on, fallback = capability_values(capability, day)
    state, covering, securing = coverage_of(capability, day, t)
    days = None if lapses_on is None else (lapses_on - day).days
    refs = tuple(p.reference for p in covering)
    if days is not None and days <= 0 and state in ("in_negotiation", "uncovered"):
        level = criticality if fallback.strip() else raise_(criticality)
        return ("lapsed", level, capability.code, lapses_on, refs)
    if state == "uncovered":
        warned = days is not None and days <= t.warning_days
        return ("uncovered", criticality if warned else lower(criticality), capability.code, lapses_on, refs)
    if state in ("secured", "partial"):
        expiries = [expires_at(p, day) for p in securing]
        if all(expiry is not None for expiry in expiries):
            end = max(expiries)  # type: ignore[type-var]
            if (end - day).days <= t.warning_days:
                level = criticality if (end - day).days <= t.urgent_days else lower(criticality)
                return ("expiring", level, capability.code, end, refs)
    if state in ("in_negotiation", "partial") and days is not None and 0 < days <= t.warning_days:
        level = criticality if days <= t.urgent_days else lower(criticality)
        return ("at_risk", level, capability.code, lapses_on, refs)
    if state == "partial":
        return ("partial", lower(criticality), capability.code, lapses_on, refs)
    return None


def covered_by(provision: Provision, day: datetime.date) -> list[Capability]:
    links = Coverage.objects.filter(provision=provision)
    return [link.capability for link in links if link_counts(link, day)]


def last_activity(provision: Provision, day: datetime.date) -> datetime.date:
    days = [last_move(provision, day)]
    positions = Position.objects.filter(provision=provision)
    days += [p.taken_on for p in positions if p.taken_on and p.taken_on <= day]
    days += [c.at for c in ProvisionChange.objects.filter(provision=provision) if c.at and c.at <= day]
    days += [d.on for d in Discussion.objects.filter(provision=provision) if d.on <= day]
    return max(days)


def opposes_at(provision: Provision, day: datetime.date) -> bool:
    by_party: dict[int, list[Position]] = {}
    for position in Position.objects.filter(provision=provision):
        if position.taken_on is None or position.taken_on <= day:
            by_party.setdefault(position.party_id, []).append(position)
    latest = [
        max(positions, key=lambda p: (p.taken_on is not None, p.taken_on or datetime.date.min, p.id))
        for positions in by_party.values()
    ]
    return any(position.stance == "opposes" for position in latest)


def provision_findings(provision: Provision, day: datetime.date, t: Thresholds) -> list[tuple]:
    status = status_at(provision, day)
    if status is None or status == "withdrawn":
        return []
    covered = covered_by(provision, day)
    levels = [capability_values(c, day)[0] for c in covered]
    lapses = [capability_values(c, day)[1] for c in covered]
    dated = [lapse for lapse in lapses if lapse is not None]
    earliest = min(dated) if dated else None
    found = []
    on_ladder_below = status in LADDER and LADDER.index(status) < LADDER.index(t.secured_status)
    if on_ladder_below and (day - last_activity(provision, day)).days >= t.stall_days:
        highest = max(levels, key=LEVELS.index) if levels else None
        found.append(("stalled", lower(highest) if highest else "low", provision.reference, earliest, ()))
    warned = any(lapse is not None and (lapse - day).days <= t.warning_days for lapse in lapses)
    if not secured(provision, day, t) and opposes_at(provision, day) and warned:
        found.append(("divergent", max(levels, key=LEVELS.index), provision.reference, earliest, ()))
    return found


def findings(day: datetime.date, t: Thresholds | None = None) -> set[tuple]:
    """Every gap at the day, as (kind, severity, subject code, lapses_on, covering references)."""
    t = t or Thresholds()
    found = {finding for c in Capability.objects.all() if (finding := capability_finding(c, day, t))}
    for provision in Provision.objects.all():
        found.update(provision_findings(provision, day, t))
    return found


def aim_verdicts(day: datetime.date, t: Thresholds | None = None) -> dict[str, tuple[str, dict[str, int]]]:
    t = t or Thresholds()
    verdicts = {}
    for aim in Aim.objects.all():
        states = [coverage_of(link.capability, day, t)[0] for link in aim.links.all()]
        names = ("secured", "partial", "in_negotiation", "uncovered")
        counts = {state: states.count(state) for state in names}
        if states and all(state == "secured" for state in states):
            verdict = "met"
        elif any(state in ("secured", "partial") for state in states):
            verdict = "partly_met"
        else:
            verdict = "not_met"
        verdicts[aim.code] = (verdict, counts)
    return verdicts
