"""Tables that sort by a column header: server-side links (`?sort=lapses`, `?sort=-lapses`), no
JavaScript, the sorted column marked with `aria-sort`.

A table declares its columns once: the key in the URL, the header, the database ordering (for a
queryset) and the row field (for rows already in memory, such as a read-only evaluation's). With no
`sort`, or one the table does not know, the table's default order applies and its column is marked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Case, F, IntegerField, QuerySet, Value, When
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce
from django.http import HttpRequest

from provisions.models import Level, Status


@dataclass(frozen=True)
class Column:
    key: str  # in the URL
    label: str
    ordering: Combinable  # in the database
    row_key: Callable[[dict[str, Any]], Any] | None = None  # the same order for rows in memory (None: empty)
    descending_first: bool = False  # a first click sorts descending (severity: critical first)


@dataclass(frozen=True)
class Header:
    key: str
    label: str
    query: str = ""  # the page's query with this column's next sort (and the first page); "": no link
    aria_sort: str = ""  # "ascending", "descending" or "" (not sorted by it)


def plain_headers(columns: Sequence[Column]) -> list[Header]:
    """The headers of a table that does not sort (a short list, in its default order)."""
    return [Header(column.key, column.label) for column in columns]


class Sorting:
    """The order a request asks a table for."""

    def __init__(
        self, request: HttpRequest, columns: Sequence[Column], *, default: str, param: str = "sort"
    ) -> None:
        self.columns = {column.key: column for column in columns}
        self.param, self.request = param, request
        asked = request.GET.get(param, "")
        self.explicit = asked.lstrip("-") in self.columns
        chosen = asked if self.explicit else default
        self.key, self.descending = chosen.lstrip("-"), chosen.startswith("-")

    @property
    def column(self) -> Column:
        return self.columns[self.key]

    def headers(self, page_param: str = "page") -> list[Header]:
        headers = []
        for key, column in self.columns.items():
            # A second click on the sorted column turns it round; another column starts its own way.
            descending = not self.descending if key == self.key else column.descending_first
            query = self.request.GET.copy()
            query[self.param] = f"-{key}" if descending else key
            query.pop(page_param, None)
            sorted_as = ""
            if key == self.key:
                sorted_as = "descending" if self.descending else "ascending"
            headers.append(Header(key, column.label, query.urlencode(), sorted_as))
        return headers

    def headers_by_key(self, page_param: str = "page") -> dict[str, Header]:
        return {header.key: header for header in self.headers(page_param)}

    def terms(self, *then: Any) -> list[Any]:
        """Database ordering: the column (empties last either way), then the given tie-breakers."""
        ordering = self.column.ordering
        first = ordering.desc(nulls_last=True) if self.descending else ordering.asc(nulls_last=True)  # type: ignore[attr-defined]
        return [first, *then]

    def apply(self, queryset: QuerySet[Any], *then: Any) -> QuerySet[Any]:
        return queryset.order_by(*self.terms(*then))

    def rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows in memory, by the column (empties last either way); ties keep their order."""
        key = self.column.row_key
        if key is None:
            raise ValueError(f"the column {self.key!r} sorts in the database only")
        filled = [row for row in rows if key(row) is not None]
        empty = [row for row in rows if key(row) is None]
        return sorted(filled, key=key, reverse=self.descending) + empty


# --- gaps ---------------------------------------------------------------------------------------------------

WEIGHT_BY_SEVERITY = {level.value: level.weight for level in Level}
SEVERITY_WEIGHT = Case(
    *(When(severity=value, then=Value(weight)) for value, weight in WEIGHT_BY_SEVERITY.items()),
    output_field=IntegerField(),
)
SUBJECT_CODE = Coalesce(F("capability__code"), F("provision__reference"))
SUBJECT_DOMAIN = Coalesce(F("capability__domain__name"), F("provision__domain__name"))


def _field(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row.get(name) or None


GAP_COLUMNS = (
    Column(
        "severity",
        "Severity",
        SEVERITY_WEIGHT,
        lambda row: WEIGHT_BY_SEVERITY.get(row["severity"]),
        descending_first=True,
    ),
    Column("kind", "Kind", F("kind"), _field("kind")),
    Column("subject", "Subject", SUBJECT_CODE, _field("subject_code")),
    Column("domain", "Domain", SUBJECT_DOMAIN, _field("domain_name")),
    Column("lapses", "Lapses or ends", F("lapses_on"), _field("lapses_on")),
    Column("opened", "Opened", F("opened_at"), _field("opened_at"), descending_first=True),
)
# DESIGN.md's report order: severity (critical first), lapse date (empty last), kind, subject code.
GAP_REPORT_ORDER = (
    SEVERITY_WEIGHT.desc(),
    F("lapses_on").asc(nulls_last=True),
    F("kind").asc(),
    SUBJECT_CODE.asc(),
    F("id").asc(),
)


def gap_sorting(request: HttpRequest) -> Sorting:
    return Sorting(request, GAP_COLUMNS, default="-severity")


def sorted_gaps(sorting: Sorting, gaps: QuerySet[Any]) -> QuerySet[Any]:
    """Gaps by the chosen column, ties (and no choice) in the report order."""
    if not sorting.explicit:
        return gaps.order_by(*GAP_REPORT_ORDER)
    return sorting.apply(gaps, *GAP_REPORT_ORDER)


def sorted_gap_rows(sorting: Sorting, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows already in the report order (an evaluation's), by the chosen column."""
    return sorting.rows(rows) if sorting.explicit else rows


# --- a domain's capabilities and provisions -----------------------------------------------------------------

CRITICALITY_WEIGHT = Case(
    *(When(criticality=value, then=Value(weight)) for value, weight in WEIGHT_BY_SEVERITY.items()),
    output_field=IntegerField(),
)
STATUS_RANK = Case(
    *(When(status=status.value, then=Value(index)) for index, status in enumerate(Status)),
    output_field=IntegerField(),
)
CAPABILITY_COLUMNS = (
    Column("code", "Capability", F("code")),
    Column("criticality", "Criticality", CRITICALITY_WEIGHT, descending_first=True),
    Column("lapses", "Lapses on", F("lapses_on")),
)
PROVISION_COLUMNS = (
    Column("reference", "Provision", F("reference")),
    Column("status", "Status", STATUS_RANK),
)
