"""What each role may do in the Django admin, declared once and applied after every `migrate`.

Roles are groups. A model added later is covered by these rules the next time `migrate` runs, with
no migration to write: every role reads the partnership and what the engine records; analysts also
acknowledge gaps; negotiators also edit provisions and their rows (the services then check their
domains and clearance); administrators hold every permission of the app and of users and groups.
Tokens, webhooks, the gap rules' thresholds and sign-in lockouts are administrators' only.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.db.models import Q

from provisions.permissions import Role

# Models (by model name, their history included) only administrators see.
ADMINISTRATORS_ONLY = frozenset(
    {
        "apitoken",
        "webhookendpoint",
        "webhookdelivery",
        "webhookattempt",
        "gaprulethresholds",
        "historicalgaprulethresholds",
        "scanrequest",
    }
)
AXES_GRANTS = ["view_accessattempt", "delete_accessattempt", "view_accessfailurelog", "view_accesslog"]
# What each role may change, on top of reading (negotiators: a provision and its rows).
EDITS = {
    Role.VIEWER: {},
    Role.ANALYST: {"change": {"gap"}},
    Role.NEGOTIATOR: {
        "change": {"gap", "provision", "position", "coverage", "consultation"},
        "add": {"provision", "position", "coverage", "consultation"},
        "delete": {"position", "coverage", "consultation"},
    },
}


def declared_permissions(role: Role, *, apps: Any = global_apps) -> Any:
    """The permissions the role holds, as a Permission queryset."""
    permission_model = apps.get_model("auth", "Permission")
    app_permissions = permission_model.objects.filter(content_type__app_label="provisions")
    if role == Role.ADMINISTRATOR:
        return permission_model.objects.filter(
            Q(content_type__app_label="provisions")
            | Q(content_type__app_label="auth", content_type__model__in=["group", "permission"])
            # Sign-in lockouts (django-axes): seen, and lifted by deleting the attempt.
            | Q(content_type__app_label="axes", codename__in=AXES_GRANTS)
        )
    granted = Q(codename__startswith="view_") & ~Q(content_type__model__in=ADMINISTRATORS_ONLY)
    for action, models in EDITS[role].items():
        granted |= Q(codename__startswith=f"{action}_", content_type__model__in=models)
    return app_permissions.filter(granted)


def roles_apply(*, apps: Any = global_apps, verbosity: int = 1, **kwargs: Any) -> None:
    """Make each role's group hold exactly its declared permissions. Connected to `post_migrate`
    for this app, after Django has made the permissions of every model (new ones included)."""
    group_model = apps.get_model("auth", "Group")
    for role in Role:
        group, _ = group_model.objects.get_or_create(name=role.value)
        group.permissions.set(declared_permissions(role, apps=apps))
