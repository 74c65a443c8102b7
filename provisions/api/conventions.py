"""API-wide conventions named in settings (REST_FRAMEWORK): access, pagination, throttling.

Kept apart from the views: DRF imports these while it loads, before any view can be imported.
"""

from __future__ import annotations

from typing import Any

from rest_framework import permissions, throttling
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from provisions.models import ApiToken
from provisions.permissions import role_of


class HasRole(permissions.BasePermission):
    """Signed in (session or token) and holding one of the roles; writes are checked by services."""

    message = "Sign in, or send a token: 'Authorization: Bearer <token>'."

    def has_permission(self, request: Request, view: Any) -> bool:
        return role_of(request.user) is not None


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
