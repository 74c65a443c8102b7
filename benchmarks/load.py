"""Load test: the tracker under many users at once, served as in production (gunicorn, a Celery
worker through Redis, PostgreSQL), driven by locust on the same machine.

    SECRET_KEY=x CELERY_BROKER_URL=redis://127.0.0.1:6379/14 \\
        .venv/bin/python benchmarks/load.py [--provisions 100000] [--reuse] [--users 50] \\
        [--seconds 60] [--warm-up 10] [--workers 3] [--cache-url redis://...] [--json PATH]

Like benchmarks/run.py it owns the `partnership_benchmark` database (DATABASE_URL must name it):
without `--reuse` it makes it afresh with `--provisions` provisions (benchmarks/data.py) and scans
it once; with `--reuse` it takes what the last run left (run.py leaves its largest scale). The web
processes share one Redis cache (`--cache-url`, emptied first), as docker-compose's do.

Two phases, one after the other:
1. Paused users: `--users` users (negotiators cleared to secret, each with an API token and a
   signed-in browser session), each pausing 1 to 3 s between requests for `--seconds`: API
   provision pages, filtered gap lists, the overview today and as of a past date, a domain page, and
   status moves (each a GET of the provision for its version, then the POST with If-Match).
   Targets on a 2-core machine with the load generator on it: no errors, p99 under 500 ms for reads
   and under 1 s for writes.
2. Saturation: `--users` connections with no pause, `--seconds` / 2 each on the 50-row provisions
   page and on the 50-row gap list. Target: at least 100 requests per second.
Each phase first runs `--warm-up` seconds that are not counted (the users all start at once: their
first requests meet new connections and empty caches).

It prints requests per second, p50, p95, p99 and errors for each, and writes them as JSON with
`--json`. Not a test: figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.data import celery_worker  # noqa: E402

PAST = datetime.datetime.now(tz=datetime.UTC).date() - datetime.timedelta(days=180)


# --- preparation (a separate process: Django there, gevent patches this one) ---------------------------


def prepare(provisions: int, reuse: bool, users: int, seed: int, fixture: Path) -> None:
    """The data (unless reused), and for each simulated user an API token, a session and provisions
    of their own to move; written to `fixture` as JSON."""
    import logging

    from benchmarks.data import Sizes, check_data, generate, prepare_database, start_django, wipe

    logging.getLogger("axes").setLevel(logging.WARNING)  # a line per session made otherwise
    if not reuse:
        prepare_database()
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/partnership_benchmark")
    start_django()
    from django.conf import settings
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client, override_settings
    from django.utils import timezone

    from provisions.models import Domain, Provision, ScanTrigger, Status, User
    from provisions.permissions import Reader
    from provisions.roles import roles_apply
    from provisions.services.scans import gaps_scan
    from provisions.services.tokens import api_token_create

    if connection.settings_dict["NAME"] != "partnership_benchmark":
        raise SystemExit("load test: DATABASE_URL must name partnership_benchmark (the test wipes it)")
    call_command("migrate", verbosity=0)
    roles_apply(verbosity=0)
    if not reuse:
        wipe()
        roles_apply(verbosity=0)
        today = timezone.localdate()
        generate(Sizes(max(3, provisions // 5), provisions, 3 * provisions), today, seed)
        check_data(today)
        gaps_scan(trigger=ScanTrigger.COMMAND)
    if Provision.objects.count() < 1000:
        raise SystemExit("load test: fewer than 1,000 provisions: run without --reuse, or run.py first")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    domains = list(Domain.objects.order_by("code"))
    movable = list(
        Provision.objects.filter(status=Status.PROPOSED)
        .order_by("?")
        .values_list("reference", flat=True)[: users * 100]
    )
    negotiator = Group.objects.get(name="negotiator")
    simulated = []
    with override_settings(ALLOWED_HOSTS=["testserver"], SECURE_SSL_REDIRECT=False):
        for index in range(users):
            user, _ = User.objects.update_or_create(
                username=f"load-negotiator-{index}", defaults={"clearance": "secret"}
            )
            user.groups.set([negotiator])
            user.domains.set(domains)
            user.api_tokens.all().delete()
            _, key = api_token_create(owner=user, by=Reader.system(), name="load test")
            client = Client()
            client.force_login(user)
            simulated.append(
                {
                    "token": key,
                    "session": client.cookies[settings.SESSION_COOKIE_NAME].value,
                    "to_move": movable[index::users],
                }
            )
    fixture.write_text(
        json.dumps(
            {
                "users": simulated,
                "domains": [domain.code for domain in domains],
                "provisions": Provision.objects.count(),
                "session_cookie": settings.SESSION_COOKIE_NAME,
            }
        ),
        encoding="utf-8",
    )


# --- the servers --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_servers(
    workers: int, log_folder: Path, cache_url: str
) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """collectstatic, a Celery worker and gunicorn on a free port, sharing one Redis cache emptied
    first (docker-compose's CACHE_URL); the base URL and the processes."""
    subprocess.run(["redis-cli", "-u", cache_url, "FLUSHDB"], check=True, capture_output=True)  # noqa: S603,S607
    environment = {
        **os.environ,
        "ALLOWED_HOSTS": "127.0.0.1",
        "ALLOW_PLAIN_HTTP": "true",
        "LOG_LEVEL": "WARNING",
        "CACHE_URL": cache_url,
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=PROJECT_ROOT,
        env=environment,
        check=True,
    )
    port = free_port()
    processes = [
        celery_worker(environment, (log_folder / "worker.log").open("wb")),
        subprocess.Popen(  # noqa: S603 (gunicorn, with our own arguments)
            [
                sys.executable,
                "-m",
                "gunicorn",
                "partnership.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
            ],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=(log_folder / "gunicorn.log").open("wb"),
        ),
    ]
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/readyz", timeout=10)  # noqa: S310 (our own server)
            return base, processes
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"gunicorn did not come up: see {log_folder}")


