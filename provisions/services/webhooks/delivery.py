"""Sending webhook deliveries: signed, each attempt recorded, retried with backoff, and sent again
by the periodic job when a task was lost."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import time

from celery.exceptions import Retry
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from provisions.models import (
    Provision,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from provisions.permissions import markings_up_to
from provisions.services.queueing import DELIVER_WEBHOOK, task_queue
from provisions.services.webhooks.transport import (
    http_post,
    webhook_url_problem,
)

# Attempts in all: the first and six retries, spaced about 10, 20, 40, 80, 160, 320 s (full jitter).
WEBHOOK_MAX_ATTEMPTS = 7
WEBHOOK_RETRY_BACKOFF = 10
WEBHOOK_RETRY_BACKOFF_MAX = 600
# The periodic resend takes a pending delivery as lost (its task never reached the broker, or the
# broker lost it) once nothing can still be scheduled for it: never tried this long after it was
# recorded, or not tried again for longer than the longest retry delay.
WEBHOOK_UNSENT_AFTER = datetime.timedelta(minutes=2)
WEBHOOK_RETRY_LOST_AFTER = datetime.timedelta(seconds=WEBHOOK_RETRY_BACKOFF_MAX) + datetime.timedelta(
    minutes=5
)
WEBHOOK_RESEND_AGAIN_AFTER = datetime.timedelta(minutes=10)
WEBHOOK_RESEND_BATCH = 500
WEBHOOK_SIGNATURE_TOLERANCE_SECONDS = 300

_USER_AGENT = "security-partnership-tracker-webhooks/1"

logger = logging.getLogger(__name__)


class WebhookDeliveryFailed(Exception):
    """An attempt the receiver did not accept (no answer, or not 2xx); the task retries it."""


# --- signing ------------------------------------------------------------------------------------------------


def webhook_signature(*, secret: str, timestamp: int | str, body: bytes) -> str:
    """The `X-Tracker-Signature` value: `sha256=` and the hex HMAC-SHA256 of `{timestamp}.{body}`."""
    signed = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def webhook_signature_verify(
    *,
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance: int = WEBHOOK_SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """What a receiver checks: the signature matches (compared in constant time) and the timestamp
    is within `tolerance` seconds of now, so a captured request cannot be replayed later."""
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent_at) > tolerance:
        return False
    expected = webhook_signature(secret=secret, timestamp=sent_at, body=body)
    return hmac.compare_digest(expected, signature)


def webhook_deliver(*, delivery_id: int) -> WebhookDelivery | None:
    """POST one pending delivery, signed with the endpoint's secret, and record the attempt.

    A delivered or failed delivery is never sent again. An attempt the receiver does not accept
    raises WebhookDeliveryFailed (the task retries with backoff) until the last, which marks it
    failed. The row stays locked while sending, so two tasks for one delivery never both send;
    None when there is nothing to do (gone, or another worker is sending it).
    """
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.state != WebhookDelivery.State.PENDING:
            return delivery
        endpoint = delivery.endpoint
        refusal = _refusal(delivery, endpoint)
        if refusal:
            delivery.state, delivery.last_error = WebhookDelivery.State.FAILED, refusal
            delivery.save(update_fields=["state", "last_error"])
            logger.warning("Webhook delivery %s not sent: %s", delivery.pk, refusal)
            return delivery
        body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        answer = http_post(
            endpoint.url,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": _USER_AGENT,
                "X-Tracker-Event": delivery.event,
                "X-Tracker-Delivery": str(delivery.pk),
                "X-Tracker-Timestamp": timestamp,
                "X-Tracker-Signature": webhook_signature(
                    secret=endpoint.secret, timestamp=timestamp, body=body
                ),
            },
        )
        accepted = answer.status_code is not None and 200 <= answer.status_code < 300
        delivery.attempts += 1
        delivery.last_attempt_at = timezone.now()
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            sent_at=delivery.last_attempt_at,
            duration_ms=answer.duration_ms,
            status_code=answer.status_code,
            response=answer.text,
            error=answer.error,
        )
        delivery.last_status_code = answer.status_code
        delivery.last_response = answer.text
        delivery.last_error = answer.error
        if accepted:
            delivery.state, delivery.delivered_at = WebhookDelivery.State.DELIVERED, delivery.last_attempt_at
        elif delivery.attempts >= WEBHOOK_MAX_ATTEMPTS:
            delivery.state = WebhookDelivery.State.FAILED
        delivery.save(
            update_fields=[
                "attempts",
                "last_attempt_at",
                "last_status_code",
                "last_response",
                "last_error",
                "state",
                "delivered_at",
            ]
        )
    outcome = answer.error or f"HTTP {answer.status_code}"
    if accepted:
        logger.info("Webhook delivery %s delivered to %s (%s)", delivery.pk, endpoint.url, outcome)
        return delivery
    logger.warning(
        "Webhook delivery %s to %s: attempt %d of %d failed (%s)",
        delivery.pk,
        endpoint.url,
        delivery.attempts,
        WEBHOOK_MAX_ATTEMPTS,
        outcome,
    )
    if delivery.state == WebhookDelivery.State.FAILED:
        return delivery
    raise WebhookDeliveryFailed(f"delivery {delivery.pk}, attempt {delivery.attempts}: {outcome}")


def _refusal(delivery: WebhookDelivery, endpoint: WebhookEndpoint) -> str:
    """Why a recorded delivery must not be sent now (empty: send it)."""
    if not endpoint.active:
        return "the endpoint was deactivated before this delivery was sent"
    prepared_for = delivery.payload.get("clearance") if isinstance(delivery.payload, dict) else None
    cleared = markings_up_to(endpoint.clearance)
    if prepared_for not in cleared:
        return "the endpoint's clearance was lowered after this delivery was prepared"
    named = delivery.references
    if named and Provision.objects.filter(reference__in=named).exclude(marking__in=cleared).exists():
        return "a provision it names was marked above the endpoint's clearance after it was prepared"
    return webhook_url_problem(endpoint.url)


def webhooks_resend_pending(*, limit: int = WEBHOOK_RESEND_BATCH) -> int:
    """Queue again the pending deliveries no task is working on (their task never reached the
    broker, or was lost), oldest first; returns how many. Sending twice is harmless: a delivered
    delivery is never sent again."""
    now = timezone.now()
    lost = (
        WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING)
        .filter(
            Q(last_attempt_at__isnull=True, created_at__lt=now - WEBHOOK_UNSENT_AFTER)
            | Q(last_attempt_at__lt=now - WEBHOOK_RETRY_LOST_AFTER)
        )
        # Not again while an earlier resend may still wait in a backed-up queue: each copy would
        # spend an attempt at once, without the backoff.
        .filter(Q(resent_at__isnull=True) | Q(resent_at__lt=now - WEBHOOK_RESEND_AGAIN_AFTER))
        .order_by("created_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    delivery_ids = list(lost)
    WebhookDelivery.objects.filter(pk__in=delivery_ids).update(resent_at=now)
    for delivery_id in delivery_ids:
        webhooks_queue([delivery_id])
    return len(delivery_ids)


def webhooks_queue(delivery_ids: list[int]) -> None:
    """Queue a task per delivery. The first broker error stops the loop (robust on_commit logs it):
    the rest would fail alike, and the periodic resend sends them all once the broker is back."""
    for delivery_id in delivery_ids:
        try:
            task_queue(DELIVER_WEBHOOK, delivery_id)
        except Retry:
            # Only without a broker (tasks in process, their errors propagated): the failed attempt
            # is recorded, but its retry cannot be scheduled in process. The resend job sends it again.
            logger.warning("Webhook delivery %s left pending for resend_pending_webhooks", delivery_id)
