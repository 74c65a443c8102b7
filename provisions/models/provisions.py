"""Capabilities, provisions and what hangs off a provision: coverage, positions, status changes and
consultations (DESIGN.md, "Vocabulary")."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import RowNumber
from django.utils import timezone
from simple_history.models import HistoricalRecords

from provisions.models.partnership import Domain, Party, Precedent, Territory, updated_at_field
from provisions.models.valid_time import fold
from provisions.models.vocabulary import (
    Alignment,
    ConsultationOutcome,
    CoverageState,
    Extent,
    Firmness,
    Level,
    Marking,
    Stance,
    Status,
    choice_check,
    code_validator,
)


class Capability(models.Model):
    code = models.CharField(max_length=64, unique=True, validators=[code_validator])
    name = models.CharField(max_length=300)
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="capabilities")
    criticality = models.CharField(max_length=16, choices=Level.choices)
    lapses_on = models.DateField(null=True, blank=True)
    fallback = models.TextField(blank=True, help_text="The instrument that would apply if nothing is agreed.")
    description = models.TextField(blank=True)
    # As the last gap scan found it (blank: never scanned): today's dashboards read it, not the rules.
    coverage_state = models.CharField(
        max_length=16, choices=CoverageState.choices, blank=True, default="", editable=False
    )
    updated_at = updated_at_field()
    history = HistoricalRecords(excluded_fields=["coverage_state", "updated_at"])

    class Meta:
        verbose_name_plural = "capabilities"
        ordering = ["id"]
        constraints = [choice_check("criticality", Level, "capability_criticality_valid")]
        indexes = [
            # The lapse timeline and "what lapses soon" read capabilities by lapse date.
            models.Index(fields=["lapses_on"], name="capability_lapses_on"),
            # The overview counts capabilities by domain and recorded state from this index alone.
            models.Index(fields=["domain", "coverage_state"], name="capability_domain_state"),
        ]

    def __str__(self) -> str:
        return f"{self.code}: {self.name}"

    def days_to_lapse(self, as_of: datetime.date) -> int | None:
        return None if self.lapses_on is None else (self.lapses_on - as_of).days

    def values_at(self, day: datetime.date) -> dict[str, Any]:
        """Its lapse date, criticality and fallback on the day: the columns hold today's; its dated
        changes (read prefetched when present) give any other day's."""
        today = {"lapses_on": self.lapses_on, "criticality": self.criticality, "fallback": self.fallback}
        return fold(list(self.changes.all()), today, day)


class MarkingsReader(Protocol):
    """Anything that says which markings it may see (provisions.permissions.Reader does)."""

    @property
    def markings(self) -> tuple[str, ...]: ...


def sees_every_marking(reader: MarkingsReader) -> bool:
    return set(reader.markings) >= set(Marking.values)


# The day rules of what hangs off a provision, as functions of the few attributes they read: the model's
# methods call them on its rows, and the API's rows (provisions.api.provision_rows) on plain ones.


class DatedPosition(Protocol):
    @property
    def pk(self) -> Any: ...
    @property
    def party_id(self) -> int: ...
    @property
    def taken_on(self) -> datetime.date | None: ...
    @property
    def stance(self) -> str: ...


class DatedLink(Protocol):
    @property
    def valid_from(self) -> datetime.date | None: ...
    @property
    def valid_until(self) -> datetime.date | None: ...


class DatedStatus(Protocol):
    @property
    def pk(self) -> Any: ...
    @property
    def changed_on(self) -> datetime.date: ...
    @property
    def to_status(self) -> str: ...


P = TypeVar("P", bound=DatedPosition)


def position_order(position: DatedPosition) -> tuple[bool, datetime.date, int]:
    """Oldest first: undated, then by date; the same day in the order recorded."""
    return (position.taken_on is not None, position.taken_on or datetime.date.min, position.pk or 0)


def positions_held(positions: Iterable[P], day: datetime.date) -> dict[int, P]:
    """Each party's position on the day: its latest dated on or before it, an undated one holding
    from the start."""
    held: dict[int, P] = {}
    for position in sorted(positions, key=position_order):
        if position.taken_on is None or position.taken_on <= day:
            held[position.party_id] = position
    return held


