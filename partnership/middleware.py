"""The project's Content Security Policy middleware: django-csp's, with one relaxation for the admin."""

from __future__ import annotations

from csp.constants import SELF, UNSAFE_INLINE
from csp.middleware import CSPMiddleware, PolicyParts
from django.http import HttpRequest, HttpResponseBase


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
