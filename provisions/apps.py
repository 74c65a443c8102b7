from __future__ import annotations

from django.apps import AppConfig


class ProvisionsConfig(AppConfig):
    name = "provisions"
    verbose_name = "Security partnership"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Services queue tasks by name (provisions.services.queueing): register them in every
        # process, not only in a worker, whose start imports them anyway.
        from provisions import tasks  # noqa: F401
