"""The record as it stood at T (DESIGN.md): everything the rules read, as it was true on the day.

A provision exists at T from its first status change on or before T, with the status of its latest
one; its title and expiry, and a capability's lapse date, criticality and fallback, are their base
values overridden by the dated changes on or before T; a coverage link counts when its provision
exists and its `from`/`until` days hold T; each party's position is its latest dated on or before T;
a provision's activity is its latest status change, dated position, dated change or discussion.

Set-based: a fixed number of queries whatever the size of the partnership, each reading only what
the rules need (with ids: only what those subjects depend on).
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import F, Max, Q, Window
from django.db.models.functions import FirstValue, RowNumber

from provisions.models import (
    Capability,
    CapabilityChange,
    Coverage,
    Discussion,
    Level,
    Position,
    Provision,
    ProvisionChange,
    Stance,
    Status,
    StatusChange,
    fold,
)

# Enum members by value, and their rank and weight, as plain dicts: Status(value), .rank and .weight
# go through the enum machinery (about 1 µs each), hundreds of thousands of times in an evaluation.
STATUS_BY_VALUE = {status.value: status for status in Status}
LEVEL_BY_VALUE = {level.value: level for level in Level}
RANK_BY_STATUS = {status: status.rank for status in Status}
WEIGHT_BY_LEVEL = {level: level.weight for level in Level}


# The values an evaluation builds (a hundred thousand at a time) are plain slotted dataclasses, built
# once and only read: a frozen dataclass sets each field through object.__setattr__, five times slower.


@dataclass(slots=True)
class ProvisionAt:
    """A provision as it stood at T."""

    id: int
    reference: str
    domain: str
    status: Status
    last_moved_on: datetime.date  # its latest status change on or before T
    marking: str
    title: str
    expires_on: datetime.date | None
    expired: bool  # its expiry at T is on or before T: active, but it secures nothing
    last_activity: datetime.date  # its latest activity on or before T (at least its latest move)
    active: bool  # not withdrawn
    rank: int | None  # its status's place on the ladder (None: suspended or withdrawn)

    def secured(self, secured_rank: int) -> bool:
        """At least the secured status, on the ladder (not suspended or withdrawn), not expired."""
        return self.rank is not None and self.rank >= secured_rank and not self.expired


@dataclass(slots=True)
class CapabilityAt:
    """A capability as it stood at T."""

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


Link = tuple[int, int, str]  # (provision id, capability id, extent)


@dataclass
class Record:
    """What the rules read, at T. With subjects given, it holds what they depend on."""

    as_of: datetime.date
    capabilities: dict[int, CapabilityAt]
    provisions: dict[int, ProvisionAt]
    links: list[Link]  # the links that count at T (their provision may not exist yet: then it does not)
    opposing: dict[int, list[str]]  # parties (codes, in party order) whose position at T opposes


def record_at(
    as_of: datetime.date,
    *,
    capability_ids: Collection[int] | None = None,
    provision_ids: Collection[int] | None = None,
) -> Record:
    """The record at T: of everything, or of what the given subjects depend on (the links of those
    subjects, and the capabilities and provisions at their other ends). Nine queries."""
    links = Coverage.objects.counting_on(as_of).order_by()
    needed_capabilities: set[int] | None = None
    needed_provisions: set[int] | None = None
    if capability_ids is not None or provision_ids is not None:
        links = links.filter(capability_id__id_in=set(capability_ids or ())) | links.filter(
            provision_id__id_in=set(provision_ids or ())
        )
    link_rows: list[Link] = list(links.values_list("provision_id", "capability_id", "extent"))
    if capability_ids is not None or provision_ids is not None:
        needed_capabilities = set(capability_ids or ()) | {capability for _, capability, _ in link_rows}
        needed_provisions = set(provision_ids or ()) | {provision for provision, _, _ in link_rows}
    return Record(
        as_of=as_of,
        capabilities=capabilities_at(as_of, capability_ids=needed_capabilities),
        provisions=provisions_at(as_of, provision_ids=needed_provisions),
        links=link_rows,
        opposing=opposing_at(as_of, provision_ids=needed_provisions),
    )


def _changes(model: Any, subject: str, ids: Collection[int] | None) -> dict[int, list[Any]]:
    """Every base value and dated change of the subjects that have any, in order (one query)."""
    changes = model.objects.order_by(f"{subject}_id", F("at").asc(nulls_first=True), "id")
    if ids is not None:
        changes = changes.filter(**{f"{subject}_id__id_in": ids})
    by_subject: defaultdict[int, list[Any]] = defaultdict(list)
    for change in changes:
        by_subject[getattr(change, f"{subject}_id")].append(change)
    return by_subject


def capabilities_at(
    as_of: datetime.date, *, capability_ids: Collection[int] | None = None
) -> dict[int, CapabilityAt]:
    """Capabilities with their lapse date, criticality and fallback at T (two queries)."""
    capabilities = Capability.objects.order_by()
    if capability_ids is not None:
        capabilities = capabilities.filter(id__id_in=capability_ids)
    changes = _changes(CapabilityChange, "capability", capability_ids)
    found = {}
    for pk, code, name, domain, criticality, lapses_on, fallback in capabilities.values_list(
        "id", "code", "name", "domain__code", "criticality", "lapses_on", "fallback"
    ):
        if pk in changes:  # the columns hold today's values; a dated history holds T's
            values = fold(changes[pk], {}, as_of)
            criticality = values.get("criticality", criticality)
            lapses_on = values.get("lapses_on", lapses_on)
            fallback = values.get("fallback", fallback)
        found[pk] = CapabilityAt(pk, code, name, domain, LEVEL_BY_VALUE[criticality], lapses_on, fallback)
    return found


_DETAILS = ("reference", "domain__code", "marking", "title", "expires_on")


def _statuses_at(as_of: datetime.date, provision_ids: Collection[int] | None) -> Iterable[tuple[Any, ...]]:
    """(provision, status, day it moved there, *_DETAILS today) of the provisions that existed at T
    (two queries)."""
    later = StatusChange.objects.filter(changed_on__gt=as_of)
    if provision_ids is not None:
        later = later.filter(provision_id__id_in=provision_ids)
    if not later.exists():
        # Nothing moved after T (a scan of today): the status then is the current status, which the
        # status service keeps equal to the latest change's; no need to rank the history.
        current = Provision.objects.order_by()
        if provision_ids is not None:
            current = current.filter(id__id_in=provision_ids)
        return (
            current.annotate(last_moved_on=Max("status_changes__changed_on"))
            .filter(last_moved_on__isnull=False)
            .values_list("id", "status", "last_moved_on", *_DETAILS)
        )
    changes = StatusChange.objects.latest_per_provision(on_or_before=as_of).order_by()
    if provision_ids is not None:
        changes = changes.filter(provision_id__id_in=provision_ids)
    return changes.values_list(
        "provision_id", "to_status", "changed_on", *(f"provision__{name}" for name in _DETAILS)
    )


def _latest(model: Any, day_field: str, as_of: datetime.date, ids: Collection[int] | None) -> dict[int, Any]:
    """Each provision's latest day on or before T in a dated table (one query)."""
    rows = model.objects.filter(**{f"{day_field}__lte": as_of})
    if ids is not None:
        rows = rows.filter(provision_id__id_in=ids)
    return dict(rows.order_by().values_list("provision_id").annotate(latest=Max(day_field)))


