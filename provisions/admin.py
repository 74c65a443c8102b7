"""The Django admin: reference data, users' corrections and a read-only view of what the engine records.

Status moves never happen here: a provision's status is chosen when it is added (writing its first
status change) and is read-only after that; moves go through `provision_transition`. Edits that can
change coverage ask for a gap scan of what they touched, and edits to a provision or its inlines bump
its version, so a write based on an older version (here or in the API) is refused.

Who sees and changes what is decided by `provisions.permissions` (and `Provision.objects.visible_to`):
the admin asks it, on top of the Django model permissions the role groups carry. A user never sees a
provision above their clearance, nor its positions, coverage, consultations, status changes, history
or the gaps that name it; a provision and its inlines are changed only by those who may edit it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, F, Q, QuerySet
from django.db.models.fields import Field
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from simple_history.admin import SimpleHistoryAdmin

from provisions.models import (
    ApiToken,
    Capability,
    Consultation,
    Coverage,
    Domain,
    Gap,
    GapRuleThresholds,
    GapScan,
    GapState,
    Marking,
    Milestone,
    Partnership,
    Party,
    Pillar,
    Position,
    Precedent,
    Provision,
    ProvisionQuerySet,
    ScanRequest,
    StatusChange,
    Territory,
    User,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from provisions.permissions import (
    can_acknowledge_gaps,
    can_administer,
    can_edit_provision,
    can_view_marking,
    clearance_of,
    editable_domains,
    users_cleared_within,
    visible_markings,
)
from provisions.reports.gaps import hidden_references
from provisions.rules import Thresholds
from provisions.services.provisions import consultation_refusal
from provisions.services.scans import gap_acknowledge, gap_thresholds_set, scan_request
from provisions.services.status import provision_record_first_status
from provisions.services.tokens import api_token_create, api_token_revoke
from provisions.services.webhooks import webhook_url_problem

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


def _visible_provisions(request: HttpRequest) -> ProvisionQuerySet:
    return Provision.objects.visible_to(request.user)


def _may_edit(request: HttpRequest, provision: Provision | None) -> bool:
    """Whether the user may edit the provision (None: a provision being added, decided by its form).

    Asked once per provision, domain and marking in a request: a change page asks for the provision
    and each of its inlines many times.
    """
    if provision is None:
        return True
    answers: dict[tuple[int | None, int | None, str], bool] = request.__dict__.setdefault(
        "_tracker_may_edit", {}
    )
    key = (provision.pk, provision.domain_id, provision.marking)
    if key not in answers:
        answers[key] = can_edit_provision(request.user, provision)
    return answers[key]


def _hidden_references(request: HttpRequest) -> list[str]:
    """References of the provisions above the user's clearance (cached for the request)."""
    cached: list[str] | None = getattr(request, "_tracker_hidden_references", None)
    if cached is None:
        cached = sorted(hidden_references(request.user))
        request._tracker_hidden_references = cached  # type: ignore[attr-defined]
    return cached


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Records written by the services (history, scans, the outbox): viewable, never edited here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AuditedAdmin(SimpleHistoryAdmin):
    """Adds a "History" page: each change with its fields (old → new), who made it, when and why.

    Read only: restoring a past version would save it past the services (status moves, versions,
    scans, permission checks), so django-simple-history's revert is disabled and its version page
    only answers GET. An object's history is shown only to those who may view the object.
    """

    def revert_disabled(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def has_view_history_or_change_history_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Even with SIMPLE_HISTORY_ENFORCE_HISTORY_MODEL_PERMISSIONS (which checks model permissions
        # only), the history of an object is for those who may view the object.
        allowed: bool = super().has_view_history_or_change_history_permission(request, obj)
        return allowed and self.has_view_permission(request, obj)

    def _ensure_visible(self, request: HttpRequest, object_id: str) -> None:
        """404 for an object that exists but is not in the user's queryset (django-simple-history
        would otherwise fall back to its latest historical record)."""
        pk = unquote(object_id)
        try:
            exists = self.model._default_manager.filter(pk=pk).exists()
        except (ValueError, ValidationError) as error:
            raise Http404 from error
        if exists and not self.get_queryset(request).filter(pk=pk).exists():
            raise Http404

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._ensure_visible(request, object_id)
        response: HttpResponse = super().history_view(request, object_id, extra_context)
        return response

    def history_form_view(
        self,
        request: HttpRequest,
        object_id: str,
        version_id: str,
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            # django-simple-history saves a posted version form whatever the user may change.
            raise PermissionDenied
        self._ensure_visible(request, object_id)
        history_manager = getattr(self.model, self.model._meta.simple_history_manager_attribute)
        pk_name = self.model._meta.pk.attname
        versions = self.get_history_queryset(request, history_manager, pk_name, unquote(object_id))
        try:
            shown = versions.filter(history_id=version_id).exists()
        except (ValueError, ValidationError) as error:
            raise Http404 from error
        if not shown:
            raise Http404
        response: HttpResponse = super().history_form_view(request, object_id, version_id, extra_context)
        return response


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
class DomainAdmin(AuditedAdmin):
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
            queryset = queryset.filter(pk__in=editable_domains(request.user).values("pk"))
        return queryset, may_have_duplicates

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
        visible = Q(provisions__in=_visible_provisions(request).values("pk"))
        return super().get_queryset(request).annotate(provision_count=Count("provisions", filter=visible))

    @admin.display(description="provisions drawing on it", ordering="provision_count")
    def provision_count(self, precedent: Precedent) -> int:
        return precedent.provision_count  # type: ignore[attr-defined]


@admin.register(Capability)
class CapabilityAdmin(AuditedAdmin):
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
        # Coverage by provisions above the user's clearance is not counted.
        visible = Q(coverage__provision__in=_visible_provisions(request).values("pk"))
        return super().get_queryset(request).annotate(coverage_count=Count("coverage", filter=visible))

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
    acting_user: Any = None

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
        if self.acting_user is not None and domain is not None and marking:
            as_saved = Provision(pk=self.instance.pk, domain=domain, marking=marking)
            if not can_edit_provision(self.acting_user, as_saved):
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
        return cast(ProvisionQuerySet, super().get_queryset(request)).visible_to(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Provision | None = None) -> bool:
        allowed: bool = super().has_view_permission(request, obj)
        return allowed and (obj is None or can_view_marking(request.user, obj.marking))

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
        return versions.filter(marking__in=visible_markings(request.user))

    def get_form(
        self, request: HttpRequest, obj: Provision | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = cast(type[ProvisionAdminForm], super().get_form(request, obj, change, **kwargs))
        form.acting_user = request.user
        return form

    def formfield_for_choice_field(
        self, db_field: Field[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> Any:
        if db_field.name == "marking":
            # A provision can be marked only up to the user's clearance.
            kwargs["choices"] = [
                (value, label) for value, label in Marking.choices if can_view_marking(request.user, value)
            ]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "domain":
            kwargs["queryset"] = editable_domains(request.user)
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
            provision_record_first_status(provision=obj, by=_acting_user(request), source="admin")

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        # The inline rows' own histories record the same reason as the provision's.
        reason = form.cleaned_data.get("change_reason") or None
        for inline_form in formset.forms:
            inline_form.instance._change_reason = reason
            if formset.model is Consultation and inline_form.instance.pk is None:
                inline_form.instance.recorded_by = _acting_user(request)  # who recorded it: the one signed in
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
    acting_user: Any = None

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
        if self.acting_user is not None and not can_edit_provision(self.acting_user, provision):
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
        form.acting_user = request.user
        return form

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "provision":
            kwargs["queryset"] = _visible_provisions(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Consultation, form: Any, change: bool) -> None:
        if not change:
            obj.recorded_by = _acting_user(request)  # who recorded it is the one signed in, never typed
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


_WITHHELD = "(withheld: it names a provision above your clearance)"


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
        # A capability's gaps stay visible (their subject names no provision); a provision's only
        # when the provision is.
        visible = Q(provision__isnull=True) | Q(provision__in=_visible_provisions(request).values("pk"))
        return (
            super()
            .get_queryset(request)
            .filter(visible)
            .select_related(
                "capability", "provision", "opened_by_scan", "resolved_by_scan", "acknowledged_by"
            )
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Gap | None:
        gap: Gap | None = super().get_object(request, object_id, from_field)
        if gap is not None:
            # A capability gap's explanation names the provisions covering it, which may be above
            # the user's clearance: then it is withheld.
            names_hidden = any(reference in gap.explanation for reference in _hidden_references(request))
            gap._explanation_shown = _WITHHELD if names_hidden else gap.explanation  # type: ignore[attr-defined]
        return gap

    @admin.display(description="subject")
    def subject(self, gap: Gap) -> str:
        return str(gap.capability or gap.provision)

    @admin.display(description="explanation")
    def explanation_shown(self, gap: Gap) -> str:
        return getattr(gap, "_explanation_shown", _WITHHELD)

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
        return allowed and can_acknowledge_gaps(request.user)

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

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if request.GET.get("field_name"):
            # A user picker (the owner of a token) offers only users cleared no higher than the
            # administrator; users cleared higher stay listed, read-only, on the users page.
            queryset = queryset.filter(pk__in=users_cleared_within(request.user).values("pk"))
        return queryset, may_have_duplicates

    # Users, their roles and clearances are administered by administrators only, whatever model
    # permissions a role group carries.
    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_administer(request.user) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_administer(request.user) and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return can_administer(request.user) and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (
            can_administer(request.user)
            and _within_clearance(request, obj)
            and super().has_change_permission(request, obj)
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (
            can_administer(request.user)
            and _within_clearance(request, obj)
            and super().has_delete_permission(request, obj)
        )

    # An administrator cleared below SECRET cannot reach SECRET through users: no clearance above
    # their own to give (themselves included), no changing (or setting the password of) a user
    # cleared above them, and only a superuser makes superusers.
    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "clearance":
            kwargs["choices"] = _markings_up_to_own(request)
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = tuple(super().get_readonly_fields(request, obj))
        return readonly if request.user.is_superuser else (*readonly, "is_superuser", "user_permissions")


def _markings_up_to_own(request: HttpRequest) -> list[tuple[str, str]]:
    visible = visible_markings(request.user)
    return [(value, label) for value, label in Marking.choices if value in visible]


def _within_clearance(request: HttpRequest, user: Any) -> bool:
    """Whether the administrator is cleared at least as high as the user they would change."""
    return user is None or clearance_of(user) in visible_markings(request.user)


class AdministratorsOnly(admin.ModelAdmin):
    """Only administrators see and change these (tokens and webhook endpoints reach other systems)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_administer(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_administer(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return can_administer(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_administer(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["user", "name", "clearance", "expires_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(AdministratorsOnly):
    """Tokens are made by the tokens service: the key is shown once, on saving, and stored hashed."""

    form = ApiTokenForm
    list_display = (
        "name",
        "user",
        "prefix",
        "clearance",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    list_filter = ("clearance",)
    search_fields = ("name", "user__username", "prefix")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    actions = ["revoke"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        return (
            ("user", "name", "clearance", "prefix", "created_at", "last_used_at", "revoked_at") if obj else ()
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        # Tokens of users cleared above the administrator are not theirs to see or revoke.
        return super().get_queryset(request).filter(user__in=users_cleared_within(request.user).values("pk"))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user":  # only users cleared no higher than the administrator
            kwargs["queryset"] = users_cleared_within(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "clearance":  # never cleared above the administrator making it
            own = _markings_up_to_own(request)
            kwargs["choices"] = [("", "As cleared as its user (at most as you)"), *own]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        try:
            token, key = api_token_create(
                owner=obj.user,
                by=_acting_user(request),
                name=obj.name,
                expires_at=obj.expires_at,
                clearance=obj.clearance,
            )
        except PermissionDenied as refused:
            raise ValidationError(str(refused)) from refused
        obj.pk = token.pk
        self.message_user(request, f"Token {token.prefix}… created. Its key, shown this once: {key}")

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            api_token_revoke(token=token, by=_acting_user(request))
        self.message_user(request, f"{queryset.count()} token(s) revoked.")


@admin.register(GapRuleThresholds)
class GapRuleThresholdsAdmin(SimpleHistoryAdmin):
    """One row: the thresholds the gap rules use (until it exists, the settings'). Saving it asks for
    a full scan, since every gap may change."""

    fields = ("secured_status", "warning_days", "urgent_days", "stall_days", "updated_at", "updated_by")
    readonly_fields = ("updated_at", "updated_by")
    list_display = ("__str__", "secured_status", "warning_days", "urgent_days", "stall_days", "updated_at")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_administer(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_administer(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_administer(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return can_administer(request.user) and not GapRuleThresholds.objects.exists()

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
            by=_acting_user(request),
            secured_status=obj.secured_status,
            warning_days=obj.warning_days,
            urgent_days=obj.urgent_days,
            stall_days=obj.stall_days,
        )
        obj.pk = saved.pk
        self.message_user(request, "Thresholds saved; a full gap scan has been requested.")


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "events", "secret", "clearance", "active"]

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        problem = webhook_url_problem(url)
        if problem:
            raise forms.ValidationError(problem[0].upper() + problem[1:] + ".")
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(AdministratorsOnly):
    form = WebhookEndpointForm
    list_display = ("url", "clearance", "active", "created_at")
    list_filter = ("active", "clearance")
    search_fields = ("url",)

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "clearance":  # never cleared above the administrator registering it
            kwargs["choices"] = _markings_up_to_own(request)
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        return super().get_queryset(request).filter(clearance__in=visible_markings(request.user))

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = _acting_user(request)
        super().save_model(request, obj, form, change)


class WebhookAttemptInline(admin.TabularInline):
    """Every try at sending the delivery, in order, with the receiver's answer."""

    model = WebhookAttempt
    fields = ("number", "sent_at", "duration_ms", "status_code", "error", "response")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_administer(request.user)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyModelAdmin):
    inlines = [WebhookAttemptInline]
    list_display = (
        "event",
        "endpoint",
        "state",
        "attempts",
        "last_status_code",
        "created_at",
        "delivered_at",
    )
    list_filter = ("state", "event")
    list_select_related = ("endpoint",)
    search_fields = ("endpoint__url", "event")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_administer(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_administer(request.user)

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        # A delivery carries its subject: only those prepared for a clearance the reader holds.
        return super().get_queryset(request).filter(payload__clearance__in=visible_markings(request.user))
