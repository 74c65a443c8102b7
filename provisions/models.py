"""The partnership model (DESIGN.md, "Vocabulary"): tables, constraints and one-row rules."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import RowNumber
from django.utils import timezone
from simple_history.models import HistoricalRecords


def _choice_check(field: str, choices: type[models.TextChoices], name: str) -> models.CheckConstraint:
    return models.CheckConstraint(condition=Q(**{f"{field}__in": choices.values}), name=name)


# Codes and references, as the partnership file's schema has them ($defs.code): they name things in
# URLs and in the ";"-joined lists of reports, so nothing else is allowed in them.
CODE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
code_validator = RegexValidator(
    rf"^{CODE_PATTERN}\Z",
    "Letters, digits, '.', '_' and '-' only, starting with a letter or digit (at most 64).",
)


class Level(models.TextChoices):
    """Criticality of a capability and severity of a gap: one scale, highest first."""

    CRITICAL = "critical", "Critical"
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"

    @property
    def weight(self) -> int:
        """Higher is more serious: critical 3 ... low 0."""
        return _LEVEL_WEIGHTS[self.value]

    def raised(self) -> Level:
        """One level up; critical stays critical."""
        return _LEVELS_BY_WEIGHT[min(self.weight + 1, 3)]

    def lowered(self) -> Level:
        """One level down; levels never go below low."""
        return _LEVELS_BY_WEIGHT[max(self.weight - 1, 0)]


_LEVEL_WEIGHTS = {"critical": 3, "high": 2, "medium": 1, "low": 0}
_LEVELS_BY_WEIGHT = {weight: Level(value) for value, weight in _LEVEL_WEIGHTS.items()}


class Status(models.TextChoices):
    """The negotiation lifecycle. Ladder statuses have a rank; suspended and withdrawn are off it."""

    IDENTIFIED = "identified", "Identified"
    SCOPING = "scoping", "Scoping"
    PROPOSED = "proposed", "Proposed"
    UNDER_NEGOTIATION = "under_negotiation", "Under negotiation"
    AGREED_IN_PRINCIPLE = "agreed_in_principle", "Agreed in principle"
    AGREED = "agreed", "Agreed"
    SIGNED = "signed", "Signed"
    IN_FORCE = "in_force", "In force"
    SUSPENDED = "suspended", "Suspended"
    WITHDRAWN = "withdrawn", "Withdrawn"

    @property
    def rank(self) -> int | None:
        """Position on the ladder (identified 0 ... in_force 7); None off the ladder."""
        return _RANKS.get(self.value)

    @classmethod
    def move_refusal(cls, current: str | None, target: str, note: str) -> str | None:
        """Why the move from `current` to `target` is refused, or None when it is allowed.

        The lifecycle of DESIGN.md, written down once: any move except a no-op and leaving
        in_force for anything but suspended; backwards, suspending and withdrawing need a reason.
        `current` is None for a provision's first status.
        """
        if target not in cls.values:
            return f"unknown status {target!r}"
        if current is None:
            return None
        source, destination = cls(current), cls(target)
        if source == destination:
            return f"the provision is already {source.value}"
        if source == cls.IN_FORCE and destination != cls.SUSPENDED:
            return f"a provision in force can only be suspended, not moved to {destination.value}"
        if not note.strip():
            if destination in (cls.SUSPENDED, cls.WITHDRAWN):
                return f"moving to {destination.value} needs a reason"
            if source.rank is not None and destination.rank is not None and destination.rank < source.rank:
                return f"moving back from {source.value} to {destination.value} needs a reason"
        return None


_RANKS = {value: rank for rank, value in enumerate(Status.values[:8])}


class Extent(models.TextChoices):
    FULL = "full", "Full"
    PARTIAL = "partial", "Partial"


class Stance(models.TextChoices):
    PROPOSES = "proposes", "Proposes"
    SUPPORTS = "supports", "Supports"
    CONDITIONAL = "conditional", "Conditional"
    RESERVED = "reserved", "Reserved"
    OPPOSES = "opposes", "Opposes"


class Firmness(models.TextChoices):
    PROVISIONAL = "provisional", "Provisional"
    DEFINITIVE = "definitive", "Definitive"


class Alignment(models.TextChoices):
    CONFLICT = "conflict", "Conflict"
    ALIGNED = "aligned", "Aligned"
    UNDETERMINED = "undetermined", "Undetermined"
    ASYMMETRIC = "asymmetric", "Asymmetric"

    @classmethod
    def of(cls, stances: Iterable[str | None]) -> Alignment:
        """Alignment from each party's stance (None: the party has no position)."""
        stances = list(stances)
        if not stances:  # no parties: nobody has taken a position yet
            return cls.UNDETERMINED
        if Stance.OPPOSES in stances:
            return cls.CONFLICT
        if None in stances:
            return cls.UNDETERMINED
        if all(stance in (Stance.PROPOSES, Stance.SUPPORTS) for stance in stances):
            return cls.ALIGNED
        return cls.ASYMMETRIC


