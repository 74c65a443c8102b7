"""Dated values (valid time): recording a change of a capability's lapse date, criticality or
fallback, or of a provision's title, text or expiry, effective on a day; recording a discussion;
and keeping each subject's columns at today's value.

The columns of a capability or provision hold today's values (every read of today uses them); its
`changes` hold the base value (`at` empty) and the dated changes, from its first dated change on.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from provisions.models import Capability, CapabilityChange, Discussion, Provision, ProvisionChange, fold
from provisions.permissions import Reader
from provisions.services.changed import capabilities_changed
from provisions.services.editing import audited_save, bump_provisions, provision_editing
from provisions.services.past import record_unchanged
from provisions.services.scans import scan_request

CAPABILITY_DATED = CapabilityChange.DATED
PROVISION_DATED = ProvisionChange.DATED


def effective_date_problem(
    *, on: datetime.date, today: datetime.date, exists_from: datetime.date | None, reason: str
) -> str:
    """Why an edit cannot take effect on `on` (empty: it can): never in the future, never before
    the subject existed, and an earlier day than today needs a reason."""
    if on > today:
        return f"an edit cannot take effect in the future ({on}, today is {today})"
    if exists_from is not None and on < exists_from:
        return f"{on} is before the provision existed (from {exists_from})"
    if on < today and not reason.strip():
        return "an edit that takes effect before today needs a reason"
    return ""


def provision_exists_from(provision: Provision) -> datetime.date | None:
    """The day the provision came into existence: its first status change."""
    first = provision.status_changes.order_by("changed_on", "id").values_list("changed_on", flat=True).first()
    return first


def _base(model: Any, subject: str, instance: Any, fields: tuple[str, ...]) -> Any:
    """The subject's base row, made from its columns the first time it gets a dated change."""
    base = model.objects.filter(**{subject: instance, "at__isnull": True}).first()
    if base is None:
        base = model(**{subject: instance}, at=None)
        _set(base, {name: getattr(instance, name) for name in fields})
        with record_unchanged():  # the values every day already had: no past day's record moves
            base.save()
    return base


def _set(change: Any, values: dict[str, Any]) -> None:
    """Write values on a change row, with the flags that say which it sets."""
    for name, value in values.items():
        if name in ("lapses_on", "expires_on", "fallback", "text"):
            setattr(change, f"sets_{name}", True)
        setattr(change, name, "" if value is None and name in ("fallback", "text") else value)


def _apply_today(instance: Any, rows: list[Any], fields: tuple[str, ...], today: datetime.date) -> list[str]:
    """Set the columns to the values on `today`; the names of those that changed."""
    values = fold(rows, {}, today)
    changed = [name for name in fields if name in values and getattr(instance, name) != values[name]]
    for name in changed:
        setattr(instance, name, values[name])
    return changed


def capability_change_record(
    *, capability: Capability, by: Reader, on: datetime.date, note: str = "", **values: Any
) -> CapabilityChange:
    """A change of the capability's lapse date, criticality or fallback, effective on `on` (the
    administrator's edit: today unless given an earlier day with a note); its gaps are rescanned."""
    unknown = set(values) - set(CAPABILITY_DATED)
    if unknown:
        raise ValidationError({name: "not a dated value of a capability" for name in sorted(unknown)})
    problem = effective_date_problem(on=on, today=timezone.localdate(), exists_from=None, reason=note)
    if problem:
        raise ValidationError({"at": problem})
    with transaction.atomic():
        locked = Capability.objects.select_for_update().get(pk=capability.pk)
        _base(CapabilityChange, "capability", locked, CAPABILITY_DATED)
        change = CapabilityChange(capability=locked, at=on, note=note.strip(), recorded_by=by.user)
        _set(change, values)
        change.full_clean(exclude=["capability", "recorded_by"])
        audited_save(change, by=by, reason=note)
        if not dated_values_refresh(capability_ids=[locked.pk], rescan=False):
            capabilities_changed([locked.pk])  # the record changed even where today's values did not
        covering = locked.coverage.values_list("provision_id", flat=True)
        scan_request(capability_ids=[locked.pk], provision_ids=list(covering))
    capability.refresh_from_db()
    return change


def provision_change_record(
    *,
    provision: Provision,
    by: Reader,
    expected_version: int | None,
    on: datetime.date,
    reason: str = "",
    **values: Any,
) -> ProvisionChange:
    """A change of the provision's title, text or expiry, effective on `on`: today, or an earlier
    day with a reason (never in the future, never before the provision existed)."""
    unknown = set(values) - set(PROVISION_DATED)
    if unknown:
        raise ValidationError({name: "not a dated value of a provision" for name in sorted(unknown)})
    with provision_editing(provision, by=by, expected_version=expected_version) as locked:
        provision_dated_change(locked, by=by, on=on, reason=reason, values=values)
    for name in PROVISION_DATED:
        setattr(provision, name, getattr(locked, name))
    return locked.changes.order_by("-id").first()  # type: ignore[return-value]


