from __future__ import annotations

from django.urls import path

from provisions import views

app_name = "provisions"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("domains/<str:code>/", views.domain_detail, name="domain"),
    path("provisions/<str:reference>/", views.provision_detail, name="provision"),
    path("provisions/<str:reference>/transition/", views.provision_transition_view, name="transition"),
    path("provisions/<str:reference>/position/", views.provision_position_view, name="position"),
    path("provisions/<str:reference>/coverage/", views.provision_coverage_view, name="coverage"),
    path("provisions/<str:reference>/details/", views.provision_details_view, name="details"),
    path("provisions/<str:reference>/consultation/", views.provision_consultation_view, name="consultation"),
    path("gaps/", views.gaps, name="gaps"),
    path("gaps/<int:pk>/acknowledge/", views.gap_acknowledge_view, name="acknowledge"),
    path("gaps/export.<str:fmt>", views.gaps_export, name="gaps-export"),
    path("coverage/export.<str:fmt>", views.coverage_export, name="coverage-export"),
    path("search/", views.search, name="search"),
]
