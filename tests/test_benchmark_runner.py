"""benchmarks/run.py kept honest without timing anything: what it generates keeps the partnership's
invariants, its lower bound reads exactly what the evaluation reads, and the query counts it reports
do not grow with the data (PostgreSQL: the runner uses COPY and psycopg2)."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.utils import timezone

from benchmarks.data import Sizes, check_data, generate, wipe
from benchmarks.run import (
    SCALE_KEYS,
    TABLE_ROWS,
    evaluation_peak_mb,
    fetch_into_sink,
    markdown_table,
    measure,
    measure_scale,
    parse_arguments,
    reads,
)
from provisions.models import Capability, Coverage, Provision, StatusChange
from provisions.rules import evaluate_gaps

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_the_generated_partnership_keeps_the_invariants_at_the_sizes_asked() -> None:
    today = timezone.localdate()
    wipe()
    summary = generate(Sizes(40, 200, 600), today, seed=7)

    check_data(today)  # every provision's status is its latest change's (SystemExit otherwise)
    assert (Provision.objects.count(), Capability.objects.count()) == (200, 40)
    assert StatusChange.objects.count() == summary.changes == 600
    assert Coverage.objects.count() == summary.coverage > 0
    assert not Provision.objects.filter(status_changes__isnull=True).exists()
    for provision in Provision.objects.prefetch_related("status_changes")[:50]:
        days = [change.changed_on for change in provision.status_changes.all()]
        assert days == sorted(days) and days[-1] <= today
    wipe()
    again = generate(Sizes(40, 200, 600), today, seed=7)
    assert (again.coverage, again.positions, again.statuses) == (
        summary.coverage,
        summary.positions,
        summary.statuses,
    )


def test_the_lower_bound_fetches_every_row_of_the_statements_the_evaluation_ran() -> None:
    today = timezone.localdate()
    wipe()
    generate(Sizes(40, 200, 600), today, seed=7)
    for day in (today, today - datetime.timedelta(days=180)):
        evaluation = measure(lambda day=day: evaluate_gaps(as_of=day), repeat=1)
        statements = reads(evaluation.statements)

        assert statements == evaluation.statements  # the evaluation only reads, and all of it is replayed
        expected = 0
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(f"SELECT count(*) FROM ({sql}) AS rows_read")
                expected += cursor.fetchone()[0]
        assert fetch_into_sink(statements) == expected > 200  # every provision, at least, is read
        assert fetch_into_sink(statements, serialise=True) == expected


def test_query_counts_are_the_same_at_two_scales_and_every_figure_is_reported() -> None:
    small = measure_scale(60, repeat=1, seed=7)
    large = measure_scale(300, repeat=1, seed=7)

    assert list(small) == list(large) == list(SCALE_KEYS)
    for key in ("evaluation_queries", "evaluation_past_queries", "api_page_queries", "overview_queries"):
        assert small[key] == large[key], key
    assert small["evaluation_queries"] <= 10
    assert all(isinstance(value, int | float) and value >= 0 for value in large.values())
    assert large["api_page_bound_s"] > 0 and large["evaluation_input_read_s"] > 0


def test_the_evaluation_peak_is_the_evaluating_process_own_not_the_runners() -> None:
    """Linux keeps a process's ru_maxrss across exec: a child reporting it would report the runner's
    peak (3.2 GB at a million provisions was the runner's). Hold 1 GB here: the child's figure is its own."""
    wipe()
    generate(Sizes(40, 200, 600), timezone.localdate(), seed=7)
    held = bytearray(1024 * 1024 * 1024)
    held[::4096] = b"\x01" * len(range(0, len(held), 4096))  # touched, so resident

    peak = evaluation_peak_mb()

    assert 20 < peak < 500
    del held


def test_the_scales_are_read_from_the_command_line() -> None:
    assert parse_arguments(["--scale", "1000,10_000,100000"]).scales == [1000, 10_000, 100_000]
    for wrong in (["--scale", "1k"], ["--scale", "5"], ["--repeat", "0"]):
        with pytest.raises(SystemExit):
            parse_arguments(wrong)


def test_the_readme_table_is_made_from_the_json() -> None:
    row = dict.fromkeys(SCALE_KEYS, 0.5) | {
        "provisions": 1000,
        "evaluation_s": 1.5,
        "evaluation_input_read_s": 0.5,
    }
    table = markdown_table({"scales": [row, row | {"provisions": 10_000}]}).splitlines()

    assert table[0] == "| what | 1,000 provisions | 10,000 provisions |"
    assert len(table) == 2 + len(TABLE_ROWS)
    assert "| full evaluation, today | 1.50 s | 1.50 s |" in table
    assert "| &nbsp;&nbsp;evaluation ÷ input read | 3.0× | 3.0× |" in table
    assert "| rescan after one status move | 500 ms | 500 ms |" in table


def test_the_longest_transaction_is_seen_while_another_session_holds_one_open() -> None:
    import threading
    import time

    from benchmarks.run import LongestTransaction

    def hold_a_transaction() -> None:
        from django.db import connection as own
        from django.db import transaction

        try:
            with transaction.atomic(), own.cursor() as cursor:
                cursor.execute("SELECT 1")
                time.sleep(1.2)
        finally:
            own.close()

    with LongestTransaction() as longest:
        holder = threading.Thread(target=hold_a_transaction)
        holder.start()
        holder.join()
    quiet = LongestTransaction()
    with quiet:
        time.sleep(0.5)

    assert 0.9 < longest.seconds < 5
    assert quiet.seconds < 0.5
