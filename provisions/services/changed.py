"""What moves when reference data changes: its `updated_at` (the API's `updated_since` filters) and,
for capabilities and aims, a thin `capability.changed`, `capability.deleted` or `aim.changed` event
for the events feed and webhooks (a reader fetches the resource for the rest). A provision's
counterpart is provisions.services.editing._bump.

Called by every write of reference data, inside its transaction: the admin's
(provisions.services.reference_data), the partnership file's import and the dated values that take
effect on their day (provisions.services.dated)."""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from django.db import models
from django.utils import timezone

from provisions.models import Aim, Capability, Domain, Event, WebhookEvent
from provisions.services.webhooks.events import EventData, WebhookOccurrence, events_record


def rows_changed(model: type[models.Model], ids: Iterable[int]) -> None:
    """Rows of a reference model (with `updated_at`) whose representation moved, now."""
    model._default_manager.filter(pk__in=list(ids)).update(updated_at=timezone.now())


def _same_for_every_reader(data: Mapping[str, Any], reader: object) -> EventData:
    return EventData(dict(data), ())


def _thin_events(event: WebhookEvent, items: Iterable[Mapping[str, Any]]) -> list[Event]:
    now = timezone.now()
    return events_record(
        occurrences=[
            WebhookOccurrence(
                event=event,
                occurred_at=now,
                marking=None,  # reference data: every reader sees it
                data_for=functools.partial(_same_for_every_reader, data),
            )
            for data in items
        ]
    )


def capabilities_changed(ids: Collection[int]) -> list[Event]:
    """Capabilities created or changed (a name, a dated value, the domain it belongs to...):
    `updated_at` now and a `capability.changed` event each."""
    if not ids:
        return []
    rows_changed(Capability, ids)
    changed = Capability.objects.filter(pk__in=list(ids)).order_by("code").values("code", "updated_at")
    return _thin_events(WebhookEvent.CAPABILITY_CHANGED, changed)


def capabilities_deleted(codes: Collection[str]) -> list[Event]:
    """A `capability.deleted` event for each capability deleted."""
    return _thin_events(WebhookEvent.CAPABILITY_DELETED, ({"code": code} for code in sorted(codes)))


def aims_changed(ids: Collection[int]) -> list[Event]:
    """Aims created or changed (text, source, the capabilities serving them): `updated_at` now and
    an `aim.changed` event each."""
    if not ids:
        return []
    rows_changed(Aim, ids)
    changed = Aim.objects.filter(pk__in=list(ids)).order_by("code").values("code", "updated_at")
    return _thin_events(WebhookEvent.AIM_CHANGED, changed)


def domains_changed(ids: Collection[int], *, code_changed: bool = False) -> None:
    """Domains whose representation moved (its pillar's name and partnership's code are in it);
    when a code changed, the capabilities naming the domain changed too."""
    rows_changed(Domain, ids)
    if code_changed:
        named = Capability.objects.filter(domain_id__in=list(ids)).values_list("pk", flat=True)
        capabilities_changed(list(named))
