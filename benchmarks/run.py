"""The benchmark runner: the gap engine, the API, the pages and the exports at several sizes, each
beside its lower bound, in one table (and JSON).

Run from the project folder, against PostgreSQL only (the script owns its database, as
benchmarks/gap_engine.py does: DATABASE_URL must name `partnership_benchmark`, dropped and made
afresh):

    SECRET_KEY=x .venv/bin/python benchmarks/run.py --scale 1000,10000,100000 [--json PATH] \\
        [--repeat 3] [--seed 20240601]

`make benchmark` runs it at 1,000 and 10,000 provisions. Each scale has N provisions, N/5
capabilities and 3N status changes, generated with a fixed seed by bulk COPY (benchmarks/data.py,
with the rules v2's dated values), checked against the partnership's invariants, then scanned once
(the pages and the API read what the scans recorded). Every case runs once to warm up, then
`--repeat` times; the table and the JSON give the median (and the table the spread), in seconds.

The lower bounds:
- `evaluation_input_read_s`: the very SELECT statements the evaluation ran (captured), run again by
  a bare psycopg2 cursor that fetches every row into a discarding sink: the time PostgreSQL and the
  driver need to hand over the inputs, with nothing built from them.
- `api_page_bound_s`: the SELECT statements the API page ran (50 provisions with their positions,
  coverage and links), fetched the same way and serialised by orjson: what any Python server must
  spend to answer it.

JSON (`--json PATH`): {"machine": {...}, "scales": [{"provisions", "evaluation_s", ...}]}, the keys
of SCALE_KEYS. Not a test: figures (tests/test_benchmark_runner.py keeps the runner honest).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import json
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:  # run as a script: benchmarks/ is the path, not the project
    sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.data import Sizes, check_data, generate, prepare_database, start_django, wipe  # noqa: E402

SCALE_KEYS = (
    "provisions",
    "generation_s",
    "evaluation_s",
    "evaluation_queries",
    "evaluation_input_read_s",
    "evaluation_past_s",
    "evaluation_past_queries",
    "evaluation_past_input_read_s",
    "first_scan_s",
    "first_scan_longest_transaction_s",
    "rescan_s",
    "api_page_s",
    "api_page_queries",
    "api_page_bound_s",
    "overview_s",
    "overview_queries",
    "overview_past_s",
    "overview_past_kept_s",
    "domain_page_s",
    "csv_export_s",
    "csv_export_peak_mb",
    "xlsx_export_s",
    "xlsx_export_peak_mb",
    "evaluation_peak_mb",
    "peak_rss_mb",
)
API_PAGE = "/api/v1/provisions/?page_size=50"
PAST_DAYS = 180


@dataclass
class Measured:
    """A case's timings (seconds) and the statements its last run sent."""

    seconds: list[float]
    statements: list[str]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def measure(call: Callable[[], Any], repeat: int) -> Measured:
    """One warm-up run, then `repeat` timed ones (the collector on, as in production, but emptied
    first so that no run pays for the one before)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call()
    seconds: list[float] = []
    statements: list[str] = []
    for _ in range(repeat):
        gc.collect()
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - started)
        statements = [query["sql"] for query in captured.captured_queries]
    return Measured(seconds, statements)


def reads(statements: Sequence[str]) -> list[str]:
    """The SELECT statements among those sent (not a transaction's SAVEPOINTs, not a session's writes)."""
    return [sql for sql in statements if sql.lstrip().upper().startswith(("SELECT", "WITH"))]


def fetch_into_sink(statements: Sequence[str], *, serialise: bool = False) -> int:
    """Run the statements on a bare psycopg2 cursor and fetch every row, kept nowhere (or each batch
    serialised by orjson as dicts, as an API answer would be). Returns how many rows were fetched."""
    import orjson
    from django.db import connection

    connection.ensure_connection()
    rows = 0
    with connection.connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
            names = [column.name for column in cursor.description or ()]
            while batch := cursor.fetchmany(10_000):
                rows += len(batch)
                if serialise:
                    orjson.dumps([dict(zip(names, row, strict=True)) for row in batch], default=str)
    return rows


def machine() -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = cursor.fetchone()[0]
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        memory_kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "memory_gb": round(memory_kb / 1024**2, 1),
        "python": platform.python_version(),
        "postgresql": server,
        "platform": platform.platform(),
        "date": datetime.datetime.now(tz=datetime.UTC).isoformat(timespec="seconds"),
    }


def reader_client() -> Any:
    """A test client signed in as an administrator cleared to secret (sees everything). Used inside
    client_settings()."""
    from django.contrib.auth.models import Group
    from django.test import Client

    from provisions.models import User
    from provisions.roles import roles_apply

    roles_apply(verbosity=0)
    user, _ = User.objects.update_or_create(username="benchmark-reader", defaults={"clearance": "secret"})
    user.groups.set([Group.objects.get(name="administrator")])
    client = Client()
    client.force_login(user)
    return client


def client_settings() -> Any:
    """What a test client needs: plain HTTP, its host, static files without a manifest."""
    from django.conf import settings
    from django.test import override_settings

    return override_settings(
        ALLOWED_HOSTS=["testserver"],
        SECURE_SSL_REDIRECT=False,
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    )


def get(client: Any, path: str) -> Callable[[], Any]:
    def call() -> Any:
        response = client.get(path)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}")
        return response

    return call


def afresh(call: Callable[[], Any]) -> Callable[[], Any]:
    """The call with nothing kept from the one before (answers about a past day are kept)."""
    from django.core.cache import cache

    def worked_out() -> Any:
        cache.clear()
        return call()

    return worked_out


class LongestTransaction:
    """The longest any other session's transaction on this database has been open while the block
    ran, sampled every 0.2 s from pg_stat_activity by a thread with a connection of its own."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._done = threading.Event()

    def _sample(self) -> None:
        from django.db import connection  # this thread's own

        try:
            with connection.cursor() as cursor:
                while not self._done.wait(0.2):
                    cursor.execute(
                        "SELECT coalesce(max(extract(epoch FROM now() - xact_start)), 0)"
                        " FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
                    )
                    self.seconds = max(self.seconds, float(cursor.fetchone()[0]))
        finally:
            connection.close()

    def __enter__(self) -> LongestTransaction:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)


