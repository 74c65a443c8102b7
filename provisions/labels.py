"""The one place a code becomes the words a person reads: pages, PDFs and messages call `label`
(templates through the `label` filter); CSV, JSON and the API keep the codes."""

from __future__ import annotations

import datetime

from django.db import models
from django.utils.dateformat import format as format_date

from provisions.models import (
    AimVerdict,
    Alignment,
    ConsultationOutcome,
    CoverageState,
    Extent,
    Firmness,
    GapKind,
    GapState,
    Level,
    Marking,
    ScanTrigger,
    Stance,
    Status,
    TerritoryKind,
)

VOCABULARIES: dict[str, type[models.TextChoices]] = {
    "status": Status,
    "kind": GapKind,
    "level": Level,
    "coverage": CoverageState,
    "stance": Stance,
    "firmness": Firmness,
    "extent": Extent,
    "alignment": Alignment,
    "marking": Marking,
    "gap_state": GapState,
    "verdict": AimVerdict,
    "outcome": ConsultationOutcome,
    "territory": TerritoryKind,
    "trigger": ScanTrigger,
}
# The kinds of the record's events (provisions.rules.changes.Event.kind): no model choices of their own.
EVENT_KINDS = {
    "status_change": "Status change",
    "position": "Position",
    "discussion": "Discussion",
    "provision_change": "Change to a provision",
    "capability_change": "Change to a capability",
}
_LABELS = {"event": EVENT_KINDS} | {
    name: {value: str(label) for value, label in vocabulary.choices}
    for name, vocabulary in VOCABULARIES.items()
}


def label(vocabulary: str, value: str | None) -> str:
    """ "at_risk" of "kind" → "At risk"; empty for nothing; an unknown code is shown as it is."""
    if value is None or value == "":
        return ""
    return _LABELS[vocabulary].get(str(value), str(value))


def lower_label(vocabulary: str, value: str | None) -> str:
    """For the middle of a sentence: "under negotiation" (markings keep their capitals)."""
    words = label(vocabulary, value)
    return words if vocabulary == "marking" else words.lower()


def long_date(day: datetime.date | None) -> str:
    """ "31 December 2020", as pages write dates (CSV and the API keep ISO 8601)."""
    return "" if day is None else format_date(day, "j F Y")


def days_words(days: int) -> str:
    """ "in 11 days", "today", "1 day ago": how far a day is from the page's date."""
    if days == 0:
        return "today"
    count = f"{abs(days)} day{'' if abs(days) == 1 else 's'}"
    return f"in {count}" if days > 0 else f"{count} ago"
