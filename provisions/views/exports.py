"""Reports downloaded from the pages, in exactly the rows, filters and dates the page shows; the
large ones prepared in the background, with a page for each such export."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import content_disposition_header

from provisions.models import ExportJob, ExportState, Marking
from provisions.permissions import Reader, can_administer, can_export
from provisions.reports import catalogue
from provisions.rules import PeriodInvalid, parse_period
from provisions.services.exports import export_request, visible_exports
from provisions.views.common import page_as_of, page_reader


def _exporter(request: HttpRequest, report: str, fmt: str) -> Reader:
    """The reader, if they may export (analysts and above) this report in that format."""
    reader = page_reader(request)
    if not can_export(reader):
        raise PermissionDenied("analysts and above export reports")
    if fmt not in catalogue.REPORTS[report].formats:
        raise Http404("unknown format")
    return reader


def _as_of(request: HttpRequest) -> dict[str, Any]:
    """The page's date: none for today (the gap report then has the last scan's states), with the
    day it was asked on, so that tomorrow's export of "today" is not yesterday's file."""
    as_of, today, travelling = page_as_of(request)
    return {"as_of": as_of.isoformat() if travelling else None, "asked_on": today.isoformat()}


def _period(request: HttpRequest) -> dict[str, Any]:
    start, end = parse_period(request.GET.get("from"), request.GET.get("to"), today=timezone.localdate())
    return {"from": start.isoformat(), "to": end.isoformat()}


# Each report's parameters, read from the page's query as the page reads them (JSON, for a job).
PARAMETERS: dict[str, Callable[[HttpRequest], dict[str, Any]]] = {
    "gaps": lambda request: {
        **_as_of(request),
        **{
            name: list(dict.fromkeys(v for v in request.GET.getlist(name) if v))
            for name in ("domain", "severity", "kind")
        },
    },
    "coverage": _as_of,
    "aims": _as_of,
    "changes": _period,
    "briefing": _period,
}


def _download(fmt: str, filename: str, marking: Marking, write: Callable[[Any], None]) -> FileResponse:
    """A report written by `write` into a buffer of the format's kind, as an attachment that says
    its protective marking in `X-Protective-Marking` (the PDF and XLSX say it on every page too)."""
    binary = fmt in catalogue.BINARY_FORMATS
    buffer: Any = io.BytesIO() if binary else io.StringIO()
    write(buffer)
    data = buffer.getvalue()
    response = FileResponse(
        io.BytesIO(data if binary else data.encode("utf-8")),
        as_attachment=True,
        filename=filename,
        content_type=catalogue.CONTENT_TYPES[fmt],
    )
    response["X-Protective-Marking"] = marking.label
    return response


@login_required
def export(request: HttpRequest, fmt: str, *, report: str) -> HttpResponseBase:
    """A report of exactly what its page shows (its filters and dates), as a download; one too
    large to build while the reader waits (catalogue.online_limit) becomes a background job, and
    the reader is sent to its page."""
    reader = _exporter(request, report, fmt)
    try:
        parameters = PARAMETERS[report](request)
        built = catalogue.build(report, fmt, parameters, reader)
    except PeriodInvalid as invalid:
        return HttpResponse(f"{invalid.field}: {invalid}", status=400, content_type="text/plain")
    except catalogue.ExportInvalid as invalid:
        return HttpResponse(str(invalid), status=400, content_type="text/plain")
    spec = catalogue.REPORTS[report]
    rows = spec.rows(built)
    if rows > catalogue.online_limit(fmt):
        job = export_request(
            reader=reader,
            report=report,
            fmt=fmt,
            parameters=parameters,
            description=spec.describe(built),
            rows=rows,
        )
        messages.info(
            request,
            f"{rows:,} rows are more than a {fmt.upper()} built while you wait can hold "
            f"({catalogue.online_limit(fmt):,}): it is being prepared in the background.",
        )
        return redirect("provisions:export-job", pk=job.pk)
    if fmt == "csv":  # streamed a line at a time
        response = StreamingHttpResponse(
            (line.encode("utf-8") for line in catalogue.csv_lines(report, built)),
            content_type=catalogue.CONTENT_TYPES["csv"],
        )
        response["Content-Disposition"] = content_disposition_header(
            True, catalogue.file_name(report, fmt, built)
        )
        response["X-Protective-Marking"] = built.marking.label
        return response
    return _download(
        fmt,
        catalogue.file_name(report, fmt, built),
        built.marking,
        lambda out: catalogue.render(report, fmt, built, out),
    )


@login_required
def export_jobs(request: HttpRequest) -> HttpResponse:
    """The reader's background exports (an administrator's: everyone's), newest first."""
    reader = page_reader(request)
    jobs = visible_exports(reader)[:100]
    return render(request, "provisions/exports.html", {"jobs": jobs, "everyone": can_administer(reader)})


def _job(request: HttpRequest, pk: Any) -> ExportJob:
    """A job the reader may see (someone else's is not found, as if it did not exist)."""
    return get_object_or_404(visible_exports(page_reader(request)), pk=pk)


@login_required
def export_job(request: HttpRequest, pk: Any) -> HttpResponse:
    """One background export: its progress (the page refreshes itself until it is finished, unless
    the reader stops it), then its download link."""
    job = _job(request, pk)
    refreshing = not job.finished and request.GET.get("refresh") != "off"
    return render(request, "provisions/export_job.html", {"job": job, "refreshing": refreshing})


@login_required
def export_download(request: HttpRequest, pk: Any) -> FileResponse:
    job = _job(request, pk)
    if job.state != ExportState.DONE or not job.path.exists():
        raise Http404("this export is not ready, or its time is up")
    response = FileResponse(
        job.path.open("rb"),
        as_attachment=True,
        filename=job.file_name,
        content_type=catalogue.CONTENT_TYPES[job.format],
    )
    response["X-Protective-Marking"] = job.get_marking_display()
    return response
