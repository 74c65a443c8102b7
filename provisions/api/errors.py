"""One error shape for every 4xx: {"error": {"status", "code", "message", "field_errors"?}}."""

from __future__ import annotations

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


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"
    default_detail = "The request body is larger than the API accepts (DATA_UPLOAD_MAX_MEMORY_SIZE)."


def error_response(
    status_code: int, code: str, message: str, field_errors: dict[str, list[str]] | None = None
) -> JsonResponse:
    """The error shape, for answers made outside DRF (no route matched, the input guard, a 500)."""
    body: dict[str, Any] = {"status": status_code, "code": code, "message": message}
    if field_errors:
        body["field_errors"] = field_errors
    return JsonResponse({"error": body}, status=status_code)


def _translate(error: Exception) -> Exception:
    """Domain errors raised by services, as the HTTP errors they mean."""
    if isinstance(error, StaleVersion):
        return PreconditionFailed(str(error))
    if isinstance(error, TransitionRefused):
        return Conflict(str(error), code="transition_refused")
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
    response = exception_handler(_translate(error), context)
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
    response.data = {"error": body}
    return response


def api_aware_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 for URLs no route matches: the API's error shape under /api/, the page elsewhere."""
    if request.path.startswith("/api/"):
        return error_response(404, "not_found", "Not found.")
    return page_not_found(request, exception)


def api_aware_server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return error_response(500, "server_error", "Something went wrong on our side.")
    return server_error(request)
