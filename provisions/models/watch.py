"""The watch list: what a user follows (domains, provisions, capabilities), what happened to it
(notifications, each on one provision or capability, shown only to a reader cleared for it), and
the daily digests sent by email."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from provisions.models.partnership import Domain
from provisions.models.provisions import Capability, MarkingsReader, Provision

OPTIONAL = {"on_delete": models.CASCADE, "null": True, "blank": True, "related_name": "+"}
_ONE_SUBJECT = (
    Q(domain__isnull=False, provision__isnull=True, capability__isnull=True)
    | Q(domain__isnull=True, provision__isnull=False, capability__isnull=True)
    | Q(domain__isnull=True, provision__isnull=True, capability__isnull=False)
)


class Follow(models.Model):
    """A user follows one domain, provision or capability."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="follows")
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    provision = models.ForeignKey(
        Provision, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    capability = models.ForeignKey(
        Capability, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=_ONE_SUBJECT, name="follow_one_subject"),
            models.UniqueConstraint(fields=["user", "domain"], name="follow_domain_once"),
            models.UniqueConstraint(fields=["user", "provision"], name="follow_provision_once"),
            models.UniqueConstraint(fields=["user", "capability"], name="follow_capability_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user} follows {self.domain or self.provision or self.capability}"


class NotificationQuerySet(models.QuerySet["Notification"]):
    def visible_to(self, reader: MarkingsReader) -> NotificationQuerySet:
        """A notification on a provision only while the reader may see the provision (it may have
        been marked higher since)."""
        return self.filter(Q(provision__isnull=True) | Q(provision__marking__in=reader.markings))

    def unread(self) -> NotificationQuerySet:
        return self.filter(read_at__isnull=True)


class Notification(models.Model):
    """Something that happened to what a user follows: a status move, a position, a gap opened,
    escalated or resolved (an expiry coming opens an `expiring` gap)."""

    class Kind(models.TextChoices):
        STATUS_CHANGED = "status_changed", "Status changed"
        POSITION = "position", "Position recorded"
        GAP_OPENED = "gap_opened", "Gap opened"
        GAP_ESCALATED = "gap_escalated", "Gap escalated"
        GAP_RESOLVED = "gap_resolved", "Gap resolved"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    provision = models.ForeignKey(
        Provision, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    capability = models.ForeignKey(
        Capability, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at"], name="notification_unread")]
        constraints = [
            models.CheckConstraint(
                condition=Q(provision__isnull=False) | Q(capability__isnull=False),
                name="notification_has_subject",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.text}"


class Digest(models.Model):
    """A daily email of a user's notifications: at most one a day."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    sent_on = models.DateField()
    notifications = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "sent_on"], name="digest_once_a_day")]

    def __str__(self) -> str:
        return f"Digest for {self.user} on {self.sent_on}"
