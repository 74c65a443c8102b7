"""The forms on a provision's page: what each starts from (the record today: the provision's values,
the chosen party's current position, the next step up the ladder), and, when a write is refused,
what the editor typed with what was wrong beside each field, so that nothing typed is lost.

Every field's element id is `{form}-{field}`: the error summary links to it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

from provisions.history import AuditEntry
from provisions.models import Extent, Firmness, Position, Provision, Stance

FORM_FIELDS: dict[str, tuple[str, ...]] = {
    "transition": ("to", "note", "confirm_opposed"),
    "position": ("party", "stance", "firmness", "note", "effective_on", "reason"),
    "coverage": ("capability", "extent", "effective_on", "reason"),
    "details": (
        "title",
        "text",
        "target_date",
        "review_date",
        "expires_on",
        "effective_on",
        "marking",
        "reason",
    ),
    "consultation": ("territory", "consulted_on", "outcome", "note"),
    "discussion": ("on", "note"),
}
FORM_BUTTONS = {
    "transition": "Move status",
    "position": "Record position",
    "coverage": "Save coverage",
    "details": "Save",
    "consultation": "Record consultation",
    "discussion": "Record discussion",
}


@dataclass
class Refused:
    """A provision form sent back: what was typed and why it was not saved."""

    form: str
    values: dict[str, str]
    errors: dict[str, list[str]]  # by field; "" for what concerns the form as a whole
    stale: bool = False  # refused because the provision changed since the page was loaded
    since: list[AuditEntry] = field(default_factory=list)  # then: what changed since

    @classmethod
    def of(cls, form: str, posted: QueryDict, problems: dict[str, list[str]], **options: Any) -> Refused:
        values = {name: posted.get(name, "") for name in FORM_FIELDS[form]}
        known = {name: messages for name, messages in problems.items() if name in FORM_FIELDS[form]}
        general = [
            message for name, messages in problems.items() if name not in known for message in messages
        ]
        return cls(form, values, {**known, **({"": general} if general else {})}, **options)

    @property
    def summary(self) -> list[tuple[str, str]]:
        """(the id of the field to go to, the message), fields in the form's order, then the rest."""
        listed = [
            (f"{self.form}-{name}", message)
            for name in FORM_FIELDS[self.form]
            for message in self.errors.get(name, [])
        ]
        return listed + [(f"{self.form}-form", message) for message in self.errors.get("", [])]


def form_values(
    provision: Provision,
    *,
    today: datetime.date,
    party_code: str,
    suggested_move: str | None,
    first_stakeholder: str,
) -> dict[str, dict[str, str]]:
    """What each form starts from. The position form: the chosen party's current position (so that
    editing only the note keeps a definitive stance definitive)."""
    parties = list(provision.domain.partnership.parties.all())
    party = next((party for party in parties if party.code == party_code), parties[0] if parties else None)
    current: Position | None = provision.positions_at(today).get(party.pk) if party else None
    day = f"{today:%Y-%m-%d}"
    return {
        "transition": {"to": suggested_move or "", "note": "", "confirm_opposed": ""},
        "position": {
            "party": party.code if party else "",
            "stance": current.stance if current else Stance.PROPOSES,
            "firmness": current.firmness if current else Firmness.PROVISIONAL,
            "note": current.note if current else "",
            "effective_on": day,
            "reason": "",
        },
        "coverage": {"capability": "", "extent": Extent.FULL, "effective_on": day, "reason": ""},
        "details": {
            "title": provision.title,
            "text": provision.text,
            "target_date": _day(provision.target_date),
            "review_date": _day(provision.review_date),
            "expires_on": _day(provision.expires_on),
            "effective_on": day,
            "marking": provision.marking,
            "reason": "",
        },
        "consultation": {"territory": first_stakeholder, "consulted_on": day, "outcome": "", "note": ""},
        "discussion": {"on": day, "note": ""},
    }


def _day(value: datetime.date | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d}"


def forms_context(values: dict[str, dict[str, str]], refused: Refused | None) -> dict[str, Any]:
    """`forms.<name>.values` and `.errors` for the template, the refused form's typed values in place
    of its defaults; `refused` for the error summary and the page title."""
    forms: dict[str, dict[str, Any]] = {name: {"values": form, "errors": {}} for name, form in values.items()}
    if refused is not None:
        forms[refused.form] = {"values": refused.values, "errors": refused.errors}
    return {"forms": forms, "refused": refused}


DETAIL_FIELDS = frozenset(FORM_FIELDS["details"]) | {"domain_id"}


def conflicting_changes(
    form: str, posted: QueryDict, audit: list[AuditEntry], loaded_at: datetime.datetime | None
) -> bool:
    """Whether something this form writes changed since the page was loaded: the status for a move,
    the same party's position, the same capability's link, the details, a consultation. A
    discussion adds a note and conflicts with nothing; without the time the page was loaded, every
    change since the form's version conflicts."""
    if form == "discussion":
        return False
    if loaded_at is None:
        return True
    for entry in audit:
        if entry.at <= loaded_at:
            continue
        fields = {change.field for change in entry.changes}
        if entry.kind == "provision" and (
            (form == "transition" and "status" in fields) or (form == "details" and fields & DETAIL_FIELDS)
        ):
            return True
        written = {"position": "party", "coverage": "capability", "consultation": "territory"}.get(form)
        if written and entry.kind == form and entry.about == posted.get(written, "").strip():
            return True
    return False
