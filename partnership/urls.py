from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("provisions.api.urls")),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
]
