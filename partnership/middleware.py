"""The project's middleware: the Content Security Policy (django-csp's, with one relaxation for the
admin), and a guard against NUL characters in page requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from csp.constants import SELF, UNSAFE_INLINE
from csp.middleware import CSPMiddleware, PolicyParts
from django.http import HttpRequest, HttpResponseBadRequest, HttpResponseBase


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """The policy of settings.CONTENT_SECURITY_POLICY everywhere; Django's admin may also use inline style
    attributes (its autocomplete widget, select2, writes them), though never inline script."""

    ADMIN_PREFIX = "/admin/"

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if request.path.startswith(self.ADMIN_PREFIX) and parts.update is None:
            parts.update = {"style-src": [SELF, UNSAFE_INLINE]}
        return parts


def refuse_null_characters(get_response: Callable[[HttpRequest], HttpResponseBase]) -> Callable[..., Any]:
    """A page's query or form value holding a NUL character gets a 400, before any view: PostgreSQL
    cannot store or compare such text (the API's serializers and filters refuse it themselves)."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        if not request.path.startswith("/api/"):
            for values in (request.GET, request.POST):
                for name, value in values.lists():
                    if "\x00" in name or any("\x00" in item for item in value):
                        return HttpResponseBadRequest("A value in this request holds a NUL character.")
        return get_response(request)

    return middleware
