"""Recording events: every change is an `Event` row of the events feed and a delivery for each webhook
endpoint subscribed to it and cleared for its subject, written in the transaction that caused it (an
outbox), the deliveries queued once it commits."""

from __future__ import annotations

import base64
import datetime
import functools
import json
import logging
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone
from rest_framework.utils import encoders

from provisions.models import (
    Event,
    Gap,
    Marking,
    Provision,
    StatusChange,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from provisions.permissions import Reader
from provisions.redaction import GapRowsForReaders, Redaction, row_references
from provisions.services.escalations import Escalation
from provisions.services.webhooks.delivery import webhooks_queue

# --- recording events ---------------------------------------------------------------------------------------

logger = logging.getLogger(__name__)
# The key of an Event's `data` and `references` when every clearance is shown the same.
EVERY_CLEARANCE = "*"


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


def events_record(*, occurrences: Sequence[WebhookOccurrence]) -> list[Event]:
    """Record each occurrence in the events feed, with its data as each clearance may see it, and a
    delivery for each active endpoint subscribed to its event and cleared for its subject (sent on
    commit). Called inside the transaction that caused the events: they commit (or not) with it."""
    if not occurrences:
        return []
    transaction_id = _transaction_id()
    events: list[Event] = []
    shown_by_event: list[dict[str, EventData | None]] = []
    readers = {clearance: Reader.cleared(clearance) for clearance in Marking.values}
    for occurrence in occurrences:
        shown: dict[str, EventData | None] = {}
        for clearance, reader in readers.items():
            seen = occurrence.marking is None or reader.sees(occurrence.marking)
            shown[clearance] = occurrence.data_for(reader) if seen else None
        events.append(
            Event(
                transaction_id=transaction_id,
                event=occurrence.event.value,
                event_id=str(uuid.uuid4()),  # the same in the feed and for every endpoint told of it
                occurred_at=occurrence.occurred_at,
                marking=occurrence.marking or "",
                references=_by_clearance(
                    {clearance: sorted(data.references) if data else [] for clearance, data in shown.items()}
                ),
                data=_plain_json(
                    _by_clearance(
                        {clearance: data.data if data else None for clearance, data in shown.items()}
                    )
                ),
            )
        )
        shown_by_event.append(shown)
    Event.objects.bulk_create(events, batch_size=1000)
    _deliveries_record(events, shown_by_event)
    return events


def _by_clearance(values: dict[str, Any]) -> dict[str, Any]:
    """{clearance: value}, or {EVERY_CLEARANCE: value} when every clearance has the same (most events:
    a third of the storage)."""
    first, *others = values.values()
    return {EVERY_CLEARANCE: first} if all(other == first for other in others) else values


def for_clearance(values: dict[str, Any] | None, clearance: str, default: Any = None) -> Any:
    """What an Event's `data` or `references` hold for this clearance."""
    values = values or {}
    return values[EVERY_CLEARANCE] if EVERY_CLEARANCE in values else values.get(clearance, default)


def event_payload(event: Event, clearance: str) -> dict[str, Any] | None:
    """The event as sent to an endpoint, or listed to a reader, of this clearance (None: nothing
    for them): the same JSON in the feed and in webhooks."""
    data = for_clearance(event.data, clearance)
    if data is None:
        return None
    return {
        "event": event.event,
        "id": event.event_id,
        "occurred_at": _plain_json(event.occurred_at),
        "clearance": clearance,
        "data": data,
    }


def _deliveries_record(
    events: Sequence[Event], shown_by_event: Sequence[dict[str, EventData | None]]
) -> None:
    wanted = {event.event for event in events}
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(active=True).order_by("id")
        if wanted.intersection(endpoint.events or ())
    ]
    if not endpoints:
        return
    now = timezone.now()
    deliveries = [
        WebhookDelivery(
            endpoint=endpoint,
            event=event.event,
            payload=payload,
            references=list(shown[endpoint.clearance].references),  # type: ignore[union-attr]
            created_at=now,
            next_attempt_at=now,
        )
        for event, shown in zip(events, shown_by_event, strict=True)
        for endpoint in endpoints
        if event.event in endpoint.events
        and (payload := event_payload(event, endpoint.clearance)) is not None
    ]
    if not deliveries:
        return
    WebhookDelivery.objects.bulk_create(deliveries, batch_size=1000)
    ids = [delivery.pk for delivery in deliveries]
    if None in ids:  # a database that returns no ids from a bulk insert
        raise RuntimeError("bulk_create returned no ids for webhook deliveries")
    transaction.on_commit(lambda: webhooks_queue(ids), robust=True)


