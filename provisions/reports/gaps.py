"""The gap report (DESIGN.md, "Gap report columns"): one definition, several renderings."""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, BinaryIO

from django.http import QueryDict
from django.utils import timezone

from provisions.charts import coverage_bars
from provisions.models import CoverageState, Domain, Gap, GapKind, Level, Marking
from provisions.permissions import Reader
from provisions.redaction import Redaction, finding_rows, row_references
from provisions.reports.document import (
    Front,
    Table,
    as_of_words,
    cross_count,
    domain_labels,
    front,
    marking_of_references,
    vocabulary_labels,
)
from provisions.reports.tables import by_domain, write_csv, write_json, write_pdf, write_xlsx
from provisions.rules import Evaluation, Finding, coverage_by_domain, evaluate_gaps

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
    """Which gaps a report holds: any of these domains, severities and kinds (none given: all)."""

    domains: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, *, domain: str | None = None, severity: str | None = None, kind: str | None = None
    ) -> GapReportFilters:
        """One value each, or none (the commands' options)."""
        return cls(*(((value,) if value else ()) for value in (domain, severity, kind)))

    @classmethod
    def from_query(cls, query: QueryDict) -> GapReportFilters:
        """From a page's, an export's or the API's query: each name may repeat (`?kind=a&kind=b`)."""

        def values(name: str) -> tuple[str, ...]:
            return tuple(dict.fromkeys(value for value in query.getlist(name) if value))

        return cls(values("domain"), values("severity"), values("kind"))

    def check(self) -> None:
        for severity in self.severities:
            if severity not in Level.values:
                raise ReportFilterInvalid(
                    f"severity: expected one of {', '.join(Level.values)}, got {severity!r}"
                )
        for kind in self.kinds:
            if kind not in GapKind.values:
                raise ReportFilterInvalid(f"kind: expected one of {', '.join(GapKind.values)}, got {kind!r}")
        if self.domains:
            known = set(Domain.objects.filter(code__in=self.domains).values_list("code", flat=True))
            for domain in self.domains:
                if domain not in known:
                    raise ReportFilterInvalid(f"domain: unknown domain {domain!r}")

    def admit(self, finding: Finding) -> bool:
        return (
            (not self.domains or finding.domain in self.domains)
            and (not self.severities or finding.severity in self.severities)
            and (not self.kinds or finding.kind in self.kinds)
        )

    def in_words(self) -> str:
        """ "Law enforcement and Migration; critical or high; uncovered" (empty: every gap)."""
        names = dict(Domain.objects.filter(code__in=self.domains).values_list("code", "name"))
        parts = [
            _either([names.get(code, code) for code in self.domains], "and"),
            _either([Level(value).label.lower() for value in self.severities], "or"),
            _either([GapKind(value).label.lower() for value in self.kinds], "or"),
        ]
        return "; ".join(part for part in parts if part)

    def file_name(self, stem: str, as_of: datetime.date, extension: str) -> str:
        """What the file holds, in its name: `gaps-law-enforcement-critical-2020-12-01.csv` (more than
        three domains are counted: `gaps-5-domains-...`, a name must stay a name)."""
        domains = "+".join(self.domains) if len(self.domains) <= 3 else f"{len(self.domains)}-domains"
        parts = [stem, domains, "+".join(self.severities), "+".join(self.kinds)]
        return "-".join(part for part in parts if part) + f"-{as_of:%Y-%m-%d}.{extension}"


def _either(words: list[str], joining: str) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {joining} {words[-1]}" if words else ""


@dataclass(frozen=True)
class GapReport:
    as_of: datetime.date
    read_only: bool
    rows: list[dict[str, Any]]
    # What the document around the rows says (front matter, summary, marking): not the rows.
    reader: Reader = field(default_factory=Reader.system, compare=False, repr=False)
    filters: GapReportFilters = field(default_factory=GapReportFilters, compare=False)
    evaluation: Evaluation | None = field(default=None, compare=False, repr=False)

    @cached_property
    def marking(self) -> Marking:
        """The highest marking among the provisions the rows name (their subjects and coverers)."""
        above_official = {
            provision.reference: provision.marking
            for provision in (self.evaluation.provisions.values() if self.evaluation else ())
            if provision.marking != Marking.OFFICIAL
        }
        return marking_of_references(
            (reference for row in self.rows for reference in row_references(row)), above_official
        )

    def front(self) -> Front:
        """Title, dates, filters, producer, and the summary: counts by severity and domain and
        severity and kind (of these rows), and coverage by domain as the overview draws it."""
        domains = domain_labels()
        summary: list[Table] = [
            cross_count(self.rows, title="Gaps by domain and severity", down="domain", down_labels=domains),
            cross_count(
                self.rows,
                title="Gaps by kind and severity",
                down="kind",
                down_labels=vocabulary_labels("kind", GapKind.values),
            ),
        ]
        chart = None
        if self.evaluation is not None:
            coverage = coverage_by_domain(evaluation=self.evaluation, reader=self.reader)
            summary.insert(0, coverage_table(coverage))  # beside the chart it has the numbers of
            chart = coverage_bars(coverage)
        return front(
            title="Gap report",
            reader=self.reader,
            marking=self.marking,
            dates=as_of_words(self.as_of) + (" (a read-only evaluation)" if self.read_only else ""),
            filters=self.filters.in_words(),
            summary=summary,
            chart=chart,
        )


def coverage_table(coverage: list[dict[str, Any]]) -> Table:
    """Capabilities by coverage state, per domain (provisions.rules.coverage_by_domain's rows)."""
    lines = [
        (
            row["name"],
            *(row["capabilities_by_state"][state] for state in CoverageState.values),
            row["capabilities"],
        )
        for row in coverage
    ]
    totals = [sum(line[index] for line in lines) for index in range(1, len(CoverageState.values) + 2)]
    return Table(
        title="Capabilities by coverage state",
        header=("Domain", *CoverageState.labels, "Capabilities"),
        rows=[*lines, ("Total", *totals)],
    )


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
        reader=reader,
        filters=filters,
        evaluation=evaluation,
    )


def render_csv(report: GapReport, output: io.TextIOBase | Any) -> None:
    write_csv(GAP_REPORT_COLUMNS, report.rows, output)


def render_json(report: GapReport, output: io.TextIOBase | Any) -> None:
    write_json(GAP_REPORT_COLUMNS, report.rows, output)


def render_pdf(report: GapReport, output: BinaryIO) -> None:
    """The document: front matter and summary, then the rows grouped by domain."""
    context = {"report": report, "groups": by_domain(report.rows, domain_labels())}
    write_pdf("reports/gaps.html", report.front(), context, output)


def render_xlsx(report: GapReport, output: BinaryIO) -> None:
    write_xlsx(GAP_REPORT_COLUMNS, report.rows, output, sheet_name="Gaps", front=report.front())
