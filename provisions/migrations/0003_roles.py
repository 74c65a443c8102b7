"""The four roles as groups, with the Django permissions the admin needs for each."""

from __future__ import annotations

from typing import Any

from django.db import migrations

ROLE_PERMISSIONS = {
    "viewer": {"view": "*"},
    "analyst": {"view": "*", "change": ["gap"]},
    "negotiator": {
        "view": "*",
        "change": ["gap", "provision", "position", "coverage", "consultation"],
        "add": ["provision", "position", "coverage", "consultation"],
        "delete": ["position", "coverage", "consultation"],
    },
    "administrator": {"view": "*", "change": "*", "add": "*", "delete": "*"},
}


def create_roles(apps: Any, schema_editor: Any) -> None:
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():  # permissions are otherwise only made after migrate
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, grants in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        for action, models in grants.items():
            permissions = permission_model.objects.filter(codename__startswith=f"{action}_")
            permissions = permissions.filter(content_type__app_label__in=["provisions"] + (
                ["auth"] if role == "administrator" else []
            ))
            if models != "*":
                permissions = permissions.filter(content_type__model__in=models)
            group.permissions.add(*permissions)


def remove_roles(apps: Any, schema_editor: Any) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("provisions", "0002_audit_trail"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
