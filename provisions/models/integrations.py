"""What other systems hold: API tokens and webhook endpoints, with their deliveries and attempts."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from provisions.models.vocabulary import (
    Marking,
    WebhookEvent,
    choice_check,
)


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))


class ApiToken(models.Model):
    """A bearer token for another system, acting as its user. Only a hash of the key is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for (the system using it).")
    prefix = models.CharField(
        max_length=12, editable=False, help_text="The key's first characters, to tell it."
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    clearance = models.CharField(
        max_length=32,
        choices=Marking.choices,
        blank=True,
        help_text="Lower than the user's to restrict the token; blank: the user's clearance.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects: ClassVar[ApiTokenQuerySet] = ApiTokenQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(clearance="") | Q(clearance__in=Marking.values), name="api_token_clearance_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class WebhookEndpoint(models.Model):
    """A receiver another system registered: told of the events it subscribes to, up to its clearance."""

    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text="Event names, e.g. provision.status_changed.")
    # Kept in clear: it signs each delivery (Standard Webhooks, HMAC-SHA256), so it cannot be stored
    # as a hash. `whsec_` and the base64 of the key's bytes.
    secret = models.CharField(max_length=128, editable=False)
    # The secret before the last rotation: deliveries carry a signature with each until it expires,
    # so a receiver can change its secret without refusing anything in between.
    previous_secret = models.CharField(max_length=128, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    clearance = models.CharField(max_length=32, choices=Marking.choices, default=Marking.OFFICIAL)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True, help_text="Any change, a rotated secret included.")

    class Meta:
        ordering = ["id"]
        constraints = [choice_check("clearance", Marking, "webhook_endpoint_clearance_valid")]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint, with every attempt's outcome."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64, choices=WebhookEvent.choices)
    payload = models.JSONField()
    # The provision references the payload names: checked again before it is sent (one of them may
    # have been marked above the endpoint's clearance in between).
    references = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_response = models.TextField(blank=True, help_text="The start of the receiver's answer.")
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # When it is to be tried (next): on the retry schedule, whatever the broker; None once it is not
    # pending. The periodic job queues what is due.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a task for it was last queued (queued again only if it was lost).
    queued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # The periodic job reads the pending deliveries that are due.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=Q(state="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.endpoint_id} ({self.state})"


class WebhookAttempt(models.Model):
    """One try at sending a delivery: when, how long it took, and what the receiver answered."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    sent_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response = models.TextField(blank=True, help_text="The start of the receiver's answer.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_number_unique")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"


class Event(models.Model):
    """One recorded change, in the transaction that made it, as the events feed lists it and as
    webhooks tell it (`GET /api/v1/events/`: provisions.services.webhooks.events).

    `data` holds the event's data as each clearance may see it ({marking: data, or null where that
    clearance sees nothing; {"*": data} when all see the same}); `references` the provisions that
    data names (keyed alike),
    checked again when it is read (one may be marked higher since). The feed reads in
    (`transaction_id`, `id`) order: on PostgreSQL `transaction_id` is the writing transaction's id
    and the feed lists only events of transactions older than any still running, so an event
    committed late is never behind a reader's cursor.
    """

    id = models.BigAutoField(primary_key=True)
    transaction_id = models.BigIntegerField(default=0)
    event = models.CharField(max_length=64, choices=WebhookEvent.choices)
    event_id = models.CharField(max_length=64, help_text="The event's id: `id` in its payload, `webhook-id`.")
    occurred_at = models.DateTimeField()
    marking = models.CharField(max_length=32, blank=True, help_text="The subject provision's marking.")
    references = models.JSONField(default=dict, blank=True)
    data = models.JSONField()

    class Meta:
        ordering = ["transaction_id", "id"]
        indexes = [models.Index(fields=["transaction_id", "id"], name="event_feed_order")]

    def __str__(self) -> str:
        return f"{self.event} {self.event_id}"


class IdempotentRequest(models.Model):
    """A POST sent with an `Idempotency-Key`, and the answer it got: the same key and request again
    within a day get that answer again (provisions/api/idempotency.py)."""

    caller = models.CharField(max_length=64, help_text="A hash of the credentials it came with.")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64, help_text="A hash of the method, path and body.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Empty while it runs.")
    content_type = models.CharField(max_length=100, blank=True)
    body = models.TextField(blank=True)
    etag = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["caller", "key"], name="idempotency_key_unique")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_key_age")]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code or 'running'})"
