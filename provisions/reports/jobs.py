"""Running a background export (provisions.services.exports asks for it; a Celery worker runs it):
build the report for the user who asked, write it beside its final name saying how far it has got,
then move it into place. A job is claimed before it runs: delivered twice, it runs once."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from django.db import DatabaseError

from provisions.models import ExportJob, ExportState
from provisions.permissions import Reader
from provisions.reports import catalogue
from provisions.services.exports import export_claim, export_finish, export_progress

logger = logging.getLogger(__name__)


# How many times a format's writer goes through the rows (the XLSX summary counts them twice and
# sizes the columns before writing them): a job's progress spreads over all its passes.
PASSES = {"xlsx": 4}


def export_run(*, job_id: str) -> ExportJob | None:
    """Build and write the job's report (None: no such job, or it is not queued: a task delivered
    twice runs it once). A report that cannot be built (a domain deleted since) fails the job with
    the reason, as does a rendering error (logged); a database error propagates, so the task is
    retried."""
    job = export_claim(job_id)
    if job is None:
        return None
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
        marking=report.marking.value,
        file_name=catalogue.file_name(job.report, job.format, report),
    )


def _write(job: ExportJob, report: Any, rows: int) -> None:
    """Render the report into a file of its own beside the job's, saying how far it has got, then
    move it into place: the job's file appears whole or not at all."""
    if job.format == "pdf":
        export_progress(job, 40, f"Laying out the pages of {rows:,} rows")
    else:
        expected = max(rows, 1) * PASSES.get(job.format, 1)

        def written(count: int) -> None:
            done = min(count, expected)
            export_progress(job, 20 + 75 * done // expected, f"Writing {rows:,} rows")

        export_progress(job, 20, f"Writing {rows:,} rows")
        report = catalogue.with_progress(report, written)
    path = job.path
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f"{job.pk}.", suffix=".partial")
    partial = Path(name)
    try:
        catalogue.write(job.report, job.format, report, descriptor)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
