"""Exports prepared in the background (provisions.models.exports): asked for from a page, run by a
Celery worker (provisions.reports.jobs writes the file), downloaded by the user who asked (or an
administrator), removed when their time is up.

The job row is the outbox: a job whose task never reached the broker is queued again by beat's
`purge_exports`.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from provisions.models import ExportJob, ExportState, User
from provisions.permissions import Reader, can_administer
from provisions.services.queueing import task_queue_on_commit

RUN_EXPORT = "provisions.tasks.run_export"
# A queued job older than this whose task may have been lost (a broker outage) is queued again.
REQUEUE_AFTER = datetime.timedelta(minutes=10)


def export_request(
    *, user: User, report: str, fmt: str, parameters: dict[str, Any], description: str, rows: int
) -> ExportJob:
    """A background export of the report for the user: the same export still queued, running or
    ready (same report, format and parameters) if they already asked for it, else a new job."""
    existing = (
        ExportJob.objects.filter(user=user, report=report, format=fmt, parameters=parameters)
        .exclude(state=ExportState.FAILED)
        .exclude(expires_at__lte=timezone.now())
        .first()
    )
    if existing is not None:
        return existing
    with transaction.atomic():
        job = ExportJob.objects.create(
            user=user, report=report, format=fmt, parameters=parameters, description=description, rows=rows
        )
        task_queue_on_commit(RUN_EXPORT, str(job.pk))
    return job


def export_progress(job: ExportJob, progress: int, stage: str, *, state: ExportState | None = None) -> None:
    """Say how far a running job has got (committed at once: the job runs outside a transaction)."""
    fields: dict[str, Any] = {"progress": progress, "stage": stage}
    if state is not None:
        fields["state"] = state
    ExportJob.objects.filter(pk=job.pk).update(**fields)


def export_finish(job: ExportJob, **fields: Any) -> ExportJob:
    """A job done or failed: kept, file and all, for EXPORT_KEEP_HOURS from now."""
    now = timezone.now()
    expires_at = now + datetime.timedelta(hours=settings.EXPORT_KEEP_HOURS)
    ExportJob.objects.filter(pk=job.pk).update(stage="", finished_at=now, expires_at=expires_at, **fields)
    job.refresh_from_db()
    return job


def exports_purge(*, now: datetime.datetime | None = None) -> int:
    """Remove the exports whose time is up (their files too), and queue again the jobs still
    waiting long after they were asked for. Returns how many were removed."""
    now = now or timezone.now()
    expired = list(ExportJob.objects.filter(expires_at__lte=now))
    for job in expired:
        job.path.unlink(missing_ok=True)
    # A failed job is kept as long as a finished one, for its owner to read why.
    ExportJob.objects.filter(pk__in=[job.pk for job in expired]).delete()
    for job_id in ExportJob.objects.filter(
        state=ExportState.QUEUED, created_at__lte=now - REQUEUE_AFTER
    ).values_list("pk", flat=True):
        task_queue_on_commit(RUN_EXPORT, str(job_id))
    return len(expired)


def visible_exports(reader: Reader) -> QuerySet[ExportJob]:
    """The exports a reader may see and download: their own; an administrator's, everyone's."""
    jobs = ExportJob.objects.select_related("user")
    if can_administer(reader):
        return jobs
    if reader.user is None:
        return jobs.none()
    return jobs.filter(user=reader.user)
