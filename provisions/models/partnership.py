"""The partnership and its reference data: parties, milestones, pillars, domains, territories,
precedents, and the users who work on it."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from provisions.models.vocabulary import (
    Marking,
    TerritoryKind,
    choice_check,
    code_validator,
)


def updated_at_field() -> models.DateTimeField:
    """When anything in the row's API representation last moved (the `updated_since` filters):
    moved by the services that write it (provisions.services.reference_data, the import, dated
    values), not on every save."""
    return models.DateTimeField(default=timezone.now, db_index=True, editable=False)


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
    updated_at = updated_at_field()
    history = HistoricalRecords(excluded_fields=["updated_at"])

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

    class Meta(AbstractUser.Meta):
        constraints = [choice_check("clearance", Marking, "user_clearance_valid")]


class Territory(models.Model):
    code = models.CharField(max_length=64, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=TerritoryKind.choices, default=TerritoryKind.OTHER)
    updated_at = updated_at_field()

    class Meta:
        verbose_name_plural = "territories"
        ordering = ["id"]
        constraints = [choice_check("kind", TerritoryKind, "territory_kind_valid")]

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
    updated_at = updated_at_field()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.title
