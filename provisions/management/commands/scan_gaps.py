from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from provisions.management.commands._dates import iso_date
from provisions.models import ScanTrigger
from provisions.rules import evaluate_gaps
from provisions.services.scans import gaps_scan


class Command(BaseCommand):
    help = "Scan for gaps: as of today it persists the result; for another date it prints the findings."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", type=iso_date, help="evaluate at this date (YYYY-MM-DD), read-only")

    def handle(self, *args: Any, as_of: datetime.date | None, **options: Any) -> None:
        today = timezone.localdate()
        if as_of is not None and as_of != today:
            findings = evaluate_gaps(as_of=as_of).findings
            self.stdout.write(f"As of {as_of} (read-only, nothing persisted): {len(findings)} gap(s)")
            for finding in findings:
                self.stdout.write(
                    f"{finding.severity.value:<8} {finding.kind.value:<9} {finding.subject_code:<16} "
                    f"{finding.explanation}"
                )
            return
        scan = gaps_scan(trigger=ScanTrigger.COMMAND).scan
        self.stdout.write(
            f"Scan {scan.pk} as of {scan.as_of}: {scan.opened} opened, {scan.updated} updated, "
            f"{scan.resolved} resolved, {scan.unchanged} unchanged, in {scan.duration_ms} ms"
        )
