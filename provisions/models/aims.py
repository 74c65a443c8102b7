"""The partnership's stated aims (DESIGN.md, "Aims and what changed"), each linked to the
capabilities that serve it."""

from __future__ import annotations

from django.db import models

from provisions.models.partnership import Partnership, updated_at_field
from provisions.models.provisions import Capability
from provisions.models.vocabulary import code_validator


class Aim(models.Model):
    partnership = models.ForeignKey(Partnership, on_delete=models.CASCADE, related_name="aims")
    code = models.CharField(max_length=64, unique=True, validators=[code_validator])
    title = models.CharField(max_length=300)
    text = models.TextField(blank=True)
    source = models.TextField(blank=True, help_text="Where the aim is stated.")
    updated_at = updated_at_field()
    capabilities = models.ManyToManyField(Capability, through="AimCapability", related_name="aims")

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code}: {self.title}"


class AimCapability(models.Model):
    """A capability that serves an aim, in the order the aim lists them."""

    aim = models.ForeignKey(Aim, on_delete=models.CASCADE, related_name="links")
    capability = models.ForeignKey(Capability, on_delete=models.CASCADE, related_name="aim_links")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["aim_id", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["aim", "capability"], name="aim_capability_once")]

    def __str__(self) -> str:
        return f"{self.aim_id} served by {self.capability_id}"
