"""API-wide conventions named in settings (REST_FRAMEWORK): access, pagination, throttling.

Kept apart from the views: DRF imports these while it loads, before any view can be imported.
"""

from __future__ import annotations

from typing import Any

from rest_framework import permissions, throttling
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from provisions.models import ApiToken
from provisions.permissions import can_edit_provision, role_of


class HasRole(permissions.BasePermission):
    """Signed in (session or token) and holding one of the roles; writes are checked by services."""

    message = "Sign in, or send a token: 'Authorization: Bearer <token>'."

    def has_permission(self, request: Request, view: Any) -> bool:
        return role_of(request.user) is not None


class MayEditProvision(HasRole):
    """A write to a provision: only a negotiator of its domain cleared for it, or an administrator.

    Decided before the request's body is read, so a caller who may not write is told so (403)
    rather than what was wrong with the body; the services decide again when they write."""

    message = "You may not edit this provision: only negotiators of its domain and administrators may."

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return request.method in permissions.SAFE_METHODS or can_edit_provision(request.user, obj)


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class PerCallerThrottle(throttling.SimpleRateThrottle):
    """A rate per token (per user for a browser session)."""

    scope = "caller"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ApiToken):
            return f"throttle-token-{request.auth.pk}"
        if request.user and request.user.is_authenticated:
            return f"throttle-user-{request.user.pk}"
        return f"throttle-anon-{self.get_ident(request)}"
