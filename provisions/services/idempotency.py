"""Keeping the answers of POSTs sent with an Idempotency-Key (provisions/api/idempotency.py reads the
header and answers), and forgetting them once their day is over."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from provisions.models import IdempotentRequest


def idempotent_request_begin(*, caller: str, key: str, fingerprint: str) -> tuple[IdempotentRequest, bool]:
    """The record of the caller's key: a new one, marked running (True), or the one a request sent
    first with that key within IDEMPOTENCY_KEY_HOURS left (False). An older one is forgotten first."""
    since = timezone.now() - datetime.timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    IdempotentRequest.objects.filter(caller=caller, key=key, created_at__lt=since).delete()
    try:
        with transaction.atomic():
            return IdempotentRequest.objects.create(caller=caller, key=key, request_hash=fingerprint), True
    except IntegrityError:  # sent before with this key (or at this moment, by another process)
        return IdempotentRequest.objects.get(caller=caller, key=key), False


def idempotent_request_finish(
    record: IdempotentRequest, *, status_code: int, content_type: str, body: str, etag: str
) -> None:
    """Keep the answer the first request got, to give again."""
    record.status_code, record.content_type, record.body, record.etag = status_code, content_type, body, etag
    record.save(update_fields=["status_code", "content_type", "body", "etag"])


def idempotent_request_abandon(record: IdempotentRequest) -> None:
    """Keep nothing (a 5xx): a request sent again with the key runs."""
    record.delete()


def idempotency_keys_purge() -> int:
    """Forget the keys older than IDEMPOTENCY_KEY_HOURS (beat, hourly); returns how many."""
    since = timezone.now() - datetime.timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=since).delete()
    return deleted
