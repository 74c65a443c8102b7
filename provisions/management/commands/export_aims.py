from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from provisions.management.commands._dates import iso_date
from provisions.reports import aims, catalogue


class Command(BaseCommand):
    help = "Export the aims scorecard (DESIGN.md's aims report columns), today or as of a date."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", required=True, choices=["csv", "xlsx", "pdf", "json"])
        parser.add_argument("--output", required=True, help="the file to write")
        parser.add_argument("--as-of", type=iso_date, help="score the aims at this date (YYYY-MM-DD)")

    def handle(
        self, *args: Any, format: str, output: str, as_of: datetime.date | None, **options: Any
    ) -> None:
        report = aims.aims_report(as_of=as_of)
        catalogue.write("aims", format, report, output)
        self.stdout.write(
            f"Wrote {len(report.aims)} aim(s) as of {report.as_of} to {output} ({report.marking.label})"
        )
