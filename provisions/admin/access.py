"""Who reaches the tracker, in the admin: users (roles, clearances, domains), API tokens and webhook
endpoints with their deliveries. Administrators only, and never above their own clearance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from provisions.models import (
    ApiToken,
    Marking,
    User,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from provisions.permissions import (
    can_administer,
    clearance_of,
    users_cleared_within,
)
from provisions.services.tokens import api_token_create, api_token_revoke, token_expiry_problem
from provisions.services.webhooks import webhook_url_problem
from provisions.services.webhooks.endpoints import (
    webhook_endpoint_rotate_secret,
    webhook_endpoint_save,
    webhook_redeliver,
)

if TYPE_CHECKING:
    pass
from provisions.admin.base import ReadOnlyModelAdmin, admin_reader


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
            queryset = queryset.filter(pk__in=users_cleared_within(admin_reader(request)).values("pk"))
        return queryset, may_have_duplicates

    # Users, their roles and clearances are administered by administrators only, whatever model
    # permissions a role group carries.
    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_administer(admin_reader(request)) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_administer(admin_reader(request)) and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return can_administer(admin_reader(request)) and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (
            can_administer(admin_reader(request))
            and _within_clearance(request, obj)
            and super().has_change_permission(request, obj)
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (
            can_administer(admin_reader(request))
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
    visible = admin_reader(request).markings
    return [(value, label) for value, label in Marking.choices if value in visible]


def _within_clearance(request: HttpRequest, user: Any) -> bool:
    """Whether the administrator is cleared at least as high as the user they would change."""
    return user is None or clearance_of(user) in admin_reader(request).markings


class AdministratorsOnly(admin.ModelAdmin):
    """Only administrators see and change these (tokens and webhook endpoints reach other systems)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_administer(admin_reader(request))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_administer(admin_reader(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return can_administer(admin_reader(request))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_administer(admin_reader(request))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["user", "name", "clearance", "expires_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "expires_at" in self.fields:
            days = settings.API_TOKEN_MAX_LIFETIME_DAYS
            self.fields["expires_at"].help_text = f"At most {days} days from now; blank: that long."

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        problem = token_expiry_problem(expires_at)
        if problem:
            raise forms.ValidationError(problem[0].upper() + problem[1:] + ".")
        return expires_at


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
            ("user", "name", "clearance", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at")
            if obj
            else ()
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        # Tokens of users cleared above the administrator are not theirs to see or revoke.
        return (
            super()
            .get_queryset(request)
            .filter(user__in=users_cleared_within(admin_reader(request)).values("pk"))
        )

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user":  # only users cleared no higher than the administrator
            kwargs["queryset"] = users_cleared_within(admin_reader(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "clearance":  # never cleared above the administrator making it
            own = _markings_up_to_own(request)
            kwargs["choices"] = [("", "As cleared as its user (at most as you)"), *own]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            return  # a token is never changed once made, only revoked
        try:
            token, key = api_token_create(
                owner=obj.user,
                by=admin_reader(request),
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
            api_token_revoke(token=token, by=admin_reader(request))
        self.message_user(request, f"{queryset.count()} token(s) revoked.")


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "events", "clearance", "active"]

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
    # The secret is made when the endpoint is registered and changed only by rotating it.
    readonly_fields = ("secret", "previous_secret_expires_at")
    actions = ["rotate_secret"]

    @admin.action(description="Rotate the secret of the selected endpoints (the old one signs for 24 hours)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhook_endpoint_rotate_secret(endpoint=endpoint, by=admin_reader(request))
        self.message_user(
            request, f"{queryset.count()} secret(s) rotated: the new ones are on each endpoint's page."
        )

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "clearance":  # never cleared above the administrator registering it
            kwargs["choices"] = _markings_up_to_own(request)
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        return super().get_queryset(request).filter(clearance__in=admin_reader(request).markings)

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        webhook_endpoint_save(endpoint=obj, by=admin_reader(request))


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
        return can_administer(admin_reader(request))


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
    actions = ["redeliver"]

    @admin.action(description="Send the selected deliveries again")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        for delivery in queryset.select_related("endpoint"):
            try:
                webhook_redeliver(delivery=delivery, by=admin_reader(request))
            except (ValidationError, PermissionDenied) as refused:
                self.message_user(
                    request,
                    f"Delivery {delivery.pk}: {' '.join(getattr(refused, 'messages', [str(refused)]))}",
                    level="error",
                )
        self.message_user(request, "Sent again as new deliveries: see the list.")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_administer(admin_reader(request))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_administer(admin_reader(request))

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        # A delivery carries its subject: only those prepared for a clearance the reader holds.
        return super().get_queryset(request).filter(payload__clearance__in=admin_reader(request).markings)
