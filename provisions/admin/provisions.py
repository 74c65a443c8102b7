"""Provisions in the admin, with their positions, coverage, consultations and (read-only) status
history, dated changes and discussions; and consultations on their own."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.db.models.fields import Field
from django.http import HttpRequest

from provisions.admin.base import (
    AuditedAdmin,
    OneEditPerSave,
    ReadOnlyModelAdmin,
    RecordInline,
    _may_edit,
    _visible_provisions,
    admin_reader,
)
from provisions.models import (
    Consultation,
    Coverage,
    Discussion,
    Marking,
    Party,
    Position,
    Provision,
    ProvisionChange,
    ProvisionQuerySet,
    StatusChange,
)
from provisions.permissions import (
    Reader,
    can_edit_provision,
    editable_domains,
)
from provisions.services.editing import StaleVersion, provision_lock
from provisions.services.provisions import (
    EDITABLE_FIELDS,
    LINKED_FIELDS,
    consultation_record,
    consultation_refusal,
    consultation_remove,
    consultation_update,
    coverage_set,
    position_remove,
    position_set,
    provision_create,
    provision_update,
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
    """Its links, ended ones included: a change ends the link in force today and starts a new one."""

    model = Coverage
    fields = ("capability", "extent", "valid_from", "valid_until", "criticality", "lapses_on")
    readonly_fields = ("valid_from", "valid_until", "criticality", "lapses_on")
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
    """Each party's dated positions: a new one is added (taken today unless dated earlier, with a
    reason); a recorded one is kept as it was, or removed if it was a mistake."""

    model = Position
    fields = ("party", "stance", "firmness", "note", "taken_on")
    extra = 0

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # recorded positions are history; add a new one instead

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


class StatusChangeInline(RecordInline):
    """The provision's history, oldest first. Moves are made with `provision_transition`, not here."""

    model = StatusChange
    fields = ("changed_on", "from_status", "to_status", "note", "changed_by", "source", "recorded_at")
    ordering = ("changed_on", "id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[StatusChange]:
        return super().get_queryset(request).select_related("changed_by")


class ProvisionChangeInline(RecordInline):
    """Its title, text and expiry over time (the base row first); recorded on the provision's page
    or through the API, with the day they take effect."""

    model = ProvisionChange
    fields = ("at", "title", "sets_text", "sets_expires_on", "expires_on", "note", "recorded_by")
    ordering = ("at", "id")
    verbose_name_plural = "dated changes (an empty day: the value from the start)"


class DiscussionInline(RecordInline):
    """The rounds that discussed it (activity for the stalled rule)."""

    model = Discussion
    fields = ("on", "note", "recorded_by")
    ordering = ("on", "id")


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
            "expires_on",
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
            try:  # locked until the admin's transaction ends: no move slips in between check and save
                provision_lock(provision_id=self.instance.pk, expected_version=loaded)
            except StaleVersion as stale:
                raise ValidationError(
                    "This provision has changed since you opened this page (you had version %(loaded)s, "
                    "it is now %(current)s). Reload the page and make your changes again.",
                    code="stale_version",
                    params={"loaded": stale.expected, "current": stale.actual},
                ) from stale
        return cleaned_data


class ProvisionChangeList(ChangeList):
    def get_queryset(self, request: HttpRequest, exclude_parameters: list[str | None] | None = None) -> Any:
        # The alignment column reads each provision's positions and its partnership's parties.
        return (
            super()
            .get_queryset(request, exclude_parameters)
            .prefetch_related("positions", "domain__partnership__parties")
        )


@admin.register(Provision)
class ProvisionAdmin(OneEditPerSave, AuditedAdmin):
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
    inlines = (
        PositionInline,
        CoverageInline,
        ConsultationInline,
        StatusChangeInline,
        ProvisionChangeInline,
        DiscussionInline,
    )

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
        # Never: its status changes are immutable history. A provision dropped is withdrawn.
        return False

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
        extent = (
            "Dates and extent",
            {"fields": ("target_date", "review_date", "expires_on", "territories", "precedents")},
        )
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
        return ("reference", "status", "version", "created_at", "updated_at")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ProvisionChangeList

    @admin.display(description="alignment")
    def alignment(self, provision: Provision) -> str:
        return provision.alignment.label

    def save_model(self, request: HttpRequest, obj: Provision, form: Any, change: bool) -> None:
        data, by = form.cleaned_data, admin_reader(request)
        reason = data.get("change_reason") or ""
        if not change:
            created = provision_create(
                by=by,
                reason=reason,
                source="admin",
                **{name: data[name] for name in ("reference", "status", *EDITABLE_FIELDS, *LINKED_FIELDS)},
            )
            obj.pk, obj.version = created.pk, created.version
            return
        changes = {
            name: data[name] for name in (*EDITABLE_FIELDS, *LINKED_FIELDS) if name in form.changed_data
        }
        if changes:
            provision_update(provision=obj, by=by, expected_version=None, reason=reason, **changes)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Its territories and precedents went with the provision (save_model); each inline row goes
        # through the service of its kind.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        rows = formset.save(commit=False)  # validated rows, and the ones marked for deletion
        if formset.model not in (Position, Coverage, Consultation):
            return  # the status history is read-only
        provision = Provision.objects.select_related("domain").get(pk=form.instance.pk)
        save_provision_parts(
            provision=provision,
            by=admin_reader(request),
            reason=form.cleaned_data.get("change_reason") or "",
            saved=rows,
            changed={row.pk: fields for row, fields in formset.changed_objects},
            deleted=formset.deleted_objects,
        )


def save_provision_parts(
    *,
    provision: Provision,
    by: Reader,
    reason: str,
    saved: list[Any],
    changed: dict[int, list[str]],
    deleted: list[Any],
) -> None:
    """Inline rows of a provision's admin page, each through its service: a position or a coverage
    moved to another party or capability is the old one removed and the new one set."""
    for row in deleted:
        _remove_part(provision, row, by=by, reason=reason)
    for row in saved:
        if row.pk is not None and "capability" in changed.get(row.pk, ()):
            _remove_part(provision, type(row).objects.get(pk=row.pk), by=by, reason=reason)
            row.pk = None
        if isinstance(row, Position):
            position_set(
                provision=provision,
                party=row.party,
                stance=row.stance,
                firmness=row.firmness,
                note=row.note,
                by=by,
                expected_version=None,
                reason=reason,
                effective_on=row.taken_on,
            )
        elif isinstance(row, Coverage):
            coverage_set(
                provision=provision,
                capability=row.capability,
                extent=row.extent,
                by=by,
                expected_version=None,
                reason=reason,
            )
        elif row.pk is None:
            consultation_record(
                provision=provision,
                territory=row.territory,
                consulted_on=row.consulted_on,
                outcome=row.outcome,
                note=row.note,
                by=by,
                expected_version=None,
            )
        else:
            consultation_update(
                consultation=row,
                territory=row.territory,
                consulted_on=row.consulted_on,
                outcome=row.outcome,
                note=row.note,
                by=by,
                reason=reason,
            )


def _remove_part(provision: Provision, row: Any, *, by: Reader, reason: str) -> None:
    if isinstance(row, Position):
        position_remove(provision=provision, position=row, by=by, expected_version=None, reason=reason)
    elif isinstance(row, Coverage):
        coverage_set(
            provision=provision,
            capability=row.capability,
            extent=None,
            by=by,
            expected_version=None,
            reason=reason,
        )
    else:
        consultation_remove(consultation=row, by=by, reason=reason)


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
