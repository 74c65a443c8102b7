"""The gap report (DESIGN.md, "Gap report columns"): one definition, several renderings."""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass
from typing import Any, BinaryIO

from django.utils import timezone

from provisions.models import Domain, Gap, GapKind, Level
from provisions.permissions import Reader
from provisions.redaction import Redaction, finding_rows
from provisions.reports.tables import write_csv, write_json, write_pdf, write_xlsx
from provisions.rules import Finding, evaluate_gaps

GAP_REPORT_COLUMNS = (
    "kind",
    "severity",
    "subject_type",
    "subject_code",
    "subject_name",
    "domain",
    "coverage_state",
    "lapses_on",
    "days_to_lapse",
    "covering_provisions",
    "explanation",
    "opened_at",
    "state",
)


class ReportFilterInvalid(ValueError):
    """A filter value that names nothing (an unknown domain, severity or kind)."""


@dataclass(frozen=True)
class GapReportFilters:
    domain: str | None = None
    severity: str | None = None
    kind: str | None = None

    def check(self) -> None:
        if self.severity is not None and self.severity not in Level.values:
            raise ReportFilterInvalid(
                f"severity: expected one of {', '.join(Level.values)}, got {self.severity!r}"
            )
        if self.kind is not None and self.kind not in GapKind.values:
            raise ReportFilterInvalid(f"kind: expected one of {', '.join(GapKind.values)}, got {self.kind!r}")
        if self.domain is not None and not Domain.objects.filter(code=self.domain).exists():
            raise ReportFilterInvalid(f"domain: unknown domain {self.domain!r}")

    def admit(self, finding: Finding) -> bool:
        return (
            (self.domain is None or finding.domain == self.domain)
            and (self.severity is None or finding.severity == self.severity)
            and (self.kind is None or finding.kind == self.kind)
        )


@dataclass(frozen=True)
class GapReport:
    as_of: datetime.date
    read_only: bool
    rows: list[dict[str, Any]]


# A PDF is a summary: WeasyPrint lays out about 100 rows a second here, so a page request renders at
# most this many (about 10 s); `export_gaps --format pdf` has no limit.
PDF_MAX_ROWS_ONLINE = 1000


def gap_report(
    *, reader: Reader, as_of: datetime.date | None = None, filters: GapReportFilters | None = None
) -> GapReport:
    """The gap report at a date. Without a date: today, with each open gap's opened_at and state
    from the last scan; with a date: a read-only evaluation, where opened_at and state are empty.

    For a user, gaps on provisions above their clearance are left out, and such provisions are
    withheld from the rows and explanations of capability gaps (the rules still count them).
    """
    filters = filters or GapReportFilters()
    filters.check()
    read_only = as_of is not None
    evaluation = evaluate_gaps(as_of=as_of or timezone.localdate())
    findings = [finding for finding in evaluation.findings if filters.admit(finding)]

    persisted: dict[tuple[str, str, int], Gap] = {}
    if not read_only:
        persisted = {gap.identity: gap for gap in Gap.objects.open().order_by()}
    return GapReport(
        as_of=evaluation.as_of,
        read_only=read_only,
        rows=finding_rows(findings, Redaction.for_reader(reader), persisted),
    )


def render_csv(report: GapReport, output: io.TextIOBase | Any) -> None:
    write_csv(GAP_REPORT_COLUMNS, report.rows, output)


def render_json(report: GapReport, output: io.TextIOBase | Any) -> None:
    write_json(GAP_REPORT_COLUMNS, report.rows, output)


def render_pdf(report: GapReport, output: BinaryIO, *, filters: GapReportFilters | None = None) -> None:
    """A printable A4 landscape table; fine for summaries (see PDF_MAX_ROWS_ONLINE)."""
    described = ", ".join(
        f"{name} {value}" for name, value in vars(filters or GapReportFilters()).items() if value is not None
    )
    write_pdf("reports/gaps.html", {"report": report, "filters": described}, output)


def render_xlsx(report: GapReport, output: BinaryIO) -> None:
    write_xlsx(GAP_REPORT_COLUMNS, report.rows, output, sheet_name="Gaps")
