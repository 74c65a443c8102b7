"""A provision's audit trail: every recorded change to it, its positions, its coverage and its
consultations, with who, when, why and the fields that changed (django-simple-history's tables)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from provisions.models import Consultation, Coverage, Position, Provision

_ACTIONS = {"+": "created", "~": "changed", "-": "deleted"}
_IGNORED = {
    "id",
    "history_id",
    "history_date",
    "history_change_reason",
    "history_type",
    "history_user",
    "history_user_id",
    "version",
    "updated_at",
}


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class AuditEntry:
    at: datetime.datetime
    by: str | None
    reason: str | None
    action: str
    record: str
    changes: list[FieldChange]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _entries(records: Iterable[Any], fields: list[str], describe: Any) -> list[AuditEntry]:
    """Diff each historical record against the previous one of the same object (in Python: the
    records are read in one query, oldest first)."""
    previous: dict[Any, Any] = {}
    entries = []
    for record in records:
        before = previous.get(record.id)
        changes = [
            FieldChange(name, _text(getattr(before, name)) if before else None, _text(getattr(record, name)))
            for name in fields
            if before is None or getattr(before, name) != getattr(record, name)
        ]
        if record.history_type == "-":
            changes = []
        previous[record.id] = record
        if record.history_type == "~" and not changes:
            continue  # a save that changed nothing we show (the version, say)
        entries.append(
            AuditEntry(
                at=record.history_date,
                by=record.history_user.get_username() if record.history_user else None,
                reason=record.history_change_reason,
                action=_ACTIONS[record.history_type],
                record=describe(record),
                changes=changes,
            )
        )
    return entries


def _fields(model: type[Any]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields if field.attname not in _IGNORED]


def provision_audit_trail(provision: Provision) -> list[AuditEntry]:
    """Oldest first. Four queries, whatever the length of the history."""
    provision_records = provision.history.select_related("history_user").order_by(
        "history_date", "history_id"
    )
    position_records = (
        Position.history.filter(provision_id=provision.pk)
        .select_related("history_user", "party")
        .order_by("history_date", "history_id")
    )
    coverage_records = (
        Coverage.history.filter(provision_id=provision.pk)
        .select_related("history_user", "capability")
        .order_by("history_date", "history_id")
    )
    consultation_records = (
        Consultation.history.filter(provision_id=provision.pk)
        .select_related("history_user", "territory")
        .order_by("history_date", "history_id")
    )
    entries = [
        *_entries(
            provision_records, [f for f in _fields(Provision) if f != "created_at"], lambda r: "provision"
        ),
        *_entries(position_records, ["stance", "firmness", "note"], lambda r: f"position of {r.party.code}"),
        *_entries(coverage_records, ["extent"], lambda r: f"coverage of {r.capability.code}"),
        *_entries(
            consultation_records,
            ["consulted_on", "outcome", "note"],
            lambda r: f"consultation of {r.territory.name}",
        ),
    ]
    return sorted(entries, key=lambda entry: entry.at)
