from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from provisions.api import events, reports, schema, views, webhooks  # noqa: F401 (schema registers extensions)

router = DefaultRouter()
router.register("domains", views.DomainViewSet, basename="domain")
router.register("capabilities", views.CapabilityViewSet, basename="capability")
router.register("provisions", views.ProvisionViewSet, basename="provision")
router.register("gaps", views.GapViewSet, basename="gap")
router.register("gap-scans", views.GapScanViewSet, basename="gap-scan")
router.register("territories", views.TerritoryViewSet, basename="territory")
router.register("precedents", views.PrecedentViewSet, basename="precedent")
router.register("tokens", views.ApiTokenViewSet, basename="token")
router.register("webhook-endpoints", webhooks.WebhookEndpointViewSet, basename="webhook-endpoint")

urlpatterns = [
    path("coverage/", reports.CoverageView.as_view(), name="coverage"),
    path("aims/", reports.AimsView.as_view(), name="aims"),
    path("changes/", reports.ChangesView.as_view(), name="changes"),
    path("briefing/", reports.BriefingView.as_view(), name="briefing"),
    path("events/", events.EventFeedView.as_view(), name="events"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI's own script is served as a file (the split view), so the strict policy holds.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
    path("", include(router.urls)),
]
