from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisions.management.commands._dates import iso_date
from provisions.permissions import Reader
from provisions.reports import briefing, catalogue
from provisions.reports.changes import ChangesPeriodInvalid


class Command(BaseCommand):
    help = (
        "Write the round briefing pack (PDF): the aims scorecard at --to, what changed since --from, "
        "the critical and high gaps, what lapses or expires in the next 180 days, and the status moves "
        "with their reasons. An operator's command: it reports at full clearance."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="start", required=True, type=iso_date, help="the previous round")
        parser.add_argument("--to", dest="end", required=True, type=iso_date, help="this round")
        parser.add_argument("--output", required=True, help="the PDF to write")

    def handle(
        self, *args: Any, start: datetime.date, end: datetime.date, output: str, **options: Any
    ) -> None:
        try:
            pack = briefing.briefing_pack(start=start, end=end, reader=Reader.system())
        except ChangesPeriodInvalid as invalid:
            raise CommandError(str(invalid)) from invalid
        catalogue.write("briefing", "pdf", pack, output)
        self.stdout.write(f"Wrote the briefing pack from {start} to {end} to {output} ({pack.marking.label})")
