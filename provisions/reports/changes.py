"""The changes report (DESIGN.md, "Changes report columns"): the gaps that moved between two dates
(opened, escalated, eased, resolved) and, in JSON and PDF, the record's events in between. This is
the negotiators' round briefing. A reader sees the gaps and events of what they may see."""

from __future__ import annotations

import datetime
import io
import json
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from provisions.labels import EVENT_KINDS
from provisions.models import Marking
from provisions.permissions import Reader
from provisions.redaction import Redaction
from provisions.reports.document import (
    Front,
    Table,
    cross_count,
    domain_labels,
    front,
    highest_marking,
    period_words,
)
from provisions.reports.tables import write_csv, write_pdf, write_xlsx
from provisions.rules import Event, GapMove, evaluate_gaps, events_between, gaps_moved

CHANGES_REPORT_COLUMNS = (
    "change",
    "kind",
    "severity",
    "previous_severity",
    "subject_type",
    "subject_code",
    "subject_name",
    "domain",
    "explanation",
)
EVENT_COLUMNS = ("on", "kind", "subject_type", "subject_code", "subject_name", "summary", "note")


class ChangesPeriodInvalid(ValueError):
    """The two dates of a comparison are not in order."""


@dataclass(frozen=True)
class ChangesReport:
    start: datetime.date
    end: datetime.date
    rows: list[dict[str, Any]]
    events: list[dict[str, Any]]
    # The highest marking among the provisions the rows and events name.
    marking: Marking = Marking.OFFICIAL
    reader: Reader = field(default_factory=Reader.system, compare=False, repr=False)

    def front(self, title: str = "What changed") -> Front:
        """The front matter, the moved gaps counted by change and severity, the events by kind."""
        return front(
            title=title,
            reader=self.reader,
            marking=self.marking,
            dates=period_words(self.start, self.end),
            summary=self.summary(),
        )

    def summary(self) -> list[Table]:
        moved = cross_count(
            self.rows,
            title="Gaps that moved, by change and severity",
            down="change",
            down_labels=[(change, change.capitalize()) for change in CHANGES],
        )
        kinds = [(kind, sum(1 for event in self.events if event["kind"] == kind)) for kind in EVENT_KINDS]
        events = Table(
            title="What the record says happened",
            header=("Event", "Count"),
            rows=[
                *((EVENT_KINDS[kind], count) for kind, count in kinds if count),
                ("Total", len(self.events)),
            ],
        )
        return [moved, events]


CHANGES = ("opened", "escalated", "eased", "resolved")


def changes_report(*, start: datetime.date, end: datetime.date, reader: Reader) -> ChangesReport:
    """What changed between the two dates (start before end), as the reader may see it."""
    if start >= end:
        raise ChangesPeriodInvalid(f"from ({start}) must be before to ({end})")
    redaction = Redaction.for_reader(reader)
    before, after = evaluate_gaps(as_of=start), evaluate_gaps(as_of=end)
    moves = gaps_moved(before, after)
    rows = [row for move in moves if (row := _row(move, redaction)) is not None]
    seen = [
        event for event in events_between(start, end) if event.marking is None or reader.sees(event.marking)
    ]
    markings = {
        provision.reference: provision.marking
        for evaluation in (before, after)
        for provision in evaluation.provisions.values()
    }
    named = [markings.get(reference) for move in moves for reference in _named(move, redaction)]
    return ChangesReport(
        start=start,
        end=end,
        rows=rows,
        events=[_event(event) for event in seen],
        marking=highest_marking([*named, *(event.marking for event in seen)]),
        reader=reader,
    )


def _row(move: GapMove, redaction: Redaction) -> dict[str, Any] | None:
    finding = move.finding
    if finding.subject_type == "provision" and not redaction.shows(finding.subject_code):
        return None
    return {
        "change": move.change,
        "kind": finding.kind.value,
        "severity": finding.severity.value,
        "previous_severity": move.previous.severity.value if move.previous else None,
        "subject_type": finding.subject_type,
        "subject_code": finding.subject_code,
        "subject_name": finding.subject_name,
        "domain": finding.domain,
        "explanation": redaction.explanation(finding.facts),
    }


def _named(move: GapMove, redaction: Redaction) -> list[str]:
    """The provisions a moved gap's row names, as the reader may see it: its subject (a provision
    they may not see: no row) and the provisions covering it."""
    finding = move.finding
    if finding.subject_type == "capability":
        return redaction.references(finding.covering_provisions)
    if not redaction.shows(finding.subject_code):
        return []
    return redaction.references((finding.subject_code, *finding.covering_provisions))


def _event(event: Event) -> dict[str, Any]:
    return {
        "on": event.on,
        "kind": event.kind,
        "subject_type": event.subject_type,
        "subject_code": event.subject_code,
        "subject_name": event.subject_name,
        "summary": event.summary,
        "note": event.note,
    }


def render_csv(report: ChangesReport, output: io.TextIOBase | Any) -> None:
    write_csv(CHANGES_REPORT_COLUMNS, report.rows, output)


def render_json(report: ChangesReport, output: io.TextIOBase | Any) -> None:
    """The rows, and the record's events in between (DESIGN.md: JSON adds them)."""
    document = {
        "from": report.start.isoformat(),
        "to": report.end.isoformat(),
        "gaps": [{column: row[column] for column in CHANGES_REPORT_COLUMNS} for row in report.rows],
        "events": [{**event, "on": event["on"].isoformat()} for event in report.events],
    }
    json.dump(document, output, indent=2, ensure_ascii=False)
    output.write("\n")


def render_xlsx(report: ChangesReport, output: BinaryIO) -> None:
    write_xlsx(CHANGES_REPORT_COLUMNS, report.rows, output, sheet_name="Changes", front=report.front())


def render_pdf(report: ChangesReport, output: BinaryIO) -> None:
    context = {"report": report, "domain_names": dict(domain_labels())}
    write_pdf("reports/changes.html", report.front(), context, output)
