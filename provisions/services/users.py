"""Setting up users outside the admin (the demo command). In the admin, users are Django's own
accounts, administered through its user pages with the clearance checks of provisions.admin.access."""

from __future__ import annotations

from collections.abc import Collection

from django.contrib.auth.models import Group
from django.db import transaction

from provisions.models import Domain, User


def user_set_up(
    *,
    username: str,
    password: str,
    role: str,
    clearance: str,
    domains: Collection[str] = (),
    is_staff: bool = False,
) -> User:
    """Create or reset a user with a role (its group), a clearance and the domains they negotiate in."""
    with transaction.atomic():
        user = User.objects.filter(username=username).first() or User(username=username)
        user.set_password(password)
        user.is_staff = is_staff
        user.clearance = clearance
        user.full_clean(exclude=["password"])
        user.save()
        user.groups.set([Group.objects.get(name=role)])
        user.domains.set(Domain.objects.filter(code__in=domains))
    return user
