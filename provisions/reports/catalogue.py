"""Every report the tracker exports, by name: how to build it for a reader from its parameters (plain
JSON, so a background job can build it again in a worker), how many rows it holds, what it is
called, and its renderings. The export pages, the background jobs, the commands' formats and the
API's briefing all go through here."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, TextIO

from django.http import QueryDict

from provisions.labels import long_date
from provisions.permissions import Reader
from provisions.reports import aims, briefing, changes, coverage, gaps, tables

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
BINARY_FORMATS = frozenset({"xlsx", "pdf"})
TABLE_FORMATS = ("csv", "json", "xlsx", "pdf")


class ExportInvalid(ValueError):
    """A parameter that names nothing or a format the report does not come in (the message says
    which and why)."""


@dataclass(frozen=True)
class Spec:
    title: str
    formats: tuple[str, ...]
    build: Callable[[dict[str, Any], Reader], Any]
    rows: Callable[[Any], int]  # how many rows the report holds (what decides online or background)
    file_stem: Callable[[Any], str]  # the download's name without its extension
    module: Any  # the report's module: its `render_<format>` functions write it
    describe: Callable[[Any], str]  # the report in words, for the exports page
    columns: tuple[str, ...] = ()  # its CSV columns (a report with none has no CSV)


def _date(parameters: dict[str, Any], name: str) -> datetime.date | None:
    raw = parameters.get(name)
    if not raw:
        return None
    try:
        return datetime.date.fromisoformat(raw)
    except (TypeError, ValueError):
        raise ExportInvalid(f"{name}: expected a date as YYYY-MM-DD, got {raw!r}") from None


def _period(parameters: dict[str, Any]) -> dict[str, datetime.date]:
    start, end = _date(parameters, "from"), _date(parameters, "to")
    if start is None or end is None:
        raise ExportInvalid("from and to: both dates are needed")
    if start >= end:
        raise ExportInvalid(f"from: {start} must be before to ({end})")
    return {"start": start, "end": end}


def _gap_filters(parameters: dict[str, Any]) -> gaps.GapReportFilters:
    query = QueryDict(mutable=True)
    for name in ("domain", "severity", "kind"):
        query.setlist(name, list(parameters.get(name) or []))
    return gaps.GapReportFilters.from_query(query)


def _build_gaps(parameters: dict[str, Any], reader: Reader) -> gaps.GapReport:
    try:
        return gaps.gap_report(
            reader=reader, as_of=_date(parameters, "as_of"), filters=_gap_filters(parameters)
        )
    except gaps.ReportFilterInvalid as invalid:
        raise ExportInvalid(str(invalid)) from None


def _describe_gaps(report: gaps.GapReport) -> str:
    filters = report.filters.in_words()
    return f"Gap report as of {long_date(report.as_of)}" + (f"; {filters}" if filters else "")


REPORTS: dict[str, Spec] = {
    "gaps": Spec(
        title="Gap report",
        formats=TABLE_FORMATS,
        build=_build_gaps,
        rows=lambda report: len(report.rows),
        file_stem=lambda report: report.filters.file_name("gaps", report.as_of, "").removesuffix("."),
        module=gaps,
        columns=gaps.GAP_REPORT_COLUMNS,
        describe=_describe_gaps,
    ),
    "coverage": Spec(
        title="Coverage report",
        formats=TABLE_FORMATS,
        build=lambda parameters, reader: coverage.coverage_report(
            reader=reader, as_of=_date(parameters, "as_of")
        ),
        rows=lambda report: len(report.rows),
        file_stem=lambda report: f"coverage-{report.as_of:%Y-%m-%d}",
        module=coverage,
        columns=coverage.COVERAGE_REPORT_COLUMNS,
        describe=lambda report: f"Coverage report as of {long_date(report.as_of)}",
    ),
    "aims": Spec(
        title="Aims scorecard",
        formats=TABLE_FORMATS,
        build=lambda parameters, reader: aims.aims_report(as_of=_date(parameters, "as_of"), reader=reader),
        rows=lambda report: len(report.aims),
        file_stem=lambda report: f"aims-{report.as_of:%Y-%m-%d}",
        module=aims,
        columns=aims.AIMS_REPORT_COLUMNS,
        describe=lambda report: f"Aims scorecard as of {long_date(report.as_of)}",
    ),
    "changes": Spec(
        title="What changed",
        formats=TABLE_FORMATS,
        build=lambda parameters, reader: changes.changes_report(**_period(parameters), reader=reader),
        rows=lambda report: len(report.rows) + len(report.events),
        file_stem=lambda report: f"changes-{report.start:%Y-%m-%d}-{report.end:%Y-%m-%d}",
        module=changes,
        columns=changes.CHANGES_REPORT_COLUMNS,
        describe=lambda report: f"What changed from {long_date(report.start)} to {long_date(report.end)}",
    ),
    "briefing": Spec(
        title="Round briefing pack",
        formats=("pdf",),
        build=lambda parameters, reader: briefing.briefing_pack(**_period(parameters), reader=reader),
        rows=lambda pack: len(pack.gaps.rows) + len(pack.changes.rows) + len(pack.changes.events),
        file_stem=lambda pack: f"briefing-{pack.start:%Y-%m-%d}-{pack.end:%Y-%m-%d}",
        module=briefing,
        describe=lambda pack: f"Round briefing pack from {long_date(pack.start)} to {long_date(pack.end)}",
    ),
}


def spec(name: str, fmt: str) -> Spec:
    """The report of that name, if it comes in that format (ExportInvalid otherwise)."""
    found = REPORTS.get(name)
    if found is None:
        raise ExportInvalid(f"report: expected one of {', '.join(REPORTS)}, got {name!r}")
    if fmt not in found.formats:
        raise ExportInvalid(f"format: {found.title} comes as {', '.join(found.formats)}, not {fmt!r}")
    return found


def build(name: str, fmt: str, parameters: dict[str, Any], reader: Reader) -> Any:
    """The report, built for the reader (ExportInvalid for a parameter that names nothing)."""
    found = spec(name, fmt)
    try:
        return found.build(parameters, reader)
    except changes.ChangesPeriodInvalid as invalid:
        raise ExportInvalid(f"from: {invalid}") from None


def render(name: str, fmt: str, report: Any, output: BinaryIO | TextIO) -> None:
    getattr(spec(name, fmt).module, f"render_{fmt}")(report, output)


def write(name: str, fmt: str, report: Any, target: str | int) -> None:
    """Render the report into a file (a path, or an open descriptor it closes): bytes for XLSX and
    PDF, UTF-8 text with the newlines the CSV writer chose for the others."""
    if fmt in BINARY_FORMATS:
        with open(target, "wb") as binary:
            render(name, fmt, report, binary)
    else:
        with open(target, "w", encoding="utf-8", newline="") as text:
            render(name, fmt, report, text)


def csv_lines(name: str, report: Any) -> Iterator[str]:
    """The report as CSV, a line at a time (an online download streams them)."""
    return tables.csv_lines(spec(name, "csv").columns, report.rows)


def file_name(name: str, fmt: str, report: Any) -> str:
    return f"{spec(name, fmt).file_stem(report)}.{fmt}"


def online_limit(fmt: str) -> int:
    """The most rows a report may hold to be built inside a web request in this format."""
    from django.conf import settings

    return settings.EXPORT_ONLINE_MAX_PDF_ROWS if fmt == "pdf" else settings.EXPORT_ONLINE_MAX_ROWS


class CountedRows(list[Any]):
    """A report's rows that say how far writers have got through them, all passes counted (every
    `every` rows), so a background job can show its progress while a renderer iterates them."""

    def __init__(self, rows: list[Any], progress: Callable[[int], None], every: int = 1000) -> None:
        super().__init__(rows)
        self._progress = progress
        self._every = every
        self._seen = 0

    def __iter__(self) -> Iterator[Any]:
        for row in super().__iter__():
            self._seen += 1
            if self._seen % self._every == 0:
                self._progress(self._seen)
            yield row


def with_progress(report: Any, progress: Callable[[int], None]) -> Any:
    """The report with rows that report their progress (a report without a `rows` list as it is),
    keeping what it has already worked out from them (its marking)."""
    rows = getattr(report, "rows", None)
    if not isinstance(rows, list) or not hasattr(report, "__dataclass_fields__"):
        return report
    try:
        counted = replace(report, rows=CountedRows(rows, progress))
    except TypeError:  # rows is a property (the aims report): no progress within it
        return report
    getattr(report, "marking", None)  # worked out once, from the plain rows
    fields = report.__dataclass_fields__
    for name, value in report.__dict__.items():
        if name not in fields:
            counted.__dict__[name] = value
    return counted
