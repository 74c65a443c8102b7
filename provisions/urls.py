from __future__ import annotations

from django.urls import path

from provisions.views import editing, exports, pages, record, watch

app_name = "provisions"

urlpatterns = [
    path("", pages.overview, name="overview"),
    path("domains/<str:code>/", pages.domain_detail, name="domain"),
    path("provisions/<str:reference>/", pages.provision_detail, name="provision"),
    path("provisions/<str:reference>/transition/", editing.provision_transition_view, name="transition"),
    path("provisions/<str:reference>/position/", editing.provision_position_view, name="position"),
    path("provisions/<str:reference>/coverage/", editing.provision_coverage_view, name="coverage"),
    path("provisions/<str:reference>/details/", editing.provision_details_view, name="details"),
    path(
        "provisions/<str:reference>/consultation/", editing.provision_consultation_view, name="consultation"
    ),
    path("provisions/<str:reference>/discussion/", editing.provision_discussion_view, name="discussion"),
    path("capabilities/<str:code>/", record.capability_detail, name="capability"),
    path("aims/", record.aims, name="aims"),
    path("changes/", record.changes, name="changes"),
    path("changes/export.<str:fmt>", exports.export, {"report": "changes"}, name="changes-export"),
    path("aims/export.<str:fmt>", exports.export, {"report": "aims"}, name="aims-export"),
    path("briefing.<str:fmt>", exports.export, {"report": "briefing"}, name="briefing-export"),
    path("gaps/", pages.gaps, name="gaps"),
    path("gaps/<int:pk>/acknowledge/", editing.gap_acknowledge_view, name="acknowledge"),
    path("gaps/export.<str:fmt>", exports.export, {"report": "gaps"}, name="gaps-export"),
    path("coverage/export.<str:fmt>", exports.export, {"report": "coverage"}, name="coverage-export"),
    path("exports/", exports.export_jobs, name="export-jobs"),
    path("exports/<uuid:pk>/", exports.export_job, name="export-job"),
    path("exports/<uuid:pk>/download", exports.export_download, name="export-download"),
    path("search/", pages.search, name="search"),
    path("glossary/", pages.glossary_page, name="glossary"),
    path("follow/", watch.follow, name="follow"),
    path("notifications/", watch.notifications, name="notifications"),
    path("notifications/read/", watch.notifications_mark_read, name="notifications-read"),
]
