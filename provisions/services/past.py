"""Answers about a past day, kept until a write reaches back to it.

The record as it stood on a past day changes only when a write reaches back to it: a move made today
cannot change what stood in June. Every write to what the rules read is counted on the earliest day it
can change (`RecordRevision`: a row dated on a day counts from that day, anything else from the
start), and an answer about day D is kept under the sum of the counts on or before D. The sum is read
before the answer is worked out and only grows, so the first write that reaches back to D makes every
answer kept about D unreachable, whichever order transactions commit in.

Writes are counted by model signals (every save and delete of a model the rules read, in the write's
own transaction); the few bulk writes that send none (an import) call `record_written` themselves.
A title, text, expiry, lapse date, criticality or fallback column holds today's value once the row's
history has its base row (provisions.services.dated): an edit today then moves no past day's record,
and neither does writing the base row, which holds what every day already had.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, models, transaction
from django.db.models import F, Sum
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from simple_history.models import HistoricalChanges

from provisions.models import (
    ApiToken,
    Capability,
    CapabilityChange,
    Coverage,
    CoverageSnapshot,
    Digest,
    Discussion,
    Event,
    ExportJob,
    Follow,
    Gap,
    GapScan,
    IdempotentRequest,
    Notification,
    Position,
    Provision,
    ProvisionChange,
    RecordRevision,
    ScanRequest,
    StatusChange,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

T = TypeVar("T")

_FROM_THE_START = datetime.date.min

# Rows whose day is the first they can change, when they are written new (edited, any of them may
# have moved from an earlier day: counted from the start).
_DATED: dict[type[models.Model], str] = {
    StatusChange: "changed_on",
    Position: "taken_on",
    ProvisionChange: "at",
    CapabilityChange: "at",
    Discussion: "on",
    Coverage: "valid_from",
}
# Columns that hold only today's state, which no answer about a past day reads (the status column
# mirrors the latest status change; a past day's status comes from the changes).
_TODAYS_COLUMNS: dict[type[models.Model], frozenset[str]] = {
    Provision: frozenset({"status", "version", "updated_at"}),
    Capability: frozenset({"coverage_state", "updated_at"}),
}
# Rows whose columns of dated values (its change model's DATED) hold only today's value once their
# history has a base row: (the change model, its subject field).
_HISTORIES: dict[type[models.Model], tuple[type[ProvisionChange] | type[CapabilityChange], str]] = {
    Provision: (ProvisionChange, "provision"),
    Capability: (CapabilityChange, "capability"),
}
_UNCHANGED: ContextVar[bool] = ContextVar("record_unchanged", default=False)
# What the scans, the feed and the integrations record: nothing the record of a past day is made of.
_NOT_THE_RECORD: frozenset[type[models.Model]] = frozenset(
    {
        Gap,
        GapScan,
        ScanRequest,
        CoverageSnapshot,
        Event,
        WebhookEndpoint,
        WebhookDelivery,
        WebhookAttempt,
        ApiToken,
        ExportJob,
        IdempotentRequest,
        Follow,
        Notification,
        Digest,
        RecordRevision,
    }
)


def record_written(on: datetime.date | None = None) -> None:
    """Count a write that changes the record from the day `on` (None: from the start). A write that
    reaches no further back than today changes no past day, and is not counted."""
    day = on or _FROM_THE_START
    if day >= timezone.localdate():
        return
    with transaction.atomic():
        if RecordRevision.objects.filter(day=day).update(revision=F("revision") + 1):
            return
        try:
            with transaction.atomic():
                # A random start: a database made afresh does not repeat the sums of the one before.
                RecordRevision.objects.create(day=day, revision=secrets.randbits(40))
        except IntegrityError:  # another write made the row meanwhile
            RecordRevision.objects.filter(day=day).update(revision=F("revision") + 1)


def revision_on(day: datetime.date) -> int:
    """The count of writes that reach back to the day (one query)."""
    return RecordRevision.objects.filter(day__lte=day).aggregate(total=Sum("revision"))["total"] or 0


def kept_for_past_day(name: str, day: datetime.date, parts: Iterable[str], work_out: Callable[[], T]) -> T:
    """`work_out()`, kept for a past day until a write reaches back to it (worked out every time for
    today or a later day). `parts`: whatever else the answer depends on, such as the reader's markings."""
    today = timezone.localdate()
    if day >= today:
        return work_out()
    key = f"past:{name}:{day.isoformat()}:{today.isoformat()}:{revision_on(day)}:{':'.join(parts)}"
    kept = cache.get(key)
    if kept is not None:
        return kept
    answer = work_out()
    cache.set(key, answer, timeout=settings.PAST_ANSWERS_KEPT_SECONDS)
    return answer


@contextlib.contextmanager
def record_unchanged() -> Iterator[None]:
    """Writes in the block change no day's record (a history's base row, written with the values its
    columns held): not counted."""
    token = _UNCHANGED.set(True)
    try:
        yield
    finally:
        _UNCHANGED.reset(token)


def _todays_values_only(sender: Any, instance: Any, update_fields: Any) -> bool:
    """The save writes only columns that no answer about a past day reads."""
    if update_fields is None:
        return False
    columns, todays = set(update_fields), _TODAYS_COLUMNS.get(sender, frozenset())
    if columns <= todays:
        return True
    if sender not in _HISTORIES:
        return False
    history, subject = _HISTORIES[sender]
    return columns <= todays | set(history.DATED) and (
        history.objects.filter(**{f"{subject}_id": instance.pk, "at__isnull": True}).exists()
    )


@functools.cache  # every save in the project asks, with one of a few dozen senders
def _the_record(sender: Any) -> bool:
    return (
        isinstance(sender, type)
        and issubclass(sender, models.Model)
        and sender._meta.app_label == "provisions"
        and sender not in _NOT_THE_RECORD
        and not issubclass(sender, HistoricalChanges)
    )


@receiver(post_save, dispatch_uid="past.saved")
def _saved(sender: Any, instance: Any, created: bool, update_fields: Any = None, **kwargs: Any) -> None:
    if not _the_record(sender) or _UNCHANGED.get():
        return
    if created and sender in _DATED:
        record_written(getattr(instance, _DATED[sender]))
    elif not _todays_values_only(sender, instance, update_fields):
        record_written()


@receiver(post_delete, dispatch_uid="past.deleted")
def _deleted(sender: Any, **kwargs: Any) -> None:
    if _the_record(sender):
        record_written()


@receiver(m2m_changed, dispatch_uid="past.linked")
def _linked(sender: Any, action: str, **kwargs: Any) -> None:
    if action.startswith("post_") and _the_record(sender):
        record_written()