def provision_dated_change(
    locked: Provision,
    *,
    by: Reader,
    on: datetime.date,
    reason: str,
    values: dict[str, Any],
    save: bool = True,
) -> list[str]:
    """Inside provision_editing: record the change, effective on `on`, and set the columns to today's
    values (saved, unless the caller saves them with its own); its gaps are rescanned (an expiry
    decides whether it secures). Returns the columns that changed."""
    problem = effective_date_problem(
        on=on, today=timezone.localdate(), exists_from=provision_exists_from(locked), reason=reason
    )
    if problem:
        raise ValidationError({"effective_on": problem})
    if "title" in values and not str(values["title"]).strip():
        raise ValidationError({"title": "This field cannot be blank."})
    _base(ProvisionChange, "provision", locked, PROVISION_DATED)
    change = ProvisionChange(provision=locked, at=on, note=reason.strip(), recorded_by=by.user)
    _set(change, values)
    change.full_clean(exclude=["provision", "recorded_by"])
    audited_save(change, by=by, reason=reason)
    changed = _apply_today(locked, list(locked.changes.all()), PROVISION_DATED, timezone.localdate())
    if changed and save:
        audited_save(locked, by=by, reason=reason, update_fields=[*changed, "updated_at"])
    scan_request(provision_ids=[locked.pk])
    return changed


def discussion_record(
    *, provision: Provision, by: Reader, on: datetime.date, note: str, expected_version: int | None = None
) -> Discussion:
    """Record that the provision was negotiated on `on` without moving (activity for the stall
    rule): never in the future, never before it existed, and always with a note."""
    with provision_editing(provision, by=by, expected_version=expected_version) as locked:
        problem = effective_date_problem(
            on=on,
            today=timezone.localdate(),
            exists_from=provision_exists_from(locked),
            reason="a discussion",
        )
        if problem:
            raise ValidationError({"on": problem})
        if not note.strip():
            raise ValidationError({"note": "say what was discussed (a round, a meeting)"})
        discussion = Discussion(provision=locked, on=on, note=note.strip(), recorded_by=by.user)
        discussion.full_clean(exclude=["provision", "recorded_by"])
        audited_save(discussion, by=by, reason="")
        scan_request(provision_ids=[locked.pk])
    return discussion


def dated_values_refresh(
    *,
    capability_ids: Collection[int] | None = None,
    provision_ids: Collection[int] | None = None,
    today: datetime.date | None = None,
    rescan: bool = True,
) -> int:
    """Set the columns of subjects with dated values to their values today (a change dated in the
    future by an import takes effect the day it is dated: the nightly job runs this). With no ids,
    every subject with dated values. Returns how many subjects changed; their gaps are rescanned
    (unless the caller asks for its own scan), and they are told as changed (`updated_at`, a new
    version of a provision, an event)."""
    today = today or timezone.localdate()
    refreshed_capabilities: list[int] = []
    refreshed_provisions: list[int] = []
    for model, change_model, subject, fields, ids, refreshed in (
        (
            Capability,
            CapabilityChange,
            "capability",
            CAPABILITY_DATED,
            capability_ids,
            refreshed_capabilities,
        ),
        (Provision, ProvisionChange, "provision", PROVISION_DATED, provision_ids, refreshed_provisions),
    ):
        if ids is None and (capability_ids is not None or provision_ids is not None):
            continue
        changes = change_model.objects.order_by(f"{subject}_id", "at", "id")
        if ids is not None:
            changes = changes.filter(**{f"{subject}_id__in": ids})
        by_subject: dict[int, list[Any]] = {}
        for change in changes:
            by_subject.setdefault(getattr(change, f"{subject}_id"), []).append(change)
        for instance in model.objects.filter(pk__in=by_subject):
            rows = sorted(
                by_subject[instance.pk], key=lambda row: (row.at is not None, row.at or today, row.pk)
            )
            changed = _apply_today(instance, rows, fields, today)
            if changed:
                instance.save(update_fields=changed)
                refreshed.append(instance.pk)
    capabilities_changed(refreshed_capabilities)
    bump_provisions(refreshed_provisions)
    if rescan and (refreshed_capabilities or refreshed_provisions):
        scan_request(capability_ids=refreshed_capabilities, provision_ids=refreshed_provisions)
    return len(refreshed_capabilities) + len(refreshed_provisions)
