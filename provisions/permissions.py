"""Who may see and change what: the one place the roles and handling markings are decided.

Roles are Django groups (created by a migration); a superuser is an administrator. Clearance
bounds the markings a user sees. The admin, the services (and through them every interface) and
the exports ask these functions; nothing else decides.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet

from provisions.models import Domain, Marking, User


class Role(models.TextChoices):
    """Ordered: each role can do what the ones before it can."""

    VIEWER = "viewer", "Viewer"
    ANALYST = "analyst", "Analyst"
    NEGOTIATOR = "negotiator", "Negotiator"
    ADMINISTRATOR = "administrator", "Administrator"


_ROLE_ORDER = list(Role)
_MARKING_ORDER = list(Marking)


def role_of(user: Any) -> Role | None:
    """The highest role the user holds (None: anonymous, inactive or no role)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMINISTRATOR
    cached: Role | str | None = getattr(user, "_tracker_role", "unset")
    if cached == "unset":
        names = set(user.groups.values_list("name", flat=True))
        held = [role for role in _ROLE_ORDER if role.value in names]
        cached = held[-1] if held else None
        user._tracker_role = cached
    return cached  # type: ignore[return-value]


def has_role(user: Any, role: Role) -> bool:
    held = role_of(user)
    return held is not None and _ROLE_ORDER.index(held) >= _ROLE_ORDER.index(role)


def markings_up_to(clearance: str) -> list[str]:
    """The markings visible at a clearance (official < official_sensitive < secret)."""
    return [marking.value for marking in _MARKING_ORDER[: _MARKING_ORDER.index(Marking(clearance)) + 1]]


def lower_clearance(first: str, second: str) -> Marking:
    return min(Marking(first), Marking(second), key=_MARKING_ORDER.index)


def clearance_of(user: Any) -> Marking:
    """The user's own clearance (a superuser is cleared to SECRET), whatever token they came with."""
    return Marking.SECRET if user.is_superuser else Marking(user.clearance)


def visible_markings(user: Any) -> list[str]:
    """The markings a user may see: up to their clearance (nothing without a role)."""
    if role_of(user) is None:
        return []
    clearance = clearance_of(user)
    if user.token_clearance:  # an API token cleared below its user
        clearance = lower_clearance(clearance, user.token_clearance)
    return markings_up_to(clearance)


def users_cleared_within(actor: Any) -> QuerySet[User]:
    """The users cleared no higher than the actor may see: those an administrator may pick, change
    or make a token for (superusers are cleared to SECRET)."""
    visible = visible_markings(actor)
    users = User.objects.filter(clearance__in=visible)
    return users if Marking.SECRET in visible else users.exclude(is_superuser=True)


def can_view_marking(user: Any, marking: str) -> bool:
    return marking in visible_markings(user)


def can_edit_provision(user: Any, provision: Any) -> bool:
    """Administrators edit everything they may see; negotiators the provisions of their domains."""
    if not can_view_marking(user, provision.marking):
        return False
    return editable_domains(user).filter(pk=provision.domain_id).exists()


def editable_domains(user: Any) -> QuerySet[Domain]:
    """The domains whose provisions the user may edit: all for administrators, their own for negotiators."""
    if has_role(user, Role.ADMINISTRATOR):
        return Domain.objects.all()
    if role_of(user) == Role.NEGOTIATOR:
        return user.domains.all()
    return Domain.objects.none()


def can_export(user: Any) -> bool:
    return has_role(user, Role.ANALYST)


def can_acknowledge_gaps(user: Any) -> bool:
    return has_role(user, Role.ANALYST)


def can_administer(user: Any) -> bool:
    return has_role(user, Role.ADMINISTRATOR)


def ensure(allowed: bool, message: str) -> None:
    """Raise PermissionDenied with the message unless allowed."""
    if not allowed:
        raise PermissionDenied(message)
