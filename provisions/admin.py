"""The Django admin: reference data, users' corrections and a read-only view of what the engine records.

Status moves never happen here: a provision's status is chosen when it is added (writing its first
status change) and is read-only after that; moves go through `provision_transition`. Edits that can
change coverage ask for a gap scan of what they touched, and edits to a provision or its inlines bump
its version, so a write based on an older version (here or in the API) is refused.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, F, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from provisions.models import (
    Capability,
    Consultation,
    Coverage,
    Domain,
    Gap,
    GapScan,
    GapState,
    Milestone,
    Partnership,
    Party,
    Pillar,
    Position,
    Precedent,
    Provision,
    ScanRequest,
    StatusChange,
    Territory,
    User,
)
from provisions.services.scans import gap_acknowledge, scan_request
from provisions.services.status import provision_record_first_status

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise


def _acting_user(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User):  # the admin only serves signed-in staff
        raise PermissionDenied
    return user


def _bump_versions(provision_ids: Collection[int]) -> None:
    """A provision or one of its inlines changed: writes based on the version before are now stale."""
    if provision_ids:
        Provision.objects.filter(pk__in=provision_ids).update(
            version=F("version") + 1, updated_at=timezone.now()
        )


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Records written by the services (history, scans, the outbox): viewable, never edited here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- the partnership -------------------------------------------------------------------------------------


class PartyInline(admin.TabularInline):
    model = Party
    fields = ("code", "name")
    extra = 0


class MilestoneInline(admin.TabularInline):
    model = Milestone
    fields = ("code", "title", "date", "note")
    extra = 0


@admin.register(Partnership)
class PartnershipAdmin(admin.ModelAdmin):
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
class PillarAdmin(admin.ModelAdmin):
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
class DomainAdmin(admin.ModelAdmin):
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
                provision_count=Count("provisions", distinct=True),
            )
        )

    @admin.display(description="capabilities", ordering="capability_count")
    def capability_count(self, domain: Domain) -> int:
        return domain.capability_count  # type: ignore[attr-defined]

    @admin.display(description="provisions", ordering="provision_count")
    def provision_count(self, domain: Domain) -> int:
        return domain.provision_count  # type: ignore[attr-defined]


@admin.register(Territory)
class TerritoryAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "kind", "is_stakeholder")
    list_filter = ("kind",)
    search_fields = ("code", "name")
    ordering = ("code",)

    @admin.display(description="consulted as a stakeholder", boolean=True)
    def is_stakeholder(self, territory: Territory) -> bool:
        return territory.is_stakeholder


@admin.register(Precedent)
class PrecedentAdmin(admin.ModelAdmin):
    list_display = ("code", "title", "url", "provision_count")
    list_filter = (("url", admin.EmptyFieldListFilter),)
    search_fields = ("code", "title", "description")
    ordering = ("code",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Precedent]:
        return super().get_queryset(request).annotate(provision_count=Count("provisions"))

    @admin.display(description="provisions drawing on it", ordering="provision_count")
    def provision_count(self, precedent: Precedent) -> int:
        return precedent.provision_count  # type: ignore[attr-defined]


@admin.register(Capability)
class CapabilityAdmin(admin.ModelAdmin):
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Capability]:
        return super().get_queryset(request).annotate(coverage_count=Count("coverage"))

    @admin.display(description="fallback", boolean=True)
    def has_fallback(self, capability: Capability) -> bool:
        return bool(capability.fallback.strip())

    @admin.display(description="covering provisions", ordering="coverage_count")
    def coverage_count(self, capability: Capability) -> int:
        return capability.coverage_count  # type: ignore[attr-defined]

    def save_model(self, request: HttpRequest, obj: Capability, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change or form.has_changed():
            # Its criticality and lapse date decide its own gap and those of the provisions covering it.
            covering = Coverage.objects.filter(capability=obj).values_list("provision_id", flat=True)
            scan_request(capability_ids=[obj.pk], provision_ids=list(covering))

    def delete_model(self, request: HttpRequest, obj: Capability) -> None:
        self.delete_queryset(request, Capability.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        covering = set(
            Coverage.objects.filter(capability__in=queryset).values_list("provision_id", flat=True)
        )
        super().delete_queryset(request, queryset)
        if covering:
            scan_request(provision_ids=covering)


# --- provisions ------------------------------------------------------------------------------------------


class CoverageInline(admin.TabularInline):
    model = Coverage
    fields = ("capability", "extent", "criticality", "lapses_on")
    readonly_fields = ("criticality", "lapses_on")
    autocomplete_fields = ("capability",)
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[Coverage]:
        return super().get_queryset(request).select_related("capability")

    @admin.display(description="criticality")
    def criticality(self, coverage: Coverage) -> str:
        return coverage.capability.get_criticality_display() if coverage.capability_id else ""

    @admin.display(description="lapses on")
    def lapses_on(self, coverage: Coverage) -> str:
        if coverage.capability_id is None or coverage.capability.lapses_on is None:
            return ""
        return coverage.capability.lapses_on.isoformat()


class PositionInline(admin.TabularInline):
    model = Position
    fields = ("party", "stance", "firmness", "note", "updated_at")
    readonly_fields = ("updated_at",)
    extra = 0

    def get_formset(self, request: HttpRequest, obj: Provision | None = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        party_field = formset.form.base_fields.get("party")
        if obj is not None and isinstance(party_field, forms.ModelChoiceField):
            # Only the parties to this provision's partnership can take a position on it.
            party_field.queryset = Party.objects.filter(partnership_id=obj.domain.partnership_id)
        return formset


class ConsultationInline(admin.TabularInline):
    model = Consultation
    fields = ("territory", "consulted_on", "outcome", "note")
    autocomplete_fields = ("territory",)
    extra = 0


class StatusChangeInline(admin.TabularInline):
    """The provision's history, oldest first. Moves are made with `provision_transition`, not here."""

    model = StatusChange
    fields = ("changed_on", "from_status", "to_status", "note", "changed_by", "source", "recorded_at")
    readonly_fields = fields
    ordering = ("changed_on", "id")
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[StatusChange]:
        return super().get_queryset(request).select_related("changed_by")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ProvisionAdminForm(forms.ModelForm):
    """Refuses a save when the provision changed (a move, an API write) since the page was opened."""

    loaded_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Provision
        fields = (
            "reference",
            "title",
            "domain",
            "status",
            "marking",
            "text",
            "target_date",
            "review_date",
            "territories",
            "precedents",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["loaded_version"].initial = self.instance.version
            self.fields["loaded_version"].required = True

    def clean(self) -> dict[str, Any]:
        cleaned_data = super().clean() or {}
        loaded = cleaned_data.get("loaded_version")
        if self.instance.pk is not None and loaded is not None:
            # Locked until the admin's transaction ends, so no move slips in between check and save.
            current = (
                Provision.objects.select_for_update()
                .values_list("version", flat=True)
                .get(pk=self.instance.pk)
            )
            if current != loaded:
                raise ValidationError(
                    "This provision has changed since you opened this page (you had version %(loaded)s, "
                    "it is now %(current)s). Reload the page and make your changes again.",
                    code="stale_version",
                    params={"loaded": loaded, "current": current},
                )
        return cleaned_data


class ProvisionChangeList(ChangeList):
    def get_queryset(self, request: HttpRequest, exclude_parameters: list[str | None] | None = None) -> Any:
        # The alignment column reads each provision's positions and its partnership's parties.
        return (
            super()
            .get_queryset(request, exclude_parameters)
            .prefetch_related("positions", "domain__partnership__parties")
        )


# Inlines whose rows are part of the provision (their changes bump its version).
_PROVISION_PARTS = (Coverage, Position, Consultation)


@admin.register(Provision)
class ProvisionAdmin(admin.ModelAdmin):
    form = ProvisionAdminForm
    list_display = (
        "reference",
        "title",
        "domain",
        "status",
        "alignment",
        "marking",
        "target_date",
        "review_date",
        "updated_at",
    )
    list_filter = ("status", "marking", "domain__pillar", "domain", "target_date", "review_date")
    search_fields = ("reference", "title", "domain__code", "domain__name")
    list_select_related = ("domain", "domain__partnership")
    autocomplete_fields = ("domain", "precedents", "territories")
    ordering = ("reference",)
    inlines = (PositionInline, CoverageInline, ConsultationInline, StatusChangeInline)

    def get_fieldsets(self, request: HttpRequest, obj: Provision | None = None) -> Any:
        main = ["reference", "title", "domain", "status", "marking", "text"]
        extent = ("Dates and extent", {"fields": ("target_date", "review_date", "territories", "precedents")})
        if obj is None:
            return ((None, {"fields": main}), extent)
        if self.has_change_permission(request, obj):
            main.append("loaded_version")  # a view-only page has no form to check
        record = ("Record", {"fields": ("version", "created_at", "updated_at"), "classes": ("collapse",)})
        return ((None, {"fields": main}), extent, record)

    def get_readonly_fields(self, request: HttpRequest, obj: Provision | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return ("status", "version", "created_at", "updated_at")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ProvisionChangeList

    @admin.display(description="alignment")
    def alignment(self, provision: Provision) -> str:
        return provision.alignment.label

    def save_model(self, request: HttpRequest, obj: Provision, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            provision_record_first_status(provision=obj, by=_acting_user(request), source="admin")

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        provision: Provision = form.instance
        parts = [formset for formset in formsets if formset.model in _PROVISION_PARTS]
        changed = not change or form.has_changed() or any(formset.has_changed() for formset in parts)
        covered_before = set(provision.coverage.values_list("capability_id", flat=True))
        super().save_related(request, form, formsets, change)
        if not changed:
            return
        if change:
            _bump_versions([provision.pk])
            provision.refresh_from_db(fields=["version", "updated_at"])
        covered_after = set(provision.coverage.values_list("capability_id", flat=True))
        # Capabilities it stopped covering are re-evaluated too: their coverage may have gone.
        scan_request(provision_ids=[provision.pk], capability_ids=covered_before | covered_after)

    def delete_model(self, request: HttpRequest, obj: Provision) -> None:
        self.delete_queryset(request, Provision.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        covered = set(Coverage.objects.filter(provision__in=queryset).values_list("capability_id", flat=True))
        super().delete_queryset(request, queryset)
        if covered:
            scan_request(capability_ids=covered)


@admin.register(StatusChange)
class StatusChangeAdmin(ReadOnlyModelAdmin):
    """Immutable history: no add, change or delete, whoever asks."""

    list_display = (
        "provision",
        "from_status",
        "to_status",
        "changed_on",
        "changed_by",
        "source",
        "recorded_at",
    )
    list_filter = ("to_status", "from_status", "source", "changed_on", "provision__domain")
    search_fields = ("provision__reference", "provision__title", "note", "changed_by__username")
    list_select_related = ("provision", "changed_by")
    date_hierarchy = "changed_on"
    ordering = ("-changed_on", "-id")


@admin.register(Consultation)
class ConsultationAdmin(admin.ModelAdmin):
    list_display = ("provision", "territory", "consulted_on", "outcome")
    list_filter = ("outcome", "territory", "consulted_on")
    search_fields = ("provision__reference", "provision__title", "territory__code", "territory__name", "note")
    list_select_related = ("provision", "territory")
    autocomplete_fields = ("provision", "territory")
    ordering = ("-consulted_on", "-id")

    def save_model(self, request: HttpRequest, obj: Consultation, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change or form.has_changed():
            # A consultation is part of its provision: moving one to another provision changes both.
            initial_provision = form.initial.get("provision")
            _bump_versions({obj.provision_id, *([initial_provision] if initial_provision else [])})

    def delete_model(self, request: HttpRequest, obj: Consultation) -> None:
        provision_id = obj.provision_id
        super().delete_model(request, obj)
        _bump_versions([provision_id])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        provision_ids = set(queryset.values_list("provision_id", flat=True))
        super().delete_queryset(request, queryset)
        _bump_versions(provision_ids)


# --- gaps ------------------------------------------------------------------------------------------------


class GapStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Iterable[tuple[str, _StrOrPromise]]:
        return GapState.choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        match self.value():
            case GapState.OPEN:
                return queryset.filter(resolved_at__isnull=True, acknowledged_at__isnull=True)
            case GapState.ACKNOWLEDGED:
                return queryset.filter(resolved_at__isnull=True, acknowledged_at__isnull=False)
            case GapState.RESOLVED:
                return queryset.filter(resolved_at__isnull=False)
        return queryset


class GapDomainFilter(admin.SimpleListFilter):
    """A gap's domain is its subject's: the capability's or the provision's."""

    title = "domain"
    parameter_name = "domain"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Iterable[tuple[str, _StrOrPromise]]:
        return list(Domain.objects.order_by("code").values_list("code", "name"))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        code = self.value()
        if not code:
            return queryset
        return queryset.filter(Q(capability__domain__code=code) | Q(provision__domain__code=code))


class GapAcknowledgementForm(forms.ModelForm):
    class Meta:
        model = Gap
        fields = ("acknowledgement_note",)

    def clean_acknowledgement_note(self) -> str:
        note: str = self.cleaned_data["acknowledgement_note"].strip()
        if not note and "acknowledgement_note" in self.changed_data:
            raise ValidationError("An acknowledgement needs a note.", code="note_required")
        return note


@admin.register(Gap)
class GapAdmin(admin.ModelAdmin):
    """Gaps are opened and resolved by scans; people only acknowledge an open one, with a note."""

    form = GapAcknowledgementForm
    list_display = ("kind", "severity", "subject", "state", "opened_at", "resolved_at", "acknowledged_at")
    list_filter = (GapStateFilter, "kind", "severity", GapDomainFilter, "opened_at")
    search_fields = (
        "capability__code",
        "capability__name",
        "provision__reference",
        "provision__title",
        "explanation",
    )
    list_select_related = ("capability", "provision")
    ordering = ("-opened_at", "-id")
    fields = (
        "kind",
        "severity",
        "capability",
        "provision",
        "explanation",
        "state",
        "opened_at",
        "opened_by_scan",
        "resolved_at",
        "resolved_by_scan",
        "acknowledged_at",
        "acknowledged_by",
        "acknowledgement_note",
    )
    readonly_fields = tuple(field for field in fields if field != "acknowledgement_note")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Gap]:
        return (
            super()
            .get_queryset(request)
            .select_related(
                "capability", "provision", "opened_by_scan", "resolved_by_scan", "acknowledged_by"
            )
        )

    @admin.display(description="subject")
    def subject(self, gap: Gap) -> str:
        return str(gap.capability or gap.provision)

    @admin.display(description="state")
    def state(self, gap: Gap) -> str:
        return gap.state.label

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Gap | None = None) -> bool:
        # A resolved gap is history: it can no longer be acknowledged.
        if obj is not None and obj.resolved_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Gap | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Gap, form: Any, change: bool) -> None:
        if "acknowledgement_note" in form.changed_data:
            gap_acknowledge(gap=obj, by=_acting_user(request), note=form.cleaned_data["acknowledgement_note"])


@admin.register(GapScan)
class GapScanAdmin(ReadOnlyModelAdmin):
    list_display = (
        "id",
        "as_of",
        "trigger",
        "full",
        "started_at",
        "duration_ms",
        "evaluated_subjects",
        "opened",
        "updated",
        "resolved",
        "unchanged",
    )
    list_filter = ("trigger", "full", "as_of")
    ordering = ("-started_at", "-id")


@admin.register(ScanRequest)
class ScanRequestAdmin(ReadOnlyModelAdmin):
    """The outbox of scans asked for and not yet run; a scan deletes the requests it handles."""

    list_display = ("id", "requested_at", "trigger", "full", "provision_ids", "capability_ids")
    list_filter = ("trigger", "full")
    ordering = ("id",)


@admin.register(User)
class TrackerUserAdmin(UserAdmin):
    fieldsets = (
        *(UserAdmin.fieldsets or ()),
        ("Clearance and domains", {"fields": ("clearance", "domains")}),
    )
    list_display = ("username", "email", "clearance", "is_staff", "is_superuser", "is_active")
    list_filter = (*UserAdmin.list_filter, "clearance", "groups")
    filter_horizontal = (*UserAdmin.filter_horizontal, "domains")