def alignment_of(held: Mapping[int, DatedPosition], party_ids: Iterable[int]) -> Alignment:
    """Alignment from the positions held (by party id), over the partnership's parties in order."""
    return Alignment.of(held[party].stance if party in held else None for party in party_ids)


def link_counts_on(link: DatedLink, day: datetime.date) -> bool:
    """A coverage link counts from its first day (if any) until, not including, its last (if any)."""
    return (link.valid_from is None or link.valid_from <= day) and (
        link.valid_until is None or link.valid_until > day
    )


def status_on(changes: Iterable[DatedStatus], day: datetime.date) -> str | None:
    """The status on the day: its latest change's on or before it (None: it did not exist yet)."""
    held = [change for change in changes if change.changed_on <= day]
    return max(held, key=lambda change: (change.changed_on, change.pk)).to_status if held else None


class ProvisionQuerySet(models.QuerySet["Provision"]):
    def visible_to(self, reader: MarkingsReader) -> ProvisionQuerySet:
        """Provisions whose handling marking the reader's clearance allows (all of them, with no
        filter for the planner to work through, for a reader cleared for every marking)."""
        return self if sees_every_marking(reader) else self.filter(marking__in=reader.markings)

    def with_related(self) -> ProvisionQuerySet:
        """Everything a provision's page, export or API row shows, in a fixed number of queries."""
        return self.select_related("domain", "domain__partnership").prefetch_related(
            # Joined rather than prefetched a level further: a query and a prefetch pass fewer.
            models.Prefetch("positions", queryset=Position.objects.select_related("party")),
            models.Prefetch("coverage", queryset=Coverage.objects.select_related("capability")),
            "precedents",
            "territories",
            "domain__partnership__parties",
        )


# Full-text search over provisions: the expression of the GIN index below (PostgreSQL only, see
# migration 0011); a search must use this same expression for the index to serve it.
PROVISION_SEARCH_VECTOR = SearchVector("reference", "title", "text", config="english")


class Provision(models.Model):
    reference = models.CharField(max_length=64, unique=True, validators=[code_validator])
    title = models.CharField(max_length=300)
    text = models.TextField(blank=True)
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="provisions")
    # The current status: the to_status of its latest StatusChange (one service writes both).
    status = models.CharField(max_length=32, choices=Status.choices)
    target_date = models.DateField(null=True, blank=True)
    review_date = models.DateField(null=True, blank=True)
    # From this day on it no longer secures anything unless renewed (a sunset clause, the end of an
    # adequacy decision, an evaluation deadline). Title, text and this are dated values: the columns
    # hold today's; ProvisionChange holds the base value and the dated changes (DESIGN.md).
    expires_on = models.DateField(null=True, blank=True)
    marking = models.CharField(max_length=32, choices=Marking.choices, default=Marking.OFFICIAL)
    precedents = models.ManyToManyField(Precedent, blank=True, related_name="provisions")
    territories = models.ManyToManyField(Territory, blank=True, related_name="provisions")
    # Optimistic concurrency: every write bumps it; a write based on an older version is refused.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    # Field-level audit trail: who changed what, when and why (django-simple-history).
    history = HistoricalRecords(m2m_fields=[precedents, territories], excluded_fields=["updated_at"])

    objects: ClassVar[ProvisionQuerySet] = ProvisionQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["reference"]
        constraints = [
            choice_check("status", Status, "provision_status_valid"),
            choice_check("marking", Marking, "provision_marking_valid"),
        ]
        indexes = [
            # Domain pages list a domain's provisions by status.
            models.Index(fields=["domain", "status"], name="provision_domain_status"),
            # A reader's redaction looks up the provisions marked above their clearance.
            models.Index(fields=["marking"], name="provision_marking"),
            GinIndex(PROVISION_SEARCH_VECTOR, name="provision_search"),
        ]

    def __str__(self) -> str:
        return f"{self.reference}: {self.title}"

    @property
    def territories_awaiting_consultation(self) -> list[Territory]:
        """Stakeholders the provision extends to that have not been consulted on it yet."""
        consulted = {consultation.territory_id for consultation in self.consultations.all()}
        return [t for t in self.territories.all() if t.is_stakeholder and t.pk not in consulted]

    def values_at(self, day: datetime.date) -> dict[str, Any]:
        """Its title, text and expiry on the day: the columns hold today's; its dated changes (read
        prefetched when present) give any other day's."""
        today = {"title": self.title, "text": self.text, "expires_on": self.expires_on}
        return fold(list(self.changes.all()), today, day)

    def status_at(self, day: datetime.date) -> str | None:
        """Its status on the day (None: it did not exist yet); reads prefetched status changes."""
        return status_on(self.status_changes.all(), day)

    def positions_at(self, day: datetime.date | None = None) -> dict[int, Position]:
        """Each party's position on the day (today by default); reads prefetched positions when present."""
        return positions_held(self.positions.all(), day or timezone.localdate())

    def parties_opposing_at(self, day: datetime.date | None = None) -> list[Party]:
        """The parties whose position on the day (today by default) opposes it, in party order."""
        held = self.positions_at(day)
        return [
            party
            for party in self.domain.partnership.parties.all()
            if party.pk in held and held[party.pk].stance == Stance.OPPOSES
        ]

    def alignment_at(
        self, day: datetime.date | None = None, *, held: dict[int, Position] | None = None
    ) -> Alignment:
        """From each party's position on the day (`held`: positions_at(day), when the caller has it);
        reads prefetched positions and parties when present."""
        held = self.positions_at(day) if held is None else held
        return alignment_of(held, [party.pk for party in self.domain.partnership.parties.all()])

    @property
    def alignment(self) -> Alignment:
        return self.alignment_at()

    def links_at(self, day: datetime.date | None = None) -> list[Coverage]:
        """The coverage links that count on the day (today by default); reads prefetched links."""
        day = day or timezone.localdate()
        return [link for link in self.coverage.all() if link.counts_on(day)]


