"""The gap report (DESIGN.md, "Gap report columns"): one definition, several renderings."""

from __future__ import annotations

import datetime
import io
import re
from dataclasses import dataclass
from typing import Any, BinaryIO

from django.utils import timezone

from provisions.models import Domain, Gap, GapKind, Level, Provision
from provisions.permissions import Reader
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


WITHHELD = "[a provision above your clearance]"
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
        for gap in Gap.objects.open().order_by():
            subject = (
                ("capability", gap.capability_id) if gap.capability_id else ("provision", gap.provision_id)
            )
            persisted[(gap.kind, subject[0], subject[1])] = gap  # type: ignore[index]
    rows = [finding_row(finding, persisted.get(finding.identity)) for finding in findings]
    return GapReport(
        as_of=evaluation.as_of,
        read_only=read_only,
        rows=withhold_hidden(rows, reader),
    )


def hidden_references(reader: Reader) -> set[str]:
    """References of the provisions above a reader's clearance."""
    return set(Provision.objects.exclude(marking__in=reader.markings).values_list("reference", flat=True))


def withhold_hidden(rows: list[dict[str, Any]], reader: Reader) -> list[dict[str, Any]]:
    """Rows a reader may see: none about a provision above their clearance, and such provisions
    withheld from capability rows (the rules still count them).
    """
    hidden = hidden_references(reader)
    if not hidden:
        return rows
    shown = []
    for row in rows:
        if row["subject_type"] == "provision" and row["subject_code"] in hidden:
            continue
        covering = (row["covering_provisions"] or "").split(";")
        named = [reference for reference in covering if reference in hidden]
        if named:
            explanation = row["explanation"]
            for reference in named:
                # The provision goes, and its status with it: "the only covering provision, SP-9, is
                # scoping" says no more than that it is not secured (the capability's coverage state).
                name = rf"(?<![\w-]){re.escape(reference)}(?![\w-])"
                explanation = re.sub(
                    rf"{name}, is [a-z ]+(?=[.;])", f"{WITHHELD}, is not secured", explanation
                )
                explanation = re.sub(rf"{name}(?: \([a-z ]+\))?", WITHHELD, explanation)
            kept = ";".join(reference for reference in covering if reference and reference not in hidden)
            row = {**row, "covering_provisions": kept or None, "explanation": explanation}
        shown.append(row)
    return shown


def persisted_gap_row(gap: Gap, *, today: datetime.date) -> dict[str, Any]:
    """A gap as the last scan recorded it, in the report's columns (plus its id and resolution)."""
    subject = gap.capability or gap.provision
    return {
        "id": gap.pk,
        "kind": gap.kind,
        "severity": gap.severity,
        "subject_type": "capability" if gap.capability_id else "provision",
        "subject_code": gap.capability.code
        if gap.capability
        else gap.provision.reference
        if gap.provision
        else "",
        "subject_name": getattr(subject, "name", None) or getattr(subject, "title", ""),
        "domain": subject.domain.code if subject else "",
        "coverage_state": gap.coverage_state or None,
        "lapses_on": gap.lapses_on,
        "days_to_lapse": (gap.lapses_on - today).days if gap.lapses_on else None,
        "covering_provisions": gap.covering_provisions or None,
        "explanation": gap.explanation,
        "opened_at": gap.opened_at,
        "resolved_at": gap.resolved_at,
        "state": gap.state.value,
        "acknowledged_by": gap.acknowledged_by.get_username() if gap.acknowledged_by else None,
        "acknowledgement_note": gap.acknowledgement_note or None,
    }


def finding_row(finding: Finding, gap: Gap | None = None) -> dict[str, Any]:
    """A finding in the report's columns; with the open gap it matches, its opened_at and state."""
    return {
        "kind": finding.kind.value,
        "severity": finding.severity.value,
        "subject_type": finding.subject_type,
        "subject_code": finding.subject_code,
        "subject_name": finding.subject_name,
        "domain": finding.domain,
        "coverage_state": finding.coverage_state.value if finding.coverage_state else None,
        "lapses_on": finding.lapses_on,
        "days_to_lapse": finding.days_to_lapse,
        "covering_provisions": ";".join(finding.covering_provisions) or None,
        "explanation": finding.explanation,
        "opened_at": timezone.localtime(gap.opened_at).replace(microsecond=0) if gap else None,
        "state": gap.state.value if gap else None,
    }


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
