"""Which gaps a scan escalated: the one definition that webhooks (`gap.escalated`) and the watch
list's notifications both tell of."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from provisions.models import Gap, GapKind, Level

# A gap now open that escalated, and what it escalated from: {"id", "kind", "severity"}.
Escalation = tuple[Gap, dict[str, Any]]


def gap_escalations(
    *, opened: Collection[Gap], resolved: Collection[Gap], updated: Collection[Gap], before: dict[int, str]
) -> list[Escalation]:
    """A capability's gap replaced in the scan by one that is lapsed or more severe (at_risk to
    lapsed), or a gap still open that became more severe (`before`: open gaps' severities then)."""
    found: list[Escalation] = []
    replaced = {gap.capability_id: gap for gap in resolved if gap.capability_id is not None}
    for gap in opened:
        old = replaced.get(gap.capability_id) if gap.capability_id is not None else None
        if old is None:
            continue
        lapsed_now = gap.kind == GapKind.LAPSED and old.kind != GapKind.LAPSED
        if lapsed_now or _weight(gap.severity) > _weight(old.severity):
            found.append((gap, {"id": old.pk, "kind": old.kind, "severity": old.severity}))
    for gap in updated:
        previous = before.get(gap.pk)
        if previous is not None and _weight(gap.severity) > _weight(previous):
            found.append((gap, {"id": gap.pk, "kind": gap.kind, "severity": previous}))
    return found


def _weight(severity: str) -> int:
    return Level(severity).weight
