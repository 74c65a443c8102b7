"""What changed between D1 and D2 (DESIGN.md, "Aims and what changed"): the gaps opened, escalated,
eased and resolved, and the record's events in (D1, D2]. This is the round briefing."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal, cast

from provisions.models import (
    CapabilityChange,
    Discussion,
    Firmness,
    Level,
    Position,
    Provision,
    ProvisionChange,
    Stance,
    Status,
    StatusChange,
)
from provisions.rules.gaps import Evaluation, Finding
from provisions.rules.record import WEIGHT_BY_LEVEL

ChangeKind = Literal["opened", "escalated", "eased", "resolved"]
CHANGE_ORDER: tuple[ChangeKind, ...] = ("opened", "escalated", "eased", "resolved")


@dataclass(frozen=True)
class GapMove:
    """A gap that moved: its row at D2 (at D1 for a resolved one) and, where it had one, at D1."""

    change: ChangeKind
    finding: Finding
    previous: Finding | None

    def sort_key(self) -> tuple[int, int, str, str]:
        """Opened, escalated, eased, resolved; then severity (critical first), kind, subject code."""
        return (
            CHANGE_ORDER.index(self.change),
            -WEIGHT_BY_LEVEL[self.finding.severity],
            self.finding.kind.value,
            self.finding.subject_code,
        )


def gaps_moved(before: Evaluation, after: Evaluation) -> list[GapMove]:
    """The gaps that moved from the first evaluation's date to the second's, by identity."""
    then = {finding.identity: finding for finding in before.findings}
    now = {finding.identity: finding for finding in after.findings}
    moves = []
    for identity, finding in now.items():
        previous = then.get(identity)
        if previous is None:
            moves.append(GapMove("opened", finding, None))
        elif WEIGHT_BY_LEVEL[finding.severity] > WEIGHT_BY_LEVEL[previous.severity]:
            moves.append(GapMove("escalated", finding, previous))
        elif WEIGHT_BY_LEVEL[finding.severity] < WEIGHT_BY_LEVEL[previous.severity]:
            moves.append(GapMove("eased", finding, previous))
    moves += [
        GapMove("resolved", finding, finding) for identity, finding in then.items() if identity not in now
    ]
    return sorted(moves, key=GapMove.sort_key)


EventKind = Literal["status_change", "position", "discussion", "provision_change", "capability_change"]


@dataclass(frozen=True)
class Event:
    """Something the record says happened on a day: a status change, a dated position, a discussion
    or a dated change. `marking` is its provision's (None for a capability's change)."""

    on: datetime.date
    kind: EventKind
    subject_type: Literal["capability", "provision"]
    subject_code: str
    subject_name: str  # a provision's title, a capability's name
    marking: str | None
    summary: str
    note: str


def events_between(start: datetime.date, end: datetime.date) -> list[Event]:
    """The record's events in (start, end], oldest first (five queries)."""

    def of(on: datetime.date | None, kind: EventKind, provision: Provision, summary: str, note: str) -> Event:
        return Event(
            cast(datetime.date, on),  # filtered on it
            kind,
            "provision",
            provision.reference,
            provision.title,
            provision.marking,
            summary,
            note,
        )

    events: list[Event] = []
    for change in StatusChange.objects.filter(changed_on__gt=start, changed_on__lte=end).select_related(
        "provision"
    ):
        before = Status(change.from_status).label.lower() if change.from_status else "new"
        move = f"{before} → {Status(change.to_status).label.lower()}"
        events.append(of(change.changed_on, "status_change", change.provision, move, change.note))
    for position in Position.objects.filter(taken_on__gt=start, taken_on__lte=end).select_related(
        "provision", "party"
    ):
        stance = f"{position.party.code} {Stance(position.stance).label.lower()}"
        summary = f"{stance} ({Firmness(position.firmness).label.lower()})"
        events.append(of(position.taken_on, "position", position.provision, summary, position.note))
    for discussion in Discussion.objects.filter(on__gt=start, on__lte=end).select_related("provision"):
        events.append(of(discussion.on, "discussion", discussion.provision, "discussed", discussion.note))
    for provision_change in ProvisionChange.objects.filter(at__gt=start, at__lte=end).select_related(
        "provision"
    ):
        summary = _described(provision_change.sets())
        events.append(
            of(
                provision_change.at,
                "provision_change",
                provision_change.provision,
                summary,
                provision_change.note,
            )
        )
    for capability_change in CapabilityChange.objects.filter(at__gt=start, at__lte=end).select_related(
        "capability"
    ):
        events.append(
            Event(
                cast(datetime.date, capability_change.at),
                "capability_change",
                "capability",
                capability_change.capability.code,
                capability_change.capability.name,
                None,
                _described(capability_change.sets()),
                capability_change.note,
            )
        )
    return sorted(events, key=lambda event: (event.on, event.kind, event.subject_code))


_FIELD_WORDS = {
    "lapses_on": "lapses on",
    "expires_on": "expires on",
    "criticality": "criticality",
    "fallback": "fallback",
    "title": "title",
}


def _described(values: dict[str, object]) -> str:
    """What a dated change sets, in words: "lapses on: 2021-06-30; text changed"."""
    parts = []
    for name, value in values.items():
        if name == "text":
            parts.append("text changed")
        elif isinstance(value, datetime.date):
            parts.append(f"{_FIELD_WORDS[name]}: {value.isoformat()}")
        elif name == "criticality" and isinstance(value, str):
            parts.append(f"criticality: {Level(value).label.lower()}")
        else:
            parts.append(f"{_FIELD_WORDS[name]}: {value or 'none'}")
    return "; ".join(parts)
