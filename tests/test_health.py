"""Health probes: /healthz (the process answers, touching nothing) and /readyz (the database answers and
is migrated, the broker and the cache answer when configured; the last full scan's age). JSON, outside
sign-in, nothing secret; 503 naming what is missing. The unreachable database and the unapplied
migrations are tried on a real gunicorn started by the test (ALLOW_PLAIN_HTTP, as docker-compose.yml),
and so is the embedded default's own beat (no broker: the server runs the periodic jobs)."""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone

from provisions.models import GapScan

pytestmark = pytest.mark.django_db


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_healthz_answers_without_sign_in_or_the_database(
    client: Client, django_assert_num_queries: object
) -> None:
    with django_assert_num_queries(0):  # type: ignore[operator]
        response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_ready_with_the_last_full_scans_age(client: Client) -> None:
    GapScan.objects.create(
        as_of=timezone.localdate(),
        trigger="schedule",
        full=True,
        started_at=timezone.now() - datetime.timedelta(hours=2),
        duration_ms=1200,
    )
    GapScan.objects.create(
        as_of=timezone.localdate(), trigger="change", full=False, duration_ms=15
    )  # not told: follows a change
    GapScan.objects.create(
        as_of=timezone.localdate(), trigger="schedule", full=True
    )  # not told: still running (or died half-way), no duration

    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == body["checks"]["migrations"] == "ok"
    assert "failing" not in body
    assert 7190 <= body["last_full_scan"]["age_seconds"] <= 7300


def test_readyz_without_any_scan_says_so(client: Client) -> None:
    assert client.get("/readyz").json()["last_full_scan"] is None


def test_readyz_names_a_broker_that_does_not_answer(client: Client) -> None:
    broker = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL=broker):
        response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["failing"] == ["broker"]
    assert body["checks"]["broker"] == "unreachable" and body["checks"]["database"] == "ok"
    assert broker not in response.content.decode() and "127.0.0.1" not in response.content.decode()


def test_readyz_names_a_cache_that_does_not_answer(client: Client) -> None:
    with override_settings(CACHE_URL=f"redis://127.0.0.1:{free_port()}/1"):
        response = client.get("/readyz")

    assert response.status_code == 503 and response.json()["failing"] == ["cache"]


@pytest.mark.services
def test_readyz_with_the_real_redis_broker_is_ready(client: Client) -> None:
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL=os.environ["CELERY_BROKER_URL"]):
        response = client.get("/readyz")

    assert response.status_code == 200 and response.json()["checks"]["broker"] == "ok"


def test_the_probes_are_not_redirected_to_https(client: Client) -> None:
    with override_settings(SECURE_SSL_REDIRECT=True):
        secure_everywhere_else = client.get("/accounts/login/")
        probes = [client.get("/healthz"), client.get("/readyz")]

    assert secure_everywhere_else.status_code == 301
    assert [probe.status_code for probe in probes] == [200, 200]


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[object]:
    """Start the app in gunicorn with an environment of the test's choosing; stops it afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    logs = []

    def start(**environment: str) -> str:
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "SECRET_KEY": "test-only-not-a-secret-" + "x" * 40,
            "ALLOWED_HOSTS": "127.0.0.1",
            "ALLOW_PLAIN_HTTP": "true",
            "PYTHONDONTWRITEBYTECODE": "1",
            **environment,
        }
        log = tmp_path / f"gunicorn-{port}.log"
        logs.append(log.open("wb"))
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "partnership.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=logs[-1],
        )
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        # Gunicorn listens before its worker has loaded Django: a first request may wait a while.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=10)  # noqa: S310 (our own server)
                return base
            except OSError:  # refused, or timed out: not up yet
                time.sleep(0.2)
        raise AssertionError(log.read_text()[-3000:])

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=20)
    for handle in logs:
        handle.close()


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (our own server; two shared cores)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_with_the_database_down_healthz_is_alive_and_readyz_names_the_database(gunicorn) -> None:
    closed = free_port()
    base = gunicorn(DATABASE_URL=f"postgres://tracker:hunter2@127.0.0.1:{closed}/tracker")  # nothing listens

    assert get(f"{base}/healthz") == (200, {"status": "ok"})
    status, body = get(f"{base}/readyz")

    assert status == 503
    assert body["failing"] == ["database"]
    assert body["checks"] == {"database": "unreachable", "migrations": "unknown"}
    assert "hunter2" not in json.dumps(body) and str(closed) not in json.dumps(body)


def test_with_migrations_not_applied_readyz_names_them(gunicorn, tmp_path: Path) -> None:
    base = gunicorn(DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")

    status, body = get(f"{base}/readyz")

    assert status == 503
    assert body["failing"] == ["migrations"] and body["checks"]["database"] == "ok"


@pytest.mark.services
def test_with_the_real_services_gunicorn_is_ready(gunicorn) -> None:
    from django.db import connection

    database = connection.settings_dict
    base = gunicorn(
        DATABASE_URL=f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        CELERY_BROKER_URL=os.environ["CELERY_BROKER_URL"],
    )

    status, body = get(f"{base}/readyz")

    assert status == 200, body
    assert body["checks"] == {"database": "ok", "migrations": "ok", "broker": "ok"}


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_without_a_broker_the_server_runs_the_periodic_jobs_and_a_webhook_is_retried(
    gunicorn, receiver
) -> None:
    """The embedded default (tasks in process): a refused delivery is tried again 5 s later by the
    beat the server runs in a thread (partnership/periodic.py), with no worker and no `celery beat`."""
    from django.db import connection

    from provisions.models import Marking, Status, WebhookAttempt, WebhookDelivery, WebhookEndpoint
    from provisions.permissions import Reader
    from provisions.services.tokens import api_token_create
    from provisions.services.webhooks import WEBHOOK_RETRY_SCHEDULE
    from tests.factories import ProvisionFactory, UserFactory

    provision = ProvisionFactory(status=Status.PROPOSED, marking=Marking.OFFICIAL)
    negotiator = UserFactory(role="negotiator", domains=[provision.domain])
    _, key = api_token_create(owner=negotiator, by=Reader.of(negotiator), name="test")
    WebhookEndpoint.objects.create(
        url=receiver.url + "/hooks", events=["provision.status_changed"], secret="whsec_MTIzNDU2Nzg="
    )
    receiver.answers = [(503, "deploying")]
    database = connection.settings_dict
    base = gunicorn(
        DATABASE_URL=f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        WEBHOOK_ALLOW_PRIVATE_ADDRESSES="true",
    )

    moved = urllib.request.Request(  # noqa: S310 (our own server)
        f"{base}/api/v1/provisions/{provision.reference}/transition/",
        data=json.dumps({"to": "under_negotiation", "version": provision.version}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(moved, timeout=30) as answer:  # noqa: S310
        assert answer.status == 200
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not WebhookDelivery.objects.filter(state="delivered").exists():
        time.sleep(0.5)

    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("delivered", 2)
    first, second = WebhookAttempt.objects.filter(delivery=delivery).order_by("number")
    assert (first.status_code, second.status_code) == (503, 200)
    assert second.sent_at - first.sent_at >= WEBHOOK_RETRY_SCHEDULE[0]
    assert [request.event for request in receiver.requests] == ["provision.status_changed"] * 2
