"""FilterSets: the filters the API and the HTML pages share."""

from __future__ import annotations

import django_filters
from django.contrib.postgres.search import SearchQuery
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q, QuerySet

from provisions.models import (
    PROVISION_SEARCH_VECTOR,
    Capability,
    Domain,
    Gap,
    GapKind,
    GapState,
    Level,
    Marking,
    Provision,
    Status,
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


class ProvisionFilter(django_filters.FilterSet):
    domain = django_filters.CharFilter(field_name="domain__code")
    status = django_filters.ChoiceFilter(choices=Status.choices)
    marking = django_filters.ChoiceFilter(choices=Marking.choices)
    covers = django_filters.CharFilter(
        field_name="coverage__capability__code", label="Covers capability (code)"
    )
    search = django_filters.CharFilter(method="filter_search", label="Full-text search")

    class Meta:
        model = Provision
        fields = ["domain", "status", "marking", "covers", "search"]

    def filter_search(self, queryset: QuerySet[Provision], name: str, value: str) -> QuerySet[Provision]:
        return search_provisions(queryset, value)


class CapabilityFilter(django_filters.FilterSet):
    domain = django_filters.CharFilter(field_name="domain__code")
    criticality = django_filters.ChoiceFilter(choices=Level.choices)
    lapses_before = django_filters.DateFilter(field_name="lapses_on", lookup_expr="lte")
    lapses_after = django_filters.DateFilter(field_name="lapses_on", lookup_expr="gte")

    class Meta:
        model = Capability
        fields = ["domain", "criticality", "lapses_before", "lapses_after"]


def known_domain(code: str) -> None:
    """An unknown domain code is a mistake to report (400), as with `as_of`, not an empty list.

    The code goes in as a parameter, never into the message itself: django-filter %-formats the
    message (`?domain=%` was a 500). A NUL character is the form field's own error to report; no
    database can compare it."""
    if "\x00" in code:
        return
    if not Domain.objects.filter(code=code).exists():
        raise ValidationError("unknown domain %(code)s", code="unknown_domain", params={"code": repr(code)})


class GapFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=GapKind.choices)
    severity = django_filters.ChoiceFilter(choices=Level.choices)
    domain = django_filters.CharFilter(
        method="filter_domain", label="Domain (code)", validators=[known_domain]
    )
    state = django_filters.ChoiceFilter(choices=GapState.choices, method="filter_state")
    as_of = django_filters.DateFilter(method="filter_nothing", label="Evaluate read-only at this date")

    class Meta:
        model = Gap
        fields = ["kind", "severity", "domain", "state", "as_of"]

    def filter_domain(self, queryset: QuerySet[Gap], name: str, value: str) -> QuerySet[Gap]:
        return queryset.filter(Q(capability__domain__code=value) | Q(provision__domain__code=value))

    def filter_state(self, queryset: QuerySet[Gap], name: str, value: str) -> QuerySet[Gap]:
        if value == GapState.RESOLVED:
            return queryset.filter(resolved_at__isnull=False)
        open_gaps = queryset.filter(resolved_at__isnull=True)
        return open_gaps.filter(acknowledged_at__isnull=value == GapState.OPEN)

    def filter_nothing(self, queryset: QuerySet[Gap], name: str, value: object) -> QuerySet[Gap]:
        return queryset  # as_of switches to a read-only evaluation in the view
