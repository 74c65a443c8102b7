"""Editing a provision: the one place a provision is locked for a write, a stale version refused and
the version bumped (every write to a provision or a row of it goes through `provision_editing`),
and where a write records who made it and why in the audit trail."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from provisions.models import Provision
from provisions.permissions import Reader, can_edit_provision, ensure
from provisions.services.webhooks import events_record_provision_changed


class StaleVersion(Exception):
    """The write was based on an older version of the provision than the one stored."""

    def __init__(self, *, reference: str, expected: int, actual: int) -> None:
        self.reference, self.expected, self.actual = reference, expected, actual
        super().__init__(
            f"{reference} has changed since you loaded it (you had version {expected}, it is now {actual})"
        )


def provision_lock(*, provision_id: int, expected_version: int | None) -> Provision:
    """The provision, locked until the transaction ends; StaleVersion if it is not at the version
    the write was based on (None: the caller checked it already, or writes whatever it is)."""
    locked = Provision.objects.select_for_update().get(pk=provision_id)
    _refuse_stale(locked, expected_version)
    return locked


def _refuse_stale(locked: Provision, expected_version: int | None) -> None:
    if expected_version is not None and locked.version != expected_version:
        raise StaleVersion(reference=locked.reference, expected=expected_version, actual=locked.version)


# Inside provision_edits_batched: the provisions locked so far, bumped once when the batch ends.
# Each with its marking when first locked (raised above a reader's clearance: `provision.withdrawn`).
_batch: ContextVar[dict[int, tuple[Provision, str]] | None] = ContextVar(
    "provision_edits_batch", default=None
)


@contextmanager
def provision_editing(
    provision: Provision, *, by: Reader, expected_version: int | None, verb: str = "edit"
) -> Iterator[Provision]:
    """Lock the provision for a write by `by` (who must be allowed to edit it), refusing a stale
    version; once the write is done, bump its version and `updated_at`: any write based on the
    version before is now stale. The caller's `provision` gets the new version."""
    batch = _batch.get()
    with transaction.atomic():
        locked, marked = batch.get(provision.pk, (None, "")) if batch is not None else (None, "")
        if locked is None:
            locked = provision_lock(provision_id=provision.pk, expected_version=None)
            marked = locked.marking
        # Who may not write is told so before whether they are stale (which would say it changed).
        ensure(can_edit_provision(by, locked), f"you may not {verb} {locked.reference}")
        _refuse_stale(locked, expected_version)
        yield locked
        if batch is not None:
            batch[locked.pk] = (locked, marked)
            return
        _bump(locked, marked_before=marked)
    provision.version, provision.updated_at = locked.version, locked.updated_at


def _bump(locked: Provision, *, marked_before: str) -> None:
    """The write is done: a new version, and a `provision.changed` event for the feed and webhooks
    (and `provision.withdrawn` for readers it was marked above)."""
    now = timezone.now()
    Provision.objects.filter(pk=locked.pk).update(version=F("version") + 1, updated_at=now)
    locked.version, locked.updated_at = locked.version + 1, now
    events_record_provision_changed(provisions=[locked], marked_before={locked.pk: marked_before})


def bump_provisions(ids: Collection[int]) -> None:
    """Provisions the system changed (a dated value taking effect on its day): a new version each
    (a write based on the one before is stale) and their `provision.changed` events."""
    if not ids:
        return
    Provision.objects.filter(pk__in=list(ids)).update(version=F("version") + 1, updated_at=timezone.now())
    events_record_provision_changed(
        provisions=list(Provision.objects.filter(pk__in=list(ids)).order_by("pk"))
    )


@contextmanager
def provision_edits_batched() -> Iterator[None]:
    """Writes inside the block are one edit of each provision they touch: locked once and bumped
    once when the block ends (an admin page saving a provision and several of its rows)."""
    if _batch.get() is not None:  # already batching: the outer block bumps
        yield
        return
    touched: dict[int, tuple[Provision, str]] = {}
    token = _batch.set(touched)
    try:
        with transaction.atomic():
            yield
            for locked, marked in touched.values():
                _bump(locked, marked_before=marked)
    finally:
        _batch.reset(token)


def audited_save(instance: Any, *, by: Reader, reason: str = "", **save_options: Any) -> None:
    """Save with who and why recorded in the row's history (django-simple-history)."""
    instance._history_user = by.user
    instance._change_reason = reason.strip() or None
    instance.save(**save_options)


def audited_delete(instance: Any, *, by: Reader, reason: str = "") -> None:
    """Delete with who and why recorded in the row's history."""
    instance._history_user = by.user
    instance._change_reason = reason.strip() or None
    instance.delete()