class Marking(models.TextChoices):
    OFFICIAL = "official", "OFFICIAL"
    OFFICIAL_SENSITIVE = "official_sensitive", "OFFICIAL-SENSITIVE"
    SECRET = "secret", "SECRET"


class TerritoryKind(models.TextChoices):
    STATE = "state", "State"
    DEVOLVED_ADMINISTRATION = "devolved_administration", "Devolved Administration"
    CROWN_DEPENDENCY = "crown_dependency", "Crown Dependency"
    OVERSEAS_TERRITORY = "overseas_territory", "Overseas Territory"
    OTHER = "other", "Other"


class ConsultationOutcome(models.TextChoices):
    CONTENT = "content", "Content"
    CONCERNS = "concerns", "Raised concerns"
    OBJECTS = "objects", "Objects"
    NO_RESPONSE = "no_response", "No response"


class CoverageState(models.TextChoices):
    SECURED = "secured", "Secured"
    PARTIAL = "partial", "Partial"
    IN_NEGOTIATION = "in_negotiation", "In negotiation"
    UNCOVERED = "uncovered", "Uncovered"


class GapKind(models.TextChoices):
    LAPSED = "lapsed", "Lapsed"
    UNCOVERED = "uncovered", "Uncovered"
    AT_RISK = "at_risk", "At risk"
    PARTIAL = "partial", "Partial"
    STALLED = "stalled", "Stalled"
    DIVERGENT = "divergent", "Divergent"


# --- the partnership -------------------------------------------------------------------------------------


class Partnership(models.Model):
    code = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.title


class Party(models.Model):
    partnership = models.ForeignKey(Partnership, on_delete=models.CASCADE, related_name="parties")
    code = models.CharField(max_length=64, validators=[code_validator])
    name = models.CharField(max_length=200)

    class Meta:
        verbose_name_plural = "parties"
        ordering = ["partnership_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["partnership", "code"], name="party_code_unique_in_partnership"),
        ]

    def __str__(self) -> str:
        return self.name


class Milestone(models.Model):
    partnership = models.ForeignKey(Partnership, on_delete=models.CASCADE, related_name="milestones")
    code = models.CharField(max_length=64, validators=[code_validator])
    title = models.CharField(max_length=200)
    date = models.DateField()
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["date", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["partnership", "code"], name="milestone_code_unique_in_partnership"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.date:%Y-%m-%d})"


