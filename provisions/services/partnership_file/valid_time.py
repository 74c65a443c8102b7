"""Importing the dated parts of a partnership file (rules v2): values' `changes`, links' `from` and
`until`, positions' `at`, `discussions`, and the `aims`. Each part is made exactly what the file says
where the file says it (a file without a part leaves it as it is, so a file written before dated
parts existed means what it meant then); nothing is rewritten when it already is.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.utils import timezone

from provisions.models import (
    Aim,
    AimCapability,
    Capability,
    CapabilityChange,
    Coverage,
    Discussion,
    Partnership,
    Party,
    Position,
    Provision,
    ProvisionChange,
)
from provisions.services.past import record_written


def _date(value: str | None) -> datetime.date | None:
    return datetime.date.fromisoformat(value) if value else None


# What a subject's change rows say, as comparable tuples: (at, (name, value) pairs it sets, note).
ChangeRow = tuple[datetime.date | None, tuple[tuple[str, Any], ...], str]

CAPABILITY_VALUES = ("lapses_on", "criticality", "fallback")
PROVISION_VALUES = ("title", "text", "expires_on")


def _file_values(values: dict[str, Any], names: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    return tuple(
        (name, _date(values[name]) if name in ("lapses_on", "expires_on") else values[name])
        for name in names
        if name in values
    )


def _recorded(change: Any) -> ChangeRow:
    return (change.at, tuple(sorted(change.sets().items())), change.note)


def _row(model: Any, subject: str, instance: Any, change: ChangeRow) -> Any:
    at, values, note = change
    row = model(**{subject: instance}, at=at, note=note)
    for name, value in values:
        if name in ("lapses_on", "expires_on", "fallback", "text"):
            setattr(row, f"sets_{name}", True)
        setattr(row, name, value)
    return row


@dataclass(frozen=True)
class DatedPlan:
    """What a subject's dated values will be: its change rows, and its values today (its columns)."""

    rows: list[ChangeRow]
    today: dict[str, Any]


def _model(capability: bool) -> tuple[Any, str, tuple[str, ...]]:
    if capability:
        return CapabilityChange, "capability", CAPABILITY_VALUES
    return ProvisionChange, "provision", PROVISION_VALUES


def _recorded_rows(instance: Any, capability: bool) -> list[Any]:
    model, subject, _ = _model(capability)
    if instance is None:
        return []
    return list(
        model.objects.filter(**{subject: instance}).order_by(models.F("at").asc(nulls_first=True), "id")
    )


def plan_dated_values(
    instance: Capability | Provision | None, item: dict[str, Any], base: dict[str, Any], *, capability: bool
) -> DatedPlan:
    """The subject's dated values as the file says them. `base` holds the file's top-level values.
    With `changes` in the file, its rows become that base and those changes; without, recorded
    dated changes stay and the base becomes the file's."""
    _, _, names = _model(capability)
    base_row: ChangeRow = (None, tuple(sorted(base.items())), "")
    if "changes" in item:
        dated = [
            (_date(entry["at"]), tuple(sorted(_file_values(entry, names))), entry.get("note", ""))
            for entry in item["changes"]
        ]
    else:
        dated = [
            _recorded(change) for change in _recorded_rows(instance, capability) if change.at is not None
        ]
    rows = [base_row, *dated] if dated else []
    today = timezone.localdate()
    values = dict(base)
    for at, sets, _ in rows:
        if at is None or at <= today:
            values.update(sets)
    return DatedPlan(rows, values)


def _rows_written(model: type[models.Model], rows: list[Any]) -> None:
    """The rows, made at once: bulk_create sends no signal, so the write is counted here (from the
    start: they replace what the file changed) for the answers kept about past days."""
    model._default_manager.bulk_create(rows)
    record_written()


def write_dated_values(instance: Capability | Provision, plan: DatedPlan) -> bool:
    """Write the planned change rows unless they are already recorded; whether they were rewritten."""
    capability = isinstance(instance, Capability)
    model, subject, _ = _model(capability)
    if [_recorded(change) for change in _recorded_rows(instance, capability)] == plan.rows:
        return False
    model.objects.filter(**{subject: instance}).delete()
    _rows_written(model, [_row(model, subject, instance, change) for change in plan.rows])
    return True


