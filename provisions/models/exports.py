"""Exports prepared in the background: a report too large to build inside a web request (above
EXPORT_ONLINE_MAX_ROWS, or EXPORT_ONLINE_MAX_PDF_ROWS for PDF) becomes a job a Celery worker runs.
The file is kept for EXPORT_KEEP_HOURS, visible only to the user who asked and administrators, and
removed by beat afterwards."""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models

from provisions.models.vocabulary import Marking


class ExportState(models.TextChoices):
    QUEUED = "queued", "Waiting for a worker"
    RUNNING = "running", "Being prepared"
    DONE = "done", "Ready"
    FAILED = "failed", "Failed"


class ExportJob(models.Model):
    """One report, in one format, with the parameters the page had, for one user."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exports")
    report = models.CharField(max_length=20)  # provisions.reports.catalogue.REPORTS
    format = models.CharField(max_length=10)
    parameters = models.JSONField(default=dict)
    # The clearance it was asked at: asked again at another, it is another export.
    clearance = models.CharField(max_length=20, choices=Marking.choices)
    description = models.TextField()  # "Gap report as of 1 December 2020; critical"
    rows = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=10, choices=ExportState.choices, default=ExportState.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)  # percent
    stage = models.CharField(max_length=100, blank=True)  # what it is doing now, in words
    file_name = models.TextField(blank=True)
    marking = models.CharField(max_length=20, choices=Marking.choices, blank=True)  # once written
    size = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)  # a running job's last sign of life
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"]), models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return f"{self.description} ({self.format.upper()}, {self.get_state_display()})"

    @property
    def path(self) -> Path:
        """Where the file is kept (named by the job's id, never by anything a user typed)."""
        return Path(settings.EXPORT_DIR) / f"{self.pk}.{self.format}"

    @property
    def finished(self) -> bool:
        return self.state in (ExportState.DONE, ExportState.FAILED)
