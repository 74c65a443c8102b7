"""`Idempotency-Key` on the API's POSTs: a client that is not sure a POST arrived (a timeout, a lost
answer) sends it again with the same key and gets the first answer, instead of doing it twice.

The same key with the same request (method, path, body) within IDEMPOTENCY_KEY_HOURS answers what the
first one answered (`Idempotent-Replayed: true`); with a different request it is a 422; while the first
is still running, a 409. Keys belong to the credentials they came with (a hash of the bearer token or
the session), so two callers never share one. A first answer that is a 5xx is not kept: the retry runs.
Not on making a token, whose answer holds its key: a key is never stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from partnership.input_guard import API_PREFIX
from provisions.api.errors import PayloadTooLarge, error_response
from provisions.models import IdempotentRequest
from provisions.services.idempotency import (
    idempotent_request_abandon,
    idempotent_request_begin,
    idempotent_request_finish,
)

HEADER = "Idempotency-Key"
NOT_KEPT = ("/api/v1/tokens/",)  # answers holding a secret that must never be stored
KEY_MAX_LENGTH = 255


def _caller(request: HttpRequest) -> str:
    """Who is asking, without keeping their credentials: a hash of the bearer token, else the session."""
    credentials = request.META.get("HTTP_AUTHORIZATION") or request.COOKIES.get(
        settings.SESSION_COOKIE_NAME, ""
    )
    return hashlib.sha256(credentials.encode()).hexdigest()


def _request_hash(request: HttpRequest) -> str:
    return hashlib.sha256(f"{request.method} {request.path}\n".encode() + request.body).hexdigest()


def idempotent_posts(get_response: Callable[[HttpRequest], HttpResponseBase]) -> Callable[..., Any]:
    """Middleware: the POSTs under /api/ that carry an Idempotency-Key run once per key."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        key = request.headers.get(HEADER)
        if (
            key is None
            or request.method != "POST"
            or not request.path.startswith(API_PREFIX)
            or request.path in NOT_KEPT
        ):
            return get_response(request)
        if not key or len(key) > KEY_MAX_LENGTH or not key.isprintable():
            return error_response(
                400,
                "invalid",
                "Some values are not valid: see field_errors.",
                {HEADER: [f"a key is 1 to {KEY_MAX_LENGTH} printable characters"]},
                request=request,
            )
        try:
            caller, fingerprint = _caller(request), _request_hash(request)
        except RequestDataTooBig:
            return error_response(413, "too_large", PayloadTooLarge.default_detail, request=request)
        record, first = idempotent_request_begin(caller=caller, key=key, fingerprint=fingerprint)
        if not first:
            return _replay(request, record, fingerprint)
        response = get_response(request)
        if response.status_code >= 500 or response.streaming or not isinstance(response, HttpResponse):
            idempotent_request_abandon(record)
            return response
        idempotent_request_finish(
            record,
            status_code=response.status_code,
            content_type=response.get("Content-Type", ""),
            body=response.content.decode("utf-8", errors="replace"),
            etag=response.get("ETag", ""),
        )
        return response

    return middleware


def _replay(request: HttpRequest, first: IdempotentRequest, fingerprint: str) -> HttpResponseBase:
    if first.request_hash != fingerprint:
        return error_response(
            422,
            "idempotency_key_reused",
            f"This {HEADER} was sent with a different request: use a new key for a new request.",
            request=request,
        )
    if first.status_code is None:
        return error_response(
            409,
            "idempotency_key_in_use",
            f"The request first sent with this {HEADER} is still running: ask again shortly.",
            request=request,
        )
    replay = HttpResponse(first.body, status=first.status_code, content_type=first.content_type)
    replay["Idempotent-Replayed"] = "true"
    if first.etag:
        replay["ETag"] = first.etag
    return replay
