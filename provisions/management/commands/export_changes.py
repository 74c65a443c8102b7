from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisions.management.commands._dates import iso_date
from provisions.permissions import Reader
from provisions.reports import catalogue, changes


class Command(BaseCommand):
    help = (
        "Export what changed between two dates (DESIGN.md's changes report columns): the gaps opened, "
        "escalated, eased and resolved; JSON and PDF add the record's events in between. An operator's "
        "command: it reports at full clearance."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="start", required=True, type=iso_date, help="YYYY-MM-DD")
        parser.add_argument("--to", dest="end", required=True, type=iso_date, help="YYYY-MM-DD")
        parser.add_argument("--format", required=True, choices=["csv", "xlsx", "pdf", "json"])
        parser.add_argument("--output", required=True, help="the file to write")

    def handle(
        self, *args: Any, start: datetime.date, end: datetime.date, format: str, output: str, **options: Any
    ) -> None:
        try:
            report = changes.changes_report(start=start, end=end, reader=Reader.system())
        except changes.ChangesPeriodInvalid as invalid:
            raise CommandError(str(invalid)) from invalid
        catalogue.write("changes", format, report, output)
        moved, events = len(report.rows), len(report.events)
        self.stdout.write(
            f"Wrote {moved} gap move(s) and {events} event(s) from {start} to {end} to {output} "
            f"({report.marking.label})"
        )