class CoverageQuerySet(models.QuerySet["Coverage"]):
    def counting_on(self, day: datetime.date) -> CoverageQuerySet:
        """Links that count on the day: from (if any) on or before it, until (if any) after it."""
        return self.filter(Q(valid_from__isnull=True) | Q(valid_from__lte=day)).filter(
            Q(valid_until__isnull=True) | Q(valid_until__gt=day)
        )


class Coverage(models.Model):
    """A provision covers a capability, fully or partially, from a day until a day (either open)."""

    provision = models.ForeignKey(Provision, on_delete=models.CASCADE, related_name="coverage")
    capability = models.ForeignKey(Capability, on_delete=models.CASCADE, related_name="coverage")
    extent = models.CharField(max_length=16, choices=Extent.choices, default=Extent.FULL)
    valid_from = models.DateField(null=True, blank=True, help_text="Counts from this day (empty: always).")
    valid_until = models.DateField(null=True, blank=True, help_text="Stops counting on this day.")
    history = HistoricalRecords()

    objects: ClassVar[CoverageQuerySet] = CoverageQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        verbose_name_plural = "coverage"
        ordering = ["provision_id", "id"]
        constraints = [
            # One open-ended link per capability; ended links keep the record of what counted when.
            models.UniqueConstraint(
                fields=["provision", "capability"],
                condition=Q(valid_until__isnull=True),
                name="coverage_open_once_per_capability",
            ),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True)
                | Q(valid_until__isnull=True)
                | Q(valid_from__lt=F("valid_until")),
                name="coverage_from_before_until",
            ),
            choice_check("extent", Extent, "coverage_extent_valid"),
        ]
        indexes = [
            # Which provisions cover a capability (the unique constraint serves the other way round).
            models.Index(fields=["capability", "provision"], name="coverage_by_capability"),
        ]

    def __str__(self) -> str:
        return f"{self.provision_id} covers {self.capability_id} ({self.extent})"

    def counts_on(self, day: datetime.date) -> bool:
        return link_counts_on(self, day)


