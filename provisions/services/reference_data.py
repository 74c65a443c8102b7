"""Writes to the partnership's reference data: partnerships and their parties and milestones,
pillars, domains, territories, precedents and capabilities. Administrators only (the partnership
file's import writes them too, as the system). A capability's criticality and lapse date decide
gaps, so changing or deleting one asks for a scan of what it touches. A provision's representation
names its domain, parties, capabilities, precedents and territories by code and its alignment is
over its partnership's parties, so a new code for one of them (or a party added or deleted) is a
new version of the provisions showing it, with their `provision.changed` events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from provisions.models import (
    Capability,
    Coverage,
    Domain,
    Milestone,
    Partnership,
    Party,
    Pillar,
    Precedent,
    Provision,
    Territory,
)
from provisions.permissions import Reader, can_administer, ensure
from provisions.services.changed import (
    capabilities_changed,
    capabilities_deleted,
    domains_changed,
    rows_changed,
)
from provisions.services.dated import CAPABILITY_DATED, capability_change_record
from provisions.services.editing import audited_delete, audited_save, bump_provisions
from provisions.services.scans import scan_request

REFERENCE_MODELS: tuple[type[models.Model], ...] = (
    Partnership,
    Party,
    Milestone,
    Pillar,
    Domain,
    Territory,
    Precedent,
    Capability,
)


def _covering_provisions(capability_ids: list[int]) -> set[int]:
    return set(
        Coverage.objects.filter(capability_id__in=capability_ids).values_list("provision_id", flat=True)
    )


def reference_data_save(*, instance: models.Model, by: Reader, reason: str = "") -> models.Model:
    """Create or change a row of reference data, validated first (ValidationError names the field);
    a capability's gaps and those of the provisions covering it are rescanned. A new lapse date,
    criticality or fallback of an existing capability is a dated change effective today: the record
    as it stood before today keeps the old value."""
    ensure(isinstance(instance, REFERENCE_MODELS), f"{type(instance).__name__} is not reference data")
    ensure(can_administer(by), "only administrators change the partnership's reference data")
    with transaction.atomic():
        instance.full_clean()
        dated = _dated_values_changed(instance) if isinstance(instance, Capability) else {}
        code_changed = _code_changed(instance)
        # A provision's representation names its domain, parties, capabilities, precedents and
        # territories by code, and its alignment is over its partnership's parties.
        added = isinstance(instance, Party) and instance._state.adding
        showing = _provisions_showing([instance], parties_changed=added) if code_changed or added else set()
        audited_save(instance, by=by, reason=reason)
        if isinstance(instance, Capability) and dated:
            capability_change_record(  # moves updated_at and tells of the change
                capability=instance, by=by, on=timezone.localdate(), note=reason, **dated
            )
        elif isinstance(instance, Capability):
            capabilities_changed([instance.pk])
            scan_request(capability_ids=[instance.pk], provision_ids=_covering_provisions([instance.pk]))
        _representations_moved(instance, code_changed=code_changed)
        bump_provisions(showing)
        if code_changed and isinstance(instance, Party):  # gap explanations name opposing parties
            scan_request(provision_ids=showing)
    return instance


def _code_changed(instance: models.Model) -> bool:
    """An existing row's code (or a domain's partnership: whose parties its provisions' alignment
    is over) differs from the stored one."""
    shown = ("code", "partnership_id") if isinstance(instance, Domain) else ("code",)
    if instance.pk is None or not all(hasattr(instance, name) for name in shown):
        return False
    stored = type(instance)._default_manager.filter(pk=instance.pk).values_list(*shown).first()
    return stored is not None and stored != tuple(getattr(instance, name) for name in shown)


def _provisions_showing(rows: Sequence[models.Model], *, parties_changed: bool) -> set[int]:
    """The provisions whose API representation shows these rows of reference data: their domain,
    the parties their positions name (and, when a party is added or deleted, all of them: alignment
    is over every party of the partnership), the capabilities they cover, their precedents and
    territories."""
    shows = models.Q(pk__in=[])
    for row in rows:
        if isinstance(row, Domain):
            shows |= models.Q(domain=row)
        elif isinstance(row, Party) and parties_changed:
            shows |= models.Q(domain__partnership_id=row.partnership_id)
        elif isinstance(row, Party):
            shows |= models.Q(positions__party=row)
        elif isinstance(row, Capability):
            shows |= models.Q(coverage__capability=row)
        elif isinstance(row, Precedent):
            shows |= models.Q(precedents=row)
        elif isinstance(row, Territory):
            shows |= models.Q(territories=row)
    return set(Provision.objects.filter(shows).order_by().values_list("pk", flat=True))


def _representations_moved(instance: models.Model, *, code_changed: bool) -> None:
    """Move `updated_at` of what the API shows this row in: the row itself, or the domains that
    show a pillar's name or a partnership's code."""
    if isinstance(instance, Domain):
        domains_changed([instance.pk], code_changed=code_changed)
    elif isinstance(instance, Territory | Precedent):
        rows_changed(type(instance), [instance.pk])
    elif isinstance(instance, Pillar | Partnership):
        domains_changed(list(instance.domains.values_list("pk", flat=True)))


def _dated_values_changed(capability: Capability) -> dict[str, Any]:
    """The dated values an edit of an existing capability changes; the capability keeps its stored
    ones until the dated change is recorded."""
    stored = Capability.objects.filter(pk=capability.pk).values(*CAPABILITY_DATED).first()
    if stored is None:
        return {}
    changed = {
        name: getattr(capability, name)
        for name in CAPABILITY_DATED
        if getattr(capability, name) != stored[name]
    }
    for name in changed:
        setattr(capability, name, stored[name])
    return changed


def reference_data_delete(*, instances: Any, by: Reader, reason: str = "") -> int:
    """Delete rows of reference data (one model); deleting a capability removes its coverage and
    gaps, and the provisions that covered it are rescanned. Returns how many were deleted."""
    ensure(can_administer(by), "only administrators change the partnership's reference data")
    rows = list(instances)
    ensure(all(isinstance(row, REFERENCE_MODELS) for row in rows), "only reference data is deleted here")
    with transaction.atomic():
        capabilities = [row.pk for row in rows if isinstance(row, Capability)]
        covering = _covering_provisions(capabilities)
        showing = _provisions_showing(rows, parties_changed=True)
        for row in rows:
            audited_delete(row, by=by, reason=reason)
        capabilities_deleted([row.code for row in rows if isinstance(row, Capability)])
        bump_provisions(showing)
        if covering:
            scan_request(provision_ids=covering)
    return len(rows)
