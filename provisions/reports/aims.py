"""The aims report (DESIGN.md, "Aims report columns"): each aim's verdict and its capabilities by
coverage state at a date, one row per aim, sorted by code. Written as CSV, JSON, XLSX or PDF."""

from __future__ import annotations

import datetime
import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from django.utils import timezone

from provisions.models import AimCapability, AimVerdict, Marking
from provisions.permissions import Reader
from provisions.reports.document import Front, Table, as_of_words, front
from provisions.reports.tables import write_csv, write_json, write_pdf, write_xlsx
from provisions.rules import AimAt, aims_at, evaluate_gaps

AIMS_REPORT_COLUMNS = (
    "aim_code",
    "aim_title",
    "verdict",
    "capabilities",
    "secured",
    "partial",
    "in_negotiation",
    "uncovered",
)


@dataclass(frozen=True)
class AimsReport:
    as_of: datetime.date
    aims: list[AimAt]
    reader: Reader = field(default_factory=Reader.system, compare=False, repr=False)
    # Aims name capabilities only, never a provision: the scorecard is OFFICIAL.
    marking = Marking.OFFICIAL

    def front(self) -> Front:
        """The front matter and the aims counted by verdict."""
        verdicts = Counter(aim.verdict for aim in self.aims)
        table = Table(
            title="Aims by verdict",
            header=("Verdict", "Aims"),
            rows=[*((verdict.label, verdicts[verdict]) for verdict in AimVerdict), ("Total", len(self.aims))],
        )
        return front(
            title="Aims scorecard",
            reader=self.reader,
            marking=self.marking,
            dates=as_of_words(self.as_of),
            summary=[table],
        )

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "aim_code": aim.code,
                "aim_title": aim.title,
                "verdict": aim.verdict.value,
                "capabilities": aim.capability_count,
                **aim.states,
            }
            for aim in self.aims
        ]


def aims_report(*, as_of: datetime.date | None = None, reader: Reader | None = None) -> AimsReport:
    """The aims scored at the date (today by default). Aims name capabilities only, which every
    reader sees: the rules count every provision, as for the capabilities' coverage states."""
    as_of = as_of or timezone.localdate()
    # Only the aims' capabilities (and what covers them) are evaluated, not the whole partnership.
    served = set(AimCapability.objects.values_list("capability_id", flat=True))
    evaluation = evaluate_gaps(as_of=as_of, capability_ids=served, provision_ids=())
    return AimsReport(as_of=as_of, aims=aims_at(evaluation), reader=reader or Reader.system())


def render_csv(report: AimsReport, output: io.TextIOBase | Any) -> None:
    write_csv(AIMS_REPORT_COLUMNS, report.rows, output)


def render_json(report: AimsReport, output: io.TextIOBase | Any) -> None:
    write_json(AIMS_REPORT_COLUMNS, report.rows, output)


def render_xlsx(report: AimsReport, output: BinaryIO) -> None:
    write_xlsx(AIMS_REPORT_COLUMNS, report.rows, output, sheet_name="Aims", front=report.front())


def render_pdf(report: AimsReport, output: BinaryIO) -> None:
    write_pdf("reports/aims.html", report.front(), {"report": report}, output)
