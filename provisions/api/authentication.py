from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from partnership.middleware import client_address
from provisions.models import ApiToken
from provisions.services.tokens import api_token_authenticate


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`: the request acts as the token's user, at the lower of the
    user's and the token's clearance.

    An address that sent API_TOKEN_FAILURE_LIMIT bad tokens (unknown, expired or revoked) gets 429
    for every token for SIGNIN_LOCKOUT_MINUTES from the first of them: guessing keys, or a system
    retrying a revoked one, stops there. Counted in the cache, so across processes with CACHE_URL.
    """

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0] != self.keyword:
            return None
        failures_key = f"api-token-failures:{client_address(request._request) or 'unknown'}"
        if (cache.get(failures_key) or 0) >= settings.API_TOKEN_FAILURE_LIMIT:
            raise exceptions.Throttled(
                wait=settings.SIGNIN_LOCKOUT_MINUTES * 60,
                detail="too many bad tokens from this address: try again later",
            )
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("expected 'Authorization: Bearer <token>'")
        token = api_token_authenticate(header[1])
        if token is None:
            # The window starts with the first failure and is not extended by the next ones.
            cache.add(failures_key, 0, timeout=settings.SIGNIN_LOCKOUT_MINUTES * 60)
            try:
                cache.incr(failures_key)
            except ValueError:  # expired between the two calls: start again
                cache.add(failures_key, 1, timeout=settings.SIGNIN_LOCKOUT_MINUTES * 60)
            raise exceptions.AuthenticationFailed("invalid, expired or revoked token")
        # The reader of the request is made from both (provisions.permissions.reader_of): the lower
        # of the two clearances wins.
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
