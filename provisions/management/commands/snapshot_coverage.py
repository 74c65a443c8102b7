from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from provisions.management.commands._dates import iso_date
from provisions.models import StatusChange
from provisions.rules import evaluate_gaps
from provisions.services.scans import coverage_snapshot_record


def month_ends(start: datetime.date, end: datetime.date) -> list[datetime.date]:
    """The last day of every month from start's to end's (end itself last)."""
    days = []
    year, month = start.year, start.month
    while True:
        following = datetime.date(year + month // 12, month % 12 + 1, 1)
        last = following - datetime.timedelta(days=1)
        if last >= end:
            break
        days.append(last)
        year, month = following.year, following.month
    return [*days, end]


class Command(BaseCommand):
    help = (
        "Record how many capabilities were secured, partial, in negotiation and uncovered at the end of "
        "each month, from the status history (the overview's coverage-over-time chart)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="start", type=iso_date, help="first month (default: first change)")
        parser.add_argument("--to", dest="end", type=iso_date, help="last day (default: today)")

    def handle(
        self, *args: Any, start: datetime.date | None, end: datetime.date | None, **options: Any
    ) -> None:
        end = end or timezone.localdate()
        first = StatusChange.objects.order_by("changed_on").values_list("changed_on", flat=True).first()
        start = start or first
        if start is None:
            raise CommandError("no status history yet: nothing to snapshot")
        if start > end:
            raise CommandError(f"--from {start} is after --to {end}")
        days = month_ends(start, end)
        for day in days:
            coverage_snapshot_record(as_of=day, counts=evaluate_gaps(as_of=day).states_counted())
        self.stdout.write(f"Recorded {len(days)} coverage snapshot(s), {days[0]} to {days[-1]}")