def _transaction_id() -> int:
    """The writing transaction's id on PostgreSQL (the feed's order: see Event); 0 elsewhere, where
    writers are serialised and ids commit in order."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()::text::bigint")
        return int(cursor.fetchone()[0])


def _plain_json(value: Any) -> Any:
    """Dates and times as ISO 8601 strings, as the API writes them (to the microsecond): what is
    stored is exactly what is sent, and a gap in an event reads as `GET /api/v1/gaps/{id}/` does."""
    return json.loads(json.dumps(value, cls=encoders.JSONEncoder))


def events_record_status_change(*, change: StatusChange) -> list[Event]:
    """`provision.status_changed` for a recorded move; readers and endpoints cleared below the
    provision's marking are not told of it."""
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
    return events_record(occurrences=[occurrence])


def events_record_provision_changed(
    *, provisions: Collection[Provision], marked_before: Mapping[int, str] | None = None
) -> list[Event]:
    """`provision.changed` for provisions created or changed (any write that moves their version):
    which one, at which version; a reader fetches `GET /api/v1/provisions/{reference}/` for the rest.

    A provision now marked above clearances that saw it before (`marked_before`: its marking before
    the write) is `provision.withdrawn` for them: a copy kept below its marking drops it."""
    occurrences = [
        WebhookOccurrence(
            event=WebhookEvent.PROVISION_CHANGED,
            occurred_at=provision.updated_at or timezone.now(),
            marking=provision.marking,
            data_for=functools.partial(_provision_changed_data, provision),
        )
        for provision in provisions
    ]
    occurrences += [
        WebhookOccurrence(
            event=WebhookEvent.PROVISION_WITHDRAWN,
            occurred_at=provision.updated_at or timezone.now(),
            marking=None,  # decided per clearance: those that saw it and no longer do
            data_for=functools.partial(_withdrawn_data, provision, before),
        )
        for provision in provisions
        if (before := (marked_before or {}).get(provision.pk, provision.marking)) != provision.marking
    ]
    return events_record(occurrences=occurrences)


def _withdrawn_data(provision: Provision, marked_before: str, reader: Reader) -> EventData | None:
    if not reader.sees(marked_before) or reader.sees(provision.marking):
        return None
    # No references: the feed leaves out events naming provisions above the reader, as this one now is.
    return EventData({"reference": provision.reference, "updated_at": provision.updated_at}, ())


def _provision_changed_data(provision: Provision, reader: Reader) -> EventData:
    data = {
        "reference": provision.reference,
        "version": provision.version,
        "updated_at": provision.updated_at,
        "marking": provision.marking,
    }
    return EventData(data, (provision.reference,))


def events_record_gap_changes(
    *,
    opened: Collection[Gap] = (),
    updated: Collection[Gap] = (),
    resolved: Collection[Gap] = (),
    escalated: Sequence[Escalation] = (),
    as_of: datetime.date,
) -> list[Event]:
    """`gap.opened`, `gap.updated`, `gap.escalated` and `gap.resolved` for what one scan reconciled
    (or an acknowledgement changed), in that order, each with the gap as it now is.

    An escalation (provisions.services.scans.gap_escalations) is told as the gap now open with
    `escalated_from`, instead of `gap.updated` for a gap still open. A provision gap is told only to
    readers cleared for the provision; a capability gap to all, provisions above their clearance
    withheld from its covering provisions and explanation.
    """
    escalated_ids = {gap.pk for gap, _ in escalated}
    updated = [gap for gap in updated if gap.pk not in escalated_ids]
    changed = [*opened, *updated, *resolved, *(gap for gap, _ in escalated)]
    if not changed:
        return []
    loaded = {
        gap.pk: gap
        for gap in Gap.objects.filter(id__id_in={gap.pk for gap in changed}).select_related(
            "capability__domain", "provision__domain", "acknowledged_by"
        )
    }
    rows = GapRowsForReaders(loaded.values(), today=as_of)
    redactions: dict[tuple[str, ...], Redaction] = {}

    def gap_data(
        reader: Reader, *, pk: int, escalated_from: dict[str, Any] | None = None
    ) -> EventData | None:
        if reader.markings not in redactions:  # once per clearance, not per gap
            redactions[reader.markings] = rows.redaction_for(reader)
        row = rows.row(pk, redactions[reader.markings])
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
            occurred_at=(gap.resolved_at if event == WebhookEvent.GAP_RESOLVED else None)
            or (gap.opened_at if event == WebhookEvent.GAP_OPENED else None)
            or now,
            marking=marking_of(gap),
            data_for=functools.partial(gap_data, pk=gap.pk),
        )
        for event, gaps in (
            (WebhookEvent.GAP_OPENED, opened),
            (WebhookEvent.GAP_UPDATED, updated),
            (WebhookEvent.GAP_RESOLVED, resolved),
        )
        for gap in gaps
    ]
    occurrences += [
        WebhookOccurrence(
            event=WebhookEvent.GAP_ESCALATED,
            occurred_at=now,
            marking=marking_of(gap),
            data_for=functools.partial(gap_data, pk=gap.pk, escalated_from=previous),
        )
        for gap, previous in escalated
    ]
    return events_record(occurrences=occurrences)