def export_case(report: Any, fmt: str, repeat: int) -> tuple[float, float]:
    """(median seconds, peak MB) of writing the gap report in the format (benchmarks/exports.py)."""
    from benchmarks.exports import measure_write

    folder = Path(tempfile.mkdtemp(prefix="benchmark-export-"))
    runs = [measure_write(report, fmt, folder) for _ in range(repeat)]
    return statistics.median(seconds for seconds, _ in runs), max(peak for _, peak in runs)


def rescan_case(repeat: int, seed: int) -> float:
    """Median seconds of the rescan one status move asks for (the move's task send patched out, so
    its scan request waits for gaps_run_requested, which is what is timed)."""
    from provisions.models import Provision, ScanRequest, Status
    from provisions.permissions import Reader
    from provisions.services.scans import gaps_run_requested
    from provisions.services.status import provision_transition

    candidates = list(
        Provision.objects.filter(status=Status.AGREED_IN_PRINCIPLE, coverage__isnull=False)
        .order_by("id")
        .distinct()
        .values_list("id", flat=True)[:1000]
    )
    seconds = []
    for provision_id in random.Random(seed).sample(candidates, min(repeat + 1, len(candidates))):
        ScanRequest.objects.all().delete()
        with mock.patch("provisions.services.scans.task_queue_on_commit"):
            provision_transition(
                provision=Provision.objects.get(pk=provision_id),
                to=Status.AGREED,
                note="benchmark: agreed",
                by=Reader.system(),
                source="benchmark",
            )
        gc.collect()
        started = time.perf_counter()
        gaps_run_requested()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds[1:] or seconds)  # the first one warms up


def pages_measured(client: Any, *, repeat: int, past: datetime.date) -> dict[str, Any]:
    """The API page beside its bound, the overview (today and past) and a domain page."""
    from provisions.models import Domain

    api_page = measure(get(client, API_PAGE), repeat)
    bound = measure(functools.partial(fetch_into_sink, reads(api_page.statements), serialise=True), repeat)
    overview = measure(get(client, "/"), repeat)
    domain = Domain.objects.order_by("id").values_list("code", flat=True).first()
    return {
        "api_page_s": api_page.median,
        "api_page_queries": len(api_page.statements),
        "api_page_bound_s": bound.median,
        "overview_s": overview.median,
        "overview_queries": len(overview.statements),
        "overview_past_s": measure(afresh(get(client, f"/?as_of={past}")), repeat).median,
        "overview_past_kept_s": measure(get(client, f"/?as_of={past}"), repeat).median,
        "domain_page_s": measure(get(client, f"/domains/{domain}/"), repeat).median,
    }


