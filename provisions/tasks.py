"""Celery tasks: thin, ids and dates in, one service call. Idempotent, since a task may run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from provisions.models import ScanTrigger
from provisions.reports.jobs import export_run
from provisions.services.dated import dated_values_refresh
from provisions.services.exports import exports_purge
from provisions.services.idempotency import idempotency_keys_purge
from provisions.services.scans import gaps_run_requested, gaps_scan
from provisions.services.watch import digests_send
from provisions.services.webhooks import webhook_deliver, webhooks_send_due
from provisions.services.webhooks.events import events_purge

_DATABASE_ERRORS = (OperationalError, InterfaceError)


@shared_task(autoretry_for=_DATABASE_ERRORS, retry_backoff=2, retry_backoff_max=300, max_retries=8)
def run_requested_scans() -> int | None:
    """Scan what pending writes touched (all pending requests merged); returns the scan's id."""
    outcome = gaps_run_requested()
    return outcome.scan.pk if outcome else None


@shared_task(autoretry_for=_DATABASE_ERRORS, retry_backoff=2, retry_backoff_max=300, max_retries=8)
def scan_all_gaps(trigger: str = ScanTrigger.SCHEDULE) -> int:
    """Scan every capability and provision as of today (the nightly job), after bringing their
    dated values to today's (a change dated today takes effect); returns the scan's id."""
    dated_values_refresh()
    return gaps_scan(trigger=ScanTrigger(trigger)).scan.pk


@shared_task(autoretry_for=_DATABASE_ERRORS, retry_backoff=2, retry_backoff_max=300, max_retries=8)
def deliver_webhook(delivery_id: int) -> str | None:
    """POST one webhook delivery if it is due; a refused attempt schedules the next one on the
    delivery itself (the periodic job queues it when due). Returns the delivery's state."""
    delivery = webhook_deliver(delivery_id=delivery_id)
    return delivery.state if delivery else None


@shared_task(autoretry_for=_DATABASE_ERRORS, retry_backoff=2, retry_backoff_max=300, max_retries=8)
def send_due_webhooks() -> int:
    """Queue the webhook deliveries whose next attempt is due, and those whose task was lost."""
    return webhooks_send_due()


@shared_task(autoretry_for=_DATABASE_ERRORS, retry_backoff=2, retry_backoff_max=300, max_retries=8)
def send_digests() -> int:
    """The daily email of each follower's notifications (at most one a day each: safe to run twice)."""
    return digests_send()


@shared_task(autoretry_for=_DATABASE_ERRORS, retry_backoff=2, retry_backoff_max=300, max_retries=8)
def run_export(job_id: str) -> str | None:
    """Prepare one background export (provisions.services.exports); returns its state."""
    job = export_run(job_id=job_id)
    return job.state if job else None


@shared_task(autoretry_for=_DATABASE_ERRORS, retry_backoff=2, retry_backoff_max=300, max_retries=8)
def purge_exports() -> int:
    """Remove the exports whose time is up (beat, hourly); returns how many."""
    return exports_purge()


@shared_task(autoretry_for=_DATABASE_ERRORS, retry_backoff=2, retry_backoff_max=300, max_retries=8)
def purge_events() -> int:
    """Forget the feed's events older than EVENTS_KEPT_DAYS (beat, daily); returns how many."""
    return events_purge()


@shared_task(autoretry_for=_DATABASE_ERRORS, retry_backoff=2, retry_backoff_max=300, max_retries=8)
def purge_idempotency_keys() -> int:
    """Forget the Idempotency-Keys whose day is over (beat, hourly); returns how many."""
    return idempotency_keys_purge()
