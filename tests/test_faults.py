"""Faults against real processes (issue 9, item 8): a throwaway `redis-server` and a throwaway PostgreSQL
cluster made with `initdb`, each on its own free port and folder, started, stopped, frozen and restarted
by the test, with a real Celery worker, a real `celery beat` and a real gunicorn.

- Redis stopped (and hung) while users move statuses and import a file, then restarted: every write
  answers within a bound (it commits; the lost task is logged), nothing committed is lost, and the
  gaps converge to a clean scan's through the outbox (ScanRequest rows) and beat, with nobody acting.
- PostgreSQL restarted, stopped and frozen under load: gunicorn and the worker recover by themselves,
  no request takes longer than a bound, every request after recovery succeeds.
- A worker killed mid-scan: tests/test_worker.py (test_a_worker_killed_mid_scan_...).

CI requires these (REQUIRE_SERVICES=1); locally they skip without the real services.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import redis
import yaml
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from kombu import pools as kombu_pools

from partnership.celery import app as celery_app
from provisions.models import Gap, GapScan, Provision, ScanRequest, ScanTrigger, Status, StatusChange
from provisions.permissions import Reader
from provisions.rules import evaluate_gaps
from provisions.services.scans import gaps_scan
from provisions.services.status import provision_transition
from tests.test_worker import lapsing_capability_under_negotiation, wait_for

pytestmark = [pytest.mark.services, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

WRITE_BOUND_SECONDS = 10  # a write (its commit, then the task it queues) answers within this, broker or not
REQUEST_BOUND_SECONDS = 15  # an HTTP request answers within this, database or not


def _postgres_bin() -> Path:
    """PG_BINDIR, or the newest Debian PostgreSQL's binaries (the version the machine runs)."""
    if "PG_BINDIR" in os.environ:
        return Path(os.environ["PG_BINDIR"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parts[-3]))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


POSTGRES_BIN = _postgres_bin()


def missing(what: str) -> None:
    """As the services gate does: fail under REQUIRE_SERVICES=1, skip otherwise."""
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"REQUIRE_SERVICES=1 but {what}")
    pytest.skip(what)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- The throwaway services ------------------------------------------------------------------------


class RedisServer:
    """A redis-server of the test's own (no persistence: a restart loses every queued message)."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.port = directory, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False

    def answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            missing("redis-server is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                *(server or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for(self.answers, seconds=10, what="redis-server to start")

    def freeze(self) -> None:
        """A hung Redis: it keeps accepting connections (the kernel does) and never answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.process is not None and self.frozen:
            self.process.send_signal(signal.SIGCONT)
        self.frozen = False

    def stop(self) -> None:
        if self.process is None:
            return
        self.thaw()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