# One full evaluation in a fresh process: its peak resident memory is the evaluation's (and Django's,
# about 70 MB), not what generating the data or the other cases left behind. Read from the process's
# own VmHWM: getrusage's ru_maxrss survives exec on Linux, so it would report the runner's peak.
_EVALUATION_ALONE = """
import sys
sys.path.insert(0, {root!r})
from benchmarks.data import start_django
start_django()
from django.utils import timezone
from provisions.rules import evaluate_gaps
evaluate_gaps(as_of=timezone.localdate())
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""


def evaluation_peak_mb() -> float:
    """Peak resident memory (MB) of a process that starts Django and runs one full evaluation."""
    import subprocess

    from django.db import connection

    database = connection.settings_dict  # the database this process measures (a test's, in tests)
    url = (
        f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST'] or '127.0.0.1'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}"
    )
    done = subprocess.run(  # noqa: S603 (this interpreter, with our own code)
        [sys.executable, "-c", _EVALUATION_ALONE.format(root=str(PROJECT_ROOT))],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DATABASE_URL": url},
    )
    return int(done.stdout.split()[-1]) / 1024


def measure_scale(provisions: int, *, repeat: int, seed: int) -> dict[str, Any]:
    """Generate a partnership of `provisions` provisions and measure every case on it."""
    from django.db import connection
    from django.utils import timezone

    from provisions.models import ScanTrigger
    from provisions.permissions import Reader
    from provisions.reports.gaps import gap_report
    from provisions.rules import evaluate_gaps
    from provisions.services.scans import gaps_scan

    today = timezone.localdate()
    past = today - datetime.timedelta(days=PAST_DAYS)
    wipe()
    summary = generate(Sizes(max(3, provisions // 5), provisions, 3 * provisions), today, seed)
    check_data(today)
    result: dict[str, Any] = {"provisions": provisions, "generation_s": summary.seconds}

    for key, day in (("evaluation", today), ("evaluation_past", past)):
        evaluation = measure(functools.partial(evaluate_gaps, as_of=day), repeat)
        bound = measure(functools.partial(fetch_into_sink, reads(evaluation.statements)), repeat)
        result[f"{key}_s"] = evaluation.median
        result[f"{key}_queries"] = len(evaluation.statements)
        result[f"{key}_input_read_s"] = bound.median

    result["evaluation_peak_mb"] = evaluation_peak_mb()
    started = time.perf_counter()
    with LongestTransaction() as longest:
        gaps_scan(trigger=ScanTrigger.COMMAND)
    result["first_scan_s"] = time.perf_counter() - started
    result["first_scan_longest_transaction_s"] = longest.seconds
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as autovacuum keeps a live database after a bulk load
    result["rescan_s"] = rescan_case(repeat, seed)

    with client_settings():
        result |= pages_measured(reader_client(), repeat=repeat, past=past)

    report = gap_report(reader=Reader.system())
    for fmt in ("csv", "xlsx"):
        result[f"{fmt}_export_s"], result[f"{fmt}_export_peak_mb"] = export_case(report, fmt, repeat)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {key: result[key] for key in SCALE_KEYS}


def _times(row: dict[str, Any], measured: str, bound: str) -> float:
    """How many times its lower bound a case took."""
    return float(row[measured] / row[bound]) if row[bound] else 0.0


# The README's Performance table: (row label, key or (key, bound key) for a ratio, unit).
TABLE_ROWS: tuple[tuple[str, str | tuple[str, str], str], ...] = (
    ("generation (COPY, fixed seed)", "generation_s", "s"),
    ("full evaluation, today", "evaluation_s", "s"),
    ("its input read (the lower bound)", "evaluation_input_read_s", "s"),
    ("evaluation ÷ input read", ("evaluation_s", "evaluation_input_read_s"), "x"),
    ("its queries", "evaluation_queries", ""),
    ("full evaluation, 180 days ago", "evaluation_past_s", "s"),
    ("its input read", "evaluation_past_input_read_s", "s"),
    ("evaluation ÷ input read", ("evaluation_past_s", "evaluation_past_input_read_s"), "x"),
    ("first full scan (opens every gap, an event each)", "first_scan_s", "s"),
    ("its longest transaction (it commits batch by batch)", "first_scan_longest_transaction_s", "s"),
    ("rescan after one status move", "rescan_s", "s"),
    ("API provisions page (50 rows)", "api_page_s", "s"),
    ("its bound (the same rows: psycopg2 + orjson)", "api_page_bound_s", "s"),
    ("page ÷ bound", ("api_page_s", "api_page_bound_s"), "x"),
    ("its queries", "api_page_queries", ""),
    ("overview page, today", "overview_s", "s"),
    ("its queries", "overview_queries", ""),
    ("overview page, 180 days ago (worked out)", "overview_past_s", "s"),
    ("its answer kept (until a write reaches back)", "overview_past_kept_s", "s"),
    ("domain page", "domain_page_s", "s"),
    ("gap report as CSV", "csv_export_s", "s"),
    ("gap report as XLSX", "xlsx_export_s", "s"),
    ("a full evaluation's peak memory (a process of its own)", "evaluation_peak_mb", "MB"),
    ("the runner's peak memory so far", "peak_rss_mb", "MB"),
)
INDENTED = {"its", "evaluation ÷", "page ÷"}


def _cell(row: dict[str, Any], key: str | tuple[str, str], unit: str) -> str:
    if isinstance(key, tuple):
        return f"{_times(row, *key):.1f}×"
    value = row[key]
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:,.0f}{' MB' if unit == 'MB' else ''}"


def print_row(row: dict[str, Any]) -> None:
    """One scale's figures as they come, the table's rows for it."""
    print(f"\n{row['provisions']:,} provisions")
    for label, key, unit in TABLE_ROWS:
        indent = "    " if label.startswith(tuple(INDENTED)) else "  "
        print(f"{indent}{label:<{58 - len(indent)}} {_cell(row, key, unit):>10}")


def markdown_table(report: dict[str, Any]) -> str:
    """The figures of a `--json` file as the README's table (medians)."""
    scales = report["scales"]
    lines = [
        "| what | " + " | ".join(f"{row['provisions']:,} provisions" for row in scales) + " |",
        "|---|" + "---|" * len(scales),
    ]
    for label, key, unit in TABLE_ROWS:
        shown = f"&nbsp;&nbsp;{label}" if label.startswith(tuple(INDENTED)) else label
        lines.append(f"| {shown} | " + " | ".join(_cell(row, key, unit) for row in scales) + " |")
    return "\n".join(lines)


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale",
        default="1000,10000",
        help="provisions at each scale, comma-separated (e.g. 1000,10000,100000,1000000)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each case (after one warm-up)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--table", type=Path, help="print a --json file's figures as the README's table, and stop"
    )
    args = parser.parse_args(argv)
    try:
        args.scales = [int(part.replace("_", "")) for part in args.scale.split(",")]
    except ValueError:
        parser.error(f"--scale takes numbers of provisions separated by commas, not {args.scale!r}")
    if args.repeat < 1 or any(scale < 10 for scale in args.scales):
        parser.error("--repeat must be at least 1 and every scale at least 10 provisions")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_arguments(argv)
    if args.table:
        print(markdown_table(json.loads(args.table.read_text(encoding="utf-8"))))
        return
    prepare_database()
    start_django()
    import logging

    from django.core.management import call_command

    logging.getLogger("provisions").setLevel(logging.WARNING)
    logging.getLogger("axes").setLevel(logging.WARNING)  # a line per signed-in client otherwise
    warnings.filterwarnings("ignore", message="No directory at")  # no collectstatic: not measured
    call_command("migrate", verbosity=0)
    report: dict[str, Any] = {"machine": machine(), "repeat": args.repeat, "seed": args.seed, "scales": []}
    print(f"{report['machine']}\n{args.repeat} timed runs of each case after a warm-up; medians")
    for scale in args.scales:
        row = measure_scale(scale, repeat=args.repeat, seed=args.seed)
        report["scales"].append(row)
        print_row(row)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
