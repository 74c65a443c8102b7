"""Forgetting Idempotency-Keys once their day is over (provisions/api/idempotency.py keeps them)."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.utils import timezone

from provisions.models import IdempotentRequest


def idempotency_keys_purge() -> int:
    """Forget the keys older than IDEMPOTENCY_KEY_HOURS (beat, hourly); returns how many."""
    since = timezone.now() - datetime.timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=since).delete()
    return deleted
