from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponseBase
from django.urls import include, path

from provisions.views import health


def only_with_email(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Password reset sends a link by email: without an SMTP server (EMAIL_HOST) its pages do not exist,
    and an administrator sets a new password in the admin."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not settings.PASSWORD_RESET_ENABLED:
            raise Http404("Password reset is not available: ask an administrator.")
        return view(request, *args, **kwargs)

    return guarded


class SignInView(auth_views.LoginView):
    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {
            **super().get_context_data(**kwargs),
            "password_reset_enabled": settings.PASSWORD_RESET_ENABLED,
        }


# django.contrib.auth.urls, with password reset only when email is configured.
accounts = [
    path("login/", SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password_reset/", only_with_email(auth_views.PasswordResetView.as_view()), name="password_reset"),
    path(
        "password_reset/done/",
        only_with_email(auth_views.PasswordResetDoneView.as_view()),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        only_with_email(auth_views.PasswordResetConfirmView.as_view()),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        only_with_email(auth_views.PasswordResetCompleteView.as_view()),
        name="password_reset_complete",
    ),
]

urlpatterns = [
    # Probes, outside sign-in (provisions/views/health.py).
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("accounts/", include(accounts)),
    path("api/v1/", include("provisions.api.urls")),
    path("", include("provisions.urls")),
]

handler404 = "provisions.api.errors.api_aware_not_found"
handler500 = "provisions.api.errors.api_aware_server_error"
