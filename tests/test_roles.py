"""Role grants are declared in code (provisions.roles) and applied after every migrate."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from provisions.permissions import Role
from provisions.roles import declared_permissions

pytestmark = pytest.mark.django_db


def held(role: Role) -> set[str]:
    group = Group.objects.get(name=role.value)
    return set(group.permissions.values_list("content_type__app_label", "codename"))


def declared(role: Role) -> set[str]:
    return set(declared_permissions(role).values_list("content_type__app_label", "codename"))


@pytest.mark.parametrize("role", list(Role), ids=str)
def test_each_role_holds_exactly_its_declared_permissions(role: Role) -> None:
    assert held(role) == declared(role)


def test_the_administrator_holds_every_permission_of_the_app_and_of_users() -> None:
    app = set(
        Permission.objects.filter(content_type__app_label="provisions").values_list("codename", flat=True)
    )
    assert {codename for label, codename in held(Role.ADMINISTRATOR) if label == "provisions"} == app
    assert {("provisions", "change_user"), ("auth", "add_group")} <= held(Role.ADMINISTRATOR)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ANALYST, Role.NEGOTIATOR], ids=str)
def test_every_role_reads_every_model_but_the_administrators_own(role: Role) -> None:
    views = {codename for _, codename in held(role) if codename.startswith("view_")}
    for model in ("provision", "historicalprovision", "capability", "gap", "gapscan", "coveragesnapshot"):
        assert f"view_{model}" in views
    for model in ("apitoken", "webhookendpoint", "gaprulethresholds"):
        assert f"view_{model}" not in views
    assert not any(codename.startswith(("add_", "delete_")) for _, codename in held(Role.ANALYST))


def test_a_grant_removed_by_hand_is_restored_by_the_next_migrate() -> None:
    Group.objects.get(name="viewer").permissions.clear()
    call_command("migrate", verbosity=0)
    assert held(Role.VIEWER) == declared(Role.VIEWER) != set()
