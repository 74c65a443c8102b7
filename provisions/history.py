"""A provision's audit trail: every recorded change to it, its positions, its coverage and its
consultations, with who, when, why and the fields that changed (django-simple-history's tables)."""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from provisions.labels import long_date
from provisions.models import Consultation, Coverage, MarkingsReader, Position, Provision, StatusChange

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
    field: str  # the field's name, as the API gives it
    old: str | None
    new: str | None
    # As a person reads them (the pages): "Target date", "Under negotiation", "Law enforcement".
    label: str = ""
    old_words: str | None = None
    new_words: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    at: datetime.datetime
    by: str | None
    reason: str | None
    action: str
    record: str  # as people read it: "provision", "position of UK", "coverage of SIS-II"
    changes: list[FieldChange]
    # The same as data: the kind of row ("provision", "position", "coverage", "consultation") and
    # the code of what it is about (a party, a capability, a territory; "" for the provision).
    kind: str = ""
    about: str = ""


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class _Words:
    """A field's value in words: a choice's label, a related row's name, a date as pages write it.
    Related rows are read once each (a provision's domain rarely changes)."""

    def __init__(self, model: type[Any]) -> None:
        self.model = model
        self.named: dict[tuple[Any, Any], str] = {}

    def label(self, attname: str) -> str:
        field = self.model._meta.get_field(attname.removesuffix("_id"))
        return str(field.verbose_name).capitalize()

    def value(self, attname: str, value: Any) -> str | None:
        if value is None or value == "":
            return None
        field = self.model._meta.get_field(attname.removesuffix("_id"))
        if field.choices:
            return str(dict(field.flatchoices).get(value, value))
        if field.is_relation:
            key = (field.related_model, value)
            if key not in self.named:
                found = field.related_model._default_manager.filter(pk=value).first()
                self.named[key] = str(getattr(found, "name", found) or value)
            return self.named[key]
        if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
            return long_date(value)
        return str(value)


def _entries(
    records: Iterable[Any], fields: list[str], about: Callable[[Any], tuple[str, str]], model: type[Any]
) -> list[AuditEntry]:
    """Diff each historical record against the previous one of the same object (in Python: the
    records are read in one query, oldest first)."""
    previous: dict[Any, Any] = {}
    entries = []
    words = _Words(model)
    kind = model._meta.model_name
    for record in records:
        code, shown = about(record)  # what it is about: its code, and how the record names it
        before = previous.get(record.id)
        changes = [
            FieldChange(
                name,
                _text(getattr(before, name)) if before else None,
                _text(getattr(record, name)),
                words.label(name),
                words.value(name, getattr(before, name)) if before else None,
                words.value(name, getattr(record, name)),
            )
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
                record=f"{kind} of {shown}" if code else kind,
                changes=changes,
                kind=kind,
                about=code,
            )
        )
    return entries


def _fields(model: type[Any]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields if field.attname not in _IGNORED]


@dataclass(frozen=True)
class ProvisionHistory:
    status_changes: list[StatusChange]  # oldest first
    audit: list[AuditEntry]  # oldest first
    # Whether something recorded at that moment may be shown to the reader: the provision was then
    # marked at a level they may see (a dated position, a discussion or a change recorded while it
    # was marked higher is withheld, as its history is).
    recorded_visibly: Callable[[datetime.datetime], bool]


def provision_history(provision: Provision, *, reader: MarkingsReader) -> ProvisionHistory:
    """The provision's status changes and audit trail as the reader may
    see them: nothing recorded while the provision was marked above that clearance (its text then,
    its positions, coverage, consultations, status notes), even if it is marked lower now. Five
    queries, whatever the length of the history."""
    provision_records = list(
        provision.history.select_related("history_user").order_by("history_date", "history_id")
    )
    since = [record.history_date for record in provision_records]
    hidden = [record.marking not in reader.markings for record in provision_records]

    def shown(when: datetime.datetime) -> bool:
        """Whether the provision's marking at that moment is one the reader may see."""
        latest = bisect.bisect_right(since, when) - 1
        return not hidden[max(latest, 0)] if hidden else True

    def children(model: Any, *related: str) -> list[Any]:
        records = model.history.filter(provision_id=provision.pk).select_related("history_user", *related)
        return [
            record for record in records.order_by("history_date", "history_id") if shown(record.history_date)
        ]

    entries = [
        *_entries(
            [record for record, off in zip(provision_records, hidden, strict=True) if not off],
            [f for f in _fields(Provision) if f != "created_at"],
            lambda r: ("", ""),
            Provision,
        ),
        *_entries(
            children(Position, "party"),
            ["stance", "firmness", "note"],
            lambda r: (r.party.code, r.party.code),
            Position,
        ),
        *_entries(
            children(Coverage, "capability"),
            ["extent"],
            lambda r: (r.capability.code, r.capability.code),
            Coverage,
        ),
        *_entries(
            children(Consultation, "territory"),
            ["consulted_on", "outcome", "note"],
            lambda r: (r.territory.code, r.territory.name),
            Consultation,
        ),
    ]
    changes = provision.status_changes.select_related("changed_by").order_by("changed_on", "id")
    return ProvisionHistory(
        status_changes=[change for change in changes if shown(change.recorded_at)],
        audit=sorted(entries, key=lambda entry: entry.at),
        recorded_visibly=shown,
    )
