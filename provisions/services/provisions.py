"""Edits to a provision, its positions, coverage and consultations.

Each write: checks the editor may edit the provision (provisions.permissions), locks the row,
refuses a write based on a stale version, validates, saves with a reason in the audit trail,
bumps the version, and asks for a gap scan of what it touched, in one transaction.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from contextlib import ExitStack
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from provisions.models import (
    Capability,
    Consultation,
    Coverage,
    Domain,
    Extent,
    Marking,
    Party,
    Position,
    Precedent,
    Provision,
    Territory,
)
from provisions.permissions import Reader, can_edit_provision, can_negotiate_in, ensure
from provisions.services.dated import (
    PROVISION_DATED,
    effective_date_problem,
    provision_dated_change,
    provision_exists_from,
)
from provisions.services.editing import audited_delete, audited_save, provision_editing
from provisions.services.scans import scan_request
from provisions.services.status import provision_record_first_status
from provisions.services.watch import notify_position
from provisions.services.webhooks import events_record_provision_changed

EDITABLE_FIELDS = ("title", "text", "expires_on", "target_date", "review_date", "marking", "domain")
LINKED_FIELDS = ("territories", "precedents")  # many-to-many: given as the rows to link


def provision_create(
    *,
    by: Reader,
    reference: str,
    title: str,
    domain: Domain,
    status: str,
    marking: str = Marking.OFFICIAL,
    text: str = "",
    target_date: datetime.date | None = None,
    review_date: datetime.date | None = None,
    expires_on: datetime.date | None = None,
    territories: Iterable[Territory] = (),
    precedents: Iterable[Precedent] = (),
    reason: str = "",
    on: datetime.date | None = None,
    source: str = "web",
) -> Provision:
    """A new provision, with the status change that brings it into existence (dated `on`, today by
    default); refused unless `by` may edit a provision of that domain and marking."""
    provision = Provision(
        reference=reference,
        title=title,
        domain=domain,
        status=status,
        marking=marking,
        text=text,
        target_date=target_date,
        review_date=review_date,
        expires_on=expires_on,
    )
    ensure(can_edit_provision(by, provision), f"you may not add a provision to {domain} marked {marking}")
    with transaction.atomic():
        provision.full_clean(exclude=["precedents", "territories"])
        audited_save(provision, by=by, reason=reason)
        provision.territories.set(territories)
        provision.precedents.set(precedents)
        provision_record_first_status(provision=provision, on=on, by=by, source=source)
        events_record_provision_changed(provisions=[provision])
        scan_request(provision_ids=[provision.pk])
    return provision


def provision_update(
    *,
    provision: Provision,
    by: Reader,
    expected_version: int | None,
    reason: str = "",
    effective_on: datetime.date | None = None,
    **changes: Any,
) -> Provision:
    """Change a provision's editable fields and links (not its status: see provision_transition).

    Its title, text and expiry are dated values: a change of them is recorded effective today, or
    on `effective_on` (an earlier day, with a reason). Moving it to another domain or marking it
    higher needs the right to edit it as it would be. Its gaps are rescanned.
    """
    unknown = set(changes) - set(EDITABLE_FIELDS) - set(LINKED_FIELDS)
    if unknown:
        raise ValidationError({name: "this field cannot be edited here" for name in sorted(unknown)})
    with provision_editing(provision, by=by, expected_version=expected_version) as locked:
        dated = {
            name: changes[name]
            for name in PROVISION_DATED
            if name in changes and getattr(locked, name) != changes[name]
        }
        dated_columns: list[str] = []
        if dated:
            on = effective_on or timezone.localdate()
            dated_columns = provision_dated_change(
                locked, by=by, on=on, reason=reason, values=dated, save=False
            )
        changed = [
            name
            for name in EDITABLE_FIELDS
            if name not in PROVISION_DATED and name in changes and getattr(locked, name) != changes[name]
        ]
        for name in changed:
            setattr(locked, name, changes[name])
        if {"marking", "domain"} & set(changed):
            ensure(
                can_edit_provision(by, locked),
                "you may not mark a provision above your clearance nor move it to a domain you do not "
                "negotiate in",
            )
        locked.full_clean(exclude=["status", "precedents", "territories"])
        relinked = []
        for name in LINKED_FIELDS:
            if name in changes:
                wanted = {row.pk for row in changes[name]}
                manager = getattr(locked, name)
                if wanted != set(manager.values_list("pk", flat=True)):
                    manager.set(wanted)
                    relinked.append(name)
        changed += dated_columns
        if changed or relinked:  # saved after the links, so its history records them
            audited_save(locked, by=by, reason=reason, update_fields=[*changed, "updated_at"])
            scan_request(provision_ids=[locked.pk])
    for name in changed:
        setattr(provision, name, getattr(locked, name))
    return provision


def _effective(locked: Provision, effective_on: datetime.date | None, reason: str) -> datetime.date:
    """The day an edit takes effect: today, or an earlier day given with a reason."""
    today = timezone.localdate()
    on = effective_on or today
    problem = effective_date_problem(
        on=on, today=today, exists_from=provision_exists_from(locked), reason=reason
    )
    if problem:
        raise ValidationError({"effective_on": problem})
    return on


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
    effective_on: datetime.date | None = None,
) -> Position:
    """Record a party's stance on the provision, taken today (or on an earlier day, with a reason):
    a new entry in the party's dated positions, the latest of which is its position."""
    if party.partnership_id != provision.domain.partnership_id:
        raise ValidationError({"party": f"{party.code} is not a party to this partnership"})
    with provision_editing(provision, by=by, expected_version=expected_version) as locked:
        on = _effective(locked, effective_on, reason)
        position = Position(
            provision=locked, party=party, stance=stance, firmness=firmness, note=note.strip(), taken_on=on
        )
        position.full_clean(exclude=["provision", "party"])
        audited_save(position, by=by, reason=reason)
        notify_position(position, actor=by.user)
        scan_request(provision_ids=[locked.pk])
    return position


