"""Hostile input refused before any view, in the shape of where it was sent: a NUL character in the
path (no page or resource has one: 404) or in the query string, and a query string whose
percent-escapes are not UTF-8 (400). Under /api/ the answer is the API's error shape (JSON); a page
gets Django's 404 page or a plain 400.

Everything else is refused where it is read: the API's JSON parser bounds nesting, its exception
handler answers an oversize body (413) in the error shape, the serializers and filters refuse bad
values, and page forms are guarded by partnership.middleware.refuse_null_characters."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.core.exceptions import TooManyFieldsSent
from django.http import Http404, HttpRequest, HttpResponseBadRequest, HttpResponseBase

from provisions.api.errors import error_response

API_PREFIX = "/api/"
NUL_MESSAGE = "Null characters are not allowed."


def _query_is_utf8(query_string: str) -> bool:
    """WSGI hands the query string over as latin-1 text of its bytes; Django would decode its escapes
    as UTF-8 and silently replace what is not."""
    try:
        raw = query_string.encode("latin-1")
    except UnicodeEncodeError:  # already decoded text (not from a WSGI server): nothing to check
        return True
    try:
        unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _bad_request(
    request: HttpRequest, message: str, field_errors: dict[str, list[str]] | None = None
) -> HttpResponseBase:
    if request.path.startswith(API_PREFIX):
        code = "invalid" if field_errors else "bad_request"
        return error_response(400, code, message, field_errors, request=request)
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


def _query_refusal(request: HttpRequest) -> HttpResponseBase | None:
    query_string = request.META.get("QUERY_STRING", "")
    if not query_string:
        return None
    if not _query_is_utf8(query_string):
        return _bad_request(
            request, "The query string is not valid UTF-8: percent-escapes must encode UTF-8."
        )
    try:
        parameters = list(request.GET.lists())
    except TooManyFieldsSent as error:  # Django's limit (DATA_UPLOAD_MAX_NUMBER_FIELDS)
        return _bad_request(request, str(error))
    refused = {
        name: [NUL_MESSAGE]
        for name, values in parameters
        if "\x00" in name or any("\x00" in value for value in values)
    }
    if not refused:
        return None
    if request.path.startswith(API_PREFIX):
        return _bad_request(request, "Some values are not valid: see field_errors.", refused)
    return _bad_request(request, "A value in this request holds a NUL character.")


def guard_hostile_input(
    get_response: Callable[[HttpRequest], HttpResponseBase],
) -> Callable[..., HttpResponseBase]:
    def middleware(request: HttpRequest) -> HttpResponseBase:
        if "\x00" in request.path:
            # Nothing has such an address; the 404 handler answers in the API's shape under /api/.
            raise Http404("No page or resource has a NUL character in its address.")
        refusal = _query_refusal(request)
        if refusal is not None:
            return refusal
        return get_response(request)

    return middleware
