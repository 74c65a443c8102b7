"""Benchmark of the gap engine (rules.evaluate_gaps and services.scans) on a synthetic partnership.

Run from the project folder, against PostgreSQL only:

    SECRET_KEY=x DATABASE_URL=postgres://postgres@127.0.0.1:5432/partnership_benchmark \\
        .venv/bin/python benchmarks/gap_engine.py [--capabilities 20000] [--provisions 100000] \\
        [--changes 300000] [--repeat 3] [--seed 20240601] [--keep] [--profile]

The script owns its database: DATABASE_URL must name `partnership_benchmark` (it is the default
when DATABASE_URL is unset), and it refuses any other name rather than wipe real data. Each run
drops and creates that database again through the `postgres` maintenance database (so a schema
left by an older branch or an edited migration cannot get in the way), migrates it, and empties
the provisions tables before generating. Without `--keep` the provisions tables are emptied
again at the end; with `--keep` the generated partnership and the gaps the scans opened stay for
inspection (psql, EXPLAIN ANALYZE) until the next run.

Generation (COPY, fixed seed) is not measured. Each case runs `--repeat` times; the table
gives the median, min and max wall time (time.perf_counter) and the number of queries
(CaptureQueriesContext). Targets from the issue: a full evaluation under 2 s in at most
10 queries; a rescan after one change under 100 ms. `--profile` adds cProfile top entries
and the slowest SQL statements of the evaluation and of the rescan.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import functools
import gc
import io
import logging
import os
import pstats
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from unittest import mock

if TYPE_CHECKING:
    pass

PROJECT_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


if str(PROJECT_ROOT) not in sys.path:  # run as a script: benchmarks/ is the path, not the project
    sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.data import (  # noqa: E402
    BENCHMARK_DATABASE,
    DOMAINS,
    Sizes,
    check_data,
    generate,
    prepare_database,
    start_django,
    wipe,
)

# --- measurement ---------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    times_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    target: str = ""

    def add(self, run: Timed[Any], result: str) -> None:
        self.times_ms.append(run.elapsed_ms)
        self.cpu_ms.append(run.cpu_ms)
        self.sql_ms.append(sum(float(query["time"]) for query in run.queries) * 1000)
        self.queries.append(len(run.queries))
        self.results.append(result)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)


@dataclass
class Timed(Generic[T]):
    value: T
    elapsed_ms: float
    cpu_ms: float  # this process only: Python and driver work, not the database server's
    queries: list[dict[str, str]]


def timed(call: Callable[[], T]) -> Timed[T]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    gc.collect()  # every run starts from the same heap; the collector stays on, as in production
    with CaptureQueriesContext(connection) as captured:
        started, cpu_started = time.perf_counter(), time.process_time()
        value = call()
        elapsed_ms = (time.perf_counter() - started) * 1000
        cpu_ms = (time.process_time() - cpu_started) * 1000
    return Timed(value, elapsed_ms, cpu_ms, list(captured.captured_queries))


def outcome_text(outcome: Any) -> str:
    if outcome is None:
        return "no pending request"
    scan = outcome.scan
    return (
        f"evaluated {scan.evaluated_subjects}, opened {scan.opened}, updated {scan.updated}, "
        f"resolved {scan.resolved}, unchanged {scan.unchanged}"
    )


def profile(label: str, call: Callable[[], Any], top: int = 15) -> None:
    """cProfile top entries (cumulative and own time) and the slowest SQL statements of one call."""
    print(f"\n--- profile: {label} ---")
    profiler = cProfile.Profile()
    result = timed(lambda: profiler.runcall(call))
    print(f"wall {result.elapsed_ms:.1f} ms under the profiler, {len(result.queries)} queries")
    sql_seconds = sum(float(query["time"]) for query in result.queries)
    print(f"time in SQL (as the debug cursor measured it): {sql_seconds * 1000:.1f} ms")
    for query in sorted(result.queries, key=lambda query: -float(query["time"]))[:5]:
        print(f"  {float(query['time']) * 1000:8.1f} ms  {query['sql'][:240]}")
    for sort in ("cumulative", "tottime"):
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats(sort).print_stats(top)
        lines = stream.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
        print(f"top {top} by {sort}:")
        print("\n".join(lines[start:]).rstrip())


def run(args: argparse.Namespace) -> None:
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from partnership.celery import app as celery_app
    from provisions.models import Coverage, Gap, Provision, ScanRequest, ScanTrigger, Status
    from provisions.permissions import Reader
    from provisions.rules import evaluate_gaps
    from provisions.services.scans import gaps_run_requested, gaps_scan
    from provisions.services.status import provision_transition

    if connection.vendor != "postgresql":
        raise SystemExit(f"gap_engine benchmark: needs PostgreSQL, the database is {connection.vendor}")
    if connection.settings_dict["NAME"] != BENCHMARK_DATABASE:
        raise SystemExit(f"gap_engine benchmark: refusing to wipe {connection.settings_dict['NAME']!r}")
    if not args.verbose:
        logging.getLogger("provisions").setLevel(logging.WARNING)

    sizes = Sizes(args.capabilities, args.provisions, args.changes)
    today = timezone.localdate()
    call_command("migrate", verbosity=0)
    wipe()
    print(
        f"generating {sizes.capabilities:,} capabilities, {sizes.provisions:,} provisions and "
        f"{sizes.changes:,} status changes (seed {args.seed})..."
    )
    data = generate(sizes, today, args.seed)
    check_data(today)
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        server = cursor.fetchone()[0].split(",")[0]
    statuses = ", ".join(
        f"{status} {data.statuses[status]:,}" for status in Status.values if data.statuses[status]
    )
    print(
        f"generated in {data.seconds:.1f} s\n\n"
        f"Data: 1 partnership, 2 parties, {len(DOMAINS)} domains, {data.capabilities:,} capabilities, "
        f"{data.provisions:,} provisions, {data.coverage:,} coverage links, {data.positions:,} positions "
        f"({data.opposes:,} opposes), {data.changes:,} status changes, "
        f"{data.dated_values:,} dated values, {data.discussions:,} discussions\n"
        f"Statuses now: {statuses}\n"
        f"As of {today}; thresholds SECURED_STATUS={settings.SECURED_STATUS} "
        f"WARNING_DAYS={settings.WARNING_DAYS} URGENT_DAYS={settings.URGENT_DAYS} "
        f"STALL_DAYS={settings.STALL_DAYS}; {server}; "
        f"Python {sys.version.split()[0]}; Celery eager: {celery_app.conf.task_always_eager}\n"
    )

    load_before = os.getloadavg()[0]
    evaluation_case = Case("(a) evaluate_gaps(as_of=today), full", target="< 2000 ms, <= 10 queries")
    for _ in range(args.repeat):
        evaluation = timed(lambda: evaluate_gaps(as_of=today))
        kinds = Counter(finding.kind.value for finding in evaluation.value.findings)
        evaluation_case.add(
            evaluation,
            f"{len(evaluation.value.findings):,} findings ("
            + ", ".join(f"{kind} {count:,}" for kind, count in sorted(kinds.items()))
            + f"), {evaluation.value.evaluated_subjects:,} subjects",
        )
        del evaluation  # the next run must not pay for a heap holding this one's result

    past = today - datetime.timedelta(days=180)
    past_case = Case(
        f"(a2) evaluate_gaps(as_of={past}), full, the record as it stood", target="<= 10 queries"
    )
    for _ in range(args.repeat):
        evaluation = timed(lambda: evaluate_gaps(as_of=past))
        past_case.add(evaluation, f"{len(evaluation.value.findings):,} findings")
        del evaluation

    first_scan = Case("(b1) gaps_scan(COMMAND), empty gap table")
    second_scan = Case("(b2) gaps_scan(COMMAND), nothing changed")
    for _ in range(args.repeat):
        Gap.objects.all().delete()  # not timed: every run of (b1) opens every gap
        scan = timed(lambda: gaps_scan(trigger=ScanTrigger.COMMAND))
        first_scan.add(scan, outcome_text(scan.value))
        del scan
    for _ in range(args.repeat):
        scan = timed(lambda: gaps_scan(trigger=ScanTrigger.COMMAND))
        second_scan.add(scan, outcome_text(scan.value))
        del scan

    # (c) One provision moves agreed_in_principle -> agreed (it becomes secured: coverage changes, its
    # stalled gap goes). The move's task send is patched out so the request it writes stays pending
    # and (c2) times the worker's real work; (c5) then moves it on with the task as configured.
    candidates = list(
        Provision.objects.filter(status=Status.AGREED_IN_PRINCIPLE, coverage__isnull=False)
        .order_by("id")
        .distinct()
        .values_list("id", flat=True)[:1000]
    )
    movers = random.Random(args.seed).sample(candidates, args.repeat)
    transition_case = Case("(c1) provision_transition, task send patched out")
    requested_case = Case("(c2) gaps_run_requested(), the move's request", target="< 100 ms")
    rescan_case = Case("(c3) gaps_scan(CHANGE, provision_ids=[id])", target="< 100 ms")
    wider_case = Case("(c4) gaps_scan(CHANGE, [id], its capabilities)")
    eager = celery_app.conf.task_always_eager
    onward_case = Case(
        "(c5) provision_transition, task as configured",
        target="eager: the task runs the rescan in process" if eager else "task sent to the broker",
    )
    for provision_id in movers:
        provision = Provision.objects.get(pk=provision_id)
        capability_ids = list(
            Coverage.objects.filter(provision_id=provision_id).values_list("capability_id", flat=True)
        )
        ScanRequest.objects.all().delete()
        with mock.patch("provisions.services.scans.task_queue_on_commit"):
            move = timed(
                functools.partial(
                    provision_transition,
                    provision=provision,
                    to=Status.AGREED,
                    note="benchmark: agreed",
                    by=Reader.system(),
                    source="benchmark",
                )
            )
        transition_case.add(move, f"{provision.reference} -> agreed")
        requested = timed(gaps_run_requested)
        requested_case.add(requested, outcome_text(requested.value))
        rescan = timed(
            functools.partial(
                gaps_scan, trigger=ScanTrigger.CHANGE, provision_ids=[provision_id], capability_ids=[]
            )
        )
        rescan_case.add(rescan, outcome_text(rescan.value))
        wider = timed(
            functools.partial(
                gaps_scan,
                trigger=ScanTrigger.CHANGE,
                provision_ids=[provision_id],
                capability_ids=capability_ids,
            )
        )
        wider_case.add(wider, outcome_text(wider.value))
        onward = timed(
            functools.partial(
                provision_transition,
                provision=provision,
                to=Status.SIGNED,
                note="benchmark: signed",
                by=Reader.system(),
                source="benchmark",
            )
        )
        onward_case.add(onward, f"{provision.reference} -> signed")

    cases = [
        evaluation_case,
        past_case,
        first_scan,
        second_scan,
        transition_case,
        requested_case,
        rescan_case,
        wider_case,
        onward_case,
    ]
    print_table(cases, args.repeat, (load_before, os.getloadavg()[0]))

    if args.profile:
        profile("evaluate_gaps(as_of=today), full", lambda: evaluate_gaps(as_of=today))
        profile(
            "gaps_scan(CHANGE, provision_ids=[id], capability_ids=[])",
            lambda: gaps_scan(trigger=ScanTrigger.CHANGE, provision_ids=[movers[0]], capability_ids=[]),
        )
        profile(
            "evaluate_gaps(as_of=today, provision_ids=[id], capability_ids=[])",
            lambda: evaluate_gaps(as_of=today, provision_ids=[movers[0]], capability_ids=[]),
        )

    if args.keep:
        print(f"\n--keep: the generated data and gaps stay in {BENCHMARK_DATABASE}")
    else:
        wipe()


def print_table(cases: list[Case], repeat: int, load: tuple[float, float]) -> None:
    print(
        f"Timings: {repeat} run(s) each. median/min/max: wall time (time.perf_counter); cpu: this process's "
        "CPU time (time.process_time), median; sql: time in the database as the debug cursor saw it, "
        "median; queries: CaptureQueriesContext. "
        f"1-minute load average {load[0]:.2f} before, {load[1]:.2f} after ({os.cpu_count()} CPUs).\n"
    )
    name_width = max(len(case.name) for case in cases)
    header = (
        f"{'case':<{name_width}}  {'median ms':>9}  {'min ms':>8}  {'max ms':>8}  {'cpu ms':>8}  "
        f"{'sql ms':>7}  {'queries':>7}"
    )
    print(header)
    print("-" * len(header))
    for case in cases:
        queries = "/".join(str(count) for count in sorted(set(case.queries)))
        print(
            f"{case.name:<{name_width}}  {case.median_ms:>9.1f}  {min(case.times_ms):>8.1f}  "
            f"{max(case.times_ms):>8.1f}  {statistics.median(case.cpu_ms):>8.1f}  "
            f"{statistics.median(case.sql_ms):>7.1f}  {queries:>7}"
        )
        print(f"{'':<4}{case.results[-1]}" + (f"  [target {case.target}]" if case.target else ""))


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--capabilities", type=int, default=20_000)
    parser.add_argument("--provisions", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=300_000, help="status changes in total")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case (the median is reported)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--keep", action="store_true", help="leave the generated data in the database")
    parser.add_argument("--profile", action="store_true", help="cProfile the evaluation and the rescan")
    parser.add_argument("--verbose", action="store_true", help="keep the scans' INFO logging")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.capabilities < 3 or args.provisions < 1:
        parser.error("--repeat and --provisions must be at least 1, --capabilities at least 3")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_arguments(argv)
    prepare_database()
    start_django()
    run(args)


if __name__ == "__main__":
    main()