def position_remove(
    *, provision: Provision, position: Position, by: Reader, expected_version: int | None, reason: str = ""
) -> None:
    """Remove a position recorded by mistake (its history keeps it)."""
    with provision_editing(provision, by=by, expected_version=expected_version) as locked:
        if position.provision_id != locked.pk:
            raise ValidationError({"position": f"not a position on {locked.reference}"})
        audited_delete(position, by=by, reason=reason)
        scan_request(provision_ids=[locked.pk])


def coverage_set(
    *,
    provision: Provision,
    capability: Capability,
    extent: str | None,
    by: Reader,
    expected_version: int | None,
    reason: str = "",
    effective_on: datetime.date | None = None,
) -> Coverage | None:
    """From today (or an earlier day, with a reason) the provision covers the capability fully or
    partially, or (extent None) no longer: the link that counted until then ends that day and a new
    one starts, so the record keeps what counted when. A link started that same day is changed in
    place.

    Coverage decides the capability's gaps, so a negotiator links (and unlinks) only capabilities of
    the domains they negotiate in; a link across domains needs a negotiator of both, or an
    administrator.
    """
    if extent is not None and extent not in Extent.values:
        raise ValidationError({"extent": f"expected one of {', '.join(Extent.values)}, got {extent!r}"})
    with provision_editing(provision, by=by, expected_version=expected_version) as locked:
        ensure(
            can_negotiate_in(by, [capability.domain_id]),
            f"{capability.code} is a capability of a domain you do not negotiate in: only its "
            "negotiators and administrators change what covers it",
        )
        on = _effective(locked, effective_on, reason)
        current = Coverage.objects.filter(
            provision=locked, capability=capability, valid_until__isnull=True
        ).first()
        if current is not None and current.valid_from is not None and current.valid_from > on:
            raise ValidationError(
                {"effective_on": f"the link in force started later, on {current.valid_from}"}
            )
        if current is not None and current.extent == extent:
            link: Coverage | None = current  # nothing to change
        elif current is not None and current.valid_from == on:
            if extent is None:
                audited_delete(current, by=by, reason=reason)
                link = None
            else:
                current.extent = extent
                audited_save(current, by=by, reason=reason)
                link = current
        else:
            if current is not None:
                current.valid_until = on
                audited_save(current, by=by, reason=reason)
            link = None
            if extent is not None:
                link = Coverage(provision=locked, capability=capability, extent=extent, valid_from=on)
                audited_save(link, by=by, reason=reason)
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
    with provision_editing(provision, by=by, expected_version=expected_version) as locked:
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
        audited_save(consultation, by=by, reason="")
    return consultation


def consultation_update(
    *,
    consultation: Consultation,
    by: Reader,
    provision: Provision | None = None,
    territory: Territory | None = None,
    consulted_on: datetime.date | None = None,
    outcome: str | None = None,
    note: str | None = None,
    reason: str = "",
) -> Consultation:
    """Correct a recorded consultation (who recorded it stays as it was), or move it to the
    provision it was really about: both are edited, so both must be the editor's."""
    with ExitStack() as stack:
        locked = stack.enter_context(provision_editing(consultation.provision, by=by, expected_version=None))
        if provision is not None and provision.pk != locked.pk:
            locked = stack.enter_context(provision_editing(provision, by=by, expected_version=None))
            consultation.provision = locked
        if territory is not None or consultation.provision_id != locked.pk or provision is not None:
            territory = territory or consultation.territory
            problem = consultation_refusal(locked, territory)
            if problem:
                raise ValidationError({"territory": problem})
            consultation.territory = territory
        if consulted_on is not None:
            consultation.consulted_on = consulted_on
        if outcome is not None:
            consultation.outcome = outcome
        if note is not None:
            consultation.note = note.strip()
        consultation.full_clean(exclude=["provision", "territory", "recorded_by"])
        audited_save(consultation, by=by, reason=reason)
    return consultation


def consultation_remove(*, consultation: Consultation, by: Reader, reason: str = "") -> None:
    """Remove a consultation recorded by mistake (its history keeps it)."""
    with provision_editing(consultation.provision, by=by, expected_version=None):
        audited_delete(consultation, by=by, reason=reason)
