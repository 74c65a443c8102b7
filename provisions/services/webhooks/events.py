"""Recording webhook events: one delivery per event and endpoint subscribed to it and cleared for
its subject, written in the transaction that caused it (an outbox), queued once it commits."""

from __future__ import annotations

import datetime
import functools
import json
import logging
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from provisions.models import (
    Gap,
    StatusChange,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from provisions.permissions import Reader
from provisions.redaction import Redaction, gap_rows, row_references
from provisions.services.escalations import Escalation
from provisions.services.webhooks.delivery import webhooks_queue

# --- recording events ---------------------------------------------------------------------------------------

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventData:
    """An event's data as one clearance may see it, and the provision references it names (checked
    again before it is sent: a provision may be marked higher in between)."""

    data: dict[str, Any]
    references: tuple[str, ...]


@dataclass(frozen=True)
class WebhookOccurrence:
    """One event to tell endpoints of.

    `marking` is the subject provision's marking: endpoints cleared below it get nothing (None: a
    subject without a marking, such as a capability). `data_for` builds the event's data for an
    endpoint's clearance, as a reader (None: nothing to send at that clearance).
    """

    event: WebhookEvent
    occurred_at: datetime.datetime
    marking: str | None
    data_for: Callable[[Reader], EventData | None]


def webhooks_enqueue(*, occurrences: Sequence[WebhookOccurrence]) -> list[WebhookDelivery]:
    """Record a delivery for each occurrence and each active endpoint subscribed to its event and
    cleared for its subject, with data built for that endpoint's clearance; send them on commit.

    Called inside the transaction that caused the events, so the rows commit (or not) with it.
    """
    if not occurrences:
        return []
    wanted = {occurrence.event.value for occurrence in occurrences}
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(active=True).order_by("id")
        if wanted.intersection(endpoint.events or ())
    ]
    if not endpoints:
        return []
    deliveries: list[WebhookDelivery] = []
    now = timezone.now()
    for occurrence in occurrences:
        built: dict[str, EventData | None] = {}  # by clearance
        event_id = str(uuid.uuid4())  # the same for every endpoint told of this occurrence
        for endpoint in endpoints:
            if occurrence.event.value not in endpoint.events:
                continue
            reader = Reader.cleared(endpoint.clearance)
            if occurrence.marking is not None and not reader.sees(occurrence.marking):
                continue
            if endpoint.clearance not in built:
                built[endpoint.clearance] = occurrence.data_for(reader)
            shown = built[endpoint.clearance]
            if shown is None:
                continue
            payload = {
                "event": occurrence.event.value,
                "id": event_id,
                "occurred_at": occurrence.occurred_at,
                "clearance": endpoint.clearance,
                "data": shown.data,
            }
            deliveries.append(
                WebhookDelivery(
                    endpoint=endpoint,
                    event=occurrence.event.value,
                    payload=_plain_json(payload),
                    references=list(shown.references),
                    created_at=now,
                    next_attempt_at=now,
                )
            )
    if not deliveries:
        return []
    WebhookDelivery.objects.bulk_create(deliveries, batch_size=1000)
    ids = [delivery.pk for delivery in deliveries]
    if None in ids:  # a database that returns no ids from a bulk insert
        raise RuntimeError("bulk_create returned no ids for webhook deliveries")
    transaction.on_commit(lambda: webhooks_queue(ids), robust=True)
    return deliveries


def _plain_json(value: Any) -> Any:
    """Dates and times as ISO 8601 strings: what is stored is exactly what is sent."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def webhooks_enqueue_status_change(*, change: StatusChange) -> list[WebhookDelivery]:
    """`provision.status_changed` for a recorded move; endpoints cleared below the provision's
    marking are not told of it."""
    provision = change.provision
    data = {
        "reference": provision.reference,
        "title": provision.title,
        "domain": provision.domain.code,
        "marking": provision.marking,
        "from": change.from_status or None,
        "to": change.to_status,
        "changed_on": change.changed_on,
        "note": change.note,
        "by": change.changed_by.get_username() if change.changed_by else None,
        "source": change.source,
    }
    occurrence = WebhookOccurrence(
        event=WebhookEvent.PROVISION_STATUS_CHANGED,
        occurred_at=change.recorded_at,
        marking=provision.marking,
        data_for=lambda reader: EventData(data, (provision.reference,)),
    )
    return webhooks_enqueue(occurrences=[occurrence])


def webhooks_enqueue_gap_changes(
    *,
    opened: Collection[Gap],
    resolved: Collection[Gap],
    escalated: Sequence[Escalation],
    as_of: datetime.date,
) -> list[WebhookDelivery]:
    """`gap.opened`, `gap.resolved` and `gap.escalated` for what one scan reconciled.

    Every opened and resolved gap is told as such; an escalation (provisions.services.scans.
    gap_escalations) as the gap now open with `escalated_from`.
    A provision gap goes only to endpoints cleared for the provision; a capability gap goes to all,
    provisions above an endpoint's clearance withheld from its covering provisions and explanation.
    """
    if not (opened or resolved or escalated):
        return []
    subscribed = _subscribed_events()
    escalations = escalated if WebhookEvent.GAP_ESCALATED in subscribed else []
    opened = opened if WebhookEvent.GAP_OPENED in subscribed else ()
    resolved = resolved if WebhookEvent.GAP_RESOLVED in subscribed else ()
    changed = [*opened, *resolved, *(gap for gap, _ in escalations)]
    if not changed:
        return []
    loaded = {
        gap.pk: gap
        for gap in Gap.objects.filter(pk__in={gap.pk for gap in changed}).select_related(
            "capability__domain", "provision__domain", "acknowledged_by"
        )
    }
    shown: dict[tuple[str, ...], dict[int, dict[str, Any]]] = {}

    def gap_data(
        reader: Reader, *, pk: int, escalated_from: dict[str, Any] | None = None
    ) -> EventData | None:
        if reader.markings not in shown:  # once per clearance, not per gap and endpoint
            kept = gap_rows(loaded.values(), Redaction.for_reader(reader), today=as_of)
            shown[reader.markings] = {row["id"]: row for row in kept}
        row = shown[reader.markings].get(pk)
        if row is None:
            return None
        data = row if escalated_from is None else {**row, "escalated_from": escalated_from}
        return EventData(data, row_references(row))

    def marking_of(gap: Gap) -> str | None:
        provision = loaded[gap.pk].provision
        return provision.marking if provision is not None else None

    now = timezone.now()
    occurrences = [
        WebhookOccurrence(
            event=event,
            occurred_at=(gap.resolved_at if event == WebhookEvent.GAP_RESOLVED else gap.opened_at) or now,
            marking=marking_of(gap),
            data_for=functools.partial(gap_data, pk=gap.pk),
        )
        for event, gaps in ((WebhookEvent.GAP_OPENED, opened), (WebhookEvent.GAP_RESOLVED, resolved))
        for gap in gaps
    ]
    occurrences += [
        WebhookOccurrence(
            event=WebhookEvent.GAP_ESCALATED,
            occurred_at=now,
            marking=marking_of(gap),
            data_for=functools.partial(gap_data, pk=gap.pk, escalated_from=previous),
        )
        for gap, previous in escalations
    ]
    return webhooks_enqueue(occurrences=occurrences)


def _subscribed_events() -> set[str]:
    """The events some active endpoint subscribes to (one query; endpoints are few)."""
    return {
        event
        for events in WebhookEndpoint.objects.filter(active=True).values_list("events", flat=True)
        for event in events or ()
    }
