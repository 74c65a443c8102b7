"""One error shape for every 4xx: {"error": {"status", "code", "message", "field_errors"?}}; or, for
a caller whose Accept names `application/problem+json`, RFC 9457 problem details: {"type", "title",
"status", "detail", "instance", "code", "errors"?} with a type per kind of problem."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found, server_error
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from provisions.services.editing import StaleVersion
from provisions.services.status import TransitionRefused


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class PreconditionRequired(exceptions.APIException):
    status_code = status.HTTP_428_PRECONDITION_REQUIRED
    default_code = "version_required"
    default_detail = 'send the version the write is based on: If-Match: "<version>" or "version" in the body'


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_code = "stale_version"

    def __init__(self, detail: str, *, current_version: int) -> None:
        super().__init__(detail)
        self.current_version = current_version


class TransitionConflict(Conflict):
    """A status move the lifecycle refused; `refusal` names the rule (MoveRefusal's code)."""

    def __init__(self, detail: str, *, refusal: str) -> None:
        super().__init__(detail, code="transition_refused")
        self.refusal = refusal


class CursorExpired(exceptions.APIException):
    status_code = status.HTTP_410_GONE
    default_code = "cursor_expired"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"
    default_detail = "The request body is larger than the API accepts (DATA_UPLOAD_MAX_MEMORY_SIZE)."


PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE = "urn:security-partnership-tracker:problem:"
# Titles of the problem types whose title is not the HTTP status's phrase (RFC 9457: the same for
# every occurrence of a type).
PROBLEM_TITLES = {
    "invalid": "Some values are not valid",
    "already_in_status": "The provision is already in that status",
    "in_force_only_suspends": "A provision in force can only be suspended",
    "reason_required": "This move needs a reason",
    "unknown_status": "No such status",
    "stale_version": "The provision changed since the version sent",
    "version_required": "A write needs the version it is based on",
    "cursor_expired": "Events after this cursor are no longer kept",
}


def wants_problem_details(request: HttpRequest) -> bool:
    return PROBLEM_JSON in request.META.get("HTTP_ACCEPT", "")


def problem_details(request: HttpRequest, body: dict[str, Any]) -> dict[str, Any]:
    """The error `body` ({"status", "code", "message", "field_errors"?, ...}) as RFC 9457 problem
    details; the refusal of a status move is its own type (`refusal`)."""
    extra = {
        key: value for key, value in body.items() if key not in ("status", "code", "message", "field_errors")
    }
    code = extra.pop("refusal", None) or body["code"]
    problem: dict[str, Any] = {
        "type": PROBLEM_TYPE + code,
        "title": PROBLEM_TITLES.get(code) or HTTPStatus(body["status"]).phrase,
        "status": body["status"],
        "detail": body["message"],
        "instance": request.path,
        "code": code,
        **extra,
    }
    if body.get("field_errors"):
        problem["errors"] = body["field_errors"]
    return problem


def error_response(
    status_code: int,
    code: str,
    message: str,
    field_errors: dict[str, list[str]] | None = None,
    *,
    request: HttpRequest | None = None,
) -> JsonResponse:
    """The error shape, for answers made outside DRF (no route matched, the input guard, a 500)."""
    body: dict[str, Any] = {"status": status_code, "code": code, "message": message}
    if field_errors:
        body["field_errors"] = field_errors
    if request is not None and wants_problem_details(request):
        return JsonResponse(problem_details(request, body), status=status_code, content_type=PROBLEM_JSON)
    return JsonResponse({"error": body}, status=status_code)


def _translate(error: Exception) -> Exception:
    """Domain errors raised by services, as the HTTP errors they mean."""
    if isinstance(error, StaleVersion):
        return PreconditionFailed(str(error), current_version=error.actual)
    if isinstance(error, TransitionRefused):
        return TransitionConflict(str(error), refusal=error.code)
    if isinstance(error, DjangoValidationError):
        detail = error.message_dict if hasattr(error, "error_dict") else {"non_field_errors": error.messages}
        return exceptions.ValidationError(detail)
    if isinstance(error, DjangoPermissionDenied):
        return exceptions.PermissionDenied(str(error) or None)
    # Django refuses an oversize body or too many fields when the view reads them: a SuspiciousOperation,
    # which would otherwise get Django's HTML 400 page.
    if isinstance(error, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(error, TooManyFieldsSent | TooManyFilesSent):
        return exceptions.ParseError(f"{error} Send fewer fields.")
    return error


def api_exception_handler(error: Exception, context: dict[str, Any]) -> Response | None:
    translated = _translate(error)
    response = exception_handler(translated, context)
    if response is None:
        return None
    detail = response.data
    body: dict[str, Any] = {"status": response.status_code}
    if isinstance(detail, dict) and set(detail) != {"detail"}:
        body["code"] = "invalid"
        body["message"] = "Some values are not valid: see field_errors."
        body["field_errors"] = {
            name: [str(message) for message in (messages if isinstance(messages, list) else [messages])]
            for name, messages in detail.items()
        }
    elif isinstance(detail, list):
        body["code"], body["message"] = "invalid", " ".join(str(message) for message in detail)
    else:
        message = detail["detail"] if isinstance(detail, dict) else detail
        body["code"] = getattr(message, "code", None) or "error"
        body["message"] = str(message)
    if isinstance(translated, TransitionConflict):
        body["refusal"] = translated.refusal  # already_in_status: the move had been made (a safe retry)
    if isinstance(translated, PreconditionFailed):
        body["current_version"] = translated.current_version
        response["ETag"] = f'"{translated.current_version}"'
    request = context.get("request")
    if request is not None and wants_problem_details(request._request):
        response.data = problem_details(request._request, body)
        response.content_type = PROBLEM_JSON
    else:
        response.data = {"error": body}
    return response


def api_aware_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 for URLs no route matches: the API's error shape under /api/, the page elsewhere."""
    if request.path.startswith("/api/"):
        return error_response(404, "not_found", "Not found.", request=request)
    return page_not_found(request, exception)


def api_aware_server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return error_response(500, "server_error", "Something went wrong on our side.", request=request)
    return server_error(request)
