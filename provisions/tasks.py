"""Celery tasks: thin, ids and dates in, one service call. Idempotent, since a task may run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from provisions.models import ScanTrigger
from provisions.services.scans import gaps_run_requested, gaps_scan

_DATABASE_ERRORS = (OperationalError, InterfaceError)


@shared_task(autoretry_for=_DATABASE_ERRORS, retry_backoff=2, retry_backoff_max=300, max_retries=8)
def run_requested_scans() -> int | None:
    """Scan what pending writes touched (all pending requests merged); returns the scan's id."""
    outcome = gaps_run_requested()
    return outcome.scan.pk if outcome else None


@shared_task(autoretry_for=_DATABASE_ERRORS, retry_backoff=2, retry_backoff_max=300, max_retries=8)
def scan_all_gaps(trigger: str = ScanTrigger.SCHEDULE) -> int:
    """Scan every capability and provision as of today (the nightly job); returns the scan's id."""
    return gaps_scan(trigger=ScanTrigger(trigger)).scan.pk
