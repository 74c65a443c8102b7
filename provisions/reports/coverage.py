"""The coverage report: one row per domain, as the overview's chart and the API's `coverage` have it
(capabilities by coverage state, provisions the reader may see by status, the share secured), at
today or at a past date. Written as CSV, JSON, XLSX or PDF by provisions.reports.tables."""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from django.utils import timezone

from provisions.charts import coverage_bars
from provisions.models import CoverageState, Marking, Status
from provisions.permissions import Reader
from provisions.reports.document import Front, as_of_words, front, highest_marking
from provisions.reports.tables import write_csv, write_json, write_pdf, write_xlsx
from provisions.rules import coverage_by_domain, evaluate_gaps

COVERAGE_REPORT_COLUMNS = (
    "domain",
    "name",
    "capabilities",
    *CoverageState.values,
    "coverage_ratio",
    "provisions",
    *(f"provisions_{status}" for status in Status.values),
)


@dataclass(frozen=True)
class CoverageReport:
    as_of: datetime.date
    rows: list[dict[str, Any]]
    # The highest marking among the provisions counted (those the reader may see).
    marking: Marking = Marking.OFFICIAL
    reader: Reader = field(default_factory=Reader.system, compare=False, repr=False)
    domains: list[dict[str, Any]] = field(default_factory=list, compare=False, repr=False)

    def front(self) -> Front:
        """The front matter, with the coverage chart as the overview draws it (the rows are the
        summary's numbers)."""
        return front(
            title="Coverage report",
            reader=self.reader,
            marking=self.marking,
            dates=as_of_words(self.as_of),
            chart=coverage_bars(self.domains),
        )


def coverage_report(*, reader: Reader, as_of: datetime.date | None = None) -> CoverageReport:
    """The rules evaluated at the date (today by default), counted per domain for this reader."""
    as_of = as_of or timezone.localdate()
    evaluation = evaluate_gaps(as_of=as_of)
    domains = coverage_by_domain(evaluation=evaluation, reader=reader)
    counted = (p.marking for p in evaluation.provisions.values() if p.marking in reader.markings)
    rows = [
        {
            "domain": domain["domain"],
            "name": domain["name"],
            "capabilities": domain["capabilities"],
            **domain["capabilities_by_state"],
            "coverage_ratio": domain["coverage_ratio"],
            "provisions": sum(domain["provisions_by_status"].values()),
            **{f"provisions_{status}": count for status, count in domain["provisions_by_status"].items()},
        }
        for domain in domains
    ]
    return CoverageReport(
        as_of=as_of, rows=rows, marking=highest_marking(counted), reader=reader, domains=domains
    )


def render_csv(report: CoverageReport, output: io.TextIOBase | Any) -> None:
    write_csv(COVERAGE_REPORT_COLUMNS, report.rows, output)


def render_json(report: CoverageReport, output: io.TextIOBase | Any) -> None:
    write_json(COVERAGE_REPORT_COLUMNS, report.rows, output)


def render_xlsx(report: CoverageReport, output: BinaryIO) -> None:
    write_xlsx(COVERAGE_REPORT_COLUMNS, report.rows, output, sheet_name="Coverage", front=report.front())


def render_pdf(report: CoverageReport, output: BinaryIO) -> None:
    lines = [
        (
            row,
            [row[state] for state in CoverageState.values],
            [row[f"provisions_{status}"] for status in Status.values],
        )
        for row in report.rows
    ]
    context = {"report": report, "lines": lines, "states": CoverageState.labels, "statuses": Status.labels}
    write_pdf("reports/coverage.html", report.front(), context, output)
