"""What turns a report into a document that can leave the building: its protective marking, its front
matter (title, partnership, dates, filters in words, who produced it and when) and its summary
tables. One `Front` is written the same way at the top of every PDF (templates/reports/base.html)
and on the summary sheet of every XLSX (provisions.reports.tables.write_xlsx); CSV and JSON carry the
marking in the download's `X-Protective-Marking` header.

The marking is the highest among the provisions a document contains or names, and at least OFFICIAL
(UK Government Security Classifications): a reader's report holds only what their clearance lets
them see, so an OFFICIAL reader's report never says more than OFFICIAL.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from provisions.labels import label, long_date
from provisions.models import Domain, Level, Marking, Partnership
from provisions.permissions import Reader

_MARKING_ORDER = list(Marking)


def highest_marking(markings: Iterable[str | None]) -> Marking:
    """The highest of the markings (None and empty ignored), at least OFFICIAL."""
    found = {Marking(marking) for marking in markings if marking}
    return max(found | {Marking.OFFICIAL}, key=_MARKING_ORDER.index)


def marking_of_references(references: Iterable[str], markings: dict[str, str]) -> Marking:
    """The highest marking among the provisions named (`markings`: reference to marking, for the
    provisions above OFFICIAL; a reference not in it is OFFICIAL)."""
    return highest_marking(markings.get(reference) for reference in references)


@dataclass(frozen=True)
class Table:
    """A summary table: a label column, then numbers (the last row may be the totals)."""

    title: str
    header: tuple[str, ...]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class Front:
    """A document's front matter and summary, as the PDF's first page and the XLSX summary sheet
    show them."""

    title: str
    marking: Marking
    dates: str  # "As of 1 December 2020" or "From 1 December 2020 to 1 January 2021"
    filters: str  # in words; empty: everything the reader may see
    produced_by: str
    produced_at: datetime.datetime  # in the site's time zone (Europe/London)
    partnership: str
    summary: tuple[Table, ...] = ()
    chart: dict[str, Any] | None = field(default=None, compare=False)  # provisions.charts.coverage_bars

    @property
    def marking_words(self) -> str:
        """The marking in the classification's conventional wording: "OFFICIAL-SENSITIVE"."""
        return self.marking.label

    @property
    def lines(self) -> list[tuple[str, str]]:
        """The front matter as label and value, in reading order."""
        return [
            ("Partnership", self.partnership or "(none recorded)"),
            ("Date", self.dates),
            ("Filters", self.filters or "none: everything the reader may see"),
            ("Produced by", self.produced_by),
            ("Produced at", f"{self.produced_at:%-d %B %Y, %H:%M} ({self.produced_at.tzname()})"),
            ("Protective marking", self.marking_words),
        ]


def producer(reader: Reader) -> str:
    """Who a document says produced it: the user's full name and username, or the command line."""
    if reader.user is None:
        return "The tracker's command line (full clearance)"
    username = reader.user.get_username()
    full = reader.user.get_full_name()
    return f"{full} ({username})" if full else username


def as_of_words(as_of: datetime.date) -> str:
    return f"As of {long_date(as_of)}"


def period_words(start: datetime.date, end: datetime.date) -> str:
    return f"From {long_date(start)} to {long_date(end)}"


def front(
    *,
    title: str,
    reader: Reader,
    marking: Marking,
    dates: str,
    filters: str = "",
    summary: Sequence[Table] = (),
    chart: dict[str, Any] | None = None,
) -> Front:
    return Front(
        title=title,
        marking=marking,
        dates=dates,
        filters=filters,
        produced_by=producer(reader),
        produced_at=timezone.localtime().replace(microsecond=0),
        partnership=Partnership.objects.order_by("id").values_list("title", flat=True).first() or "",
        summary=tuple(summary),
        chart=chart,
    )


def cross_count(
    rows: Iterable[dict[str, Any]],
    *,
    title: str,
    down: str,
    down_labels: Sequence[tuple[str, str]],
    across: str = "severity",
    across_labels: Sequence[tuple[str, str]] | None = None,
) -> Table:
    """Rows counted by two of their columns (`down` the lines, `across` the columns), with totals;
    a line appears only if it counts something."""
    across_labels = across_labels or [(level.value, level.label) for level in Level]
    counts = Counter((row[down], row[across]) for row in rows)
    lines = []
    for value, name in down_labels:
        numbers = [counts[(value, column)] for column, _ in across_labels]
        if any(numbers):
            lines.append((name, *numbers, sum(numbers)))
    totals = [
        sum(count for (_, column), count in counts.items() if column == value) for value, _ in across_labels
    ]
    lines.append(("Total", *totals, sum(totals)))
    header = (label_of(down), *(name for _, name in across_labels), "Total")
    return Table(title=title, header=header, rows=lines)


def label_of(column: str) -> str:
    return column.replace("_", " ").capitalize()


def domain_labels() -> list[tuple[str, str]]:
    """Every domain as (code, name), in the partnership's order."""
    return list(Domain.objects.order_by("id").values_list("code", "name"))


def vocabulary_labels(vocabulary: str, values: Sequence[str]) -> list[tuple[str, str]]:
    return [(value, label(vocabulary, value)) for value in values]