# --- reading the feed ---------------------------------------------------------------------------------------


class CursorInvalid(ValueError):
    """A cursor this feed did not give."""


class CursorExpired(ValueError):
    """A cursor whose event is no longer kept: events after it may have been forgotten too."""


def events_purge() -> int:
    """Forget the events recorded more than EVENTS_KEPT_DAYS ago (beat, daily); returns how many.
    A cursor at one of them is expired: its reader copies the lists again and starts afresh."""
    since = timezone.now() - datetime.timedelta(days=settings.EVENTS_KEPT_DAYS)
    deleted, _ = Event.objects.filter(occurred_at__lt=since).delete()
    return deleted


@dataclass(frozen=True)
class FeedPage:
    events: list[dict[str, Any]]
    cursor: str | None  # where the next read starts: after the last event read (given back if none)
    has_more: bool


def _cursor(transaction_id: int, event_id: int) -> str:
    return base64.urlsafe_b64encode(f"{transaction_id}.{event_id}".encode()).decode().rstrip("=")


def _position(cursor: str) -> tuple[int, int]:
    try:
        transaction_id, event_id = (
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(".")
        )
        return int(transaction_id), int(event_id)
    except (ValueError, UnicodeDecodeError):
        raise CursorInvalid(
            "not a cursor this feed gave: start without one, or pass `cursor` as given"
        ) from None


# PostgreSQL: written by a transaction older than any still running, or by the reader's own.
_SETTLED = (
    '"provisions_event"."transaction_id" < pg_snapshot_xmin(pg_current_snapshot())::text::bigint'
    ' OR "provisions_event"."transaction_id" = pg_current_xact_id_if_assigned()::text::bigint'
)


def events_feed(*, reader: Reader, after: str | None, limit: int) -> FeedPage:
    """The events after `after` (from the start without it), oldest first, at most `limit`, as the
    reader's clearance may see them: events about a provision above it, or naming one now marked
    above it, are left out (the cursor still moves past them).

    On PostgreSQL only events of transactions older than every transaction still running are read
    (and the reader's own): one committing later can only come after what is read now (see Event).
    """
    transaction_id, event_id = _position(after) if after else (-1, 0)
    if after and not Event.objects.filter(pk=event_id, transaction_id=transaction_id).exists():
        raise CursorExpired(
            f"events are kept {settings.EVENTS_KEPT_DAYS} days and this cursor's are gone: copy the lists"
            " again (their `updated_since` cannot tell of what was deleted) and read the feed from its start"
        )
    rows = Event.objects.filter(
        Q(transaction_id__gt=transaction_id) | Q(transaction_id=transaction_id, id__gt=event_id)
    ).order_by("transaction_id", "id")
    if connection.vendor == "postgresql":
        settled = RawSQL(_SETTLED, [], output_field=BooleanField())  # noqa: S611 (a constant, no input)
        rows = rows.alias(settled=settled).filter(settled=True)
    read = list(rows[: limit + 1])
    has_more, read = len(read) > limit, read[:limit]
    cursor = _cursor(read[-1].transaction_id, read[-1].pk) if read else after
    if not reader.markings:  # cleared for nothing: nothing to show, the cursor moves on all the same
        return FeedPage(events=[], cursor=cursor, has_more=has_more)
    clearance = reader.markings[-1]
    named = {reference for event in read for reference in for_clearance(event.references, clearance, ())}
    hidden = set(
        Provision.objects.filter(reference__in=named)
        .exclude(marking__in=reader.markings)
        .values_list("reference", flat=True)
    )
    events = [
        payload
        for event in read
        if not hidden.intersection(for_clearance(event.references, clearance, ()))
        and (payload := event_payload(event, clearance)) is not None
    ]
    return FeedPage(events=events, cursor=cursor, has_more=has_more)
