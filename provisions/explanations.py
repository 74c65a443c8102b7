"""A gap's explanation, as data and as words.

The rules record what held at the date as `GapFacts` (the subject, the covering provisions with
their statuses, the dates and numbers); `explain` turns facts into the sentence people read. A
reader's explanation is rendered from the facts with the provisions they may not see withheld
(`provisions.redaction`), never by rewriting a sentence, so no wording can let a withheld reference
through. Facts are stored with each gap (`Gap.detail`) to be rendered again for each reader.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection
from dataclasses import dataclass, fields
from typing import Any

from provisions.models import CoverageState, GapKind, Status

WITHHELD = "[a provision above your clearance]"


@dataclass(slots=True)
class ProvisionFact:
    """A provision as an explanation names it: its reference and its status at the date."""

    reference: str
    status: str

    @property
    def status_words(self) -> str:
        return Status(self.status).label.lower()

    def described(self, withheld: Collection[str]) -> str:
        """ "SP-3 (proposed)"; a withheld provision takes its status with it."""
        if self.reference in withheld:
            return WITHHELD
        return f"{self.reference} ({self.status_words})"


@dataclass(slots=True)
class GapFacts:
    """What an explanation says. Capability gaps fill the capability's part, provision gaps the
    provision's; `as_of` is the date the rules were evaluated at."""

    kind: str
    as_of: datetime.date
    subject_code: str
    subject_name: str
    # A capability gap: its lapse date at T, fallback, coverage state and the provisions behind it.
    lapses_on: datetime.date | None = None
    fallback: str = ""
    coverage_state: str | None = None
    covering: tuple[ProvisionFact, ...] = ()  # active covering provisions, by reference
    securing: tuple[ProvisionFact, ...] = ()  # the secured provisions behind a secured or partial state
    coverage_ends: datetime.date | None = None  # when the securing provisions stop securing it
    # A provision gap: its status at T, when it last moved and last had any activity, and what it covers.
    status: str | None = None
    last_moved_on: datetime.date | None = None
    last_activity: datetime.date | None = None
    stall_days: int | None = None
    opposing_parties: tuple[str, ...] = ()
    first_lapse: tuple[str, datetime.date] | None = None  # (capability code, lapse date)

    @property
    def references(self) -> tuple[str, ...]:
        """Every provision reference the explanation names (the subject of a provision gap too)."""
        named = {provision.reference for provision in (*self.covering, *self.securing)}
        if self.status is not None:
            named.add(self.subject_code)
        return tuple(sorted(named))

    def to_json(self) -> dict[str, Any]:
        """As stored (JSON types only), so a stored copy compares equal to a fresh one."""
        # Field by field, not dataclasses.asdict (which deep-copies every value: seconds of a full
        # scan at 100,000 provisions).
        data = {field.name: getattr(self, field.name) for field in fields(self)}
        for key in ("covering", "securing"):
            data[key] = [{item.name: getattr(fact, item.name) for item in fields(fact)} for fact in data[key]]
        data["opposing_parties"] = list(self.opposing_parties)
        for key in ("as_of", "lapses_on", "coverage_ends", "last_moved_on", "last_activity"):
            data[key] = data[key].isoformat() if data[key] else None
        if self.first_lapse is not None:
            data["first_lapse"] = [self.first_lapse[0], self.first_lapse[1].isoformat()]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GapFacts:
        def date(value: str | None) -> datetime.date | None:
            return datetime.date.fromisoformat(value) if value else None

        first_lapse = data.get("first_lapse")
        as_of = datetime.date.fromisoformat(data["as_of"])
        return cls(
            kind=data["kind"],
            as_of=as_of,
            subject_code=data["subject_code"],
            subject_name=data["subject_name"],
            lapses_on=date(data.get("lapses_on")),
            fallback=data.get("fallback", ""),
            coverage_state=data.get("coverage_state"),
            covering=tuple(ProvisionFact(**item) for item in data.get("covering", ())),
            securing=tuple(ProvisionFact(**item) for item in data.get("securing", ())),
            coverage_ends=date(data.get("coverage_ends")),
            status=data.get("status"),
            last_moved_on=date(data.get("last_moved_on")),
            last_activity=date(data.get("last_activity")),
            stall_days=data.get("stall_days"),
            opposing_parties=tuple(data.get("opposing_parties", ())),
            first_lapse=(first_lapse[0], datetime.date.fromisoformat(first_lapse[1]))
            if first_lapse
            else None,
        )


