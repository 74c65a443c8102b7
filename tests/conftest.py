"""Shared fixtures. Tests marked `services` need the real PostgreSQL and Redis: without them they
skip with the reason, unless REQUIRE_SERVICES=1 (as in CI), where they fail instead."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import override_settings

from partnership.celery import app as celery_app

pytest_plugins = ["tests.receivers"]


def _redis_answers(url: str) -> str | None:
    parsed = urlparse(url)
    try:
        address = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
        with socket.create_connection(address, timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(16).startswith(b"+PONG"):
                return f"Redis at {url} did not answer PING"
    except OSError as error:
        return f"Redis at {url} is unreachable ({error})"
    return None


def missing_services() -> str | None:
    """Why the real services are not available, or None when they are."""
    if connection.vendor != "postgresql":
        return "needs PostgreSQL: set DATABASE_URL=postgres://..."
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis://"):
        return "needs Redis: set CELERY_BROKER_URL=redis://..."
    return _redis_answers(broker)


@pytest.fixture(autouse=True)
def _services_gate(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("services") is None:
        return
    reason = missing_services()
    if reason is None:
        return
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"REQUIRE_SERVICES=1 but this test {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _tasks_in_process(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tasks run in process, unless the test is marked `worker` and consumes them with a real one."""
    eager = request.node.get_closest_marker("worker") is None
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = eager
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(scope="session", autouse=True)
def _plain_http() -> Iterator[None]:
    """Tests run with DEBUG off and the production defaults, but the test client and the live server
    speak plain HTTP: no redirect to HTTPS (for the whole session, so that servers started once, like
    the browser tests' live server, load their middleware with it). Processes a test starts get
    ALLOW_PLAIN_HTTP=true in their environment instead."""
    with override_settings(SECURE_SSL_REDIRECT=False):
        yield


@pytest.fixture(autouse=True)
def _test_friendly_settings(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Pages link static files, but tests run without `collectstatic` (no manifest, no STATIC_ROOT);
    and a fast password hasher, since many tests sign users in."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STATIC_ROOT = tmp_path_factory.getbasetemp() / "static"
    settings.EXPORT_DIR = tmp_path_factory.mktemp("exports")
    settings.STATIC_ROOT.mkdir(exist_ok=True)
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """The API throttles by counting requests in the cache: each test starts with none counted."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def shipped_partnership_file() -> str:
    return str(settings.BASE_DIR / "provisions" / "data" / "uk-eu-security-partnership.yaml")
