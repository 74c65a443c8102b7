"""What the gap engine records: scans, gaps, scan requests (the outbox), the thresholds the
administrators set and the daily coverage snapshots."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from provisions.models.partnership import Domain
from provisions.models.provisions import Capability, MarkingsReader, Provision, sees_every_marking
from provisions.models.vocabulary import (
    CAPABILITY_GAP_KINDS,
    LADDER_STATUSES,
    PROVISION_GAP_KINDS,
    SEVERITY_RANK,
    CoverageState,
    GapKind,
    GapState,
    Level,
    ScanTrigger,
    choice_check,
)


def _values(kinds: tuple[GapKind, ...]) -> list[str]:
    return [kind.value for kind in kinds]


class GapScan(models.Model):
    """One run of the gap engine."""

    as_of = models.DateField()
    trigger = models.CharField(max_length=16, choices=ScanTrigger.choices)
    full = models.BooleanField(default=True, help_text="Whether every subject was evaluated.")
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(
        default=timezone.now, db_index=True, help_text="Moved when it finishes."
    )
    evaluated_subjects = models.PositiveIntegerField(default=0)
    opened = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    resolved = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)

    # They count every subject, whatever its marking: for a reader not cleared to every marking they
    # would tell that something they cannot see changed (the API and the admin withhold them).
    COUNTS = ("evaluated_subjects", "opened", "updated", "resolved", "unchanged")

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [choice_check("trigger", ScanTrigger, "gap_scan_trigger_valid")]

    def __str__(self) -> str:
        return f"Scan {self.pk} as of {self.as_of} ({self.trigger})"


class GapQuerySet(models.QuerySet["Gap"]):
    def open(self) -> GapQuerySet:
        return self.filter(resolved_at__isnull=True)

    def visible_to(self, reader: MarkingsReader) -> GapQuerySet:
        """Every capability gap (its subject names no provision), and the gaps of the provisions
        the reader may see."""
        if sees_every_marking(reader):  # no join for the planner to make
            return self
        return self.filter(Q(provision__isnull=True) | Q(provision__marking__in=reader.markings))

    def in_domains(self, domains: list[Domain]) -> GapQuerySet:
        """Gaps of subjects in one of the domains (as the last scan saw them: Gap.domain)."""
        return self.filter(domain__in=domains)


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
    # Its subject's domain as the last scan that found it saw it (the scan after a subject moves to
    # another domain moves its open gaps too), so that a domain's gaps are read from an index rather
    # than through every capability and provision: joined, the domain page's gaps took 300 ms at a
    # million provisions and the API's domain filter read every provision. Rows show the subject's
    # own domain (provisions.redaction.gap_row).
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="+")
    # The explanation with nothing withheld, as recorded; readers are shown one rendered for them
    # from `detail` (provisions.redaction), never this text.
    explanation = models.TextField()
    # What the explanation says, as data (provisions.explanations.GapFacts): rendered for each reader.
    detail = models.JSONField(default=dict, blank=True)
    # As the last scan that found it saw them (DESIGN.md's report columns).
    coverage_state = models.CharField(max_length=16, choices=CoverageState.choices, blank=True)
    lapses_on = models.DateField(null=True, blank=True)
    covering_provisions = models.TextField(blank=True, help_text="References joined by ';'.")
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # When anything its rows show last moved: opened, re-evaluated, acknowledged, resolved.
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)
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
            choice_check("kind", GapKind, "gap_kind_valid"),
            choice_check("severity", Level, "gap_severity_valid"),
            models.CheckConstraint(
                condition=(
                    Q(
                        capability__isnull=False,
                        provision__isnull=True,
                        kind__in=[kind.value for kind in CAPABILITY_GAP_KINDS],
                    )
                    | Q(
                        capability__isnull=True,
                        provision__isnull=False,
                        kind__in=[kind.value for kind in PROVISION_GAP_KINDS],
                    )
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
            # The API's gap list pages newest first (its default order, and its cursor's): read from
            # this index and stopped after a page, not every gap joined and sorted (85 ms to 8 ms at
            # 100,000 provisions).
            models.Index(fields=["opened_at", "id"], name="gap_opened_order"),
            models.Index(SEVERITY_RANK, F("id"), name="gap_severity_order"),  # `ordering=-severity`
            # A domain's gaps: newest first (the API's order), and its open ones as the report orders
            # them (the domain page, the gaps page filtered by domain), each stopped after a page.
            models.Index(fields=["domain", "opened_at", "id"], name="gap_domain_opened_order"),
            models.Index(
                F("domain"),
                SEVERITY_RANK.desc(),
                F(
                    "lapses_on"
                ).asc(),  # empty last: PostgreSQL's default for ascending (SQLite takes no NULLS LAST here)
                F("kind"),
                condition=Q(resolved_at__isnull=True),
                name="gap_domain_open_report_order",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject_code} ({self.severity})"

    @property
    def subject_code(self) -> str:
        if self.capability_id is not None:
            return self.capability.code if self.capability else ""
        return self.provision.reference if self.provision else ""

    @property
    def identity(self) -> tuple[str, str, int]:
        """(kind, subject type, subject id): at most one open gap has it (DESIGN.md)."""
        if self.capability_id is not None:
            return (self.kind, "capability", self.capability_id)
        return (self.kind, "provision", self.provision_id or 0)  # the database guarantees one subject

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