def _days(count: int) -> str:
    return f"{count} day{'s' if count != 1 else ''}"


def lapse_phrase(lapses_on: datetime.date, as_of: datetime.date) -> str:
    days = (lapses_on - as_of).days
    if days > 0:
        return f"lapses on {lapses_on:%Y-%m-%d}, in {_days(days)}"
    if days == 0:
        return f"lapses today ({lapses_on:%Y-%m-%d})"
    return f"lapsed on {lapses_on:%Y-%m-%d}, {_days(-days)} ago"


def _coverage_phrase(facts: GapFacts, withheld: Collection[str]) -> str:
    state = facts.coverage_state
    if state == CoverageState.UNCOVERED:
        return "no active provision covers it"
    if state == CoverageState.PARTIAL:
        securing = ", ".join(provision.described(withheld) for provision in facts.securing)
        return f"only part of it is secured, by {securing}"
    if state == CoverageState.SECURED:
        securing = ", ".join(provision.described(withheld) for provision in facts.securing)
        return f"it is secured by {securing}" if securing else "it is secured"
    if len(facts.covering) == 1:
        only = facts.covering[0]
        if only.reference in withheld:  # its status would say more than "not secured"
            return f"the only covering provision, {WITHHELD}, is not secured"
        return f"the only covering provision, {only.reference}, is {only.status_words}"
    listed = ", ".join(provision.described(withheld) for provision in facts.covering)
    return f"none of its covering provisions is secured: {listed}"


def explain(facts: GapFacts, *, withheld: Collection[str] = ()) -> str:
    """The sentence a person reads, with the `withheld` provisions (by reference) left out."""
    if facts.status is not None:
        return _explain_provision_gap(facts)
    name = f"{facts.subject_name} ({facts.subject_code})"
    timing = "has no lapse date" if facts.lapses_on is None else lapse_phrase(facts.lapses_on, facts.as_of)
    sentence = f"{name} {timing}; {_coverage_phrase(facts, withheld)}"
    if facts.kind == GapKind.EXPIRING and facts.coverage_ends is not None:
        days = (facts.coverage_ends - facts.as_of).days
        sentence += f"; its coverage ends on {facts.coverage_ends:%Y-%m-%d}, in {_days(days)}, unless renewed"
    if facts.kind == GapKind.LAPSED:
        fallback = facts.fallback.strip()
        sentence += f"; fallback: {fallback}" if fallback else "; no fallback"
    return sentence + "."


def _explain_provision_gap(facts: GapFacts) -> str:
    """A provision gap is shown only to readers who may see its provision, and names nothing else."""
    status = Status(facts.status).label.lower() if facts.status else ""
    if facts.kind == GapKind.STALLED and facts.last_moved_on is not None:
        active = facts.last_activity or facts.last_moved_on
        days = (facts.as_of - active).days
        since = f"{facts.subject_code} has been {status} since {facts.last_moved_on:%Y-%m-%d}"
        if active > facts.last_moved_on:  # discussed, or a position taken, since it last moved
            since += f"; its latest activity was on {active:%Y-%m-%d}"
        return f"{since}, {days} days without activity (stall threshold {facts.stall_days} days)."
    parties = " and ".join(facts.opposing_parties)
    verb = "opposes" if len(facts.opposing_parties) == 1 else "oppose"
    text = f"{parties} {verb} {facts.subject_code} ({status})"
    if facts.first_lapse is not None:
        code, lapses_on = facts.first_lapse
        text += f", which covers {code}, which {lapse_phrase(lapses_on, facts.as_of)}"
    return text + "."
