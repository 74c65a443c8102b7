"""Running a background export (provisions.services.exports asks for it; a Celery worker runs it):
build the report for the user who asked, write it beside its final name saying how far it has got,
then move it into place. Running a job twice is harmless."""

from __future__ import annotations

import logging
import os
from typing import Any

from django.db import DatabaseError

from provisions.models import ExportJob, ExportState
from provisions.permissions import Reader
from provisions.reports import catalogue
from provisions.services.exports import export_finish, export_progress

logger = logging.getLogger(__name__)


def export_run(*, job_id: str) -> ExportJob | None:
    """Build and write the job's report (None: no such job any more). A report that cannot be
    built (a domain deleted since) fails the job with the reason, as does a rendering error (logged);
    a database error propagates, so the task is retried."""
    job = ExportJob.objects.select_related("user").filter(pk=job_id).first()
    if job is None or job.state in (ExportState.DONE, ExportState.FAILED):
        return job
    export_progress(job, 5, "Reading the record", state=ExportState.RUNNING)
    try:
        report = catalogue.build(job.report, job.format, job.parameters, Reader.of(job.user))
        rows = catalogue.REPORTS[job.report].rows(report)
        _write(job, report, rows)
    except catalogue.ExportInvalid as invalid:
        return export_finish(job, state=ExportState.FAILED, error=str(invalid))
    except DatabaseError:
        raise
    except Exception as error:  # a rendering bug must not leave the job "being prepared" for ever
        logger.exception("export %s failed", job.pk)
        return export_finish(
            job, state=ExportState.FAILED, error=f"The export could not be written ({type(error).__name__})."
        )
    return export_finish(
        job,
        state=ExportState.DONE,
        progress=100,
        rows=rows,
        size=job.path.stat().st_size,
        marking=report.marking.label,
        file_name=catalogue.file_name(job.report, job.format, report),
    )


def _write(job: ExportJob, report: Any, rows: int) -> None:
    """Render the report into the job's file, saying how far it has got; the file appears whole."""
    if job.format == "pdf":
        export_progress(job, 40, f"Laying out the pages of {rows:,} rows")
    else:

        def written(count: int) -> None:
            export_progress(job, 20 + 75 * count // max(rows, 1), f"Written {count:,} of {rows:,} rows")

        export_progress(job, 20, f"Writing {rows:,} rows")
        report = catalogue.with_progress(report, written)
    path = job.path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    try:
        if job.format in catalogue.BINARY_FORMATS:
            with partial.open("wb") as binary:
                catalogue.render(job.report, job.format, report, binary)
        else:
            with partial.open("w", encoding="utf-8", newline="") as text:
                catalogue.render(job.report, job.format, report, text)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
