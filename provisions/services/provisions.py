"""Edits to a provision, its positions, coverage and consultations.

Each write: checks the editor may edit the provision (provisions.permissions), locks the row,
refuses a write based on a stale version, validates, saves with a reason in the audit trail,
bumps the version, and asks for a gap scan of what it touched, in one transaction.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from provisions.models import (
    Capability,
    Consultation,
    Coverage,
    Extent,
    Party,
    Position,
    Provision,
    Territory,
)
from provisions.permissions import Reader, can_edit_provision, ensure
from provisions.services.scans import scan_request
from provisions.services.status import StaleVersion

EDITABLE_FIELDS = ("title", "text", "target_date", "review_date", "marking")


@contextmanager
def _editing(provision: Provision, *, by: Reader, expected_version: int | None) -> Iterator[Provision]:
    """Lock the provision for an edit by `by`, refusing a stale version; bump the version after."""
    with transaction.atomic():
        locked = Provision.objects.select_for_update().get(pk=provision.pk)
        ensure(can_edit_provision(by, locked), f"you may not edit {locked.reference}")
        if expected_version is not None and locked.version != expected_version:
            raise StaleVersion(reference=locked.reference, expected=expected_version, actual=locked.version)
        yield locked
        locked.version += 1
        Provision.objects.filter(pk=locked.pk).update(version=locked.version)
    provision.version = locked.version


def _audited_save(instance: Any, *, by: Reader, reason: str, **save_options: Any) -> None:
    instance._history_user = by.user
    instance._change_reason = reason.strip() or None
    instance.save(**save_options)


def provision_update(
    *, provision: Provision, by: Reader, expected_version: int | None, reason: str = "", **changes: Any
) -> Provision:
    """Change a provision's editable fields (not its status: see provision_transition)."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({name: "this field cannot be edited here" for name in sorted(unknown)})
    with _editing(provision, by=by, expected_version=expected_version) as locked:
        changed = [name for name, value in changes.items() if getattr(locked, name) != value]
        for name in changed:
            setattr(locked, name, changes[name])
        if "marking" in changed:
            ensure(can_edit_provision(by, locked), "you may not mark a provision above your clearance")
        locked.full_clean(exclude=["domain", "status", "precedents", "territories"])
        if changed:
            _audited_save(locked, by=by, reason=reason, update_fields=[*changed, "updated_at"])
    for name in changed:
        setattr(provision, name, getattr(locked, name))
    return provision


def position_set(
    *,
    provision: Provision,
    party: Party,
    stance: str,
    firmness: str,
    note: str = "",
    by: Reader,
    expected_version: int | None,
    reason: str = "",
) -> Position:
    """Record a party's stance on a provision (each change kept in the position's history)."""
    if party.partnership_id != provision.domain.partnership_id:
        raise ValidationError({"party": f"{party.code} is not a party to this partnership"})
    with _editing(provision, by=by, expected_version=expected_version) as locked:
        position = Position.objects.filter(provision=locked, party=party).first() or Position(
            provision=locked, party=party
        )
        position.stance, position.firmness, position.note = stance, firmness, note.strip()
        position.full_clean(exclude=["provision", "party"])
        _audited_save(position, by=by, reason=reason)
        scan_request(provision_ids=[locked.pk])
    return position


def coverage_set(
    *,
    provision: Provision,
    capability: Capability,
    extent: str | None,
    by: Reader,
    expected_version: int | None,
    reason: str = "",
) -> Coverage | None:
    """Make the provision cover the capability fully or partially, or (extent None) not at all."""
    if extent is not None and extent not in Extent.values:
        raise ValidationError({"extent": f"expected one of {', '.join(Extent.values)}, got {extent!r}"})
    with _editing(provision, by=by, expected_version=expected_version) as locked:
        link = Coverage.objects.filter(provision=locked, capability=capability).first()
        if extent is None:
            if link is not None:
                link._history_user = by.user  # type: ignore[attr-defined]
                link._change_reason = reason.strip() or None  # type: ignore[attr-defined]
                link.delete()
            link = None
        else:
            link = link or Coverage(provision=locked, capability=capability)
            link.extent = extent
            _audited_save(link, by=by, reason=reason)
        scan_request(provision_ids=[locked.pk], capability_ids=[capability.pk])
    return link


def consultation_refusal(provision: Provision, territory: Territory) -> str | None:
    """Why a consultation of `territory` on `provision` cannot be recorded (None: it can)."""
    if not provision.territories.filter(pk=territory.pk).exists():
        return f"{provision.reference} does not extend to {territory.name}"
    if not territory.is_stakeholder:
        return (
            f"{territory.name} is not consulted: Devolved Administrations, Crown Dependencies and "
            "Overseas Territories are"
        )
    return None


def consultation_record(
    *,
    provision: Provision,
    territory: Territory,
    consulted_on: datetime.date,
    outcome: str,
    note: str = "",
    by: Reader,
    expected_version: int | None,
) -> Consultation:
    """Record that a stakeholder the provision extends to was consulted on it."""
    with _editing(provision, by=by, expected_version=expected_version) as locked:
        problem = consultation_refusal(locked, territory)
        if problem:
            raise ValidationError({"territory": problem})
        consultation = Consultation(
            provision=locked,
            territory=territory,
            consulted_on=consulted_on,
            outcome=outcome,
            note=note.strip(),
            recorded_by=by.user,
        )
        consultation.full_clean(exclude=["provision", "territory", "recorded_by"])
        _audited_save(consultation, by=by, reason="")
    return consultation
