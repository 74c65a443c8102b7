"""The words the tracker uses, defined once (from DESIGN.md), for the glossary page that every
badge and label naming them links to."""

from __future__ import annotations

from typing import Any

from django.db import models

from provisions.models import Alignment, CoverageState, Firmness, GapKind, Level, Stance, Status

STATUS = {
    Status.IDENTIFIED: "The need is identified; no text yet.",
    Status.SCOPING: "Exploratory talks.",
    Status.PROPOSED: "Text tabled by a party (white text).",
    Status.UNDER_NEGOTIATION: "Both sides are working on the text.",
    Status.AGREED_IN_PRINCIPLE: "Policy agreed, drafting pending (yellow text).",
    Status.AGREED: "Text agreed at negotiator level (green text).",
    Status.SIGNED: "Signed.",
    Status.IN_FORCE: "Applied, provisionally or in full.",
    Status.SUSPENDED: "Paused; it may resume. It secures nothing meanwhile.",
    Status.WITHDRAWN: "Dropped: it no longer counts at all.",
}
STANCE = {
    Stance.PROPOSES: "The party tabled it or champions it.",
    Stance.SUPPORTS: "The party agrees with it.",
    Stance.CONDITIONAL: "The party agrees only if conditions are met.",
    Stance.RESERVED: "The party has not committed either way.",
    Stance.OPPOSES: "The party is against it.",
}
FIRMNESS = {
    Firmness.PROVISIONAL: "A position the party may still move from.",
    Firmness.DEFINITIVE: "The party's settled position: a red line or a final offer.",
}
ALIGNMENT = {
    Alignment.ALIGNED: "Every party proposes or supports it.",
    Alignment.CONFLICT: "A party opposes it.",
    Alignment.UNDETERMINED: "A party has not taken a position yet.",
    Alignment.ASYMMETRIC: "Every party has a position, none opposes, but they are not all for it "
    "(one is conditional or reserved).",
}
COVERAGE = {
    CoverageState.SECURED: "A secured provision (agreed or beyond, not suspended, not expired) covers the "
    "capability fully.",
    CoverageState.PARTIAL: "Not secured, but a secured provision covers it partially: a replacement, but a "
    "narrower one.",
    CoverageState.IN_NEGOTIATION: "Neither, but an active provision (not withdrawn) covers it.",
    CoverageState.UNCOVERED: "No active provision covers it.",
}
KIND = {
    GapKind.LAPSED: "The capability's lapse date has passed and nothing secures it: a real loss.",
    GapKind.UNCOVERED: "No active provision covers the capability.",
    GapKind.EXPIRING: "What secures the capability stops applying soon (a sunset clause, an adequacy "
    "decision's end).",
    GapKind.AT_RISK: "The capability lapses soon and is only in negotiation or partly covered.",
    GapKind.PARTIAL: "Only a narrower replacement covers the capability.",
    GapKind.STALLED: "The negotiation has not moved, nor been discussed, for a long time.",
    GapKind.DIVERGENT: "A party opposes the provision while a capability it covers lapses soon.",
}
SEVERITY = {
    Level.CRITICAL: "Act now: a critical capability is lost or about to be.",
    Level.HIGH: "Act soon.",
    Level.MEDIUM: "Watch and plan.",
    Level.LOW: "Note it.",
}

SECTIONS: list[tuple[str, str, type[models.TextChoices], dict[Any, str]]] = [
    ("status", "Negotiation status", Status, STATUS),
    ("stance", "Stance (a party's position)", Stance, STANCE),
    ("firmness", "Firmness", Firmness, FIRMNESS),
    ("alignment", "Alignment (of the parties' positions)", Alignment, ALIGNMENT),
    ("coverage", "Coverage state (of a capability)", CoverageState, COVERAGE),
    ("kind", "Kinds of gap", GapKind, KIND),
    ("level", "Severity and criticality", Level, SEVERITY),
]


def glossary() -> list[dict[str, object]]:
    """Each section: its anchor prefix, title, and (value, label, meaning) in the vocabulary's order."""
    return [
        {
            "name": name,
            "title": title,
            "terms": [(value, label, meanings[value]) for value, label in vocabulary.choices],
        }
        for name, title, vocabulary, meanings in SECTIONS
    ]
