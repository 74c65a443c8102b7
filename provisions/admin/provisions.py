"""Provisions in the admin, with their positions, coverage, consultations and (read-only) status
history; and consultations on their own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.db.models.fields import Field
from django.http import HttpRequest

from provisions.models import (
    Consultation,
    Coverage,
    Marking,
    Party,
    Position,
    Provision,
    ProvisionQuerySet,
    StatusChange,
)
from provisions.permissions import (
    Reader,
    can_edit_provision,
    editable_domains,
)
from provisions.services.provisions import consultation_refusal
from provisions.services.scans import scan_request
from provisions.services.status import provision_record_first_status

if TYPE_CHECKING:
    pass
from provisions.admin.base import (
    AuditedAdmin,
    ReadOnlyModelAdmin,
    _bump_versions,
    _may_edit,
    _visible_provisions,
    admin_reader,
)


class ProvisionPartInline(admin.TabularInline):
    """Rows that are part of a provision: added, changed and deleted only by those who may edit it.

    Django passes these methods the parent provision as `obj` (None on the add page).
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_add_permission(request, obj) and _may_edit(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and _may_edit(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and _may_edit(request, obj)


class CoverageInline(ProvisionPartInline):
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


class PositionInline(ProvisionPartInline):
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


class ConsultationInlineForm(forms.ModelForm):
    """A consultation row under its provision: the same rules as consultation_record."""

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        territory = cleaned.get("territory")
        provision = getattr(self.instance, "provision", None)
        if territory is not None and provision is not None and provision.pk is not None:
            problem = consultation_refusal(provision, territory)
            if problem:
                self.add_error("territory", problem[0].upper() + problem[1:] + ".")
        return cleaned


class ConsultationInline(ProvisionPartInline):
    model = Consultation
    form = ConsultationInlineForm
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
    """Refuses a save when the provision changed (a move, an API write) since the page was opened,
    and one the user could not edit as it would be saved (its domain and marking)."""

    loaded_version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    change_reason = forms.CharField(
        label="Reason for the change",
        max_length=100,  # django-simple-history's history_change_reason column
        required=False,
        help_text="Recorded with the change in the provision's history.",
    )
    # Set by ProvisionAdmin.get_form: who is filling the form in.
    reader: Reader | None = None

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
        domain = cleaned_data.get("domain")
        marking = cleaned_data.get("marking")
        if self.reader is not None and domain is not None and marking:
            as_saved = Provision(pk=self.instance.pk, domain=domain, marking=marking)
            if not can_edit_provision(self.reader, as_saved):
                raise ValidationError(
                    "You may not edit a provision of %(domain)s marked %(marking)s.",
                    code="not_permitted",
                    params={"domain": domain, "marking": Marking(marking).label},
                )
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
class ProvisionAdmin(AuditedAdmin):
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Provision]:
        # Only the provisions the user's clearance allows: the changelist, the change, delete and
        # history pages, the autocompletes of other pages and bulk actions all read this.
        return cast(ProvisionQuerySet, super().get_queryset(request)).visible_to(admin_reader(request))

    def has_view_permission(self, request: HttpRequest, obj: Provision | None = None) -> bool:
        allowed: bool = super().has_view_permission(request, obj)
        return allowed and (obj is None or admin_reader(request).sees(obj.marking))

    def has_change_permission(self, request: HttpRequest, obj: Provision | None = None) -> bool:
        allowed: bool = super().has_change_permission(request, obj)
        return allowed and _may_edit(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Provision | None = None) -> bool:
        allowed: bool = super().has_delete_permission(request, obj)
        return allowed and _may_edit(request, obj)

    def get_history_queryset(
        self, request: HttpRequest, history_manager: Any, pk_name: str, object_id: Any
    ) -> Any:
        # Past versions marked above the user's clearance are left out of the provision's history.
        versions = super().get_history_queryset(request, history_manager, pk_name, object_id)
        return versions.filter(marking__in=admin_reader(request).markings)

    def get_form(
        self, request: HttpRequest, obj: Provision | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = cast(type[ProvisionAdminForm], super().get_form(request, obj, change, **kwargs))
        form.reader = admin_reader(request)
        return form

    def formfield_for_choice_field(
        self, db_field: Field[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> Any:
        if db_field.name == "marking":
            # A provision can be marked only up to the user's clearance.
            kwargs["choices"] = [
                (value, label) for value, label in Marking.choices if admin_reader(request).sees(value)
            ]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "domain":
            kwargs["queryset"] = editable_domains(admin_reader(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Provision | None = None) -> Any:
        main = ["reference", "title", "domain", "status", "marking", "text"]
        extent = ("Dates and extent", {"fields": ("target_date", "review_date", "territories", "precedents")})
        if obj is None:
            return ((None, {"fields": main}), extent, (None, {"fields": ("change_reason",)}))
        if not self.has_change_permission(request, obj):  # a view-only page has no form to check
            record = ("Record", {"fields": ("version", "created_at", "updated_at"), "classes": ("collapse",)})
            return ((None, {"fields": main}), extent, record)
        main.append("loaded_version")
        record = ("Record", {"fields": ("version", "created_at", "updated_at"), "classes": ("collapse",)})
        return ((None, {"fields": main}), extent, record, (None, {"fields": ("change_reason",)}))

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
        if change and not form.has_changed():
            return  # nothing of the provision itself changed: no empty entry in its history
        obj._change_reason = form.cleaned_data.get("change_reason") or None  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)  # SimpleHistoryAdmin records who
        if not change:
            provision_record_first_status(provision=obj, by=admin_reader(request), source="admin")

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        # The inline rows' own histories record the same reason as the provision's.
        reason = form.cleaned_data.get("change_reason") or None
        for inline_form in formset.forms:
            inline_form.instance._change_reason = reason
            if formset.model is Consultation and inline_form.instance.pk is None:
                inline_form.instance.recorded_by = admin_reader(
                    request
                ).user  # who recorded it: the one signed in
        super().save_formset(request, form, formset, change)

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

    def get_queryset(self, request: HttpRequest) -> QuerySet[StatusChange]:
        return super().get_queryset(request).filter(provision__in=_visible_provisions(request).values("pk"))


class ConsultationAdminForm(forms.ModelForm):
    """Refuses a consultation on a provision the user may not edit."""

    # Set by ConsultationAdmin.get_form: who is filling the form in.
    reader: Reader | None = None

    class Meta:
        model = Consultation
        fields = ("provision", "territory", "consulted_on", "outcome", "note")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        provision, territory = cleaned.get("provision"), cleaned.get("territory")
        if provision is not None and territory is not None:
            problem = consultation_refusal(provision, territory)
            if problem:
                self.add_error("territory", problem[0].upper() + problem[1:] + ".")
        return cleaned

    def clean_provision(self) -> Provision:
        provision: Provision = self.cleaned_data["provision"]
        if self.reader is not None and not can_edit_provision(self.reader, provision):
            raise ValidationError(
                "You may not record consultations on %(reference)s.",
                code="not_permitted",
                params={"reference": provision.reference},
            )
        return provision


@admin.register(Consultation)
class ConsultationAdmin(admin.ModelAdmin):
    """A consultation is part of its provision: seen with it, changed by whoever may edit it."""

    form = ConsultationAdminForm
    list_display = ("provision", "territory", "consulted_on", "outcome")
    list_filter = ("outcome", "territory", "consulted_on")
    search_fields = ("provision__reference", "provision__title", "territory__code", "territory__name", "note")
    list_select_related = ("provision", "territory")
    autocomplete_fields = ("provision", "territory")
    ordering = ("-consulted_on", "-id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Consultation]:
        return super().get_queryset(request).filter(provision__in=_visible_provisions(request).values("pk"))

    def has_change_permission(self, request: HttpRequest, obj: Consultation | None = None) -> bool:
        allowed: bool = super().has_change_permission(request, obj)
        return allowed and (obj is None or _may_edit(request, obj.provision))

    def has_delete_permission(self, request: HttpRequest, obj: Consultation | None = None) -> bool:
        allowed: bool = super().has_delete_permission(request, obj)
        return allowed and (obj is None or _may_edit(request, obj.provision))

    def get_form(
        self, request: HttpRequest, obj: Consultation | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = cast(type[ConsultationAdminForm], super().get_form(request, obj, change, **kwargs))
        form.reader = admin_reader(request)
        return form

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "provision":
            kwargs["queryset"] = _visible_provisions(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Consultation, form: Any, change: bool) -> None:
        if not change:
            obj.recorded_by = admin_reader(request).user  # who recorded it is the one signed in, never typed
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
