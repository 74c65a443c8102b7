"""What a reader may see of the gaps: one policy, used by the pages, the API, every export, the
webhooks and the admin.

A reader sees every capability gap and the gaps of the provisions up to their clearance. A
provision above their clearance is withheld wherever a gap names it: from the covering provisions
and from the explanation, which is rendered for them from the gap's facts
(`provisions.explanations`), with the provision's status gone with it. The rules still count it.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from provisions.explanations import GapFacts, explain
from provisions.models import Gap, Marking, MarkingsReader, Provision, sees_every_marking
from provisions.rules import Finding

# The explanation of a gap recorded before its facts were (no `detail`: the next scan records them
# for open gaps), for a reader who may not see every provision: what it names cannot be told.
WITHHELD_EXPLANATION = "(withheld: it names a provision above your clearance)"


@dataclass(frozen=True)
class Redaction:
    """The provisions one reader may not see, by reference (one query to make)."""

    hidden: frozenset[str]
    # Whether the reader may not see some provision at all, when `hidden` holds only the ones among
    # the references asked about (for_reader's `among`); None: whether `hidden` holds any.
    anything_hidden: bool | None = None

    @classmethod
    def for_reader(cls, reader: MarkingsReader, *, among: Collection[str] | None = None) -> Redaction:
        """The reader's redaction: of every provision, or (`among`) of those references only, and
        whether anything else is hidden (two small queries instead of every provision's reference,
        for what a few gaps name)."""
        if sees_every_marking(reader):  # nothing to hide
            return cls.nothing()
        above = Provision.objects.filter(
            marking__in=[marking for marking in Marking.values if marking not in reader.markings]
        )
        if among is None:
            return cls(frozenset(above.values_list("reference", flat=True)))
        hidden = frozenset(above.filter(reference__in=list(among)).values_list("reference", flat=True))
        return cls(hidden, bool(hidden) or above.exists())

    @classmethod
    def nothing(cls) -> Redaction:
        """For a reader cleared for everything (the system)."""
        return cls(frozenset())

    @property
    def hides_anything(self) -> bool:
        return bool(self.hidden) if self.anything_hidden is None else self.anything_hidden

    def shows(self, reference: str) -> bool:
        return reference not in self.hidden

    def references(self, references: Iterable[str]) -> list[str]:
        return [reference for reference in references if reference not in self.hidden]

    def explanation(self, facts: GapFacts) -> str:
        return explain(facts, withheld=self.hidden)

    def gap_explanation(self, gap: Gap) -> str:
        if gap.detail:
            return self.explanation(GapFacts.from_json(gap.detail))
        return WITHHELD_EXPLANATION if self.hides_anything else gap.explanation


def _joined(references: list[str]) -> str | None:
    return ";".join(references) or None


def finding_row(finding: Finding, redaction: Redaction, gap: Gap | None = None) -> dict[str, Any] | None:
    """A finding in the report's columns as the reader may see it (None: a gap of a provision they
    may not see); with the open gap it matches, its opened_at and state."""
    if finding.subject_type == "provision" and not redaction.shows(finding.subject_code):
        return None
    return {
        "id": gap.pk if gap else None,
        "kind": finding.kind.value,
        "severity": finding.severity.value,
        "subject_type": finding.subject_type,
        "subject_code": finding.subject_code,
        "subject_name": finding.subject_name,
        "domain": finding.domain,
        "coverage_state": finding.coverage_state.value if finding.coverage_state else None,
        "lapses_on": finding.lapses_on,
        "days_to_lapse": finding.days_to_lapse,
        "covering_provisions": _joined(redaction.references(finding.covering_provisions)),
        "explanation": redaction.explanation(finding.facts),
        "opened_at": timezone.localtime(gap.opened_at).replace(microsecond=0) if gap else None,
        "state": gap.state.value if gap else None,
    }


GAP_ROW_READS = (  # what gap_row reads, for a list that loads nothing else: .only(*GAP_ROW_READS)
    *("kind", "severity", "explanation", "detail", "coverage_state", "lapses_on", "covering_provisions"),
    *("opened_at", "resolved_at", "acknowledged_at", "acknowledgement_note"),
    *("capability__code", "capability__name", "capability__domain__code"),
    *("provision__reference", "provision__title", "provision__domain__code", "acknowledged_by__username"),
)


def gap_row(gap: Gap, redaction: Redaction, *, today: datetime.date) -> dict[str, Any] | None:
    """A gap as the last scan recorded it, in the report's columns (plus its id and resolution), as
    the reader may see it (None: a gap of a provision they may not see). Reads the gap's subject:
    select_related("capability__domain", "provision__domain", "acknowledged_by")."""
    subject_code = gap.capability.code if gap.capability else gap.provision.reference if gap.provision else ""
    if gap.provision_id is not None and not redaction.shows(subject_code):
        return None
    subject = gap.capability or gap.provision
    return {
        "id": gap.pk,
        "kind": gap.kind,
        "severity": gap.severity,
        "subject_type": "capability" if gap.capability_id else "provision",
        "subject_code": subject_code,
        "subject_name": getattr(subject, "name", None) or getattr(subject, "title", ""),
        "domain": subject.domain.code if subject else "",
        "coverage_state": gap.coverage_state or None,
        "lapses_on": gap.lapses_on,
        "days_to_lapse": (gap.lapses_on - today).days if gap.lapses_on else None,
        "covering_provisions": _joined(redaction.references((gap.covering_provisions or "").split(";"))),
        "explanation": redaction.gap_explanation(gap),
        "opened_at": gap.opened_at,
        "resolved_at": gap.resolved_at,
        "state": gap.state.value,
        "acknowledged_by": gap.acknowledged_by.get_username() if gap.acknowledged_by else None,
        "acknowledgement_note": gap.acknowledgement_note or None,
    }


def row_references(row: dict[str, Any]) -> tuple[str, ...]:
    """The provision references a gap row names: its subject, and the provisions covering it."""
    named = {row["subject_code"]} if row["subject_type"] == "provision" else set()
    named.update(reference for reference in (row["covering_provisions"] or "").split(";") if reference)
    return tuple(sorted(named))


class GapRowsForReaders:
    """Gap rows for readers of several clearances (the events a scan records): each gap's row is built
    once as a reader cleared for everything sees it, and again for a redaction only where it would
    differ: where the row, or the facts its explanation is made from, names a provision the redaction
    hides (or, for a gap recorded without facts, where anything is hidden: its explanation is
    withheld). The rows equal gap_row's for each redaction."""

    def __init__(self, gaps: Iterable[Gap], *, today: datetime.date) -> None:
        self.gaps = {gap.pk: gap for gap in gaps}
        self.today = today
        self.full = {pk: gap_row(gap, Redaction.nothing(), today=today) for pk, gap in self.gaps.items()}
        self.named = {pk: _named(self.gaps[pk], row) for pk, row in self.full.items() if row is not None}
        self.references: frozenset[str] = frozenset().union(*self.named.values())  # every one named

    def redaction_for(self, reader: MarkingsReader) -> Redaction:
        """The reader's redaction of what these gaps name (not of every provision)."""
        return Redaction.for_reader(reader, among=self.references)

    def row(self, pk: int, redaction: Redaction) -> dict[str, Any] | None:
        gap = self.gaps[pk]
        if not redaction.hides_anything or (gap.detail and not self.named[pk] & redaction.hidden):
            return self.full[pk]
        return gap_row(gap, redaction, today=self.today)


def _named(gap: Gap, row: dict[str, Any]) -> frozenset[str]:
    """Every provision a gap's row names: its columns, and the facts its explanation is made from."""
    facts = GapFacts.from_json(gap.detail).references if gap.detail else ()
    return frozenset((*row_references(row), *facts))


def gap_rows(gaps: Iterable[Gap], redaction: Redaction, *, today: datetime.date) -> list[dict[str, Any]]:
    return [row for gap in gaps if (row := gap_row(gap, redaction, today=today)) is not None]


def finding_rows(
    findings: Iterable[Finding], redaction: Redaction, persisted: dict[Any, Gap] | None = None
) -> list[dict[str, Any]]:
    """Rows of findings the reader may see; `persisted` maps identities to the open gaps they match."""
    persisted = persisted or {}
    rows = (finding_row(finding, redaction, persisted.get(finding.identity)) for finding in findings)
    return [row for row in rows if row is not None]