# --- the users ----------------------------------------------------------------------------------------------

NEXT_STATUS = {"proposed": "under_negotiation"}


def run_locust(
    base: str, fixture: dict[str, Any], users: int, seconds: float, kind: str, warm_up: float
) -> dict[str, Any]:
    """One phase: `kind` is "paused" (the mix, 1 to 3 s apart) or a path hammered with no pause;
    counted for `seconds` after `warm_up` seconds that are not."""
    import gevent
    from locust import FastHttpUser, between, constant, task
    from locust.env import Environment
    from locust.stats import StatsEntry

    accounts = iter(fixture["users"])
    domains = fixture["domains"]

    class Simulated(FastHttpUser):  # geventhttpclient: the load generator's share of the CPU is smaller
        host = base
        wait_time = between(1, 3) if kind == "paused" else constant(0)

        def on_start(self) -> None:
            account = next(accounts)
            self.headers = {"Authorization": f"Bearer {account['token']}"}
            self.browser = {"Cookie": f"{fixture['session_cookie']}={account['session']}"}
            self.to_move = list(account["to_move"])

        def read(self, path: str, name: str, *, api: bool = True) -> None:
            self.client.get(path, headers=self.headers if api else self.browser, name=f"read: {name}")

        if kind == "paused":

            @task(3)
            def provisions_page(self) -> None:
                self.read(
                    f"/api/v1/provisions/?page_size=50&domain={random.choice(domains)}", "API provisions"
                )

            @task(3)
            def filtered_gaps(self) -> None:
                severity = random.choice(["critical", "high", "medium", "low"])
                self.read(
                    f"/api/v1/gaps/?domain={random.choice(domains)}&severity={severity}&page_size=50",
                    "API gaps, filtered",
                )

            @task(2)
            def overview(self) -> None:
                self.read("/", "overview", api=False)

            @task(1)
            def overview_past(self) -> None:
                self.read(f"/?as_of={PAST}", "overview as of a past date", api=False)

            @task(1)
            def domain_page(self) -> None:
                self.read(f"/domains/{random.choice(domains)}/", "domain page", api=False)

            @task(2)
            def move(self) -> None:
                if not self.to_move:
                    return
                reference = self.to_move.pop()
                path = f"/api/v1/provisions/{reference}/"
                answer = self.client.get(path, headers=self.headers, name="read: API provision")
                if answer.status_code != 200 or answer.headers is None:
                    return
                self.client.post(
                    f"{path}transition/",
                    json={"to": NEXT_STATUS["proposed"], "note": "load test"},
                    headers={**self.headers, "If-Match": answer.headers.get("ETag", "")},
                    name="write: status move",
                )

        else:

            @task
            def hammer(self) -> None:
                self.read(kind, kind.split("?")[0], api=True)

    environment = Environment(user_classes=[Simulated])
    runner = environment.create_local_runner()
    runner.start(users, spawn_rate=users)
    gevent.sleep(warm_up)  # every user's first requests (connections, caches): not counted
    environment.stats.reset_all()
    started = time.monotonic()
    gevent.spawn_later(seconds, runner.quit)
    runner.greenlet.join()
    elapsed = time.monotonic() - started

    def summary(entries: list[StatsEntry]) -> dict[str, Any]:
        merged = StatsEntry(environment.stats, "merged", "", use_response_times_cache=False)
        for entry in entries:
            merged.extend(entry)
        return {
            "requests": merged.num_requests,
            "errors": merged.num_failures,
            "requests_per_s": round(merged.num_requests / elapsed, 1),
            "p50_ms": merged.get_response_time_percentile(0.5),
            "p95_ms": merged.get_response_time_percentile(0.95),
            "p99_ms": merged.get_response_time_percentile(0.99),
            "max_ms": round(merged.max_response_time or 0),
        }

    entries = list(environment.stats.entries.values())
    result = {
        "reads": summary([entry for entry in entries if entry.name.startswith("read:")]),
        "writes": summary([entry for entry in entries if entry.name.startswith("write:")]),
        "by_request": {entry.name: summary([entry]) for entry in entries},
        "errors_seen": [
            f"{error.method} {error.name}: {error.error} ({error.occurrences})"
            for error in environment.stats.errors.values()
        ][:20],
    }
    return result


