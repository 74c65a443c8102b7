"""A capability's coverage state from day to day: the rules' coverage state at each given day, read
in four queries whatever the number of days (the capability page's timeline)."""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from provisions.models import Coverage, CoverageState, ProvisionChange, StatusChange
from provisions.rules.gaps import coverage_state_of
from provisions.rules.record import _DETAILS, ProvisionAt, _changes, provision_at
from provisions.rules.thresholds import Thresholds


def coverage_states(
    capability_id: int,
    days: Iterable[datetime.date] | None = None,
    *,
    until: datetime.date | None = None,
    latest: int | None = None,
    thresholds: Thresholds | None = None,
) -> list[tuple[datetime.date, CoverageState]]:
    """(day, coverage state on the day) for each day, in order: the same state evaluate_gaps gives
    as of that day (the links that count then, their provisions' status and expiry then). Without
    days: each day its coverage may change (a link's days, a covering provision's moves, dated
    changes and expiries), up to `until`, the `latest` of them."""
    secured_rank = (thresholds or Thresholds.current()).secured_rank
    links = list(Coverage.objects.filter(capability_id=capability_id).order_by("id"))
    provision_ids = {link.provision_id for link in links}
    moves: defaultdict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for row in (
        StatusChange.objects.filter(provision_id__in=provision_ids)
        .values_list(
            "provision_id",
            "to_status",
            "changed_on",
            *(f"provision__{name}" for name in _DETAILS),
        )
        .order_by("changed_on", "id")
    ):
        moves[row[0]].append(row)
    changes = _changes(ProvisionChange, "provision", provision_ids)
    if days is None:
        found = {day for link in links for day in (link.valid_from, link.valid_until) if day}
        found |= {row[2] for history in moves.values() for row in history}
        for rows in changes.values():
            found |= {row.at for row in rows if row.at}
            found |= {row.expires_on for row in rows if row.sets_expires_on and row.expires_on}
        days = sorted(day for day in found if until is None or day <= until)[-(latest or len(found)) :]
    states = []
    for day in sorted(days):
        at: dict[int, ProvisionAt] = {}
        for pk, history in moves.items():
            held = [row for row in history if row[2] <= day]
            if held:  # it existed then: its latest move on or before the day gives its status
                at[pk] = provision_at(held[-1], changes.get(pk), day, [])  # in the order recorded
        counting = [(at.get(link.provision_id), link.extent) for link in links if link.counts_on(day)]
        states.append((day, coverage_state_of(counting, secured_rank).state))
    return states
