from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from provisions.models import ApiToken
from provisions.services.tokens import api_token_authenticate


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`: the request acts as the token's user, at the lower of the
    user's and the token's clearance."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0] != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("expected 'Authorization: Bearer <token>'")
        token = api_token_authenticate(header[1])
        if token is None:
            raise exceptions.AuthenticationFailed("invalid, expired or revoked token")
        # The reader of the request is made from both (provisions.permissions.reader_of): the lower
        # of the two clearances wins.
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