class PostgresCluster:
    """A PostgreSQL cluster made with initdb in a temporary folder, on its own port, run by the
    `postgres` user when the tests run as root (initdb and postgres refuse root)."""

    def __init__(self) -> None:
        if not (POSTGRES_BIN / "initdb").exists():
            missing(f"PostgreSQL's initdb is not in {POSTGRES_BIN} (set PG_BINDIR)")
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.directory = Path(tempfile.mkdtemp(prefix="faults-postgres-"))
        if os.geteuid() == 0:
            shutil.chown(self.directory, user="postgres")
        self.data, self.port = self.directory / "data", free_port()
        self.frozen = False

    def url(self, name: str = "partnership") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def _run(self, program: str, *args: str, as_owner: bool = True) -> None:
        command = [*(self.as_postgres if as_owner else []), str(POSTGRES_BIN / program), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            log = self.directory / "postgres.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise AssertionError(f"{program} failed: {result.stdout}{result.stderr}\n{tail}")

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "30", *args)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-l", str(self.directory / "postgres.log"), "-o", options, "start")

    def stop(self, mode: str) -> None:
        self._pg_ctl("-m", mode, "stop")

    def restart(self, mode: str) -> None:
        self.stop(mode)
        self.start()

    def createdb(self, name: str = "partnership") -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name, as_owner=False)

    def _postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def freeze(self) -> None:
        """A database that takes connections (the kernel queues them) and never answers a new one."""
        os.kill(self._postmaster(), signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen:
            os.kill(self._postmaster(), signal.SIGCONT)
        self.frozen = False

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.thaw()
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.init()
        cluster.start()
        cluster.createdb()
        yield cluster
    finally:
        cluster.remove()


def _drop_broker_connections() -> None:
    """The app caches its broker connection pools, and kombu keeps them in a registry by broker URL:
    drop both, so the next publish connects to the broker configured now (closing a pool but leaving
    it registered makes every later publish to that URL fail with "Acquire on closed pool")."""
    app: Any = celery_app  # its private caches: Celery has no public way to forget them
    app._pool = None
    app.amqp._producer_pool = None
    kombu_pools.reset()  # closes every registered pool and empties the registry


@pytest.fixture
def broker(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """This process's Celery app (the tasks writes queue on commit) publishes to the throwaway Redis, so
    stopping it touches nobody else. Celery reads CELERY_BROKER_URL from the environment before its conf."""
    monkeypatch.setenv("CELERY_BROKER_URL", redis_server.url)
    _drop_broker_connections()
    try:
        yield redis_server
    finally:
        _drop_broker_connections()


class Processes:
    """Processes a test starts (gunicorn, celery worker and beat): each logs to a file, in a session
    of its own, and is stopped at the end, killed with its children if it does not stop."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.directory / f"{name}.log").open("wb")
        process = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started.append((process, log))
        return process

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")

    def wait_for_log(self, name: str, text: str, *, seconds: float) -> None:
        try:
            wait_for(lambda: text in self.log(name), seconds=seconds, what=f"{name} to log {text!r}")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.log(name)[-3000:]}") from None

    def stop_all(self) -> None:
        for process, log in reversed(self.started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGCONT)  # a frozen one could not stop
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # children left behind (gunicorn's workers)
            log.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def environment(**values: str) -> dict[str, str]:
    """A Django process's environment: this one's, with the test's services and settings."""
    return {
        **os.environ,
        "SECRET_KEY": "test-only-not-a-secret-" + "x" * 40,
        "ALLOW_PLAIN_HTTP": "true",
        "PYTHONDONTWRITEBYTECODE": "1",
        **values,
    }


def celery(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "partnership", *arguments]


WORKER = celery(
    "worker", "--pool=solo", "--without-heartbeat", "--without-mingle", "--without-gossip", "--loglevel=INFO"
)

# Celery's own beat, running the product's entry for the outbox (settings.CELERY_BEAT_SCHEDULE's
# "pending-scan-requests") every second instead of every minute; the nightly scan is left out.
BEAT_EVERY_SECOND = """
import sys
from partnership.celery import app
entry = dict(app.conf.beat_schedule["pending-scan-requests"], schedule=1.0)
app.conf.beat_schedule = {"pending-scan-requests": entry}
sys.exit(app.start(["beat", "--loglevel=INFO", "--schedule", sys.argv[1]]))
"""


def this_test_database() -> str:
    database = connection.settings_dict
    return f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"


# --- Redis stopped while users write -----------------------------------------------------------------


def gaps_recorded() -> set[tuple[tuple[str, str, int], str]]:
    return {(gap.identity, gap.severity) for gap in Gap.objects.open()}


def gaps_a_clean_scan_finds() -> set[tuple[tuple[str, str, int], str]]:
    return {
        (finding.identity, finding.severity.value)
        for finding in evaluate_gaps(as_of=timezone.localdate()).findings
    }


def timed_move(provision_id: int, to: str) -> tuple[StatusChange, float]:
    started = time.monotonic()
    change = provision_transition(
        by=Reader.system(), provision=Provision.objects.get(pk=provision_id), to=to, note="Agreed in round 9"
    )
    return change, time.monotonic() - started


def logged_lost_tasks(caplog: pytest.LogCaptureFixture) -> int:
    """How many tasks queued on commit could not be sent: Django logs each robust on_commit failure."""
    return sum(
        "task_queue_on_commit.<locals>.queue in on_commit()" in record.getMessage()
        for record in caplog.records
        if record.name == "django.db.backends.base"
    )


def test_redis_stopped_while_users_move_statuses_and_import_then_the_gaps_converge_by_themselves(
    broker: RedisServer,
    processes: Processes,
    tmp_path: Path,
    shipped_partnership_file: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert (
        settings.CELERY_BEAT_SCHEDULE["pending-scan-requests"]["task"]
        == "provisions.tasks.run_requested_scans"
    )
    env = environment(DATABASE_URL=this_test_database(), CELERY_BROKER_URL=broker.url)
    worker = processes.start("worker", WORKER, env)
    beat = processes.start(
        "beat", [sys.executable, "-c", BEAT_EVERY_SECOND, str(tmp_path / "beat-schedule")], env
    )
    processes.wait_for_log("worker", "ready.", seconds=60)
    processes.wait_for_log("beat", "beat: Starting", seconds=60)

    call_command("import_partnership", shipped_partnership_file, stdout=io.StringIO())
    moving = [lapsing_capability_under_negotiation()[1] for _ in range(3)]  # each has an open at_risk gap
    wait_for(lambda: not ScanRequest.objects.exists(), seconds=60, what="the import's scan")
    gaps_scan(trigger=ScanTrigger.COMMAND)  # everything recorded: the state before the faults
    assert gaps_recorded() == gaps_a_clean_scan_finds()

    # Redis up: a move is scanned by the worker within seconds.
    timed_move(moving[0], Status.AGREED)
    wait_for(lambda: not ScanRequest.objects.exists(), seconds=30, what="the worker to scan the first move")
    assert gaps_recorded() == gaps_a_clean_scan_finds()

    # Redis hung (it takes connections and never answers): the move commits and answers in bounded time.
    caplog.clear()
    broker.freeze()
    try:
        change, seconds = timed_move(moving[1], Status.AGREED)
    finally:
        broker.thaw()
    assert seconds < WRITE_BOUND_SECONDS, f"a move waited {seconds:.1f} s on a hung broker"
    assert StatusChange.objects.filter(pk=change.pk).exists() and logged_lost_tasks(caplog) == 1

    # Redis stopped: a move and an import commit, each answers at once, their tasks are lost (logged).
    broker.stop()
    time.sleep(1)  # a task the worker took just before the stop (beat sends one a second) has finished
    change, seconds = timed_move(moving[2], Status.AGREED)
    assert seconds < WRITE_BOUND_SECONDS, f"a move waited {seconds:.1f} s on a stopped broker"
    assert logged_lost_tasks(caplog) == 2
    data = yaml.safe_load(Path(shipped_partnership_file).read_text())
    suspended = next(
        item for item in data["provisions"] if item["status"] == "in_force" and item.get("covers")
    )
    suspended["status"] = Status.SUSPENDED
    suspended["history"] = [  # a new list: the file shares its history between provisions (a YAML alias)
        *suspended["history"],
        {"status": Status.SUSPENDED, "at": timezone.localdate().isoformat(), "note": "Suspended in review"},
    ]
    changed_file = tmp_path / "partnership.json"
    changed_file.write_text(json.dumps(data, default=str))
    started = time.monotonic()
    imported = subprocess.run(
        [sys.executable, "manage.py", "import_partnership", str(changed_file)],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    seconds = time.monotonic() - started
    assert imported.returncode == 0, imported.stdout + imported.stderr
    # Written; its task lost, and said so.
    assert "Imported:" in imported.stdout and "in on_commit()" in imported.stderr
    assert seconds < 2 * WRITE_BOUND_SECONDS, (
        f"the import command took {seconds:.1f} s with the broker stopped"
    )

    # Nothing is scanned while Redis is down (beat keeps trying): the record and the gaps disagree.
    scans = GapScan.objects.count()
    time.sleep(3)
    assert ScanRequest.objects.count() >= 2 and GapScan.objects.count() == scans
    assert gaps_recorded() != gaps_a_clean_scan_finds()
    assert worker.poll() is None and beat.poll() is None, "the worker and beat outlive the outage"

    # Redis back, empty (nothing queued survived): beat sends the outbox's scan, the worker runs it.
    broker.start()
    wait_for(
        lambda: not ScanRequest.objects.exists(), seconds=90, what="the outbox to be scanned after the outage"
    )

    assert gaps_recorded() == gaps_a_clean_scan_finds()
    assert [Provision.objects.get(pk=pk).status for pk in moving] == [Status.AGREED] * 3
    assert Provision.objects.get(reference=suspended["reference"]).status == Status.SUSPENDED
    again = gaps_scan(trigger=ScanTrigger.COMMAND).scan  # a clean full scan finds nothing left to do
    assert (again.opened, again.updated, again.resolved) == (0, 0, 0)
    assert "Couldn't apply scheduled task" in processes.log("beat")  # it did try during the outage


# --- PostgreSQL restarted under load -----------------------------------------------------------------

MAKE_ANALYST_AND_TOKEN = """
from provisions.permissions import Reader
from provisions.services.tokens import api_token_create
from provisions.services.users import user_set_up
user = user_set_up(
    username="fault-analyst", password="a-long-fault-test-password", role="analyst", clearance="secret"
)
token, key = api_token_create(owner=user, by=Reader.of(user), name="fault tests")
print("KEY", key)
"""


@dataclass(frozen=True)
class Answer:
    path: str
    started: float
    finished: float
    status: int | str  # the HTTP status, or what went wrong without one

    @property
    def seconds(self) -> float:
        return self.finished - self.started


def request(base: str, path: str, key: str, method: str = "GET") -> tuple[int | str, Any]:
    call = urllib.request.Request(  # noqa: S310 (our own server)
        base + path, method=method, headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(call, timeout=40) as response:  # noqa: S310 (our own server)
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None
    except (urllib.error.URLError, OSError) as error:  # no answer at all: refused, reset, timed out
        return f"{type(error).__name__}: {error}", None


class Load:
    """Clients asking the API and the readiness probe in a loop, each answer recorded with its times."""

    PATHS = ("/api/v1/provisions/", "/api/v1/gaps/", "/readyz")

    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base, key
        self.answers: list[Answer] = []
        self.running, self.stopping, self.in_flight = True, False, 0
        self.changed = threading.Condition()
        self.threads = [
            threading.Thread(target=self.client, args=(path,), daemon=True) for path in self.PATHS
        ]

    def client(self, path: str) -> None:
        while True:
            with self.changed:
                self.changed.wait_for(lambda: self.running or self.stopping)
                if self.stopping:
                    return
                self.in_flight += 1
            started = time.monotonic()
            try:
                status, _ = request(self.base, path, self.key)
                self.answers.append(Answer(path, started, time.monotonic(), status))
            finally:
                with self.changed:
                    self.in_flight -= 1
                    self.changed.notify_all()
            time.sleep(0.1)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No request in flight inside the block."""
        with self.changed:
            self.running = False
            assert self.changed.wait_for(lambda: self.in_flight == 0, timeout=60)
        try:
            yield
        finally:
            with self.changed:
                self.running = True
                self.changed.notify_all()

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.changed:
            self.stopping = True
            self.changed.notify_all()
        for thread in self.threads:
            thread.join(timeout=60)


def all_answer(base: str, key: str, *, rounds: int) -> set[int | str]:
    """The statuses of `rounds` rounds of as many requests at once as Load makes (more than web workers)."""
    with ThreadPoolExecutor(max_workers=len(Load.PATHS)) as pool:
        calls = [
            pool.submit(request, base, "/api/v1/provisions/", key) for _ in range(rounds * len(Load.PATHS))
        ]
        return {call.result()[0] for call in calls}


def scans_recorded(base: str, key: str) -> int:
    status, body = request(base, "/api/v1/gap-scans/", key)
    return int(body["count"]) if status == 200 else -1


def test_postgresql_restarted_under_load_web_and_worker_recover_by_themselves(
    postgres_cluster: PostgresCluster, redis_server: RedisServer, processes: Processes
) -> None:
    env = environment(
        DATABASE_URL=postgres_cluster.url(),
        CELERY_BROKER_URL=redis_server.url,
        ALLOWED_HOSTS="127.0.0.1",
        DEBUG="false",
        CONN_MAX_AGE="60",  # connections kept across requests, as production would: a restart drops them
        API_THROTTLE_RATE="100000/minute",
    )
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "--noinput", "-v0"], ["shell", "--no-imports", "-c", MAKE_ANALYST_AND_TOKEN]):
        done = subprocess.run(
            manage + command,
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    key = next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("KEY "))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = processes.start(
        "gunicorn",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "partnership.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
        ],
        env,
    )
    worker = processes.start("worker", WORKER, env)
    wait_for(lambda: request(base, "/healthz", key)[0] == 200, seconds=60, what="gunicorn to start")
    processes.wait_for_log("worker", "ready.", seconds=60)
    assert request(base, "/api/v1/gap-scans/", key, "POST")[0] == 202
    wait_for(lambda: scans_recorded(base, key) == 1, seconds=30, what="the worker's first scan")

    # A restart while the web is idle: each web worker's kept connection is dead, and its next request,
    # the first after the restart, must not fail on it (every web worker is busy with one of these).
    assert all_answer(base, key, rounds=3) == {200}
    postgres_cluster.restart("fast")
    assert all_answer(base, key, rounds=3) == {200}

    faults: list[tuple[float, float]] = []  # when each began, and when the database answered again
    with Load(base, key) as load:
        time.sleep(1.5)
        # 1. A fast restart (connections terminated).
        began = time.monotonic()
        postgres_cluster.restart("fast")
        faults.append((began, time.monotonic()))
        time.sleep(2)
        # 2. Down for 3 s (an immediate stop: a crash), while the worker takes a scan asked for just before.
        os.kill(worker.pid, signal.SIGSTOP)  # so that it reaches the task with the database down
        asked = request(base, "/api/v1/gap-scans/", key, "POST")[0]
        began = time.monotonic()
        postgres_cluster.stop("immediate")
        stopped = time.monotonic()
        os.kill(worker.pid, signal.SIGCONT)
        time.sleep(3)
        postgres_cluster.start()
        faults.append((began, time.monotonic()))
        time.sleep(2)
        # 3. Restarted, then hung for 8 s: it takes connections and never answers a new one (the web
        # workers' kept connections died with the restart: each needs a new one).
        began = time.monotonic()
        with load.paused():
            postgres_cluster.restart("fast")
            postgres_cluster.freeze()
        frozen = time.monotonic()
        time.sleep(8)
        postgres_cluster.thaw()
        faults.append((began, time.monotonic()))
        time.sleep(2)
    answers = load.answers

    report = "\n".join(f"{a.started:.2f} {a.seconds:5.2f}s {a.path} {a.status}" for a in answers)
    assert asked == 202
    assert all(isinstance(a.status, int) for a in answers), f"a request got no answer at all:\n{report}"
    slowest = max(a.seconds for a in answers)
    assert slowest < REQUEST_BOUND_SECONDS, f"a request took {slowest:.1f} s:\n{report}"
    assert all(a.status == 200 or (isinstance(a.status, int) and a.status >= 500) for a in answers), report
    in_outage = [a for a in answers if stopped <= a.started and a.finished <= faults[1][1]]
    assert any(a.status != 200 for a in in_outage), f"the outage was not seen:\n{report}"
    bounds = [*faults, (answers[-1].finished + 1, 0.0)]
    healthy = [
        a
        for (_, back), (next_fault, _) in itertools.pairwise(bounds)
        for a in answers
        if back <= a.started and a.finished <= next_fault
    ]
    assert len(healthy) > 20 and all(a.status == 200 for a in healthy), f"after recovery:\n{report}"
    # While the database hangs, requests are answered (5xx), not held for as long as it hangs.
    hung = [a for a in answers if frozen <= a.started and a.finished < faults[2][1]]
    assert any(a.status != 200 for a in hung), f"nothing was answered while the database hung:\n{report}"

    # The worker, whose task met the database down, retried it by itself; and it scans what is asked now.
    wait_for(lambda: scans_recorded(base, key) == 2, seconds=90, what="the worker to retry the scan")
    assert "Retry in" in processes.log("worker")
    assert request(base, "/api/v1/gap-scans/", key, "POST")[0] == 202
    wait_for(lambda: scans_recorded(base, key) == 3, seconds=30, what="the worker to scan after the faults")
    assert web.poll() is None and worker.poll() is None, "the same processes recovered"
    assert "WORKER TIMEOUT" not in processes.log("gunicorn")
