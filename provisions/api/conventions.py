"""API-wide conventions named in settings (REST_FRAMEWORK): access, pagination, throttling.

Kept apart from the views: DRF imports these while it loads, before any view can be imported.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from django.db.models import QuerySet
from rest_framework import filters, negotiation, pagination, parsers, permissions, throttling
from rest_framework.exceptions import NotAcceptable, NotFound, ParseError, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.utils import json
from rest_framework.utils.urls import replace_query_param

from provisions.models import SEVERITY_RANK, ApiToken, Level, Status, rank_of
from provisions.permissions import can_edit_provision, reader_of
from provisions.services.partnership_file.reading import json_nesting_exceeds


@dataclass(frozen=True)
class RateLimitState:
    """A caller's rate after a request: `limit` requests a `window` of seconds, `remaining` left,
    `reset` seconds until the oldest counted one leaves the window."""

    limit: int
    window: int
    remaining: int
    reset: int


class ProblemAwareNegotiation(negotiation.DefaultContentNegotiation):
    """DRF's negotiation, but a caller that asks for `application/problem+json` (to read errors as
    RFC 9457 problem details) gets JSON for what is not an error, rather than a 406."""

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            if "application/problem+json" not in request.META.get("HTTP_ACCEPT", ""):
                raise
            json_renderer = next(renderer for renderer in renderers if renderer.format == "json")
            return json_renderer, json_renderer.media_type


class HasRole(permissions.BasePermission):
    """Signed in (session or token) and holding one of the roles; writes are checked by services."""

    message = "Sign in, or send a token: 'Authorization: Bearer <token>'."

    def has_permission(self, request: Request, view: Any) -> bool:
        return reader_of(request).role is not None


class MayEditProvision(HasRole):
    """A write to a provision: only a negotiator of its domain cleared for it, or an administrator.

    Decided before the request's body is read, so a caller who may not write is told so (403)
    rather than what was wrong with the body; the services decide again when they write."""

    message = "You may not edit this provision: only negotiators of its domain and administrators may."

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return request.method in permissions.SAFE_METHODS or can_edit_provision(reader_of(request), obj)


class BoundedJSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing (400) a body nested deeper than MAX_DEPTH before parsing it: every
    body the API reads is flat, and Python's parser recurses once per level (a 100,000-deep body
    would be a RecursionError, a 500)."""

    MAX_DEPTH = 32

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        # Text encodings only: a bz2_codec body would decompress past the upload limit.
        encoding = parsers.get_encoding(parser_context or {})  # type: ignore[attr-defined]
        try:
            text = stream.read().decode(encoding)
        except ValueError as error:  # not that encoding (UnicodeDecodeError, or another codec's)
            raise ParseError(f"JSON parse error - {error}") from None
        if json_nesting_exceeds(text, self.MAX_DEPTH):
            raise ParseError(f"JSON parse error - nested more than {self.MAX_DEPTH} levels deep")
        try:
            return json.loads(text, parse_constant=json.strict_constant if self.strict else None)
        except ValueError as error:
            raise ParseError(f"JSON parse error - {error}") from None


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


INVALID_CURSOR = "not a cursor this list gave: start without one, or follow `next` and `previous`"


