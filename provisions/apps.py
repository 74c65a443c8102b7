from __future__ import annotations

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class ProvisionsConfig(AppConfig):
    name = "provisions"
    verbose_name = "Security partnership"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Services queue tasks by name (provisions.services.queueing): register them in every
        # process, not only in a worker, whose start imports them anyway.
        from provisions import tasks  # noqa: F401
        from provisions.roles import roles_apply
        from provisions.search import register_on_sqlite
        from provisions.services import past  # noqa: F401 (counts the writes that reach back to a past day)

        post_migrate.connect(roles_apply, sender=self, dispatch_uid="provisions.roles_apply")
        connection_created.connect(register_on_sqlite, dispatch_uid="provisions.search.unaccent")
