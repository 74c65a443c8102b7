"""Sending webhook deliveries as Standard Webhooks (https://www.standardwebhooks.com): signed, each
attempt recorded, retried on a schedule over about a day that the database keeps, whatever the
broker: the periodic job (`webhooks_send_due`) queues what is due, and what a lost task left."""

from __future__ import annotations

import base64
import datetime
import json
import logging
import secrets

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from standardwebhooks import Webhook

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

# After a failed attempt, the next one waits this long: a receiver down for a deploy, or for a night,
# still gets every event. The first attempt and these retries: 8 in all, over about 28 hours.
WEBHOOK_RETRY_SCHEDULE = (
    datetime.timedelta(seconds=5),
    datetime.timedelta(minutes=5),
    datetime.timedelta(minutes=30),
    datetime.timedelta(hours=2),
    datetime.timedelta(hours=5),
    datetime.timedelta(hours=10),
    datetime.timedelta(hours=10),
)
WEBHOOK_MAX_ATTEMPTS = len(WEBHOOK_RETRY_SCHEDULE) + 1
# A task queued this long ago whose delivery is still due was lost (the broker was down when it was
# queued, or lost it): the periodic job queues it again.
WEBHOOK_QUEUED_LOST_AFTER = datetime.timedelta(minutes=2)
WEBHOOK_SEND_BATCH = 500
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks form of a secret, not a secret)
# After a rotation, deliveries are signed with the old secret too for this long.
WEBHOOK_PREVIOUS_SECRET_LASTS = datetime.timedelta(hours=24)

_USER_AGENT = "security-partnership-tracker-webhooks/2"

logger = logging.getLogger(__name__)


# --- signing ------------------------------------------------------------------------------------------------


def webhook_secret_new() -> str:
    """A new endpoint secret: `whsec_` and 32 random bytes in base64, as Standard Webhooks writes one."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_signatures(
    endpoint: WebhookEndpoint, *, message_id: str, sent_at: datetime.datetime, body: bytes
) -> str:
    """The `webhook-signature` header: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with the
    endpoint's secret, and with its previous one while that still lasts (a rotation), space-separated."""
    keys = [endpoint.secret]
    if endpoint.previous_secret and (endpoint.previous_secret_expires_at or sent_at) > sent_at:
        keys.append(endpoint.previous_secret)
    return " ".join(Webhook(key).sign(message_id, sent_at, body) for key in keys)


def webhook_headers(
    delivery: WebhookDelivery, endpoint: WebhookEndpoint, *, body: bytes, sent_at: datetime.datetime
) -> dict[str, str]:
    """What a delivery is sent with. `webhook-id` is the event's id, the same for every attempt and
    redelivery (receivers de-duplicate on it) and signed with the body and the timestamp."""
    message_id = str(delivery.payload["id"])
    return {
        "Content-Type": "application/json",
        "User-Agent": _USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": webhook_signatures(endpoint, message_id=message_id, sent_at=sent_at, body=body),
        "X-Tracker-Event": delivery.event,
    }


def webhook_deliver(*, delivery_id: int) -> WebhookDelivery | None:
    """POST one pending delivery that is due, signed with the endpoint's secret, and record the attempt.

    A delivered or failed delivery is never sent again, nor one whose next attempt is not due yet (a
    second task for it). An attempt the receiver does not accept schedules the next one
    (WEBHOOK_RETRY_SCHEDULE), until the last, which marks it failed. The row stays locked while
    sending, so two tasks for one delivery never both send; None when there is nothing to do (gone,
    or another worker is sending it).
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
        if delivery.next_attempt_at is not None and delivery.next_attempt_at > timezone.now():
            return delivery
        endpoint = delivery.endpoint
        refusal = _refusal(delivery, endpoint)
        if refusal:
            delivery.state, delivery.last_error = WebhookDelivery.State.FAILED, refusal
            delivery.next_attempt_at = None
            delivery.save(update_fields=["state", "last_error", "next_attempt_at"])
            logger.warning("Webhook delivery %s not sent: %s", delivery.pk, refusal)
            return delivery
        body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
        sent_at = timezone.now()
        answer = http_post(
            endpoint.url, body=body, headers=webhook_headers(delivery, endpoint, body=body, sent_at=sent_at)
        )
        accepted = answer.status_code is not None and 200 <= answer.status_code < 300
        delivery.attempts += 1
        delivery.last_attempt_at = sent_at
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
            delivery.next_attempt_at = None
        elif delivery.attempts >= WEBHOOK_MAX_ATTEMPTS:
            delivery.state, delivery.next_attempt_at = WebhookDelivery.State.FAILED, None
        else:
            delivery.next_attempt_at = sent_at + WEBHOOK_RETRY_SCHEDULE[delivery.attempts - 1]
        delivery.save(
            update_fields=[
                "attempts",
                "last_attempt_at",
                "last_status_code",
                "last_response",
                "last_error",
                "state",
                "delivered_at",
                "next_attempt_at",
            ]
        )
    outcome = answer.error or f"HTTP {answer.status_code}"
    if accepted:
        logger.info("Webhook delivery %s delivered to %s (%s)", delivery.pk, endpoint.url, outcome)
        return delivery
    logger.warning(
        "Webhook delivery %s to %s: attempt %d of %d failed (%s); %s",
        delivery.pk,
        endpoint.url,
        delivery.attempts,
        WEBHOOK_MAX_ATTEMPTS,
        outcome,
        f"next at {delivery.next_attempt_at:%Y-%m-%d %H:%M:%S}" if delivery.next_attempt_at else "given up",
    )
    return delivery


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


def webhooks_send_due(*, limit: int = WEBHOOK_SEND_BATCH) -> int:
    """Queue the pending deliveries whose next attempt is due and that no task is working on: not
    queued since their last attempt scheduled them, or queued so long ago that the task was lost.
    Oldest due first; returns how many. Beat runs it every few seconds (in process too, without a
    broker: partnership/periodic.py). Queuing twice is harmless: a task sends only what is due."""
    now = timezone.now()
    due = (
        WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING, next_attempt_at__lte=now)
        .filter(
            Q(queued_at__isnull=True)
            | Q(queued_at__lt=F("next_attempt_at"))
            | Q(queued_at__lt=now - WEBHOOK_QUEUED_LOST_AFTER)
        )
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    delivery_ids = list(due)
    webhooks_queue(delivery_ids)
    return len(delivery_ids)


def webhooks_queue(delivery_ids: list[int]) -> None:
    """Queue a task per delivery, noting when. The first broker error stops the loop (robust
    on_commit logs it): the rest would fail alike, and the periodic job queues them all again once
    the broker is back."""
    if not delivery_ids:
        return
    WebhookDelivery.objects.filter(pk__in=delivery_ids).update(queued_at=timezone.now())
    for delivery_id in delivery_ids:
        task_queue(DELIVER_WEBHOOK, delivery_id)