class CursorPages(pagination.CursorPagination):
    """Pages of a list that changes while it is read (gaps, provisions): an opaque `cursor` marks where
    the last page ended, so rows opened or added meanwhile neither repeat nor push others off a page
    (page numbers would). `page_size` as elsewhere; no count. The order is the list's `ordering`
    (ranked fields by rank: RankedOrderingFilter), ties by id. A computed list (a read-only evaluation
    with `as_of`, which does not change) is paged by an offset inside the same kind of cursor."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-pk"
    _LIST_OFFSET = "o="

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        self._list_links: tuple[str | None, str | None] | None = None
        if not isinstance(queryset, list):
            try:
                return super().paginate_queryset(queryset, request, view)
            except NotFound:  # DRF's answer to a cursor it did not give
                raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from None
        self._list_base = request.build_absolute_uri()
        size = self.get_page_size(request) or self.page_size
        offset = self._list_offset(request)
        rows = queryset[offset : offset + size]
        self._list_links = (
            self._list_link(offset + size) if len(queryset) > offset + size else None,
            self._list_link(max(offset - size, 0)) if offset > 0 else None,
        )
        return rows

    def get_next_link(self) -> str | None:
        return self._list_links[0] if self._list_links is not None else super().get_next_link()

    def get_previous_link(self) -> str | None:
        return self._list_links[1] if self._list_links is not None else super().get_previous_link()

    def _list_offset(self, request: Request) -> int:
        given = request.query_params.get(self.cursor_query_param)
        if not given:
            return 0
        try:
            text = base64.urlsafe_b64decode(given + "=" * (-len(given) % 4)).decode()
            if text.startswith(self._LIST_OFFSET) and text[len(self._LIST_OFFSET) :].isdigit():
                return int(text[len(self._LIST_OFFSET) :])
        except ValueError:
            pass
        raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]})

    def _list_link(self, offset: int) -> str:
        token = base64.urlsafe_b64encode(f"{self._LIST_OFFSET}{offset}".encode()).decode().rstrip("=")
        return replace_query_param(self._list_base, self.cursor_query_param, token)


class PerCallerThrottle(throttling.SimpleRateThrottle):
    """A rate per token (per user for a browser session). What is left of it is noted on the request
    for the `RateLimit-Policy` and `RateLimit` headers (partnership.middleware.rate_limit_headers)."""

    scope = "caller"

    def allow_request(self, request: Request, view: Any) -> bool:
        allowed = super().allow_request(request, view)
        limit, window = self.parse_rate(self.rate)
        if limit is not None and window is not None and self.key is not None:
            oldest = self.history[-1] if self.history else self.now
            request._request.rate_limit = RateLimitState(  # type: ignore[attr-defined]
                limit=limit,
                window=window,
                remaining=max(limit - len(self.history), 0),
                reset=max(math.ceil(window - (self.now - oldest)), 0),
            )
        return allowed

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ApiToken):
            return f"throttle-token-{request.auth.pk}"
        if request.user and request.user.is_authenticated:
            return f"throttle-user-{request.user.pk}"
        return f"throttle-anon-{self.get_ident(request)}"


# Enum fields order by what they mean, not by their text: severity low < medium < high < critical,
# status up the ladder (identified ... in_force), then suspended and withdrawn.
RANKED_FIELDS = {
    "severity": SEVERITY_RANK,  # a gap's: indexed with its id (provisions.models.gaps)
    "criticality": rank_of("criticality", {level.value: level.weight for level in Level}),
    "status": rank_of("status", {status.value: index for index, status in enumerate(Status)}),
}


RANK = "_rank"


class RankedOrderingFilter(filters.OrderingFilter):
    """DRF's `ordering`, with RANKED_FIELDS ordered by rank (`?ordering=-severity` is critical first)
    and ties broken by primary key, so that pages of a list never overlap or skip."""

    def remove_invalid_fields(self, queryset: Any, fields: Any, view: Any, request: Request) -> list[str]:
        """The terms asked for; one that is not a field of this list is a 400 naming the ones that are
        (DRF drops it silently: a client would take an unsorted page for a sorted one)."""
        allowed = self._terms(queryset, view, request)
        unknown = [term for term in fields if term not in allowed]
        if unknown:
            raise ValidationError(
                {
                    self.ordering_param: [
                        f"unknown ordering {unknown[0]!r}: expected one of {', '.join(allowed)}"
                    ]
                }
            )
        return list(fields)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """`ordering` as an enum of this list's fields, each ascending or descending (`-`)."""
        [parameter] = super().get_schema_operation_parameters(view)
        terms = self._terms(view.get_queryset(), view, getattr(view, "request", None))
        parameter["schema"] = {"type": "string", "enum": terms}
        return [parameter]

    def _terms(self, queryset: Any, view: Any, request: Request | None) -> list[str]:
        fields = [name for name, _ in self.get_valid_fields(queryset, view, {"request": request})]
        return [term for name in fields for term in (name, f"-{name}")]

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> list[str] | None:
        """The terms to order by: a ranked field as its rank (`-severity` is `-severity_rank`), ties
        broken by id, the same way on every page (CursorPages reads this too)."""
        ordering = super().get_ordering(request, queryset, view)
        if not ordering:
            return None
        terms = [
            ("-" if term.startswith("-") else "") + (name + RANK if name in RANKED_FIELDS else name)
            for term in ordering
            for name in [term.lstrip("-")]
        ]
        return terms if terms[-1].lstrip("-") in ("pk", "id") else [*terms, "pk"]

    def filter_queryset(self, request: Request, queryset: QuerySet[Any], view: Any) -> QuerySet[Any]:
        ordering = self.get_ordering(request, queryset, view)
        if not ordering:
            return queryset
        named = {term.lstrip("-") for term in ordering}
        ranks = {name + RANK: rank for name, rank in RANKED_FIELDS.items() if name + RANK in named}
        return queryset.annotate(**ranks).order_by(*ordering)