class Position(models.Model):
    """One party's stance on a provision, taken on a day: a party's positions are a dated history,
    the latest on or before a day is its position then (one without a date holds from the start)."""

    provision = models.ForeignKey(Provision, on_delete=models.CASCADE, related_name="positions")
    party = models.ForeignKey(Party, on_delete=models.PROTECT, related_name="positions")
    stance = models.CharField(max_length=16, choices=Stance.choices)
    firmness = models.CharField(max_length=16, choices=Firmness.choices, default=Firmness.PROVISIONAL)
    note = models.TextField(blank=True)
    taken_on = models.DateField(
        null=True, blank=True, help_text="The day it was taken (empty: from the start)."
    )
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["provision_id", "party_id", F("taken_on").asc(nulls_first=True), "id"]
        constraints = [
            choice_check("stance", Stance, "position_stance_valid"),
            choice_check("firmness", Firmness, "position_firmness_valid"),
        ]
        indexes = [
            # A provision's positions, each party's in date order (the position at a date is the latest).
            models.Index(fields=["provision", "party", "taken_on", "id"], name="position_timeline"),
        ]

    def __str__(self) -> str:
        return f"{self.party_id} {self.stance} {self.provision_id} ({self.taken_on or 'from the start'})"

    def order_key(self) -> tuple[bool, datetime.date, int]:
        return position_order(self)


class StatusChangeQuerySet(models.QuerySet["StatusChange"]):
    def update(self, **kwargs: Any) -> int:
        raise TypeError("status changes are immutable")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("status changes are immutable")

    def chronological(self) -> StatusChangeQuerySet:
        """Oldest first; several on one day keep the order they were recorded in."""
        return self.order_by("provision_id", "changed_on", "id")

    def latest_per_provision(self, *, on_or_before: datetime.date) -> StatusChangeQuerySet:
        """Each provision's latest change on or before the date: its status at that date."""
        return (
            self.filter(changed_on__lte=on_or_before)
            .annotate(
                position_from_latest=models.Window(
                    RowNumber(),
                    partition_by=[models.F("provision_id")],
                    order_by=[models.F("changed_on").desc(), models.F("id").desc()],
                )
            )
            .filter(position_from_latest=1)
        )


class StatusChange(models.Model):
    """An immutable record of a provision's move from one status to another."""

    provision = models.ForeignKey(Provision, on_delete=models.PROTECT, related_name="status_changes")
    from_status = models.CharField(max_length=32, choices=Status.choices, blank=True)
    to_status = models.CharField(max_length=32, choices=Status.choices)
    # The calendar day (project time zone) the move counts from: rules compare this.
    changed_on = models.DateField()
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.TextField(blank=True)
    source = models.CharField(max_length=16, default="web")

    objects: ClassVar[StatusChangeQuerySet] = StatusChangeQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["provision_id", "changed_on", "id"]
        constraints = [
            choice_check("to_status", Status, "status_change_to_valid"),
            models.CheckConstraint(
                condition=Q(from_status="") | Q(from_status__in=Status.values),
                name="status_change_from_valid",
            ),
            models.CheckConstraint(
                condition=~Q(from_status=models.F("to_status")), name="status_change_not_noop"
            ),
        ]
        indexes = [
            # Status at a date: the latest change per provision on or before T.
            models.Index(fields=["provision", "changed_on", "id"], name="status_change_timeline"),
            # Recent movements across the partnership, latest first and stopped after a few.
            models.Index(fields=["changed_on", "id"], name="status_change_moved_order"),
        ]

    def __str__(self) -> str:
        return f"{self.provision_id}: {self.from_status or '(new)'} → {self.to_status} on {self.changed_on}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError("status changes are immutable")
        kwargs["force_insert"] = True  # an instance given an existing pk must not update that row
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise TypeError("status changes are immutable")


class Consultation(models.Model):
    """A stakeholder (Devolved Administration, Gibraltar, a Crown Dependency...) consulted on a provision."""

    provision = models.ForeignKey(Provision, on_delete=models.CASCADE, related_name="consultations")
    territory = models.ForeignKey(Territory, on_delete=models.PROTECT, related_name="consultations")
    consulted_on = models.DateField()
    outcome = models.CharField(max_length=16, choices=ConsultationOutcome.choices)
    note = models.TextField(blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["provision_id", "consulted_on", "id"]
        constraints = [choice_check("outcome", ConsultationOutcome, "consultation_outcome_valid")]

    def __str__(self) -> str:
        return f"{self.territory_id} consulted on {self.provision_id} ({self.consulted_on})"
