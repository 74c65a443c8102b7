"""The partnership's reference data in the admin: partnerships, pillars, domains, territories,
precedents, capabilities (with their dated changes) and the aims (read only: the partnership file
states them)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from provisions.admin.base import (
    AuditedAdmin,
    ReadOnlyModelAdmin,
    RecordInline,
    ReferenceDataAdmin,
    _visible_provisions,
    admin_reader,
)
from provisions.models import (
    Aim,
    AimCapability,
    Capability,
    CapabilityChange,
    Domain,
    Milestone,
    Partnership,
    Party,
    Pillar,
    Precedent,
    Territory,
)
from provisions.permissions import (
    editable_domains,
)


class CapabilityChangeInline(RecordInline):
    """Its lapse date, criticality and fallback over time (the base row first). A new value saved on
    this page is recorded here, effective today."""

    model = CapabilityChange
    fields = (
        "at",
        "sets_lapses_on",
        "lapses_on",
        "criticality",
        "sets_fallback",
        "fallback",
        "note",
        "recorded_by",
    )
    ordering = ("at", "id")
    verbose_name_plural = "dated changes (an empty day: the value from the start)"


class AimCapabilityInline(RecordInline):
    model = AimCapability
    fields = ("position", "capability")
    ordering = ("position", "id")


@admin.register(Aim)
class AimAdmin(ReadOnlyModelAdmin):
    """The partnership's stated aims and the capabilities that serve each (the scorecard at /aims/)."""

    list_display = ("code", "title", "partnership")
    search_fields = ("code", "title", "text")
    fields = ("code", "title", "partnership", "text", "source")
    readonly_fields = fields
    inlines = (AimCapabilityInline,)


class PartyInline(admin.TabularInline):
    model = Party
    fields = ("code", "name")
    extra = 0


class MilestoneInline(admin.TabularInline):
    model = Milestone
    fields = ("code", "title", "date", "note")
    extra = 0


@admin.register(Partnership)
class PartnershipAdmin(ReferenceDataAdmin):
    list_display = ("code", "title", "party_count", "domain_count")
    search_fields = ("code", "title")
    ordering = ("code",)
    inlines = (PartyInline, MilestoneInline)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Partnership]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                party_count=Count("parties", distinct=True),
                domain_count=Count("domains", distinct=True),
            )
        )

    @admin.display(description="parties", ordering="party_count")
    def party_count(self, partnership: Partnership) -> int:
        return partnership.party_count  # type: ignore[attr-defined]

    @admin.display(description="domains", ordering="domain_count")
    def domain_count(self, partnership: Partnership) -> int:
        return partnership.domain_count  # type: ignore[attr-defined]


@admin.register(Pillar)
class PillarAdmin(ReferenceDataAdmin):
    list_display = ("name", "domain_count")
    search_fields = ("name",)
    # Pillars are listed in the order they were set up (the order of the partnership text).
    ordering = ("id",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Pillar]:
        return super().get_queryset(request).annotate(domain_count=Count("domains"))

    @admin.display(description="domains", ordering="domain_count")
    def domain_count(self, pillar: Pillar) -> int:
        return pillar.domain_count  # type: ignore[attr-defined]


@admin.register(Domain)
class DomainAdmin(ReferenceDataAdmin, AuditedAdmin):
    list_display = ("code", "name", "pillar", "partnership", "capability_count", "provision_count")
    list_filter = ("pillar", "partnership")
    search_fields = ("code", "name")
    list_select_related = ("pillar", "partnership")
    ordering = ("code",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Domain]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                capability_count=Count("capabilities", distinct=True),
                # Only the provisions the user may see are counted.
                provision_count=Count(
                    "provisions",
                    filter=Q(provisions__in=_visible_provisions(request).values("pk")),
                    distinct=True,
                ),
            )
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if request.GET.get("model_name") == "provision" and request.GET.get("field_name") == "domain":
            # The provision form's domain autocomplete offers only the domains the user may use there.
            queryset = queryset.filter(pk__in=editable_domains(admin_reader(request)).values("pk"))
        return queryset, may_have_duplicates

    @admin.display(description="capabilities", ordering="capability_count")
    def capability_count(self, domain: Domain) -> int:
        return domain.capability_count  # type: ignore[attr-defined]

    @admin.display(description="provisions", ordering="provision_count")
    def provision_count(self, domain: Domain) -> int:
        return domain.provision_count  # type: ignore[attr-defined]


@admin.register(Territory)
class TerritoryAdmin(ReferenceDataAdmin):
    list_display = ("code", "name", "kind", "is_stakeholder")
    list_filter = ("kind",)
    search_fields = ("code", "name")
    ordering = ("code",)

    @admin.display(description="consulted as a stakeholder", boolean=True)
    def is_stakeholder(self, territory: Territory) -> bool:
        return territory.is_stakeholder


@admin.register(Precedent)
class PrecedentAdmin(ReferenceDataAdmin):
    list_display = ("code", "title", "url", "provision_count")
    list_filter = (("url", admin.EmptyFieldListFilter),)
    search_fields = ("code", "title", "description")
    ordering = ("code",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Precedent]:
        visible = Q(provisions__in=_visible_provisions(request).values("pk"))
        return super().get_queryset(request).annotate(provision_count=Count("provisions", filter=visible))

    @admin.display(description="provisions drawing on it", ordering="provision_count")
    def provision_count(self, precedent: Precedent) -> int:
        return precedent.provision_count  # type: ignore[attr-defined]


@admin.register(Capability)
class CapabilityAdmin(ReferenceDataAdmin, AuditedAdmin):
    list_display = ("code", "name", "domain", "criticality", "lapses_on", "has_fallback", "coverage_count")
    list_filter = (
        "criticality",
        "domain__pillar",
        "domain",
        "lapses_on",
        ("fallback", admin.EmptyFieldListFilter),
    )
    search_fields = ("code", "name", "fallback", "description")
    list_select_related = ("domain",)
    ordering = ("code",)
    fields = ("code", "name", "domain", "criticality", "lapses_on", "fallback", "description")
    inlines = (CapabilityChangeInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Capability]:
        # Coverage by provisions above the user's clearance is not counted.
        visible = Q(coverage__provision__in=_visible_provisions(request).values("pk"))
        return super().get_queryset(request).annotate(coverage_count=Count("coverage", filter=visible))

    @admin.display(description="fallback", boolean=True)
    def has_fallback(self, capability: Capability) -> bool:
        return bool(capability.fallback.strip())

    @admin.display(description="covering provisions", ordering="coverage_count")
    def coverage_count(self, capability: Capability) -> int:
        return capability.coverage_count  # type: ignore[attr-defined]
