"""Health probes, outside sign-in, for an orchestrator or a load balancer.

`/healthz`: the process answers (touches nothing else). `/readyz`: it can serve: the database answers
and holds every migration, and the broker and the shared cache answer when they are configured; with
the age of the last full gap scan. 503 names what is missing. The bodies hold no host, URL or error
text: the logs have those.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from provisions.models import GapScan

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 2
_migrated = False  # once every migration is applied, it stays so for this process's code


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {"database": _database()}
    checks["migrations"] = _migrations() if checks["database"] == "ok" else "unknown"
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        checks["broker"] = _redis("broker", settings.CELERY_BROKER_URL)
    if settings.CACHE_URL:
        checks["cache"] = _redis("cache", settings.CACHE_URL)
    last_full_scan: dict[str, Any] | None = None
    if checks["migrations"] == "ok":
        try:
            last_full_scan = _last_full_scan()
        except DatabaseError:  # it went away since its check (a restart): say so, not a 500
            logger.warning("readyz: the database went away", exc_info=True)
            checks["database"] = "unreachable"
    # "unknown": not asked, since what it depends on is failing (and named).
    failing = [name for name, state in checks.items() if state not in {"ok", "unknown"}]
    body: dict[str, Any] = {"status": "unavailable" if failing else "ready", "checks": checks}
    if failing:
        body["failing"] = failing
    elif checks["migrations"] == "ok":
        body["last_full_scan"] = last_full_scan
    return JsonResponse(body, status=503 if failing else 200)


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any failure to reach it is "unreachable"; the reason goes to the log only
        logger.warning("readyz: the database is unreachable", exc_info=True)
        return "unreachable"
    return "ok"


def _migrations() -> str:
    global _migrated
    if _migrated:
        return "ok"
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception:
        logger.warning("readyz: cannot read the applied migrations", exc_info=True)
        return "unknown"
    _migrated = not pending
    return "ok" if _migrated else "pending"


def _redis(name: str, url: str) -> str:
    if not url.startswith(("redis://", "rediss://")):
        return "ok"  # an in-memory transport: nothing to reach
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=PROBE_TIMEOUT_SECONDS, socket_timeout=PROBE_TIMEOUT_SECONDS
        )
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError:
        logger.warning("readyz: the %s is unreachable", name, exc_info=True)
        return "unreachable"
    return "ok"


def _last_full_scan() -> dict[str, Any] | None:
    """When the last finished full scan started, and how long ago. Only full scans: a scan of what
    one write touched follows a change, and its time would tell anyone when the partnership changed.
    Only finished ones: a full scan reconciles batch by batch, and one that died half-way is no check."""
    started_at = (
        GapScan.objects.filter(full=True, duration_ms__isnull=False)
        .order_by("-started_at")
        .values_list("started_at", flat=True)
    )
    latest = started_at.first()
    if latest is None:
        return None
    return {"started_at": latest.isoformat(), "age_seconds": int((timezone.now() - latest).total_seconds())}
