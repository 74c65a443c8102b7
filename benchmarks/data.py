"""The benchmark's data: its own PostgreSQL database, made afresh, and a synthetic partnership
generated deterministically (fixed seed, bulk COPY) at the sizes asked for, with the rules v2's dated
values: a fifth of the capabilities with a moved lapse date, a third of the links counting from or
until a day, about a third of the positions dated (with an earlier one before), expiries set by dated
changes and discussions. The harness that measures what the engine does with it is
benchmarks/gap_engine.py."""

from __future__ import annotations

import bisect
import datetime
import io
import itertools
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from django.db import models

BENCHMARK_DATABASE = "partnership_benchmark"
DEFAULT_DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{BENCHMARK_DATABASE}"
PROJECT_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


# --- the database, before Django starts --------------------------------------------------------------


def prepare_database() -> str:
    """Check DATABASE_URL names the benchmark's PostgreSQL database; drop it and create it afresh."""
    import environ
    import psycopg2  # type: ignore[import-untyped]
    from psycopg2 import sql

    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    url = os.environ["DATABASE_URL"]
    if url.split("://", 1)[0] not in {"postgres", "postgresql", "pgsql"}:
        raise SystemExit(f"gap_engine benchmark: needs PostgreSQL, DATABASE_URL is {url!r}")
    config: dict[str, Any] = environ.Env.db_url_config(url)
    name = config.get("NAME")
    if name != BENCHMARK_DATABASE:
        raise SystemExit(
            f"gap_engine benchmark: refusing to run on database {name!r}: it wipes the provisions tables "
            f"of its database, so DATABASE_URL must name {BENCHMARK_DATABASE!r}, e.g. {DEFAULT_DATABASE_URL}"
        )
    parameters = {
        "dbname": "postgres",
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
    }
    maintenance = psycopg2.connect(**{key: value for key, value in parameters.items() if value is not None})
    try:
        maintenance.autocommit = True
        database = sql.Identifier(BENCHMARK_DATABASE)
        with maintenance.cursor() as cursor:
            try:
                cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(database))
            except psycopg2.errors.ObjectInUse as error:
                raise SystemExit(
                    f"gap_engine benchmark: cannot drop {BENCHMARK_DATABASE}: {error.pgerror.strip()} "
                    "(close the sessions using it)"
                ) from None
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(database))
    finally:
        maintenance.close()
    return url


def start_django() -> None:
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "partnership.settings"
    import django

    django.setup()


