"""Reports downloaded from the pages, in exactly the rows, filters and date the page shows."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone

from provisions.models import Marking
from provisions.permissions import (
    Reader,
    can_export,
)
from provisions.reports import aims, changes, coverage
from provisions.reports.gaps import (
    GapReportFilters,
    ReportFilterInvalid,
    gap_report,
    render_csv,
    render_json,
    render_pdf,
    render_xlsx,
)
from provisions.rules import PeriodInvalid, parse_period
from provisions.views.common import page_as_of, page_reader

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
GAP_RENDERERS: dict[str, Callable[..., None]] = {
    "csv": render_csv,
    "json": render_json,
    "xlsx": render_xlsx,
    "pdf": render_pdf,
}
AIMS_RENDERERS: dict[str, Callable[..., None]] = {
    "csv": aims.render_csv,
    "json": aims.render_json,
    "xlsx": aims.render_xlsx,
    "pdf": aims.render_pdf,
}
CHANGES_RENDERERS: dict[str, Callable[..., None]] = {
    "csv": changes.render_csv,
    "json": changes.render_json,
    "xlsx": changes.render_xlsx,
    "pdf": changes.render_pdf,
}
COVERAGE_RENDERERS: dict[str, Callable[..., None]] = {
    "csv": coverage.render_csv,
    "json": coverage.render_json,
    "xlsx": coverage.render_xlsx,
    "pdf": coverage.render_pdf,
}


def _exporter(request: HttpRequest, fmt: str) -> Reader:
    """The reader, if they may export in that format (analysts and above)."""
    reader = page_reader(request)
    if not can_export(reader):
        raise PermissionDenied("analysts and above export reports")
    if fmt not in CONTENT_TYPES:
        raise Http404("unknown format")
    return reader


def _download(fmt: str, filename: str, marking: Marking, write: Callable[[Any], None]) -> FileResponse:
    """A report written by `write` into a buffer of the format's kind, as an attachment that says
    its protective marking in `X-Protective-Marking` (the PDF and XLSX say it on every page too)."""
    binary = fmt in ("xlsx", "pdf")
    buffer: Any = io.BytesIO() if binary else io.StringIO()
    write(buffer)
    data = buffer.getvalue()
    response = FileResponse(
        io.BytesIO(data if binary else data.encode("utf-8")),
        as_attachment=True,
        filename=filename,
        content_type=CONTENT_TYPES[fmt],
    )
    response["X-Protective-Marking"] = marking.label
    return response


@login_required
def gaps_export(request: HttpRequest, fmt: str) -> HttpResponseBase:
    """The gap report of exactly what the gaps page shows (its filters and date)."""
    reader = _exporter(request, fmt)
    as_of, _, travelling = page_as_of(request)
    filters = GapReportFilters.from_query(request.GET)
    try:
        report = gap_report(as_of=as_of if travelling else None, filters=filters, reader=reader)
    except ReportFilterInvalid as invalid:
        return HttpResponse(str(invalid), status=400, content_type="text/plain")
    return _download(
        fmt,
        filters.file_name("gaps", report.as_of, fmt),
        report.marking,
        lambda out: GAP_RENDERERS[fmt](report, out),
    )


@login_required
def coverage_export(request: HttpRequest, fmt: str) -> HttpResponseBase:
    """The coverage report (one row per domain) at the overview's date."""
    reader = _exporter(request, fmt)
    as_of, _, _ = page_as_of(request)
    report = coverage.coverage_report(reader=reader, as_of=as_of)
    return _download(
        fmt,
        f"coverage-{report.as_of:%Y-%m-%d}.{fmt}",
        report.marking,
        lambda out: COVERAGE_RENDERERS[fmt](report, out),
    )


@login_required
def aims_export(request: HttpRequest, fmt: str) -> HttpResponseBase:
    """The aims scorecard at the page's date."""
    reader = _exporter(request, fmt)
    as_of, _, _ = page_as_of(request)
    report = aims.aims_report(as_of=as_of, reader=reader)
    name = f"aims-{report.as_of:%Y-%m-%d}.{fmt}"
    return _download(fmt, name, report.marking, lambda out: AIMS_RENDERERS[fmt](report, out))


@login_required
def changes_export(request: HttpRequest, fmt: str) -> HttpResponseBase:
    """What changed between the page's two dates, as the reader may see it."""
    reader = _exporter(request, fmt)
    try:
        start, end = parse_period(request.GET.get("from"), request.GET.get("to"), today=timezone.localdate())
    except PeriodInvalid as invalid:
        return HttpResponse(f"{invalid.field}: {invalid}", status=400, content_type="text/plain")
    report = changes.changes_report(start=start, end=end, reader=reader)
    name = f"changes-{start:%Y-%m-%d}-{end:%Y-%m-%d}.{fmt}"
    return _download(fmt, name, report.marking, lambda out: CHANGES_RENDERERS[fmt](report, out))
