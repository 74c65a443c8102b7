"""The coverage report: one row per domain, as the overview's chart and the API's `coverage` have it
(capabilities by coverage state, provisions the reader may see by status, the share secured), at
today or at a past date. Written as CSV, JSON, XLSX or PDF by provisions.reports.tables."""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass
from typing import Any, BinaryIO

from django.utils import timezone

from provisions.models import CoverageState, Status
from provisions.permissions import Reader
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


def coverage_report(*, reader: Reader, as_of: datetime.date | None = None) -> CoverageReport:
    """The rules evaluated at the date (today by default), counted per domain for this reader."""
    as_of = as_of or timezone.localdate()
    domains = coverage_by_domain(evaluation=evaluate_gaps(as_of=as_of), reader=reader)
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
    return CoverageReport(as_of=as_of, rows=rows)


def render_csv(report: CoverageReport, output: io.TextIOBase | Any) -> None:
    write_csv(COVERAGE_REPORT_COLUMNS, report.rows, output)


def render_json(report: CoverageReport, output: io.TextIOBase | Any) -> None:
    write_json(COVERAGE_REPORT_COLUMNS, report.rows, output)


def render_xlsx(report: CoverageReport, output: BinaryIO) -> None:
    write_xlsx(COVERAGE_REPORT_COLUMNS, report.rows, output, sheet_name="Coverage")


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
    write_pdf("reports/coverage.html", context, output)
