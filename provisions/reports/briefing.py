"""The round briefing pack: one PDF for a negotiating round, built from the rules v2 pieces. A cover,
a summary, the aims scorecard at the round's date, what changed since the previous round (the
changes report), the critical and high gaps then, what lapses or expires in the next 180 days, and
an annex of the status moves with their reasons. Offered on the overview and the changes page, by
the API (`/api/v1/briefing/`) and by `export_briefing --from --to --output`.

A reader's pack holds what they may see, and is marked with the highest marking among the provisions
it contains or names.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, BinaryIO

from provisions.models import Level
from provisions.permissions import Reader
from provisions.reports.aims import AimsReport, aims_report
from provisions.reports.changes import ChangesReport, changes_report
from provisions.reports.document import (
    Front,
    Table,
    cross_count,
    domain_labels,
    front,
    highest_marking,
    period_words,
)
from provisions.reports.gaps import GapReport, GapReportFilters, gap_report
from provisions.reports.tables import by_domain, write_pdf

HORIZON_DAYS = 180
BRIEFING_SEVERITIES = (Level.CRITICAL.value, Level.HIGH.value)


@dataclass(frozen=True)
class Ahead:
    """A capability that lapses, or a provision that expires, within the horizon after the round."""

    on: datetime.date
    days: int
    what: str  # "lapses" or "expires"
    subject_type: str
    code: str
    name: str
    domain: str  # its name
    state: str  # a capability's coverage state, a provision's status (codes)


@dataclass(frozen=True)
class BriefingPack:
    start: datetime.date
    end: datetime.date
    aims: AimsReport
    changes: ChangesReport
    gaps: GapReport  # the critical and high gaps at the round's date
    ahead: list[Ahead]
    reader: Reader

    @property
    def marking(self) -> Any:
        return highest_marking(
            [self.changes.marking, self.gaps.marking, self.aims.marking, *self._ahead_markings]
        )

    @property
    def _ahead_markings(self) -> list[str]:
        provisions = self.gaps.evaluation.provisions.values() if self.gaps.evaluation else ()
        shown = {(a.code) for a in self.ahead if a.subject_type == "provision"}
        return [p.marking for p in provisions if p.reference in shown]

    @property
    def status_moves(self) -> list[dict[str, Any]]:
        return [event for event in self.changes.events if event["kind"] == "status_change"]

    @property
    def other_events(self) -> list[dict[str, Any]]:
        return [event for event in self.changes.events if event["kind"] != "status_change"]

    def front(self) -> Front:
        ahead = Table(
            title=f"In the {HORIZON_DAYS} days after {self.end:%-d %B %Y}",
            header=("What", "Count"),
            rows=[
                ("Capabilities that lapse", sum(1 for a in self.ahead if a.what == "lapses")),
                ("Provisions whose coverage expires", sum(1 for a in self.ahead if a.what == "expires")),
            ],
        )
        return front(
            title="Round briefing pack",
            reader=self.reader,
            marking=self.marking,
            dates=period_words(self.start, self.end),
            summary=[
                self.aims.front().summary[0],
                *self.changes.summary(),
                cross_count(
                    self.gaps.rows,
                    title="Critical and high gaps by domain",
                    down="domain",
                    down_labels=domain_labels(),
                    across_labels=[(level, Level(level).label) for level in BRIEFING_SEVERITIES],
                ),
                ahead,
            ],
        )


def briefing_pack(*, start: datetime.date, end: datetime.date, reader: Reader) -> BriefingPack:
    """The pack for the round ending `end`, since the previous round at `start` (start before end:
    ChangesPeriodInvalid otherwise), as the reader may see it."""
    changes = changes_report(start=start, end=end, reader=reader)
    gaps = gap_report(as_of=end, filters=GapReportFilters(severities=BRIEFING_SEVERITIES), reader=reader)
    return BriefingPack(
        start=start,
        end=end,
        aims=aims_report(as_of=end, reader=reader),
        changes=changes,
        gaps=gaps,
        ahead=_ahead(gaps, reader),
        reader=reader,
    )


def _ahead(gaps: GapReport, reader: Reader) -> list[Ahead]:
    """What lapses or expires in (end, end + horizon], by date: read from the round's evaluation."""
    evaluation = gaps.evaluation
    if evaluation is None:
        return []
    end = evaluation.as_of
    names = dict(domain_labels())
    horizon = end + datetime.timedelta(days=HORIZON_DAYS)
    ahead = [
        Ahead(
            on=capability.lapses_on,
            days=(capability.lapses_on - end).days,
            what="lapses",
            subject_type="capability",
            code=capability.code,
            name=capability.name,
            domain=names.get(capability.domain, capability.domain),
            state=evaluation.coverage[capability.id].state.value
            if capability.id in evaluation.coverage
            else "",
        )
        for capability in evaluation.capabilities.values()
        if capability.lapses_on is not None and end < capability.lapses_on <= horizon
    ]
    ahead += [
        Ahead(
            on=provision.expires_on,
            days=(provision.expires_on - end).days,
            what="expires",
            subject_type="provision",
            code=provision.reference,
            name=provision.title,
            domain=names.get(provision.domain, provision.domain),
            state=provision.status.value,
        )
        for provision in evaluation.provisions.values()
        if provision.expires_on is not None
        and end < provision.expires_on <= horizon
        and provision.marking in reader.markings
    ]
    return sorted(ahead, key=lambda a: (a.on, a.subject_type, a.code))


def render_pdf(pack: BriefingPack, output: BinaryIO) -> None:
    domains = domain_labels()
    context = {
        "pack": pack,
        "horizon_days": HORIZON_DAYS,
        "report": pack.gaps,
        "groups": by_domain(pack.gaps.rows, domains),
        "domain_names": dict(domains),
    }
    write_pdf("reports/briefing.html", pack.front(), context, output)
