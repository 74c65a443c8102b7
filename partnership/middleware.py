"""The project's middleware: the Content Security Policy (django-csp's, with one relaxation for the
admin), a guard against NUL characters in page requests, the session's absolute lifetime, and no
caching of what the application renders. Also who is at the other end of a request (client_address),
for the sign-in lockout and the API's bad-token throttle."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from csp.constants import SELF, UNSAFE_INLINE
from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.http import HttpRequest, HttpResponseBadRequest, HttpResponseBase
from django.utils.cache import add_never_cache_headers

# When the session's user signed in, and when the session was last renewed (seconds since the epoch).
SIGNED_IN_AT = "signed_in_at"
RENEWED_AT = "renewed_at"
# The idle timeout is renewed at most this often: not a session write on every request.
RENEW_EVERY_SECONDS = 60


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


def session_lifetime(get_response: Callable[[HttpRequest], HttpResponseBase]) -> Callable[..., Any]:
    """A signed-in session ends SESSION_MAX_HOURS after signing in, however active it has been, and
    SESSION_IDLE_MINUTES after its last request: its own expiry, which a request renews when the last
    renewal is over RENEW_EVERY_SECONDS old (so the idle timeout is exact to within that, and a burst
    of requests writes the session once). The sign-in time is written into the session by the
    request that signs in, or by the first request of a session without it."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        session = request.session
        if SESSION_KEY in session:
            signed_in_at = session.get(SIGNED_IN_AT)
            if not isinstance(signed_in_at, int | float):
                session[SIGNED_IN_AT] = time.time()
            elif time.time() - signed_in_at > settings.SESSION_MAX_HOURS * 3600:
                logout(request)  # the view then sees an anonymous reader: the sign-in page, or 401/403
        response = get_response(request)
        # Only a session with a signed-in user (an API call with a token never gets a session).
        if SESSION_KEY in request.session:
            now = time.time()
            if SIGNED_IN_AT not in request.session:
                request.session[SIGNED_IN_AT] = now
            renewed_at = request.session.get(RENEWED_AT)
            if not isinstance(renewed_at, int | float) or now - renewed_at >= RENEW_EVERY_SECONDS:
                request.session[RENEWED_AT] = now  # modified: saved, with a fresh expiry and cookie
        return response

    return middleware


def no_store(get_response: Callable[[HttpRequest], HttpResponseBase]) -> Callable[..., Any]:
    """Nothing the application renders is kept by a browser or a proxy (pages, API answers, exports):
    a gap report must not stay in the browser's cache after signing out. Static files are served by
    WhiteNoise before this and cached as usual."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        add_never_cache_headers(response)
        return response

    return middleware


def rate_limit_headers(get_response: Callable[[HttpRequest], HttpResponseBase]) -> Callable[..., Any]:
    """Every answer the API throttled (every authenticated call) says the caller's rate and what is
    left of it, as the IETF RateLimit header fields: `RateLimit-Policy: "caller";q=1200;w=60` and
    `RateLimit: "caller";r=1187;t=42` (requests left, seconds until the window frees one). A 429
    also has `Retry-After` (DRF's throttling)."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        state = getattr(request, "rate_limit", None)
        if state is not None:
            response["RateLimit-Policy"] = f'"caller";q={state.limit};w={state.window}'
            response["RateLimit"] = f'"caller";r={state.remaining};t={state.reset}'
        return response

    return middleware


def client_address(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or behind a trusted proxy (BEHIND_TLS_PROXY) the last address
    of X-Forwarded-For, the one that proxy appended (those before it are the client's to forge). None
    when there is none (a request made in process, as the test client's force_login)."""
    if settings.BEHIND_TLS_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
        if forwarded:
            return str(forwarded)
    address = request.META.get("REMOTE_ADDR")
    return str(address) if address else None
