"""The scan task on a real Celery worker over a real Redis broker (CI requires these; locally they skip)."""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.db import connection
from django.utils import timezone

from partnership.celery import app as celery_app
from provisions.models import Gap, GapScan, Level, ScanRequest, Status
from provisions.permissions import Reader
from provisions.rules import evaluate_gaps
from provisions.services.scans import scan_request
from provisions.services.status import provision_transition
from tests.factories import CapabilityFactory, CoverageFactory, ProvisionFactory

pytestmark = [pytest.mark.services, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_for(condition: Callable[[], bool], *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def lapsing_capability_under_negotiation() -> tuple[int, int]:
    today = timezone.localdate()
    capability = CapabilityFactory(criticality=Level.CRITICAL, lapses_on=today + datetime.timedelta(days=10))
    provision = ProvisionFactory(status=Status.UNDER_NEGOTIATION, created_on=today)
    CoverageFactory(capability=capability, provision=provision)
    return capability.pk, provision.pk


def test_a_status_move_is_scanned_by_a_real_worker_through_redis():
    capability_id, provision_id = lapsing_capability_under_negotiation()
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        # The move commits, its on_commit publishes the task to Redis, the worker consumes it.
        provision_transition(
            by=Reader.system(),
            provision=ProvisionFactory._meta.model.objects.get(pk=provision_id),
            to=Status.PROPOSED,
            note="Text sent back for redrafting",
        )
        wait_for(
            lambda: not ScanRequest.objects.exists() and GapScan.objects.exists(),
            seconds=30,
            what="the worker to handle the scan request",
        )

    gap = Gap.objects.open().get(capability_id=capability_id)
    assert (gap.kind, gap.severity) == ("at_risk", "critical")
    assert GapScan.objects.get().trigger == "change"


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis of the test's own, so a killed worker's messages touch nothing else."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(
        lambda: (
            subprocess.run(
                [shutil.which("redis-cli") or "redis-cli", "-p", str(port), "ping"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            == "PONG"
        ),
        seconds=10,
        what="redis-server to start",
    )
    yield url
    process.terminate()
    process.wait(timeout=10)


def worker_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in children.read_text().split()] if children.exists() else []


def test_a_worker_killed_mid_scan_loses_nothing_and_the_rescan_gives_the_same_gaps(throwaway_redis: str):
    capability_ids = [lapsing_capability_under_negotiation()[0] for _ in range(5)]
    scan_request(capability_ids=capability_ids)  # autocommit: the request row is committed
    expected = {
        (f.kind.value, f.subject_id, f.severity.value)
        for f in evaluate_gaps(as_of=timezone.localdate()).findings
    }
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "CELERY_BROKER_URL": throwaway_redis,
        "SECRET_KEY": "test-only",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "partnership",
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=INFO",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    locker = connection.copy()  # a second connection that holds the gap table while the scan runs
    try:
        with locker.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("LOCK TABLE provisions_gap IN EXCLUSIVE MODE")  # readers pass, writers wait
            # CELERY_BROKER_URL in the environment would win over Celery(broker=...): connect explicitly.
            publisher = Celery()
            with publisher.connection_for_write(throwaway_redis) as broker:
                publisher.send_task("provisions.tasks.run_requested_scans", connection=broker)

            def scan_waits_on_the_gap_table() -> bool:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks"
                    " WHERE relation = 'provisions_gap'::regclass AND NOT granted"
                )
                return cursor.fetchone()[0] > 0

            try:
                wait_for(scan_waits_on_the_gap_table, seconds=60, what="the scan to reach the gap table")
            except AssertionError:
                worker.kill()
                raise AssertionError(worker.communicate()[0][-3000:]) from None
            children = worker_children(worker.pid)
            assert len(children) == 1, children
            os.kill(children[0], signal.SIGKILL)  # the pool process dies mid-scan, its transaction with it
            time.sleep(1)
            assert GapScan.objects.count() == 0 and ScanRequest.objects.count() == 1
            cursor.execute("COMMIT")
        # acks_late + reject_on_worker_lost: the task goes back to Redis and a new pool process reruns it.
        wait_for(
            lambda: GapScan.objects.exists() and not ScanRequest.objects.exists(),
            seconds=60,
            what="the redelivered task to finish the scan",
        )
    finally:
        locker.close()
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)

    assert "WorkerLostError" in output, output[-2000:]  # the kill really happened mid-task
    assert GapScan.objects.count() == 1
    found = {(gap.kind, gap.capability_id or gap.provision_id, gap.severity) for gap in Gap.objects.open()}
    assert found == expected
    assert Gap.objects.count() == len(expected)  # nothing half-written by the killed scan


def test_the_daily_digest_is_sent_by_a_real_worker() -> None:
    from django.core import mail

    from provisions.services.watch import follow_set
    from provisions.tasks import send_digests
    from tests.factories import UserFactory

    provision = ProvisionFactory(status=Status.PROPOSED)
    follower = UserFactory(role="viewer", clearance="secret", email="follower@example.org")
    follow_set(user=follower, subject=provision, following=True)
    provision_transition(provision=provision, to=Status.UNDER_NEGOTIATION, note="Round 2", by=Reader.system())
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        send_digests.delay()  # as beat sends it
        wait_for(lambda: len(mail.outbox) == 1, seconds=30, what="the worker to send the digest")

    assert [message.to for message in mail.outbox] == [["follower@example.org"]]
    assert "proposed → under negotiation. Round 2" in mail.outbox[0].body


def test_a_large_export_is_prepared_by_a_real_worker() -> None:
    """The background export path end to end: asked for (the job row, its task on commit), consumed
    by a worker through Redis, written, and ready for its owner."""
    import io

    import pypdf

    from provisions.models import ExportJob, ExportState
    from provisions.services.exports import export_request
    from tests.factories import UserFactory

    for number in range(30):
        CapabilityFactory(code=f"BG-{number:02d}", criticality=Level.HIGH, lapses_on=None)
    owner = UserFactory(role="analyst", clearance="official")
    job = export_request(
        reader=Reader.of(owner),
        report="gaps",
        fmt="pdf",
        parameters={},
        description="Gap report as of today",
        rows=30,
    )
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        wait_for(
            lambda: ExportJob.objects.get(pk=job.pk).finished,
            seconds=60,
            what="the worker to prepare the export",
        )
    job.refresh_from_db()
    assert job.state == ExportState.DONE, job.error
    assert (job.rows, job.marking, job.progress) == (30, "official", 100)
    pages = pypdf.PdfReader(io.BytesIO(job.path.read_bytes())).pages
    text = "".join(page.extract_text() for page in pages)
    assert all(f"BG-{number:02d}" in text for number in range(30))
