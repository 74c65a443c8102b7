"""Exports prepared in the background (provisions.models.exports): asked for from a page, run by a
Celery worker (provisions.reports.jobs writes the file), downloaded by the user who asked (or an
administrator), removed when their time is up.

The job row is the outbox: a job whose task never reached the broker is queued again by beat's
`purge_exports`.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from provisions.models import ExportJob, ExportState
from provisions.permissions import Reader, can_administer, can_export
from provisions.services.queueing import task_queue_on_commit

RUN_EXPORT = "provisions.tasks.run_export"
# A queued job older than this whose task may have been lost (a broker outage) is queued again.
REQUEUE_AFTER = datetime.timedelta(minutes=10)
# A running job silent for this long lost its worker (killed, out of memory): it is failed.
STALLED_AFTER = datetime.timedelta(minutes=30)


def export_request(
    *, reader: Reader, report: str, fmt: str, parameters: dict[str, Any], description: str, rows: int
) -> ExportJob:
    """A background export of the report for the reader (a user): the same export still queued,
    running or ready (same report, format, parameters and clearance) if they already asked for it,
    else a new job, queued when the transaction commits."""
    user, clearance = reader.user, reader.clearance
    if user is None or clearance is None:
        raise ValueError("a background export is asked for by a user with a clearance")
    existing = (
        ExportJob.objects.filter(
            user=user, report=report, format=fmt, parameters=parameters, clearance=clearance
        )
        .exclude(state=ExportState.FAILED)
        .exclude(expires_at__lte=timezone.now())
        .first()
    )
    if existing is not None:
        return existing
    with transaction.atomic():
        job = ExportJob.objects.create(
            user=user,
            report=report,
            format=fmt,
            parameters=parameters,
            clearance=clearance,
            description=description,
            rows=rows,
        )
        task_queue_on_commit(RUN_EXPORT, str(job.pk))
    return job


def export_claim(job_id: str) -> ExportJob | None:
    """The queued job, now running (None: no such job, or another worker has it, or it is finished:
    a task delivered twice runs it once)."""
    claimed = ExportJob.objects.filter(pk=job_id, state=ExportState.QUEUED).update(
        state=ExportState.RUNNING, progress=5, stage="Reading the record", updated_at=timezone.now()
    )
    return ExportJob.objects.select_related("user").get(pk=job_id) if claimed else None


def export_progress(job: ExportJob, progress: int, stage: str) -> None:
    """Say how far a running job has got (committed at once: the job runs outside a transaction);
    progress only moves forwards."""
    ExportJob.objects.filter(pk=job.pk, state=ExportState.RUNNING, progress__lte=progress).update(
        progress=progress, stage=stage, updated_at=timezone.now()
    )


def export_finish(job: ExportJob, **fields: Any) -> ExportJob:
    """A running job done or failed: kept, file and all, for EXPORT_KEEP_HOURS from now."""
    now = timezone.now()
    expires_at = now + datetime.timedelta(hours=settings.EXPORT_KEEP_HOURS)
    ExportJob.objects.filter(pk=job.pk, state=ExportState.RUNNING).update(
        stage="", finished_at=now, expires_at=expires_at, **fields
    )
    job.refresh_from_db()
    return job


def exports_purge(*, now: datetime.datetime | None = None) -> int:
    """Remove the exports whose time is up (their files too) and any file no job owns (its user
    deleted, a worker killed mid-write); fail the running jobs whose worker has gone quiet; queue
    again the jobs still waiting long after they were asked for. Returns how many were removed."""
    now = now or timezone.now()
    expired = list(ExportJob.objects.filter(expires_at__lte=now))
    for job in expired:
        job.path.unlink(missing_ok=True)
    ExportJob.objects.filter(pk__in=[job.pk for job in expired]).delete()
    ExportJob.objects.filter(state=ExportState.RUNNING, updated_at__lte=now - STALLED_AFTER).update(
        state=ExportState.FAILED,
        stage="",
        error="The worker preparing it stopped before it finished. Ask for it again.",
        finished_at=now,
        expires_at=now + datetime.timedelta(hours=settings.EXPORT_KEEP_HOURS),
    )
    folder = Path(settings.EXPORT_DIR)
    if folder.is_dir():
        owned = {str(pk) for pk in ExportJob.objects.values_list("pk", flat=True)}
        for path in folder.iterdir():
            old = path.stat().st_mtime < (now - STALLED_AFTER).timestamp()
            if old and path.name.split(".", 1)[0] not in owned:
                path.unlink(missing_ok=True)
    for job_id in ExportJob.objects.filter(
        state=ExportState.QUEUED, created_at__lte=now - REQUEUE_AFTER
    ).values_list("pk", flat=True):
        task_queue_on_commit(RUN_EXPORT, str(job_id))
    return len(expired)


def visible_exports(reader: Reader) -> QuerySet[ExportJob]:
    """The exports a reader may see and download: their own, an administrator's everyone's; in both
    cases only those marked within the reader's clearance today (or not written yet), and none for a
    reader who may no longer export."""
    jobs = ExportJob.objects.select_related("user").filter(Q(marking="") | Q(marking__in=reader.markings))
    if not can_export(reader):
        return jobs.none()
    if can_administer(reader):
        return jobs
    return jobs.filter(user=reader.user) if reader.user is not None else jobs.none()
