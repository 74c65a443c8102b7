"""A provision as the API shows it (the fields of `ProvisionSerializer`), for a page of provisions at once.

Built from a few `values()` queries rather than model instances and prefetch caches: a page of 50
provisions with their positions, links, precedents and territories is some 550 model instances and 200
related managers, which cost five times what fetching the rows does. The day's rules are the model's
own (`positions_held`, `link_counts_on`, `alignment_of`, `status_on`, `fold`), applied to these rows;
the list, a provision, every write's answer and the schema (`ProvisionSerializer`) all use this one
representation. Six queries whatever the number of provisions (each compiled once per connection:
building and compiling them had been a third of the page's Python); two more for a past day.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from provisions.models import (
    Coverage,
    Party,
    Position,
    Provision,
    ProvisionChange,
    StatusChange,
    alignment_of,
    fold,
    link_counts_on,
    positions_held,
    status_on,
)
from provisions.models.lookups import ByIds


def moment_writer() -> Callable[[datetime.datetime], str]:
    """A moment as DRF's DateTimeField writes one (ISO 8601 in the current time zone, `Z` for UTC),
    without a field's machinery per value: a page has some 150 of them."""
    zone = timezone.get_current_timezone()

    def moment(value: datetime.datetime) -> str:
        text = value.astimezone(zone).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return moment


_PROVISION = (
    "id",
    "reference",
    "title",
    "text",
    "domain__code",
    "domain__partnership_id",
    "status",
    "marking",
    "target_date",
    "review_date",
    "expires_on",
    "version",
    "updated_at",
)


# The rows of a page of provisions, each query compiled once (provisions.models.lookups.ByIds).
_PROVISIONS = ByIds(lambda ids: Provision.objects.filter(id__id_in=ids).order_by().values_list(*_PROVISION))
_POSITIONS = ByIds(
    lambda ids: (
        Position.objects.filter(provision_id__id_in=ids)
        .order_by()
        .values_list(
            "provision_id",
            "id",
            "party_id",
            "party__code",
            "stance",
            "firmness",
            "note",
            "taken_on",
            "updated_at",
        )
    )
)
_LINKS = ByIds(
    lambda ids: (
        Coverage.objects.filter(provision_id__id_in=ids)
        .order_by("provision_id", "id")
        .values_list("provision_id", "capability__code", "extent", "valid_from", "valid_until")
    )
)
_PRECEDENTS = ByIds(
    lambda ids: (
        Provision.precedents.through.objects.filter(provision_id__id_in=ids)
        .order_by("precedent_id")
        .values_list("provision_id", "precedent__code")
    )
)
_TERRITORIES = ByIds(
    lambda ids: (
        Provision.territories.through.objects.filter(provision_id__id_in=ids)
        .order_by("territory_id")
        .values_list("provision_id", "territory__code")
    )
)
_PARTIES = ByIds(
    lambda ids: Party.objects.filter(partnership_id__id_in=ids).values_list("partnership_id", "id")
)


@dataclass(slots=True)
class _Position:
    pk: int
    party_id: int
    party: str
    stance: str
    firmness: str
    note: str
    taken_on: datetime.date | None
    updated_at: datetime.datetime


@dataclass(slots=True)
class _Link:
    capability: str
    extent: str
    valid_from: datetime.date | None
    valid_until: datetime.date | None


@dataclass(slots=True)
class _StatusChange:
    pk: int
    changed_on: datetime.date
    to_status: str


def _day(value: datetime.date | None) -> str | None:
    return None if value is None else value.isoformat()


def _by_provision(rows: Any) -> defaultdict[int, list[Any]]:
    grouped: defaultdict[int, list[Any]] = defaultdict(list)
    for provision_id, *row in rows:
        grouped[provision_id].append(row)
    return grouped


def provision_rows(
    provision_ids: Sequence[int], *, as_of: datetime.date | None = None
) -> list[dict[str, Any]]:
    """The provisions, in the order given, as they stand today or as they stood on `as_of` (their
    title, text and expiry, status, each party's position, alignment and the links that counted then)."""
    if not provision_ids:
        return []
    ids = list(provision_ids)
    day = as_of or timezone.localdate()
    moment = moment_writer()
    provisions = {row[0]: dict(zip(_PROVISION, row, strict=True)) for row in _PROVISIONS.rows(ids)}
    positions = _by_provision(_POSITIONS.rows(ids))
    links = _by_provision(_LINKS.rows(ids))
    precedents = _by_provision(_PRECEDENTS.rows(ids))
    territories = _by_provision(_TERRITORIES.rows(ids))
    # Each partnership's parties in their order (partnership, id), as alignment reads them.
    parties: defaultdict[int, list[int]] = defaultdict(list)
    partnerships = {row["domain__partnership_id"] for row in provisions.values()}
    for partnership_id, party_id in _PARTIES.rows(partnerships):
        parties[partnership_id].append(party_id)
    changes: defaultdict[int, list[ProvisionChange]] = defaultdict(list)
    moves: defaultdict[int, list[_StatusChange]] = defaultdict(list)
    if as_of is not None:
        for change in ProvisionChange.objects.filter(provision_id__id_in=ids):  # in their order
            changes[change.provision_id].append(change)
        for provision_id, pk, changed_on, to_status in StatusChange.objects.filter(
            provision_id__id_in=ids
        ).values_list("provision_id", "id", "changed_on", "to_status"):
            moves[provision_id].append(_StatusChange(pk, changed_on, to_status))

    rows = []
    for pk in ids:
        provision = provisions[pk]
        held = positions_held((_Position(*row) for row in positions[pk]), day)
        counting = [_Link(*row) for row in links[pk]]
        values = {
            "title": provision["title"],
            "text": provision["text"],
            "expires_on": provision["expires_on"],
        }
        if as_of is not None:
            values = fold(changes[pk], values, as_of)
        rows.append(
            {
                "reference": provision["reference"],
                "title": values["title"],
                "text": values["text"],
                "domain": provision["domain__code"],
                "status": status_on(moves[pk], as_of) if as_of is not None else provision["status"],
                "marking": provision["marking"],
                "target_date": _day(provision["target_date"]),
                "review_date": _day(provision["review_date"]),
                "expires_on": _day(values["expires_on"]),
                "alignment": alignment_of(held, parties[provision["domain__partnership_id"]]).value,
                "positions": [
                    {
                        "party": position.party,
                        "stance": position.stance,
                        "firmness": position.firmness,
                        "note": position.note,
                        "at": _day(position.taken_on),
                        "updated_at": moment(position.updated_at),
                    }
                    for position in (held[party_id] for party_id in sorted(held))
                ],
                "covers": [
                    {
                        "capability": link.capability,
                        "extent": link.extent,
                        "from": _day(link.valid_from),
                        "until": _day(link.valid_until),
                    }
                    for link in counting
                    if link_counts_on(link, day)
                ],
                "precedents": [code for (code,) in precedents[pk]],
                "territories": [code for (code,) in territories[pk]],
                "version": provision["version"],
                "updated_at": moment(provision["updated_at"]),
            }
        )
    return rows
