"""Consultations in the admin on their own: part of their provision, seen with it and changed by
whoever may edit it, through the same services as the provision's page."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from provisions.admin.base import OneEditPerSave, _may_edit, _visible_provisions, admin_reader
from provisions.models import Consultation, Provision
from provisions.permissions import Reader, can_edit_provision
from provisions.services.provisions import (
    consultation_record,
    consultation_refusal,
    consultation_remove,
    consultation_update,
)


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
class ConsultationAdmin(OneEditPerSave):
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
        data, by = form.cleaned_data, admin_reader(request)
        if not change:
            # Who recorded it is the one signed in, never a name typed in the form.
            recorded = consultation_record(
                provision=data["provision"],
                territory=data["territory"],
                consulted_on=data["consulted_on"],
                outcome=data["outcome"],
                note=data["note"],
                by=by,
                expected_version=None,
            )
            obj.pk = recorded.pk
        elif form.has_changed():
            consultation_update(
                consultation=Consultation.objects.select_related("provision").get(pk=obj.pk),
                provision=data["provision"],
                territory=data["territory"],
                consulted_on=data["consulted_on"],
                outcome=data["outcome"],
                note=data["note"],
                by=by,
            )

    def delete_model(self, request: HttpRequest, obj: Consultation) -> None:
        consultation_remove(consultation=obj, by=admin_reader(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for consultation in queryset.select_related("provision"):
            consultation_remove(consultation=consultation, by=admin_reader(request))
