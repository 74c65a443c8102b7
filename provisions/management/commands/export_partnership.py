from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisions.models import Partnership
from provisions.services.partnership_file import partnership_export, write_partnership_file


class Command(BaseCommand):
    help = "Export the partnership to a file (YAML, or JSON if PATH ends in .json) that import reads back."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="where to write (.yaml, .yml or .json)")
        parser.add_argument("--partnership", help="the partnership's code, when there are several")

    def handle(self, *args: Any, path: str, partnership: str | None, **options: Any) -> None:
        partnerships = Partnership.objects.all()
        if partnership:
            partnerships = partnerships.filter(code=partnership)
        found = list(partnerships[:2])
        if not found:
            raise CommandError(
                f"no partnership {partnership!r}" if partnership else "no partnership to export"
            )
        if len(found) > 1:
            codes = ", ".join(Partnership.objects.values_list("code", flat=True))
            raise CommandError(f"several partnerships ({codes}): choose one with --partnership")
        write_partnership_file(partnership_export(partnership=found[0]), path)
        self.stdout.write(f"Exported {found[0].code} to {path}")
