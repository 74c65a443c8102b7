from __future__ import annotations

from django.apps import AppConfig


class ProvisionsConfig(AppConfig):
    name = "provisions"
    verbose_name = "Security partnership"
    default_auto_field = "django.db.models.BigAutoField"
