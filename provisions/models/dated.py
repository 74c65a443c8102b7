"""Dated facts (valid time: when something was true), apart from the audit trail (recorded time).

A capability's lapse date, criticality and fallback, and a provision's title, text and expiry, are a
base value plus dated changes: the value on a day is the base overridden, oldest first, by every
change dated on or before it that sets it. The subject's own columns hold today's value (what every
read of today uses); these rows hold the base (`at` empty) and the changes, and exist once a subject
has a dated change. Discussions record that a provision was negotiated on a day without moving.
"""

from __future__ import annotations

import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from provisions.models.provisions import Capability, Provision
from provisions.models.valid_time import fold
from provisions.models.vocabulary import Level

__all__ = ["CapabilityChange", "Discussion", "ProvisionChange", "fold"]

_ORDER: list[Any] = [F("at").asc(nulls_first=True), "id"]


class DatedChange(models.Model):
    """What every dated change has: its day (empty: the base value), a note and who recorded it."""

    at = models.DateField(null=True, blank=True, help_text="The day it took effect (empty: the base value).")
    note = models.TextField(blank=True)
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        abstract = True

    def applies_on(self, day: datetime.date) -> bool:
        return self.at is None or self.at <= day

    def sets(self) -> dict[str, Any]:  # pragma: no cover - each subclass says what it sets
        raise NotImplementedError


class CapabilityChange(DatedChange):
    """A capability's base values (`at` empty) or a dated change of some of them."""

    DATED: ClassVar[tuple[str, ...]] = ("lapses_on", "criticality", "fallback")  # the capability's columns

    capability = models.ForeignKey(Capability, on_delete=models.CASCADE, related_name="changes")
    # A value is set by this change only when its flag says so: a change may clear a lapse date.
    sets_lapses_on = models.BooleanField(default=False)
    lapses_on = models.DateField(null=True, blank=True)
    criticality = models.CharField(max_length=16, choices=Level.choices, blank=True)  # blank: not set
    sets_fallback = models.BooleanField(default=False)
    fallback = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["capability_id", *_ORDER]
        constraints = [
            models.CheckConstraint(
                condition=Q(criticality="") | Q(criticality__in=Level.values),
                name="capability_change_level_valid",
            ),
            models.UniqueConstraint(
                fields=["capability"], condition=Q(at__isnull=True), name="capability_change_one_base"
            ),
        ]
        indexes = [
            # The values at a date: a capability's changes in date order.
            models.Index(fields=["capability", "at", "id"], name="capability_change_timeline"),
        ]

    def __str__(self) -> str:
        return f"{self.capability_id} {'base' if self.at is None else self.at}: {self.sets()}"

    def sets(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if self.sets_lapses_on:
            values["lapses_on"] = self.lapses_on
        if self.criticality:
            values["criticality"] = self.criticality
        if self.sets_fallback:
            values["fallback"] = self.fallback
        return values


class ProvisionChange(DatedChange):
    """A provision's base values (`at` empty) or a dated change of its title, text or expiry."""

    DATED: ClassVar[tuple[str, ...]] = ("title", "text", "expires_on")  # the provision's columns

    provision = models.ForeignKey(Provision, on_delete=models.CASCADE, related_name="changes")
    title = models.CharField(max_length=300, blank=True)  # blank: not set (a title is never empty)
    sets_text = models.BooleanField(default=False)
    text = models.TextField(blank=True)
    sets_expires_on = models.BooleanField(default=False)
    expires_on = models.DateField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["provision_id", *_ORDER]
        constraints = [
            models.UniqueConstraint(
                fields=["provision"], condition=Q(at__isnull=True), name="provision_change_one_base"
            ),
        ]
        indexes = [
            # The values at a date: a provision's changes in date order.
            models.Index(fields=["provision", "at", "id"], name="provision_change_timeline"),
        ]

    def __str__(self) -> str:
        return f"{self.provision_id} {'base' if self.at is None else self.at}: {sorted(self.sets())}"

    def sets(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if self.title:
            values["title"] = self.title
        if self.sets_text:
            values["text"] = self.text
        if self.sets_expires_on:
            values["expires_on"] = self.expires_on
        return values


class Discussion(models.Model):
    """A provision was negotiated on a day without moving ("discussed in round 7"): activity for the
    stall rule."""

    provision = models.ForeignKey(Provision, on_delete=models.CASCADE, related_name="discussions")
    on = models.DateField()
    note = models.TextField()
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["provision_id", "on", "id"]
        constraints = [models.CheckConstraint(condition=~Q(note=""), name="discussion_has_a_note")]
        indexes = [
            # A provision's latest activity on or before a date.
            models.Index(fields=["provision", "on"], name="discussion_by_provision"),
        ]

    def __str__(self) -> str:
        return f"{self.provision_id} discussed on {self.on}"
