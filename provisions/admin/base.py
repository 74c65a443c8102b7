"""What every admin page shares: who is acting, what they may see and edit, read-only and audited
pages."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from simple_history.admin import SimpleHistoryAdmin

from provisions.models import (
    Provision,
    ProvisionQuerySet,
)
from provisions.permissions import Reader, can_edit_provision, reader_of
from provisions.services.editing import provision_edits_batched
from provisions.services.reference_data import reference_data_delete, reference_data_save
from provisions.services.scans import scan_requests_batched


def admin_reader(request: HttpRequest) -> Reader:
    """Who is using the admin (made once per request)."""
    return reader_of(request)


class OneEditPerSave(admin.ModelAdmin):
    """A page saving a provision and several of its rows is one edit of it: one version bump and
    one scan request, whatever the number of service calls it makes."""

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        with provision_edits_batched(), scan_requests_batched():
            response: HttpResponse = super().changeform_view(request, object_id, form_url, extra_context)
        return response


class ReferenceDataAdmin(admin.ModelAdmin):
    """Reference data (provisions.services.reference_data): every save and delete, inline rows
    included, goes through its service, like any other interface's."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change and not form.has_changed():
            return  # nothing changed: no empty entry in its history
        reference_data_save(instance=obj, by=admin_reader(request))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        reference_data_delete(instances=[obj], by=admin_reader(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        reference_data_delete(instances=queryset, by=admin_reader(request))

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        rows = formset.save(commit=False)  # validated rows, and the ones marked for deletion
        by = admin_reader(request)
        if formset.deleted_objects:
            reference_data_delete(instances=formset.deleted_objects, by=by)
        for row in rows:
            reference_data_save(instance=row, by=by)


def _visible_provisions(request: HttpRequest) -> ProvisionQuerySet:
    return Provision.objects.visible_to(admin_reader(request))


def _may_edit(request: HttpRequest, provision: Provision | None) -> bool:
    """Whether the user may edit the provision (None: a provision being added, decided by its form)."""
    return provision is None or can_edit_provision(admin_reader(request), provision)


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Records written by the services (history, scans, the outbox): viewable, never edited here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RecordInline(admin.TabularInline):
    """Rows written by the services (a provision's moves, dated changes, discussions): shown with
    their subject, never added, changed or deleted here."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
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
