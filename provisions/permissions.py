"""Who may see and change what: the one place the roles and handling markings are decided.

Who is asking is a value, a `Reader`: the user (or none, for the system itself and for webhook
endpoints), their role, their clearance (capped by the API token they came with) and the domains
they negotiate in. One is made per request or token (`reader_of`) and passed to selectors,
services and reports; the functions below decide from it alone, without another query.

Roles are Django groups (their permissions are declared in `provisions.roles`); a superuser is an
administrator cleared to SECRET. Clearance bounds the markings a reader sees.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from provisions.models import ApiToken, Domain, Marking, User


class Role(models.TextChoices):
    """Ordered: each role can do what the ones before it can."""

    VIEWER = "viewer", "Viewer"
    ANALYST = "analyst", "Analyst"
    NEGOTIATOR = "negotiator", "Negotiator"
    ADMINISTRATOR = "administrator", "Administrator"


_ROLE_ORDER = list(Role)
_MARKING_ORDER = list(Marking)


def markings_up_to(clearance: str) -> list[str]:
    """The markings visible at a clearance (official < official_sensitive < secret)."""
    return list(_markings_up_to(clearance))


@functools.cache
def _markings_up_to(clearance: str) -> tuple[str, ...]:
    # Asked for every event a scan records, for each clearance: computed once per clearance.
    return tuple(marking.value for marking in _MARKING_ORDER[: _MARKING_ORDER.index(Marking(clearance)) + 1])


def lower_clearance(first: str, second: str) -> Marking:
    return min(Marking(first), Marking(second), key=_MARKING_ORDER.index)


def clearance_of(user: User) -> Marking:
    """A user's own clearance (a superuser is cleared to SECRET), whatever token they came with."""
    return Marking.SECRET if user.is_superuser else Marking(user.clearance)


def _role_of_user(user: User) -> Role | None:
    if not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMINISTRATOR
    names = set(user.groups.values_list("name", flat=True))
    held = [role for role in _ROLE_ORDER if role.value in names]
    return held[-1] if held else None


@dataclass(frozen=True)
class Reader:
    """Who is asking, made once per request or token.

    `clearance` is None for a reader who sees nothing (anonymous, or no role). `token` is the API
    token the request came with, if any: its clearance caps the reader's and its expiry bounds any
    token made through it.
    """

    user: User | None
    role: Role | None
    clearance: Marking | None
    domain_ids: frozenset[int] = frozenset()
    token: ApiToken | None = field(default=None, compare=False)

    @classmethod
    def of(cls, user: Any, *, token: ApiToken | None = None) -> Reader:
        """The reader a user (and the token they came with) makes; anonymous reads nothing."""
        if user is None or not user.is_authenticated:
            return cls(user=None, role=None, clearance=None)
        role = _role_of_user(user)
        if role is None:
            return cls(user=user, role=None, clearance=None, token=token)
        clearance = clearance_of(user)
        if token is not None and token.clearance:  # a token cleared below its user
            clearance = lower_clearance(clearance, token.clearance)
        domain_ids = (
            frozenset(user.domains.values_list("pk", flat=True)) if role == Role.NEGOTIATOR else frozenset()
        )
        return cls(user=user, role=role, clearance=clearance, domain_ids=domain_ids, token=token)

    @classmethod
    def system(cls) -> Reader:
        """The tracker itself (imports, commands an operator runs): sees and may do everything."""
        return cls(user=None, role=Role.ADMINISTRATOR, clearance=Marking.SECRET)

    @classmethod
    def cleared(cls, clearance: str) -> Reader:
        """A reader that is only a clearance (a webhook endpoint): sees, may do nothing."""
        return cls(user=None, role=None, clearance=Marking(clearance))

    @property
    def markings(self) -> tuple[str, ...]:
        """The markings this reader may see (none without a clearance)."""
        return _markings_up_to(self.clearance) if self.clearance is not None else ()

    def sees(self, marking: str) -> bool:
        return marking in self.markings

    @property
    def sees_everything(self) -> bool:
        """Cleared to every marking: counts over the whole record (a scan's) tell them nothing new."""
        return len(self.markings) == len(Marking.values)

    def has_role(self, role: Role) -> bool:
        return self.role is not None and _ROLE_ORDER.index(self.role) >= _ROLE_ORDER.index(role)

    @property
    def token_clearance(self) -> str:
        return self.token.clearance if self.token is not None else ""

    @property
    def token_expires_at(self) -> datetime.datetime | None:
        return self.token.expires_at if self.token is not None else None

    @property
    def name(self) -> str:
        """Who to name in a document or a message (the system when no user)."""
        return self.user.get_username() if self.user is not None else "the tracker"


def reader_of(request: HttpRequest | Any) -> Reader:
    """The reader of a page, admin or API request, made once per request (after authentication:
    for the API, `request.auth` is the token it came with)."""
    underlying: HttpRequest = getattr(request, "_request", request)
    cached: Reader | None = getattr(underlying, "_tracker_reader", None)
    user = getattr(request, "user", None)
    if cached is None or cached.user != (user if user is not None and user.is_authenticated else None):
        token = getattr(request, "auth", None)
        cached = Reader.of(user, token=token if isinstance(token, ApiToken) else None)
        underlying._tracker_reader = cached  # type: ignore[attr-defined]
    return cached


def can_edit_provision(reader: Reader, provision: Any) -> bool:
    """Administrators edit everything they may see; negotiators the provisions of their domains."""
    if not reader.sees(provision.marking):
        return False
    if reader.has_role(Role.ADMINISTRATOR):
        return True
    return reader.role == Role.NEGOTIATOR and provision.domain_id in reader.domain_ids


def can_negotiate_in(reader: Reader, domain_ids: Collection[int]) -> bool:
    """Whether the reader negotiates in every one of these domains (administrators: all)."""
    if reader.has_role(Role.ADMINISTRATOR):
        return True
    return reader.role == Role.NEGOTIATOR and set(domain_ids) <= reader.domain_ids


def editable_domains(reader: Reader) -> QuerySet[Domain]:
    """The domains whose provisions the reader may edit: all for administrators, their own for
    negotiators."""
    if reader.has_role(Role.ADMINISTRATOR):
        return Domain.objects.all()
    if reader.role == Role.NEGOTIATOR:
        return Domain.objects.filter(pk__in=reader.domain_ids)
    return Domain.objects.none()


def users_cleared_within(reader: Reader) -> QuerySet[User]:
    """The users cleared no higher than the reader: those an administrator may pick, change or
    make a token for (superusers are cleared to SECRET)."""
    users = User.objects.filter(clearance__in=reader.markings)
    return users if reader.sees(Marking.SECRET) else users.exclude(is_superuser=True)


def can_export(reader: Reader) -> bool:
    return reader.has_role(Role.ANALYST)


def can_acknowledge_gaps(reader: Reader) -> bool:
    return reader.has_role(Role.ANALYST)


def can_administer(reader: Reader) -> bool:
    return reader.has_role(Role.ADMINISTRATOR)


def ensure(allowed: bool, message: str) -> None:
    """Raise PermissionDenied with the message unless allowed."""
    if not allowed:
        raise PermissionDenied(message)
