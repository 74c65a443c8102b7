"""Status moves: the one place the lifecycle of DESIGN.md is enforced."""

from __future__ import annotations

import datetime

from django.utils import timezone

from provisions.models import MoveRefusal, Provision, Status, StatusChange
from provisions.permissions import Reader
from provisions.services.editing import audited_save, provision_editing
from provisions.services.scans import scan_request
from provisions.services.watch import notify_status_change
from provisions.services.webhooks import events_record_status_change


class TransitionRefused(Exception):
    """A status move the lifecycle does not allow; the message says which move and why."""

    def __init__(self, *, reference: str, current: str | None, target: str, reason: str) -> None:
        self.reference, self.current, self.target, self.reason = reference, current, target, reason
        # Which rule refused it (provisions.models.MoveRefusal): a repeated move is `already_in_status`.
        self.code: str = getattr(reason, "code", "transition_refused")
        move = f"{current} → {target}" if current else f"→ {target}"
        super().__init__(f"{reference}: {move} refused: {reason}")


def provision_transition(
    *,
    provision: Provision,
    to: str,
    note: str = "",
    by: Reader,
    on: datetime.date | None = None,
    source: str = "web",
    expected_version: int | None = None,
) -> StatusChange:
    """Move a provision to status `to`, writing its status change in the same transaction.

    The provision row is locked, so concurrent moves are serialised and each accepted move
    leaves exactly one status change. Asks for a gap scan of the provision once committed.
    """
    on = on or timezone.localdate()
    with provision_editing(provision, by=by, expected_version=expected_version, verb="move") as locked:
        reason = Status.move_refusal(locked.status, to, note)
        if reason is None:
            latest = (
                locked.status_changes.order_by("-changed_on", "-id")
                .values_list("changed_on", flat=True)
                .first()
            )
            if latest is not None and on < latest:
                reason = MoveRefusal(
                    f"it would be dated {on}, before the latest recorded change ({latest})",
                    "dated_before_history",
                )
        if reason is not None:
            raise TransitionRefused(
                reference=locked.reference, current=locked.status, target=to, reason=reason
            )
        change = StatusChange.objects.create(
            provision=locked,
            from_status=locked.status,
            to_status=to,
            changed_on=on,
            changed_by=by.user,
            note=note.strip(),
            source=source,
        )
        locked.status = to
        audited_save(
            locked,
            by=by,
            reason=note.strip() or f"moved to {Status(to).label.lower()}",
            update_fields=["status"],
        )
        events_record_status_change(change=change)
        notify_status_change(change)
        scan_request(provision_ids=[locked.pk])
    provision.status = locked.status
    return change


def provision_record_first_status(
    *,
    provision: Provision,
    on: datetime.date | None = None,
    note: str = "",
    by: Reader,
    source: str = "web",
) -> StatusChange:
    """The status change that brings a new provision into existence (its status from nothing)."""
    reason = Status.move_refusal(None, provision.status, note)
    if reason is None and provision.status_changes.exists():
        reason = MoveRefusal("it already has a status history", "history_exists")
    if reason is not None:
        raise TransitionRefused(
            reference=provision.reference, current=None, target=provision.status, reason=reason
        )
    return StatusChange.objects.create(
        provision=provision,
        from_status="",
        to_status=provision.status,
        changed_on=on or timezone.localdate(),
        changed_by=by.user,
        note=note.strip(),
        source=source,
    )
