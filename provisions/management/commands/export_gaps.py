from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisions.management.commands._dates import iso_date
from provisions.permissions import Reader
from provisions.reports import catalogue
from provisions.reports.gaps import GapReportFilters, ReportFilterInvalid, gap_report


class Command(BaseCommand):
    help = (
        "Export the gap report. Without --as-of: today, with each gap's state from the last scan; "
        "with --as-of: a read-only evaluation at that date."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", required=True, choices=["csv", "xlsx", "pdf", "json"])
        parser.add_argument("--output", required=True, help="the file to write")
        parser.add_argument("--as-of", type=iso_date, help="evaluate at this date (YYYY-MM-DD)")
        parser.add_argument("--domain", help="only this domain (its code)")
        parser.add_argument("--severity", help="only this severity (critical, high, medium, low)")
        parser.add_argument("--kind", help="only this kind of gap")

    def handle(
        self,
        *args: Any,
        format: str,
        output: str,
        as_of: datetime.date | None,
        domain: str | None,
        severity: str | None,
        kind: str | None,
        **options: Any,
    ) -> None:
        filters = GapReportFilters.of(domain=domain, severity=severity, kind=kind)
        try:
            report = gap_report(as_of=as_of, filters=filters, reader=Reader.system())
        except ReportFilterInvalid as invalid:
            raise CommandError(str(invalid)) from invalid
        catalogue.write("gaps", format, report, output)
        self.stdout.write(
            f"Wrote {len(report.rows)} gap(s) as of {report.as_of} to {output} ({report.marking.label})"
        )
