"""FilterSets: the filters the API and the HTML pages share."""

from __future__ import annotations

import datetime
from typing import Any

import django_filters
from django import forms
from django.contrib.postgres.search import SearchQuery
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q, QuerySet

from provisions.models import (
    PROVISION_SEARCH_VECTOR,
    ApiToken,
    Capability,
    Domain,
    Gap,
    GapKind,
    GapQuerySet,
    GapScan,
    GapState,
    Level,
    Marking,
    Precedent,
    Provision,
    Status,
    Territory,
    WebhookEndpoint,
)


def search_provisions(queryset: QuerySet[Provision], text: str) -> QuerySet[Provision]:
    """Full-text search on PostgreSQL (GIN index); a plain substring match elsewhere."""
    if not text.strip():
        return queryset
    if connection.vendor == "postgresql":
        return queryset.annotate(search=PROVISION_SEARCH_VECTOR).filter(
            search=SearchQuery(text, config="english", search_type="websearch")
        )
    return queryset.filter(Q(reference__icontains=text) | Q(title__icontains=text) | Q(text__icontains=text))


def plausible_moment(value: datetime.datetime) -> None:
    """A moment between 1900 and 2999 with a UTC offset no further than the world's (14 hours):
    PostgreSQL refuses larger offsets (`-17:52` was a 500), and nothing was written outside."""
    offset = value.utcoffset()
    if not 1900 <= value.year <= 2999 or (offset is not None and abs(offset) > datetime.timedelta(hours=14)):
        raise ValidationError(
            "expected a moment between 1900 and 2999 with a UTC offset within 14 hours", code="implausible"
        )


def changed_since_filter(subject: str) -> django_filters.IsoDateTimeFilter:
    return django_filters.IsoDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gte",
        validators=[plausible_moment],
        label=f"Changed at or after this moment (ISO 8601): {subject}",
    )


class ProvisionFilter(django_filters.FilterSet):
    domain = django_filters.CharFilter(field_name="domain__code")
    status = django_filters.ChoiceFilter(choices=Status.choices)
    marking = django_filters.ChoiceFilter(choices=Marking.choices)
    covers = django_filters.CharFilter(
        field_name="coverage__capability__code", label="Covers capability (code)"
    )
    search = django_filters.CharFilter(method="filter_search", label="Full-text search")
    updated_since = changed_since_filter(
        "any write to the provision, its status, positions, coverage, discussions or dated values moves its"
        " updated_at"
    )

    class Meta:
        model = Provision
        fields = ["domain", "status", "marking", "covers", "search", "updated_since"]

    def filter_search(self, queryset: QuerySet[Provision], name: str, value: str) -> QuerySet[Provision]:
        return search_provisions(queryset, value)


class CapabilityFilter(django_filters.FilterSet):
    domain = django_filters.CharFilter(field_name="domain__code")
    criticality = django_filters.ChoiceFilter(choices=Level.choices)
    lapses_before = django_filters.DateFilter(field_name="lapses_on", lookup_expr="lte")
    lapses_after = django_filters.DateFilter(field_name="lapses_on", lookup_expr="gte")
    updated_since = changed_since_filter(
        "any change to the capability, a dated value recorded or taking effect, or its domain's code"
        " moves its updated_at (deletions: the `capability.deleted` event)"
    )

    class Meta:
        model = Capability
        fields = ["domain", "criticality", "lapses_before", "lapses_after", "updated_since"]


def updated_since_filter(
    listed: type[Domain | Territory | Precedent | GapScan | WebhookEndpoint],
    moved_by: str = "any change to the row, or to what it shows of another (a domain's pillar and"
    " partnership), moves its updated_at",
) -> type[django_filters.FilterSet]:
    """A list's FilterSet with only `updated_since` on its `updated_at` (domains, territories,
    precedents, gap scans, webhook endpoints)."""

    class UpdatedSinceFilter(django_filters.FilterSet):
        updated_since = changed_since_filter(moved_by)

        class Meta:
            model = listed
            fields = ["updated_since"]

    UpdatedSinceFilter.__name__ = f"{listed.__name__}Filter"
    return UpdatedSinceFilter