LinkRow = tuple[int, str, datetime.date | None, datetime.date | None]


def sync_links(provision: Provision, item: dict[str, Any], capabilities: dict[str, int]) -> set[int] | None:
    """The provision's coverage links, with their days, as the file lists them; the capabilities
    whose links changed (None: nothing changed)."""
    if "covers" not in item:
        return None
    wanted: list[LinkRow] = [  # in the file's order, which export keeps
        (
            capabilities[link["capability"]],
            link.get("extent", "full"),
            _date(link.get("from")),
            _date(link.get("until")),
        )
        for link in item["covers"]
    ]
    current: list[LinkRow] = list(
        provision.coverage.order_by("id").values_list("capability_id", "extent", "valid_from", "valid_until")
    )
    if wanted == current:
        return None
    provision.coverage.all().delete()
    _rows_written(
        Coverage,
        [
            Coverage(
                provision=provision,
                capability_id=capability,
                extent=extent,
                valid_from=start,
                valid_until=end,
            )
            for capability, extent, start, end in wanted
        ],
    )
    return {link[0] for link in wanted} | {link[0] for link in current}


PositionRow = tuple[int, str, str, str, datetime.date | None]


def sync_positions(provision: Provision, item: dict[str, Any], parties: dict[str, Party]) -> bool:
    """Each party's dated positions as the file lists them, in its order (the last of one day wins)."""
    if "positions" not in item:
        return False
    wanted: list[PositionRow] = [
        (
            parties[entry["party"]].pk,
            entry["stance"],
            entry.get("firmness", "provisional"),
            entry.get("note", ""),
            _date(entry.get("at")),
        )
        for entry in item["positions"]
    ]
    current = list(
        provision.positions.order_by("id").values_list("party_id", "stance", "firmness", "note", "taken_on")
    )
    if wanted == current:
        return False
    provision.positions.all().delete()
    _rows_written(
        Position,
        [
            Position(
                provision=provision, party_id=party, stance=stance, firmness=firmness, note=note, taken_on=at
            )
            for party, stance, firmness, note, at in wanted
        ],
    )
    return True


def sync_discussions(provision: Provision, item: dict[str, Any]) -> bool:
    if "discussions" not in item:
        return False
    wanted = [(datetime.date.fromisoformat(entry["at"]), entry["note"]) for entry in item["discussions"]]
    if list(provision.discussions.order_by("on", "id").values_list("on", "note")) == wanted:
        return False
    provision.discussions.all().delete()
    _rows_written(Discussion, [Discussion(provision=provision, on=on, note=note) for on, note in wanted])
    return True


def sync_aims(
    partnership: Partnership, data: dict[str, Any], capabilities: dict[str, int]
) -> dict[str, list[int]]:
    """Upsert the file's aims by code, with their capabilities in order; their ids by outcome."""
    outcomes: dict[str, list[int]] = {"created": [], "updated": [], "unchanged": []}
    for item in data.get("aims", []):
        values = {
            "partnership": partnership,
            "title": item["title"],
            "text": item.get("text", ""),
            "source": item.get("source", ""),
        }
        aim = Aim.objects.filter(code=item["code"]).first()
        wanted = [capabilities[code] for code in item["capabilities"]]
        if aim is None:
            aim = Aim.objects.create(code=item["code"], **values)
            outcome = "created"
        else:
            changed = [name for name, value in values.items() if getattr(aim, name) != value]
            for name in changed:
                setattr(aim, name, values[name])
            if changed:
                aim.save(update_fields=changed)
            linked = list(aim.links.order_by("position", "id").values_list("capability_id", flat=True))
            outcome = "updated" if changed or linked != wanted else "unchanged"
        if outcome != "unchanged":
            aim.links.all().delete()
            _rows_written(
                AimCapability,
                [
                    AimCapability(aim=aim, capability_id=capability, position=index)
                    for index, capability in enumerate(wanted)
                ],
            )
        outcomes[outcome].append(aim.pk)
    return outcomes
