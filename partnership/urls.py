from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("provisions.api.urls")),
    path("", include("provisions.urls")),
]

handler404 = "provisions.api.errors.api_aware_not_found"
handler500 = "provisions.api.errors.api_aware_server_error"