class Pillar(models.Model):
    name = models.CharField(max_length=200, unique=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Domain(models.Model):
    partnership = models.ForeignKey(Partnership, on_delete=models.PROTECT, related_name="domains")
    code = models.CharField(max_length=64, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    pillar = models.ForeignKey(
        Pillar, on_delete=models.PROTECT, null=True, blank=True, related_name="domains"
    )
    description = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A person using the tracker. Roles are groups; clearance bounds the markings they may see."""

    clearance = models.CharField(
        max_length=32,
        choices=Marking.choices,
        default=Marking.OFFICIAL,
        help_text="The highest handling marking this user may see.",
    )
    domains = models.ManyToManyField(
        Domain, blank=True, related_name="negotiators", help_text="The domains this user negotiates in."
    )

    # Not columns: set for one request by the API token it came with (its clearance, if restricted
    # below its user's, and its expiry); a token made through a token inherits both limits.
    token_clearance: str = ""
    token_expires_at: datetime.datetime | None = None

    class Meta(AbstractUser.Meta):
        constraints = [_choice_check("clearance", Marking, "user_clearance_valid")]


class Territory(models.Model):
    code = models.CharField(max_length=64, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=TerritoryKind.choices, default=TerritoryKind.OTHER)

    class Meta:
        verbose_name_plural = "territories"
        ordering = ["id"]
        constraints = [_choice_check("kind", TerritoryKind, "territory_kind_valid")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_stakeholder(self) -> bool:
        """Devolved Administrations, Crown Dependencies and Overseas Territories are consulted."""
        return self.kind in (
            TerritoryKind.DEVOLVED_ADMINISTRATION,
            TerritoryKind.CROWN_DEPENDENCY,
            TerritoryKind.OVERSEAS_TERRITORY,
        )


class Precedent(models.Model):
    code = models.CharField(max_length=64, unique=True, validators=[code_validator])
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    url = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.title


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
    history = HistoricalRecords(excluded_fields=["coverage_state"])

    class Meta:
        verbose_name_plural = "capabilities"
        ordering = ["id"]
        constraints = [_choice_check("criticality", Level, "capability_criticality_valid")]
        indexes = [
            # The lapse timeline and "what lapses soon" read capabilities by lapse date.
            models.Index(fields=["lapses_on"], name="capability_lapses_on"),
        ]

    def __str__(self) -> str:
        return f"{self.code}: {self.name}"

    def days_to_lapse(self, as_of: datetime.date) -> int | None:
        return None if self.lapses_on is None else (self.lapses_on - as_of).days


class ProvisionQuerySet(models.QuerySet["Provision"]):
    def visible_to(self, user: Any) -> ProvisionQuerySet:
        """Provisions whose handling marking the user's clearance allows."""
        from provisions.permissions import visible_markings

        return self.filter(marking__in=visible_markings(user))

    def with_related(self) -> ProvisionQuerySet:
        """Everything a provision's page, export or API row shows, in a fixed number of queries."""
        return self.select_related("domain", "domain__partnership").prefetch_related(
            "positions__party",
            "coverage__capability",
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
            _choice_check("status", Status, "provision_status_valid"),
            _choice_check("marking", Marking, "provision_marking_valid"),
        ]
        indexes = [
            # Domain pages list a domain's provisions by status.
            models.Index(fields=["domain", "status"], name="provision_domain_status"),
            GinIndex(PROVISION_SEARCH_VECTOR, name="provision_search"),
        ]

    def __str__(self) -> str:
        return f"{self.reference}: {self.title}"

    @property
    def status_label(self) -> str:
        return Status(self.status).label

    @property
    def territories_awaiting_consultation(self) -> list[Territory]:
        """Stakeholders the provision extends to that have not been consulted on it yet."""
        consulted = {consultation.territory_id for consultation in self.consultations.all()}
        return [t for t in self.territories.all() if t.is_stakeholder and t.pk not in consulted]

    @property
    def alignment(self) -> Alignment:
        """From each party's position; reads prefetched positions and parties when present."""
        stance_by_party = {position.party_id: position.stance for position in self.positions.all()}
        parties = self.domain.partnership.parties.all()
        return Alignment.of(stance_by_party.get(party.pk) for party in parties)


class Coverage(models.Model):
    """A provision covers a capability, fully or partially."""

    provision = models.ForeignKey(Provision, on_delete=models.CASCADE, related_name="coverage")
    capability = models.ForeignKey(Capability, on_delete=models.CASCADE, related_name="coverage")
    extent = models.CharField(max_length=16, choices=Extent.choices, default=Extent.FULL)
    history = HistoricalRecords()

    class Meta:
        verbose_name_plural = "coverage"
        ordering = ["provision_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["provision", "capability"], name="coverage_once_per_capability"),
            _choice_check("extent", Extent, "coverage_extent_valid"),
        ]
        indexes = [
            # Which provisions cover a capability (the unique constraint serves the other way round).
            models.Index(fields=["capability", "provision"], name="coverage_by_capability"),
        ]

    def __str__(self) -> str:
        return f"{self.provision_id} covers {self.capability_id} ({self.extent})"


class Position(models.Model):
    """One party's stance on a provision."""

    provision = models.ForeignKey(Provision, on_delete=models.CASCADE, related_name="positions")
    party = models.ForeignKey(Party, on_delete=models.PROTECT, related_name="positions")
    stance = models.CharField(max_length=16, choices=Stance.choices)
    firmness = models.CharField(max_length=16, choices=Firmness.choices, default=Firmness.PROVISIONAL)
    note = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["provision_id", "party_id"]
        constraints = [
            models.UniqueConstraint(fields=["provision", "party"], name="position_once_per_party"),
            _choice_check("stance", Stance, "position_stance_valid"),
            _choice_check("firmness", Firmness, "position_firmness_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.party_id} {self.stance} {self.provision_id}"


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
            _choice_check("to_status", Status, "status_change_to_valid"),
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
            # Recent movements across the partnership.
            models.Index(fields=["changed_on"], name="status_change_changed_on"),
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
        constraints = [_choice_check("outcome", ConsultationOutcome, "consultation_outcome_valid")]

    def __str__(self) -> str:
        return f"{self.territory_id} consulted on {self.provision_id} ({self.consulted_on})"


# --- gaps ------------------------------------------------------------------------------------------------


class ScanTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Nightly schedule"
    CHANGE = "change", "A change to the partnership"
    COMMAND = "command", "Command"
    API = "api", "API"
    WEB = "web", "Web"


class GapState(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class GapScan(models.Model):
    """One run of the gap engine."""

    as_of = models.DateField()
    trigger = models.CharField(max_length=16, choices=ScanTrigger.choices)
    full = models.BooleanField(default=True, help_text="Whether every subject was evaluated.")
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    evaluated_subjects = models.PositiveIntegerField(default=0)
    opened = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    resolved = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [_choice_check("trigger", ScanTrigger, "gap_scan_trigger_valid")]

    def __str__(self) -> str:
        return f"Scan {self.pk} as of {self.as_of} ({self.trigger})"


class GapQuerySet(models.QuerySet["Gap"]):
    def open(self) -> GapQuerySet:
        return self.filter(resolved_at__isnull=True)


class Gap(models.Model):
    """A gap the engine flagged. Identity is (kind, subject); at most one open per identity."""

    kind = models.CharField(max_length=16, choices=GapKind.choices)
    severity = models.CharField(max_length=16, choices=Level.choices)
    capability = models.ForeignKey(
        Capability, on_delete=models.CASCADE, null=True, blank=True, related_name="gaps"
    )
    provision = models.ForeignKey(
        Provision, on_delete=models.CASCADE, null=True, blank=True, related_name="gaps"
    )
    explanation = models.TextField()
    # As the last scan that found it saw them (DESIGN.md's report columns).
    coverage_state = models.CharField(max_length=16, choices=CoverageState.choices, blank=True)
    lapses_on = models.DateField(null=True, blank=True)
    covering_provisions = models.TextField(blank=True, help_text="References joined by ';'.")
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    opened_by_scan = models.ForeignKey(GapScan, on_delete=models.SET_NULL, null=True, related_name="+")
    resolved_by_scan = models.ForeignKey(
        GapScan, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledgement_note = models.TextField(blank=True)

    objects: ClassVar[GapQuerySet] = GapQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            _choice_check("kind", GapKind, "gap_kind_valid"),
            _choice_check("severity", Level, "gap_severity_valid"),
            models.CheckConstraint(
                condition=(
                    Q(capability__isnull=False, provision__isnull=True, kind__in=GapKind.values[:4])
                    | Q(capability__isnull=True, provision__isnull=False, kind__in=GapKind.values[4:])
                ),
                name="gap_has_one_subject_of_its_kind",
            ),
            models.UniqueConstraint(
                fields=["kind", "capability"],
                condition=Q(resolved_at__isnull=True, capability__isnull=False),
                name="gap_open_once_per_capability",
            ),
            models.UniqueConstraint(
                fields=["kind", "provision"],
                condition=Q(resolved_at__isnull=True, provision__isnull=False),
                name="gap_open_once_per_provision",
            ),
        ]
        indexes = [
            # Reconciliation and the gaps page read open gaps.
            models.Index(fields=["resolved_at", "severity"], name="gap_open_by_severity"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject_code} ({self.severity})"

    @property
    def subject_code(self) -> str:
        if self.capability_id is not None:
            return self.capability.code if self.capability else ""
        return self.provision.reference if self.provision else ""

    @property
    def state(self) -> GapState:
        if self.resolved_at is not None:
            return GapState.RESOLVED
        if self.acknowledged_at is not None:
            return GapState.ACKNOWLEDGED
        return GapState.OPEN


class ScanRequest(models.Model):
    """Outbox: a write asked for a scan of what it touched. The scan that handles it deletes it.

    Kept in the database so a request survives a broker outage; a periodic job sends it again.
    """

    requested_at = models.DateTimeField(default=timezone.now)
    trigger = models.CharField(max_length=16, choices=ScanTrigger.choices, default=ScanTrigger.CHANGE)
    capability_ids = models.JSONField(default=list)
    provision_ids = models.JSONField(default=list)
    full = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Scan request {self.pk} ({self.requested_at:%Y-%m-%d %H:%M})"


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))


class ApiToken(models.Model):
    """A bearer token for another system, acting as its user. Only a hash of the key is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for (the system using it).")
    prefix = models.CharField(
        max_length=12, editable=False, help_text="The key's first characters, to tell it."
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    clearance = models.CharField(
        max_length=32,
        choices=Marking.choices,
        blank=True,
        help_text="Lower than the user's to restrict the token; blank: the user's clearance.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects: ClassVar[ApiTokenQuerySet] = ApiTokenQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(clearance="") | Q(clearance__in=Marking.values), name="api_token_clearance_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class WebhookEvent(models.TextChoices):
    PROVISION_STATUS_CHANGED = "provision.status_changed", "A provision's status changed"
    GAP_OPENED = "gap.opened", "A gap opened"
    GAP_RESOLVED = "gap.resolved", "A gap was resolved"
    GAP_ESCALATED = "gap.escalated", "A gap escalated"


class WebhookEndpoint(models.Model):
    """A receiver another system registered: told of the events it subscribes to, up to its clearance."""

    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text="Event names, e.g. provision.status_changed.")
    # Kept in clear: it signs each delivery (HMAC-SHA256), so it cannot be stored as a hash.
    secret = models.CharField(max_length=128)
    clearance = models.CharField(max_length=32, choices=Marking.choices, default=Marking.OFFICIAL)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["id"]
        constraints = [_choice_check("clearance", Marking, "webhook_endpoint_clearance_valid")]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint, with every attempt's outcome."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64, choices=WebhookEvent.choices)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_response = models.TextField(blank=True, help_text="The start of the receiver's answer.")
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # When the periodic job last queued it again (it waits a while before queuing it once more).
    resent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # The resend job reads pending deliveries, oldest first.
            models.Index(fields=["state", "created_at"], name="webhook_delivery_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.endpoint_id} ({self.state})"


class WebhookAttempt(models.Model):
    """One try at sending a delivery: when, how long it took, and what the receiver answered."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    sent_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response = models.TextField(blank=True, help_text="The start of the receiver's answer.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_number_unique")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"


LADDER_STATUSES = [(status.value, status.label) for status in Status if status.rank is not None]


class GapRuleThresholds(models.Model):
    """The gap rules' thresholds as the administrators set them in the admin (a single row). Until
    they do, the settings' (SECURED_STATUS, WARNING_DAYS, URGENT_DAYS, STALL_DAYS) apply."""

    secured_status = models.CharField(
        max_length=32,
        choices=LADDER_STATUSES,
        help_text="The lowest status that secures a capability (its rank and above).",
    )
    warning_days = models.PositiveIntegerField(help_text="A lapse this many days away or nearer warns.")
    urgent_days = models.PositiveIntegerField(help_text="A lapse this many days away or nearer is urgent.")
    stall_days = models.PositiveIntegerField(
        validators=[MinValueValidator(1)], help_text="Days without a move after which a negotiation stalls."
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    history = HistoricalRecords()

    class Meta:
        verbose_name = verbose_name_plural = "gap rule thresholds"
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="gap_rule_thresholds_single_row"),
            models.CheckConstraint(
                condition=Q(urgent_days__lte=models.F("warning_days")), name="urgent_within_warning"
            ),
            models.CheckConstraint(
                condition=Q(secured_status__in=[value for value, _ in LADDER_STATUSES]),
                name="gap_rule_thresholds_secured_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return "Gap rule thresholds"

    def clean(self) -> None:
        if (
            self.urgent_days is not None
            and self.warning_days is not None
            and self.urgent_days > self.warning_days
        ):
            raise ValidationError({"urgent_days": "Urgent must be no more days away than warning."})


class CoverageSnapshot(models.Model):
    """How many capabilities were in each coverage state on a day: the coverage-over-time chart.

    Written by every full scan (for today) and by `snapshot_coverage` (for past days, from the
    status history)."""

    as_of = models.DateField(unique=True)
    secured = models.PositiveIntegerField()
    partial = models.PositiveIntegerField()
    in_negotiation = models.PositiveIntegerField()
    uncovered = models.PositiveIntegerField()
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["as_of"]

    def __str__(self) -> str:
        return f"Coverage on {self.as_of}"
