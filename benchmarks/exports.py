"""Benchmark of the exports on the data `gap_engine.py --keep` leaves (100,000 provisions).

    SECRET_KEY=x DATABASE_URL=postgres://postgres@127.0.0.1:5432/partnership_benchmark \\
        .venv/bin/python benchmarks/gap_engine.py --keep
    SECRET_KEY=x DATABASE_URL=postgres://postgres@127.0.0.1:5432/partnership_benchmark \\
        CELERY_BROKER_URL=redis://127.0.0.1:6379/15 .venv/bin/python benchmarks/exports.py [--repeat 3]

Cases (the issue's targets in brackets):
(a) the gap report (gap_report: evaluation and rows), once, for what the exports start from;
(b) 100,000 gap rows written as CSV to a file, as a background job writes them [< 5 s, peak memory
    growth < 50 MB over writing 1,000 rows];
(c) the same rows as XLSX (summary sheet and rows sheet) [< 15 s, < 100 MB];
(d) a 5,000-row PDF as a background job on a real Celery worker (a `celery worker` process through
    Redis), from asking for it to its file being ready [< 60 s].

If the partnership has fewer than 100,000 gaps, its rows are repeated (copied, so each counts) up to
100,000: what is measured is the writing. Peak memory is tracemalloc's peak during the write (the
rows themselves exist before it). Not a test: figures.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "partnership.settings")

import django

django.setup()

from dataclasses import replace  # noqa: E402

from django.db import connection  # noqa: E402

from benchmarks.data import celery_worker  # noqa: E402
from provisions.models import ExportJob, Provision, User  # noqa: E402
from provisions.permissions import Reader  # noqa: E402
from provisions.reports import catalogue  # noqa: E402
from provisions.reports.gaps import GapReport, gap_report  # noqa: E402
from provisions.services.exports import export_request  # noqa: E402

ROWS = 100_000


def write(report: GapReport, fmt: str, folder: Path) -> None:
    path = folder / f"bench.{fmt}"
    if fmt in catalogue.BINARY_FORMATS:
        with path.open("wb") as binary:
            catalogue.render("gaps", fmt, report, binary)
    else:
        with path.open("w", encoding="utf-8", newline="") as text:
            catalogue.render("gaps", fmt, report, text)


def measure_write(report: GapReport, fmt: str, folder: Path) -> tuple[float, float]:
    """(seconds, peak MB) of writing the report in the format to a file: the time of a plain run,
    the memory of a second one under tracemalloc (which slows Python several times over)."""
    gc.collect()
    started = time.perf_counter()
    write(report, fmt, folder)
    elapsed = time.perf_counter() - started
    gc.collect()
    tracemalloc.start()
    write(report, fmt, folder)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak / 1e6


def with_rows(report: GapReport, count: int) -> GapReport:
    rows = [dict(report.rows[index % len(report.rows)]) for index in range(count)]
    return replace(report, rows=rows)


def case(label: str, runs: list[tuple[float, float]], target: str) -> None:
    times = [t for t, _ in runs]
    peak = max(m for _, m in runs)
    print(
        f"{label:<46} {statistics.median(times):>8.2f} s (min {min(times):.2f}, max {max(times):.2f})"
        f" {peak:>8.1f} MB   [{target}]"
    )


def pdf_job(report: GapReport, repeat: int) -> None:
    """A background PDF of about 5,000 rows on a real worker: domains added, fewest gaps first."""
    by_domain: dict[str, int] = {}
    for row in report.rows:
        by_domain[row["domain"]] = by_domain.get(row["domain"], 0) + 1
    chosen, total = [], 0
    for code, count in sorted(by_domain.items(), key=lambda item: item[1]):
        if total >= 5000:
            break
        chosen.append(code)
        total += count
    user, _ = User.objects.update_or_create(username="benchmark-exporter", defaults={"clearance": "secret"})
    from django.contrib.auth.models import Group

    user.groups.set([Group.objects.get(name="analyst")])
    environment = {**os.environ, "EXPORT_DIR": tempfile.mkdtemp(prefix="export-bench-")}
    worker = celery_worker(environment)
    try:
        time.sleep(5)  # the worker connects to the broker
        times = []
        for _ in range(repeat):
            ExportJob.objects.filter(user=user).delete()
            started = time.perf_counter()
            job = export_request(
                reader=Reader.of(user),
                report="gaps",
                fmt="pdf",
                parameters={"as_of": None, "domain": chosen, "severity": [], "kind": []},
                description="benchmark",
                rows=total,
            )
            while not ExportJob.objects.get(pk=job.pk).finished:
                time.sleep(0.2)
                if time.perf_counter() - started > 600:
                    sys.exit("the PDF job did not finish in 10 minutes")
            times.append(time.perf_counter() - started)
            job.refresh_from_db()
            if job.state != "done":
                sys.exit(f"the PDF job failed: {job.error}")
        print(
            f"{f'(d) PDF of {job.rows:,} rows, background job':<46} {statistics.median(times):>8.2f} s "
            f"(min {min(times):.2f}, max {max(times):.2f}) {job.size / 1e6:>8.1f} MB file"
            "  [< 60 s, real worker]"
        )
    finally:
        worker.terminate()
        worker.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-pdf", action="store_true", help="no background PDF job (needs Redis)")
    args = parser.parse_args()
    if connection.vendor != "postgresql" or Provision.objects.count() < 1000:
        sys.exit("run gap_engine.py --keep first, against PostgreSQL (see the docstring)")
    started = time.perf_counter()
    report = gap_report(reader=Reader.system())
    print(f"{Provision.objects.count():,} provisions; the gap report: {len(report.rows):,} rows")
    print(f"{'(a) gap_report(), evaluation and rows':<46} {time.perf_counter() - started:>8.2f} s")
    folder = Path(tempfile.mkdtemp(prefix="export-bench-"))
    small, large = with_rows(report, 1_000), with_rows(report, ROWS)
    for fmt, label, target in (
        ("csv", "(b) CSV", "< 5 s, growth < 50 MB"),
        ("xlsx", "(c) XLSX", "< 15 s, < 100 MB"),
    ):
        runs_small = [measure_write(small, fmt, folder) for _ in range(args.repeat)]
        runs_large = [measure_write(large, fmt, folder) for _ in range(args.repeat)]
        case(f"{label} of 1,000 rows", runs_small, "for the growth")
        case(f"{label} of {ROWS:,} rows", runs_large, target)
        growth = max(m for _, m in runs_large) - max(m for _, m in runs_small)
        print(f"{'':<46} peak memory growth over 1,000 rows: {growth:.1f} MB")
    if not args.skip_pdf:
        pdf_job(report, args.repeat)


if __name__ == "__main__":
    main()
