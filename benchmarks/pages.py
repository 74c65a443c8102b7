"""Benchmark of the negotiators' pages and the API's coverage on the data `gap_engine.py --keep`
leaves (100,000 provisions).

    SECRET_KEY=x DATABASE_URL=postgres://postgres@127.0.0.1:5432/partnership_benchmark \\
        .venv/bin/python benchmarks/gap_engine.py --keep
    SECRET_KEY=x DATABASE_URL=postgres://postgres@127.0.0.1:5432/partnership_benchmark \\
        .venv/bin/python benchmarks/pages.py [--repeat 5]

Each page is fetched through Django's test client (no network), signed in as an administrator
cleared to secret (sees everything) and then to official (the pages withhold what is above it);
the median wall time and the query count are printed. The database is vacuumed and analysed
first, as autovacuum keeps a live one. Not a test: figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "partnership.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from provisions.models import Capability, Domain, Provision, User  # noqa: E402

PAGES = [
    "/",
    "/?as_of={past}",
    "/domains/{domain}/",
    "/provisions/{reference}/",
    "/provisions/{reference}/?as_of={past}",
    "/capabilities/{capability}/",
    "/gaps/",
    "/aims/",
    "/changes/",
    "/api/v1/coverage/",
    "/api/v1/coverage/?as_of={past}",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if connection.vendor != "postgresql" or Provision.objects.count() < 1000:
        sys.exit("run gap_engine.py --keep first, against PostgreSQL (see the docstring)")
    # gap_engine.py's scans leave the gap table full of dead rows and stale statistics; a live
    # database has autovacuum. Measure the pages as they would be served, not right after a bulk load.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.SECURE_SSL_REDIRECT = False  # the test client speaks plain HTTP
    # No collectstatic here: plain static URLs (the manifest's lookup is not what is measured).
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    values = {
        "past": "2025-06-30",
        "domain": Domain.objects.order_by("id").values_list("code", flat=True).first(),
        "reference": Provision.objects.order_by("id").values_list("reference", flat=True).first(),
        # The most linked capability: its timeline has the most days to evaluate.
        "capability": Capability.objects.annotate(links=Count("coverage"))
        .order_by("-links", "id")
        .values_list("code", flat=True)
        .first(),
    }
    print(f"{Provision.objects.count():,} provisions; {args.repeat} runs each (median)")
    for clearance in ("secret", "official"):
        user, _ = User.objects.update_or_create(
            username=f"benchmark-reader-{clearance}", defaults={"clearance": clearance}
        )
        user.groups.set([Group.objects.get(name="administrator")])
        client = Client()
        client.force_login(user)
        print(f"\nan administrator cleared to {clearance}")
        print(f"{'page':<44} {'median ms':>10} {'queries':>8}")
        measure(client, values, args.repeat)


def measure(client: Client, values: dict[str, str | None], repeat: int) -> None:
    for template in PAGES:
        path = template.format(**values)
        timings, queries = [], 0
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(path)
                timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                sys.exit(f"{path} answered {response.status_code}")
            queries = len(captured.captured_queries)
        print(f"{path:<44} {statistics.median(timings):>10.1f} {queries:>8}")


if __name__ == "__main__":
    main()
