from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from provisions.models import ScanTrigger
from provisions.services.partnership_file import partnership_import, read_partnership_file
from provisions.services.scans import gaps_scan
from provisions.services.users import user_set_up

SHIPPED_FILE = settings.BASE_DIR / "provisions" / "data" / "uk-eu-security-partnership.yaml"

# Demo logins for a local machine only (the command refuses to run with DEBUG off):
# (username, password, role, clearance, negotiated domains).
DEMO_USERS = (
    ("admin", "admin-demo-2026", "administrator", "secret", ()),
    (
        "negotiator",
        "negotiator-demo-2026",
        "negotiator",
        "official_sensitive",
        ("law-enforcement", "criminal-justice"),
    ),
    ("analyst", "analyst-demo-2026", "analyst", "official_sensitive", ()),
    ("viewer", "viewer-demo-2026", "viewer", "official", ()),
)


class Command(BaseCommand):
    help = "Load the shipped UK–EU partnership, create demo users and scan for gaps (local use only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="run even with DEBUG off")

    def handle(self, *args: Any, force: bool, **options: Any) -> None:
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates users with known passwords: run it with DEBUG=true (or --force)"
            )
        report = partnership_import(data=read_partnership_file(SHIPPED_FILE))
        self.stdout.write(f"Partnership loaded from {SHIPPED_FILE.name}:")
        for line in report.lines():
            self.stdout.write(f"  {line}")
        call_command("snapshot_coverage", stdout=self.stdout)
        scan = gaps_scan(trigger=ScanTrigger.COMMAND).scan
        self.stdout.write(
            f"Gap scan as of {scan.as_of}: {scan.opened + scan.updated + scan.unchanged} open gap(s)"
        )
        self._create_users()

    def _create_users(self) -> None:
        for username, password, role, clearance, domains in DEMO_USERS:
            user_set_up(
                username=username,
                password=password,
                role=role,
                clearance=clearance,
                domains=domains,
                is_staff=True,
            )
        self.stdout.write("\nDemo logins (sign in at http://127.0.0.1:8000/; the admin is at /admin/):")
        for username, password, role, clearance, domains in DEMO_USERS:
            where = f" in {', '.join(domains)}" if domains else ""
            self.stdout.write(f"  {username:<11} {password:<22} {role}{where}, cleared to {clearance}")