def provisions_at(
    as_of: datetime.date, *, provision_ids: Collection[int] | None = None
) -> dict[int, ProvisionAt]:
    """Provisions that existed at T, with their status, title, expiry and latest activity then
    (five queries)."""
    ids = provision_ids
    changes = _changes(ProvisionChange, "provision", ids)
    positioned = _latest(Position, "taken_on", as_of, ids)
    discussed = _latest(Discussion, "on", as_of, ids)
    found = {}
    for row in _statuses_at(as_of, ids):
        pk = row[0]
        found[pk] = provision_at(row, changes.get(pk), as_of, (positioned.get(pk), discussed.get(pk)))
    return found


def provision_at(
    row: tuple[Any, ...],
    changes: list[Any] | None,
    as_of: datetime.date,
    activity: Iterable[datetime.date | None],
) -> ProvisionAt:
    """A provision at T from (id, status, day it moved there, *_DETAILS today), its base value and
    dated changes (if any), and its other activity days (positions, discussions)."""
    pk, status_value, moved_on, reference, domain, marking, title, expires_on = row
    last_activity = moved_on
    for day in activity:
        if day is not None and day > last_activity:
            last_activity = day
    if changes:
        values = fold(changes, {}, as_of)
        title, expires_on = values.get("title", title), values.get("expires_on", expires_on)
        for change in changes:
            if change.at is not None and last_activity < change.at <= as_of:
                last_activity = change.at
    status = STATUS_BY_VALUE[status_value]
    return ProvisionAt(
        pk,
        reference,
        domain,
        status,
        moved_on,
        marking,
        title,
        expires_on,
        expires_on is not None and expires_on <= as_of,
        last_activity,
        status is not Status.WITHDRAWN,
        RANK_BY_STATUS[status],
    )


def opposing_at(
    as_of: datetime.date, *, provision_ids: Collection[int] | None = None
) -> dict[int, list[str]]:
    """The parties whose position at T opposes each provision (one query): each party's latest
    position on or before T, among the provisions that have an opposing one by then."""
    held = Position.objects.filter(Q(taken_on__isnull=True) | Q(taken_on__lte=as_of))
    if provision_ids is not None:
        held = held.filter(provision_id__id_in=provision_ids)
    ever_opposed = held.filter(stance=Stance.OPPOSES).values("provision_id")
    partition = [F("provision_id"), F("party_id")]
    latest_first = [F("taken_on").desc(nulls_last=True), F("id").desc()]
    latest = (
        held.filter(provision_id__in=ever_opposed)
        .annotate(
            rank=Window(RowNumber(), partition_by=partition, order_by=latest_first),
            stance_then=Window(FirstValue("stance"), partition_by=partition, order_by=latest_first),
        )
        .filter(rank=1, stance_then=Stance.OPPOSES)
        .order_by("provision_id", "party_id")
    )
    opposing: defaultdict[int, list[str]] = defaultdict(list)
    for provision_id, party in latest.values_list("provision_id", "party__code"):
        opposing[provision_id].append(party)
    return dict(opposing)