def celery_worker(environment: dict[str, str], stderr: Any = None) -> subprocess.Popen[bytes]:
    """A real `celery worker` (solo pool) of this project, for the harnesses that need one."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "partnership", "worker", "--pool", "solo", "-l", "WARNING"],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


# --- generation ----------------------------------------------------------------------------------------

DOMAINS = [
    ("law-enforcement-data", "Law enforcement data exchange"),
    ("extradition", "Extradition and surrender"),
    ("mutual-legal-assistance", "Mutual legal assistance"),
    ("criminal-records", "Criminal records"),
    ("passenger-data", "Passenger name records"),
    ("dna-fingerprints", "DNA, fingerprints and vehicle registration"),
    ("europol", "Cooperation with Europol"),
    ("eurojust", "Cooperation with Eurojust"),
    ("asset-recovery", "Asset freezing and confiscation"),
    ("cyber", "Cyber security"),
    ("counter-terrorism", "Counter-terrorism"),
    ("civil-protection", "Civil protection and crisis response"),
]
CRITICALITY_WEIGHTS = {"critical": 10, "high": 25, "medium": 40, "low": 25}
# Final ladder rank of a provision (identified 0 ... in_force 7): about 30% agreed or beyond.
FINAL_RANK_WEIGHTS = [10, 12, 15, 20, 13, 12, 8, 10]
STANCE_WEIGHTS = {"proposes": 20, "supports": 40, "conditional": 15, "reserved": 21, "opposes": 4}
MAX_CHANGES = 8  # a climb of the ladder has at most 8 steps; suspended or withdrawn replaces the last
COPY_NULL = "\\N"


@dataclass(frozen=True)
class Sizes:
    capabilities: int
    provisions: int
    changes: int


@dataclass
class DataSummary:
    capabilities: int = 0
    provisions: int = 0
    coverage: int = 0
    positions: int = 0
    opposes: int = 0
    changes: int = 0
    dated_values: int = 0  # base rows and dated changes of capabilities and provisions
    discussions: int = 0
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)


def _copy_value(value: object) -> str:
    if value is None:
        return COPY_NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime.date):  # dates and datetimes
        return value.isoformat()
    if isinstance(value, dict | list):
        value = json.dumps(value)
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_rows(model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """COPY rows (values in the order of `fields`, ids included) into the model's table.

    Columns not named get the field's default (or NULL where the field allows it), so a column
    added to the model later does not break generation; a required column without one is an error.
    """
    from django.db import connection, models
    from django.utils import timezone

    columns = []
    for name in fields:
        model_field = model._meta.get_field(name)
        if not isinstance(model_field, models.Field) or model_field.column is None:
            raise TypeError(f"{model.__name__}.{name} is not a concrete field")
        columns.append(connection.ops.quote_name(model_field.column))
    constants: list[str] = []
    named = {model._meta.get_field(name).name for name in fields}
    for other in model._meta.concrete_fields:
        if other.name in named or other.column is None:
            continue
        if other.has_default():
            value: object = other.get_default()
        elif getattr(other, "auto_now", False) or getattr(other, "auto_now_add", False):
            value = timezone.now()
        elif other.null:
            continue
        else:
            raise TypeError(f"{model.__name__}.{other.name} is required and has no default: name it")
        columns.append(connection.ops.quote_name(other.column))
        constants.append(_copy_value(value))
    suffix = "".join(f"\t{constant}" for constant in constants)
    buffer = io.StringIO()
    count = 0
    for row in rows:
        buffer.write("\t".join(_copy_value(value) for value in row))
        buffer.write(suffix)
        buffer.write("\n")
        count += 1
    buffer.seek(0)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)
    return count


def provisions_tables() -> list[str]:
    from django.apps import apps

    app = apps.get_app_config("provisions")
    return [model._meta.db_table for model in app.get_models(include_auto_created=True)]


def wipe() -> None:
    """Empty every table of the provisions app (gaps, scans and requests included)."""
    from django.db import connection

    tables = ", ".join(connection.ops.quote_name(table) for table in provisions_tables())
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


def _status_history(
    rng: random.Random, count: int, last_on: datetime.date
) -> list[tuple[str, str, datetime.date, str]]:
    """A valid lifecycle: (from_status, to_status, changed_on, note), oldest first, climbing the ladder."""
    from provisions.models import Status

    ladder = Status.values[:8]
    off_ladder = None
    roll = rng.random()
    if count >= 2 and roll < 0.03:
        off_ladder = Status.SUSPENDED.value
    elif count >= 2 and roll < 0.05:
        off_ladder = Status.WITHDRAWN.value
    climb = count - (1 if off_ladder else 0)
    top = max(rng.choices(range(8), weights=FINAL_RANK_WEIGHTS)[0], climb - 1)
    ranks = [*sorted(rng.sample(range(top), climb - 1)), top]
    statuses = [ladder[rank] for rank in ranks]
    if off_ladder and statuses[-1] == Status.IN_FORCE:
        off_ladder = Status.SUSPENDED.value  # in force can only be suspended
    if off_ladder:
        statuses.append(off_ladder)
    dates = [last_on]
    for _ in range(count - 1):
        dates.append(dates[-1] - datetime.timedelta(days=rng.randint(3, 120)))
    dates.reverse()
    history = []
    previous = ""
    for status, changed_on in zip(statuses, dates, strict=True):
        note = f"moved to {status} (benchmark)" if status in (Status.SUSPENDED, Status.WITHDRAWN) else ""
        refusal = Status.move_refusal(previous or None, status, note)
        if refusal is not None:
            raise RuntimeError(f"generated an invalid move: {refusal}")
        history.append((previous, status, changed_on, note))
        previous = status
    return history


def generate(sizes: Sizes, today: datetime.date, seed: int) -> DataSummary:
    """A partnership of the given sizes, with a fixed seed; written with COPY in one transaction."""
    from django.core.management.color import no_style
    from django.db import connection, transaction

    from provisions.models import (
        Capability,
        CapabilityChange,
        Coverage,
        Discussion,
        Domain,
        Extent,
        Firmness,
        Marking,
        Partnership,
        Party,
        Position,
        Provision,
        ProvisionChange,
        StatusChange,
    )

    if not sizes.provisions <= sizes.changes <= MAX_CHANGES * sizes.provisions:
        raise SystemExit(f"--changes must be between --provisions and {MAX_CHANGES} x --provisions")
    started = time.perf_counter()
    rng = random.Random(seed)
    summary = DataSummary()
    now = datetime.datetime.now(tz=datetime.UTC)

    def moment(day: datetime.date) -> datetime.datetime:
        return datetime.datetime.combine(day, datetime.time(10, 0), tzinfo=datetime.UTC)

    with transaction.atomic():
        partnership = Partnership.objects.create(code="uk-eu-security", title="UK-EU security partnership")
        parties = Party.objects.bulk_create(
            [
                Party(partnership=partnership, code="UK", name="United Kingdom"),
                Party(partnership=partnership, code="EU", name="European Union"),
            ]
        )
        domains = Domain.objects.bulk_create(
            [Domain(partnership=partnership, code=code, name=name) for code, name in DOMAINS]
        )
        domain_ids = [domain.pk for domain in domains]
        party_ids = [party.pk for party in parties]

        # Capabilities: mixed criticality, lapse dates today ± 2 years (10% none), 30% with a fallback.
        capability_domain: dict[int, int] = {}
        capability_rows: list[tuple[object, ...]] = []
        capability_change_rows: list[tuple[object, ...]] = []
        levels, level_weights = list(CRITICALITY_WEIGHTS), list(CRITICALITY_WEIGHTS.values())
        for pk in range(1, sizes.capabilities + 1):
            domain_id = rng.choice(domain_ids)
            capability_domain[pk] = domain_id
            lapses_on = (
                None if rng.random() < 0.10 else today + datetime.timedelta(days=rng.randint(-730, 730))
            )
            fallback = (
                f"Council of Europe Convention No. {rng.randint(1, 220)}" if rng.random() < 0.30 else ""
            )
            if rng.random() < 0.20:  # a dated history (rules v2): the lapse date moved on a past day
                earlier = today + datetime.timedelta(days=rng.randint(-900, 300))
                moved_on = today - datetime.timedelta(days=rng.randint(1, 600))
                for at, value, note in ((None, earlier, ""), (moved_on, lapses_on, "moved")):
                    change_pk = len(capability_change_rows) + 1
                    capability_change_rows.append((change_pk, pk, at, True, value, "", False, "", note, now))
            capability_rows.append(
                (
                    pk,
                    f"CAP-{pk:05d}",
                    f"Capability {pk}",
                    domain_id,
                    rng.choices(levels, weights=level_weights)[0],
                    lapses_on,
                    fallback,
                    "",
                )
            )
        summary.capabilities = copy_rows(
            Capability,
            ["id", "code", "name", "domain", "criticality", "lapses_on", "fallback", "description"],
            capability_rows,
        )
        summary.dated_values = copy_rows(
            CapabilityChange,
            [
                "id",
                "capability",
                "at",
                "sets_lapses_on",
                "lapses_on",
                "criticality",
                "sets_fallback",
                "fallback",
                "note",
                "recorded_at",
            ],
            capability_change_rows,
        )

        # Coverage targets: 8% of capabilities are never covered; the rest with skewed popularity.
        pool = list(range(1, sizes.capabilities + 1))
        rng.shuffle(pool)
        pool = pool[: max(1, round(len(pool) * 0.92))]
        cumulative = list(itertools.accumulate(rng.lognormvariate(0, 1.0) for _ in pool))

        def pick_capabilities(count: int) -> list[int]:
            chosen: list[int] = []
            while len(chosen) < min(count, len(pool)):
                pk = pool[bisect.bisect(cumulative, rng.random() * cumulative[-1])]
                if pk not in chosen:
                    chosen.append(pk)
            return chosen

        # Status changes per provision: one each, the rest spread at random (at most MAX_CHANGES).
        counts = [1] * sizes.provisions
        extra = sizes.changes - sizes.provisions
        while extra:
            index = rng.randrange(sizes.provisions)
            if counts[index] < MAX_CHANGES:
                counts[index] += 1
                extra -= 1

        provision_rows, coverage_rows, change_rows = [], [], []
        position_rows: list[tuple[object, ...]] = []
        provision_change_rows: list[tuple[object, ...]] = []
        discussion_rows: list[tuple[object, ...]] = []
        stances, stance_weights = list(STANCE_WEIGHTS), list(STANCE_WEIGHTS.values())
        change_id = coverage_id = position_id = 0
        for pk, count in enumerate(counts, start=1):
            covered = pick_capabilities(rng.choices([1, 2, 3], weights=[50, 35, 15])[0])
            last_on = today - datetime.timedelta(days=min(int(rng.expovariate(1 / 90)) + 1, 1000))
            history = _status_history(rng, count, last_on)
            status = history[-1][1]
            summary.statuses[status] += 1
            target = today + datetime.timedelta(days=rng.randint(-200, 500)) if rng.random() < 0.5 else None
            first_on = history[0][2]
            expires_on = None
            if rng.random() < 0.05:  # an expiry set by a dated change (an adequacy decision's end)
                expires_on = today + datetime.timedelta(days=rng.randint(-100, 400))
                set_on = first_on + datetime.timedelta(days=rng.randint(0, max(0, (today - first_on).days)))
                for at, sets, value in ((None, False, None), (set_on, True, expires_on)):
                    row_pk = len(provision_change_rows) + 1
                    provision_change_rows.append(
                        (row_pk, pk, at, f"Provision {pk}", False, "", sets, value, "", now)
                    )
            for _ in range(rng.choice([0, 0, 0, 0, 1, 2, 3]) if rng.random() < 0.35 else 0):
                on = first_on + datetime.timedelta(days=rng.randint(0, max(0, (today - first_on).days)))
                discussion_rows.append(
                    (len(discussion_rows) + 1, pk, on, "Discussed in a round, no move", now)
                )
            provision_rows.append(
                (
                    pk,
                    f"SP-{pk:06d}",
                    f"Provision {pk}",
                    "",
                    capability_domain[covered[0]],
                    status,
                    target,
                    None,
                    expires_on,
                    Marking.OFFICIAL.value,
                    count,
                    moment(history[0][2]),
                    moment(history[-1][2]),
                )
            )
            for capability_id in covered:
                coverage_id += 1
                extent = Extent.FULL.value if rng.random() < 0.75 else Extent.PARTIAL.value
                valid_from = valid_until = None
                if rng.random() < 0.33:  # a link that counts only from or until a day (rules v2)
                    day = today + datetime.timedelta(days=rng.randint(-400, 200))
                    valid_from, valid_until = (day, None) if rng.random() < 0.6 else (None, day)
                coverage_rows.append((coverage_id, pk, capability_id, extent, valid_from, valid_until))
            for party_id in party_ids:
                if rng.random() < 0.95:
                    position_id += 1
                    stance = rng.choices(stances, weights=stance_weights)[0]
                    summary.opposes += stance == "opposes"
                    firmness = Firmness.DEFINITIVE.value if rng.random() < 0.3 else Firmness.PROVISIONAL.value
                    taken_on: datetime.date | None = None
                    if rng.random() < 0.30:  # a dated history: an earlier position, then this one
                        taken_on = first_on + datetime.timedelta(
                            days=rng.randint(0, max(0, (today - first_on).days))
                        )
                        earlier_stance = rng.choices(stances, weights=stance_weights)[0]
                        provisional = Firmness.PROVISIONAL.value
                        position_rows.append(
                            (position_id, pk, party_id, earlier_stance, provisional, "", None, now)
                        )
                        position_id += 1
                    position_rows.append((position_id, pk, party_id, stance, firmness, "", taken_on, now))
            for from_status, to_status, changed_on, note in history:
                change_id += 1
                change_rows.append(
                    (
                        change_id,
                        pk,
                        from_status,
                        to_status,
                        changed_on,
                        moment(changed_on),
                        None,
                        note,
                        "import",
                    )
                )
        summary.provisions = copy_rows(
            Provision,
            [
                "id",
                "reference",
                "title",
                "text",
                "domain",
                "status",
                "target_date",
                "review_date",
                "expires_on",
                "marking",
                "version",
                "created_at",
                "updated_at",
            ],
            provision_rows,
        )
        summary.coverage = copy_rows(
            Coverage, ["id", "provision", "capability", "extent", "valid_from", "valid_until"], coverage_rows
        )
        summary.positions = copy_rows(
            Position,
            ["id", "provision", "party", "stance", "firmness", "note", "taken_on", "updated_at"],
            position_rows,
        )
        summary.dated_values += copy_rows(
            ProvisionChange,
            [
                "id",
                "provision",
                "at",
                "title",
                "sets_text",
                "text",
                "sets_expires_on",
                "expires_on",
                "note",
                "recorded_at",
            ],
            provision_change_rows,
        )
        summary.discussions = copy_rows(
            Discussion, ["id", "provision", "on", "note", "recorded_at"], discussion_rows
        )
        summary.changes = copy_rows(
            StatusChange,
            [
                "id",
                "provision",
                "from_status",
                "to_status",
                "changed_on",
                "recorded_at",
                "changed_by",
                "note",
                "source",
            ],
            change_rows,
        )
        with connection.cursor() as cursor:
            for statement in connection.ops.sequence_reset_sql(
                no_style(),
                [
                    Capability,
                    CapabilityChange,
                    Provision,
                    ProvisionChange,
                    Coverage,
                    Position,
                    StatusChange,
                    Discussion,
                ],
            ):
                cursor.execute(statement)
    # Planner statistics and the visibility map, as a database in steady state has them.
    with connection.cursor() as cursor:
        for table in provisions_tables():
            cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(table)}")
    summary.seconds = time.perf_counter() - started
    return summary


def check_data(today: datetime.date) -> None:
    """Each provision's status is the to_status of its latest change (the invariant the rules rely on)."""
    from provisions.models import Provision
    from provisions.rules import provisions_at

    at_today = provisions_at(today)
    stored = dict(Provision.objects.order_by().values_list("id", "status"))
    mismatched = [pk for pk, status in stored.items() if at_today[pk].status != status]
    if len(at_today) != len(stored) or mismatched:
        raise SystemExit(
            f"generated data is inconsistent: {len(mismatched)} provisions differ from their history"
        )