def print_phase(title: str, result: dict[str, Any]) -> None:
    print(f"\n{title}")
    print(f"  {'requests':<34} {'n':>6} {'err':>5} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}")
    rows = [("all reads", result["reads"]), ("all writes", result["writes"])]
    rows += sorted(result["by_request"].items())
    for name, row in rows:
        if row["requests"]:
            print(
                f"  {name:<34} {row['requests']:>6} {row['errors']:>5} {row['requests_per_s']:>7} "
                f"{row['p50_ms']:>7} {row['p95_ms']:>7} {row['p99_ms']:>7}"
            )
    for error in result["errors_seen"]:
        print(f"  error: {error}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--provisions", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true", help="keep the data the last run left")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument(
        "--warm-up", type=float, default=10, help="seconds of each phase run first and not counted"
    )
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (the Dockerfile's 3)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--cache-url",
        default="redis://127.0.0.1:6379/13",
        help="the web processes' one cache, as docker-compose's CACHE_URL (emptied first)",
    )
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)  # the preparing subprocess
    args = parser.parse_args(argv)
    if args.prepare:
        prepare(args.provisions, args.reuse, args.users, args.seed, args.prepare)
        return
    if not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"):
        raise SystemExit("load test: set CELERY_BROKER_URL=redis://... (the worker takes the rescans)")
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/partnership_benchmark")
    folder = Path(tempfile.mkdtemp(prefix="load-test-"))
    fixture_path = folder / "fixture.json"
    command = [sys.executable, __file__, "--prepare", str(fixture_path), "--provisions", str(args.provisions)]
    command += ["--users", str(args.users), "--seed", str(args.seed), *(["--reuse"] if args.reuse else [])]
    subprocess.run(command, check=True)  # noqa: S603 (this very script, with our own arguments)
    fixture = json.loads(fixture_path.read_text(encoding="utf-8"))
    base, processes = start_servers(args.workers, folder, args.cache_url)
    try:
        print(
            f"{fixture['provisions']:,} provisions; gunicorn with {args.workers} workers, a Celery worker, "
            f"PostgreSQL, a Redis cache and locust on this machine ({os.cpu_count()} CPUs); logs in {folder}"
        )
        report = {
            "provisions": fixture["provisions"],
            "users": args.users,
            "seconds": args.seconds,
            "gunicorn_workers": args.workers,
            "paused": run_locust(base, fixture, args.users, args.seconds, "paused", args.warm_up),
        }
        print_phase(f"{args.users} users pausing 1-3 s, {args.seconds:.0f} s", report["paused"])
        for name, path in (
            ("saturation_provisions", "/api/v1/provisions/?page_size=50"),
            ("saturation_gaps", "/api/v1/gaps/?page_size=50"),
        ):
            report[name] = run_locust(base, fixture, args.users, args.seconds / 2, path, args.warm_up)
            print_phase(f"{args.users} connections, no pause, {args.seconds / 2:.0f} s: {path}", report[name])
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
            print(f"\nwritten to {args.json}")
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
