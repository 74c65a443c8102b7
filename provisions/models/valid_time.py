"""The one rule of dated values (DESIGN.md, "The record as it stood at T"): the value on a day is the
base value overridden, oldest first, by every change dated on or before it that sets it."""

from __future__ import annotations

import datetime
from typing import Any


def fold(changes: list[Any], base: dict[str, Any], day: datetime.date) -> dict[str, Any]:
    """The values on the day: `base` overridden, oldest first, by every change dated on or before it
    (changes in their order: base row first, then by date, the same day as recorded)."""
    values = dict(base)
    for change in changes:
        if change.applies_on(day):
            values.update(change.sets())
    return values