def known_domains(codes: list[str]) -> None:
    """An unknown domain code is a mistake to report (400), as with `as_of`, not an empty list.

    The code goes in as a parameter, never into the message itself: django-filter %-formats the
    message (`?domain=%` was a 500). A NUL character is the form field's own error to report; no
    database can compare it."""
    codes = [code for code in codes if "\x00" not in code]
    known = set(Domain.objects.filter(code__in=codes).values_list("code", flat=True))
    for code in codes:
        if code not in known:
            raise ValidationError(
                "unknown domain %(code)s", code="unknown_domain", params={"code": repr(code)}
            )


class CodesField(forms.Field):
    """Every value given for the name (`?domain=a&domain=b`), as a list; blanks dropped."""

    widget = forms.SelectMultiple

    def to_python(self, value: Any) -> list[str]:
        if value in self.empty_values:
            return []
        if isinstance(value, str):
            value = [value]
        return [str(item) for item in value if item]


class CodesFilter(django_filters.MultipleChoiceFilter):
    """Several codes of a table too long to list as choices (the schema: an array of strings)."""

    field_class = CodesField


class GapFilter(django_filters.FilterSet):
    """Each of kind, severity and domain takes several values (any of them)."""

    # Columns of the gap itself: no join to make rows repeat, so no DISTINCT (django-filter's default).
    kind = django_filters.MultipleChoiceFilter(
        choices=GapKind.choices, widget=forms.CheckboxSelectMultiple, distinct=False
    )
    severity = django_filters.MultipleChoiceFilter(
        choices=Level.choices, widget=forms.CheckboxSelectMultiple, distinct=False
    )
    domain = CodesFilter(method="filter_domain", label="Domain (code)", validators=[known_domains])
    state = django_filters.ChoiceFilter(choices=GapState.choices, method="filter_state")
    as_of = django_filters.DateFilter(method="filter_nothing", label="Evaluate read-only at this date")

    class Meta:
        model = Gap
        fields = ["kind", "severity", "domain", "state", "as_of"]

    def filter_domain(self, queryset: GapQuerySet, name: str, value: list[str]) -> QuerySet[Gap]:
        if not value:
            return queryset
        # The domains' ids as values, for the planner to read each domain's gaps from its index (a
        # subquery left it to walk every gap: 140 ms instead of 2 at a million provisions).
        return queryset.in_domains(list(Domain.objects.filter(code__in=value)))

    def filter_state(self, queryset: QuerySet[Gap], name: str, value: str) -> QuerySet[Gap]:
        if value == GapState.RESOLVED:
            return queryset.filter(resolved_at__isnull=False)
        open_gaps = queryset.filter(resolved_at__isnull=True)
        return open_gaps.filter(acknowledged_at__isnull=value == GapState.OPEN)

    def filter_nothing(self, queryset: QuerySet[Gap], name: str, value: object) -> QuerySet[Gap]:
        return queryset  # as_of switches to a read-only evaluation in the view


class GapApiFilter(GapFilter):
    """The API's gap filters: the page's, and the gaps changed since a moment (to keep a copy in sync)."""

    updated_since = changed_since_filter(
        "opened, re-evaluated (severity, explanation, coverage), acknowledged or resolved"
    )

    class Meta(GapFilter.Meta):
        fields = [*GapFilter.Meta.fields, "updated_since"]


class ApiTokenFilter(django_filters.FilterSet):
    updated_since = django_filters.IsoDateTimeFilter(
        method="filter_updated_since",
        validators=[plausible_moment],
        label="Made, used or revoked at or after this moment (ISO 8601)",
    )

    class Meta:
        model = ApiToken
        fields = ["updated_since"]

    def filter_updated_since(
        self, queryset: QuerySet[ApiToken], name: str, value: datetime.datetime
    ) -> QuerySet[ApiToken]:
        return queryset.filter(
            Q(created_at__gte=value) | Q(last_used_at__gte=value) | Q(revoked_at__gte=value)
        )
