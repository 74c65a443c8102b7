"""What the gap engine records, in the admin: gaps (acknowledged here), scans, scan requests, and
the thresholds of the rules."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from provisions.models import (
    Domain,
    Gap,
    GapQuerySet,
    GapRuleThresholds,
    GapScan,
    GapState,
    ScanRequest,
)
from provisions.permissions import (
    can_acknowledge_gaps,
    can_administer,
)
from provisions.rules import Thresholds
from provisions.services.scans import gap_acknowledge, gap_thresholds_set

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise
from provisions.admin.base import ReadOnlyModelAdmin, admin_reader
from provisions.redaction import WITHHELD_EXPLANATION, Redaction


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

    def queryset(self, request: HttpRequest, queryset: GapQuerySet) -> QuerySet[Any]:  # type: ignore[override]
        code = self.value()
        if not code:
            return queryset
        return queryset.in_domains(list(Domain.objects.filter(code=code)))


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
    # Not the explanation: a capability gap's names the provisions covering it, and a search for a
    # reference above the reader's clearance would tell them it exists.
    search_fields = ("capability__code", "capability__name", "provision__reference", "provision__title")
    list_select_related = ("capability", "provision")
    ordering = ("-opened_at", "-id")
    fields = (
        "kind",
        "severity",
        "capability",
        "provision",
        "explanation_shown",
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
        return Gap.objects.visible_to(admin_reader(request)).select_related(
            "capability", "provision", "opened_by_scan", "resolved_by_scan", "acknowledged_by"
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Gap | None:
        gap: Gap | None = super().get_object(request, object_id, from_field)
        if gap is not None:
            # A capability gap's explanation may name provisions above the reader's clearance.
            shown = Redaction.for_reader(admin_reader(request)).gap_explanation(gap)
            gap._explanation_shown = shown  # type: ignore[attr-defined]
        return gap

    @admin.display(description="subject")
    def subject(self, gap: Gap) -> str:
        return str(gap.capability or gap.provision)

    @admin.display(description="explanation")
    def explanation_shown(self, gap: Gap) -> str:
        return getattr(gap, "_explanation_shown", WITHHELD_EXPLANATION)

    @admin.display(description="state")
    def state(self, gap: Gap) -> str:
        return gap.state.label

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Gap | None = None) -> bool:
        # A resolved gap is history: it can no longer be acknowledged.
        if obj is not None and obj.resolved_at is not None:
            return False
        allowed: bool = super().has_change_permission(request, obj)
        return allowed and can_acknowledge_gaps(admin_reader(request))

    def has_delete_permission(self, request: HttpRequest, obj: Gap | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Gap, form: Any, change: bool) -> None:
        if "acknowledgement_note" in form.changed_data:
            gap_acknowledge(gap=obj, by=admin_reader(request), note=form.cleaned_data["acknowledgement_note"])


@admin.register(GapScan)
class GapScanAdmin(ReadOnlyModelAdmin):
    """The scans the engine ran. Their counts include every marking: shown only to those cleared to
    every marking (the API withholds them the same way)."""

    list_display = ("id", "as_of", "trigger", "full", "started_at", "duration_ms", *GapScan.COUNTS)
    list_filter = ("trigger", "full", "as_of")
    ordering = ("-started_at", "-id")

    def get_list_display(self, request: HttpRequest) -> Any:
        if admin_reader(request).sees_everything:
            return self.list_display
        return [name for name in self.list_display if name not in GapScan.COUNTS]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_fields(request, obj)
        if admin_reader(request).sees_everything:
            return fields
        return [name for name in fields if name not in GapScan.COUNTS]


@admin.register(ScanRequest)
class ScanRequestAdmin(ReadOnlyModelAdmin):
    """The outbox of scans asked for and not yet run; a scan deletes the requests it handles. It names
    the provisions that just changed, whatever their marking: only for those cleared to every marking."""

    list_display = ("id", "requested_at", "trigger", "full", "provision_ids", "capability_ids")
    list_filter = ("trigger", "full")
    ordering = ("id",)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return admin_reader(request).sees_everything and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin_reader(request).sees_everything and super().has_view_permission(request, obj)


@admin.register(GapRuleThresholds)
class GapRuleThresholdsAdmin(SimpleHistoryAdmin):
    """One row: the thresholds the gap rules use (until it exists, the settings'). Saving it asks for
    a full scan, since every gap may change."""

    fields = ("secured_status", "warning_days", "urgent_days", "stall_days", "updated_at", "updated_by")
    readonly_fields = ("updated_at", "updated_by")
    list_display = ("__str__", "secured_status", "warning_days", "urgent_days", "stall_days", "updated_at")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_administer(admin_reader(request))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_administer(admin_reader(request))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_administer(admin_reader(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return can_administer(admin_reader(request)) and not GapRuleThresholds.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        current = Thresholds.current()  # the settings' until a row exists
        return {
            "secured_status": current.secured_status.value,
            "warning_days": current.warning_days,
            "urgent_days": current.urgent_days,
            "stall_days": current.stall_days,
        }

    def save_model(self, request: HttpRequest, obj: GapRuleThresholds, form: Any, change: bool) -> None:
        saved = gap_thresholds_set(
            by=admin_reader(request),
            secured_status=obj.secured_status,
            warning_days=obj.warning_days,
            urgent_days=obj.urgent_days,
            stall_days=obj.stall_days,
        )
        obj.pk = saved.pk
        self.message_user(request, "Thresholds saved; a full gap scan has been requested.")
