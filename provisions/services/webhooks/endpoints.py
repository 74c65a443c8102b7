"""Registering webhook endpoints: administrators only, never cleared above themselves, and only at
addresses that may receive webhooks (provisions.services.webhooks.transport). Each endpoint has its
own secret, made here and rotated here; a failed delivery can be sent again."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from provisions.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from provisions.permissions import Reader, can_administer, ensure
from provisions.services.webhooks.delivery import (
    WEBHOOK_PREVIOUS_SECRET_LASTS,
    webhook_secret_new,
    webhooks_queue,
)
from provisions.services.webhooks.transport import webhook_url_problem


def _ensure_administers(endpoint: WebhookEndpoint, by: Reader) -> None:
    ensure(can_administer(by), "only administrators manage webhook endpoints")
    ensure(by.sees(endpoint.clearance), "an endpoint cannot be cleared above the one managing it")


def webhook_endpoint_save(*, endpoint: WebhookEndpoint, by: Reader) -> WebhookEndpoint:
    """Register an endpoint (with a new secret) or change one; ValidationError names what is wrong
    (nothing is saved)."""
    _ensure_administers(endpoint, by)
    problems: dict[str, str] = {}
    unknown = sorted(set(endpoint.events or ()) - set(WebhookEvent.values))
    if unknown or not endpoint.events:
        problems["events"] = f"choose events among {', '.join(WebhookEvent.values)}" + (
            f" (unknown: {', '.join(unknown)})" if unknown else ""
        )
    problem = webhook_url_problem(endpoint.url)
    if problem:
        problems["url"] = problem[0].upper() + problem[1:] + "."
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        if endpoint.pk is None:
            endpoint.created_by = by.user
            endpoint.secret = endpoint.secret or webhook_secret_new()
        endpoint.full_clean()
        endpoint.save()
    return endpoint


def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint, by: Reader) -> WebhookEndpoint:
    """Give the endpoint a new secret. Deliveries are signed with the old one too for
    WEBHOOK_PREVIOUS_SECRET_LASTS (a second `v1,` signature), so the receiver can switch when it is
    ready; rotating again ends the older secret at once."""
    _ensure_administers(endpoint, by)
    with transaction.atomic():
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = timezone.now() + WEBHOOK_PREVIOUS_SECRET_LASTS
        endpoint.secret = webhook_secret_new()
        endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    return endpoint


def webhook_redeliver(*, delivery: WebhookDelivery, by: Reader) -> WebhookDelivery:
    """Send a delivery again, as a new delivery of the same event (the same `webhook-id`, so a
    receiver that had it can tell), on the whole retry schedule; queued once this commits.
    The clearance checks run again when it is sent."""
    _ensure_administers(delivery.endpoint, by)
    if not delivery.endpoint.active:
        raise ValidationError("The endpoint is inactive: activate it before sending anything again.")
    now = timezone.now()
    with transaction.atomic():
        again = WebhookDelivery.objects.create(
            endpoint=delivery.endpoint,
            event=delivery.event,
            payload=delivery.payload,
            references=delivery.references,
            created_at=now,
            next_attempt_at=now,
        )
        transaction.on_commit(lambda: webhooks_queue([again.pk]), robust=True)
    return again
