from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisions.services.partnership_file import (
    PartnershipFileInvalid,
    partnership_import,
    read_partnership_file,
)


class Command(BaseCommand):
    help = "Import a partnership file (YAML or JSON): an all-or-nothing upsert by code and reference."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="the partnership file (.yaml, .yml or .json)")
        parser.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")

    def handle(self, *args: Any, path: str, dry_run: bool, **options: Any) -> None:
        try:
            report = partnership_import(data=read_partnership_file(path), dry_run=dry_run)
        except PartnershipFileInvalid as invalid:
            for problem in invalid.problems:
                self.stderr.write(str(problem))
            raise CommandError(
                f"{path}: {len(invalid.problems)} problem(s), nothing was imported"
            ) from invalid
        heading = "Dry run, nothing written. Would import:" if dry_run else "Imported:"
        self.stdout.write(heading)
        for line in report.lines():
            self.stdout.write(f"  {line}")
