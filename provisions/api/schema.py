"""OpenAPI extensions: how drf-spectacular describes what it cannot see (imported by the urls),
and the schema class (settings.REST_FRAMEWORK) that names the operations."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "provisions.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer"}


class VerbAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema with operation ids that read as what the operation does
    (`listGaps`, `moveProvisionStatus`): generated clients name their functions after them."""

    OPERATION_IDS = {
        "aims_list": "getAimsScorecard",
        "capabilities_list": "listCapabilities",
        "capabilities_retrieve": "getCapability",
        "changes_retrieve": "getChanges",
        "coverage_list": "getCoverageByDomain",
        "domains_list": "listDomains",
        "domains_retrieve": "getDomain",
        "gap_scans_list": "listGapScans",
        "gap_scans_create": "startGapScan",
        "gap_scans_retrieve": "getGapScan",
        "gaps_list": "listGaps",
        "gaps_retrieve": "getGap",
        "gaps_acknowledge_create": "acknowledgeGap",
        "precedents_list": "listPrecedents",
        "precedents_retrieve": "getPrecedent",
        "provisions_list": "listProvisions",
        "provisions_retrieve": "getProvision",
        "provisions_partial_update": "updateProvision",
        "provisions_coverage_create": "setProvisionCoverage",
        "provisions_discussions_create": "recordProvisionDiscussion",
        "provisions_history_retrieve": "getProvisionHistory",
        "provisions_positions_create": "recordProvisionPosition",
        "provisions_transition_create": "moveProvisionStatus",
        "territories_list": "listTerritories",
        "territories_retrieve": "getTerritory",
        "tokens_list": "listTokens",
        "tokens_create": "createToken",
        "tokens_destroy": "revokeToken",
        "webhook_endpoints_list": "listWebhookEndpoints",
        "webhook_endpoints_create": "createWebhookEndpoint",
        "webhook_endpoints_retrieve": "getWebhookEndpoint",
        "webhook_endpoints_partial_update": "updateWebhookEndpoint",
        "webhook_endpoints_destroy": "deleteWebhookEndpoint",
        "webhook_endpoints_deliveries_list": "listWebhookDeliveries",
        "webhook_endpoints_deliveries_redeliver_create": "redeliverWebhook",
        "webhook_endpoints_rotate_secret_create": "rotateWebhookSecret",
    }

    def get_operation_id(self) -> str:
        """The verb id of a known operation; a new one keeps drf-spectacular's until it is named
        here (tests/test_api.py fails until it is)."""
        default: str = super().get_operation_id()
        return self.OPERATION_IDS.get(default, default)


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": _header(
        'The caller\'s rate: `"caller";q=<requests>;w=<seconds>` (IETF RateLimit fields).'
    ),
    "RateLimit": _header('What is left of it: `"caller";r=<requests left>;t=<seconds until one frees>`.'),
}


PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An error as RFC 9457 problem details, for a caller whose Accept names "
    "application/problem+json (else the `error` envelope).",
    "properties": {
        "type": {
            "type": "string",
            "description": "The kind of problem: urn:security-partnership-tracker:problem:<code>.",
        },
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {
            "type": "string",
            "description": "The type's last part: invalid, not_found, already_in_status (a repeated move: "
            "it had been made), in_force_only_suspends, reason_required, stale_version, ...",
        },
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "What was wrong with each field.",
        },
        "current_version": {
            "type": "integer",
            "description": "On a 412: the provision's version now (also the ETag).",
        },
    },
    "required": ["type", "title", "status", "detail", "instance", "code"],
}


# Dates in queries are between 1900 and 2999 (provisions.rules.thresholds.parse_as_of; updated_since).
YEARS_TAKEN = "^(19|2[0-9])[0-9]{2}-"


def _document_idempotency(operation: dict[str, Any], responses: dict[str, Any]) -> None:
    """Every POST takes an Idempotency-Key (provisions/api/idempotency.py)."""
    operation.setdefault("parameters", []).append(
        {
            "in": "header",
            "name": "Idempotency-Key",
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": "Send the POST again with the same key (within 24 hours) and get the first "
            "answer, with `Idempotent-Replayed: true`, instead of doing it twice.",
        }
    )
    error = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for code, description in (
        ("409", "The request first sent with this Idempotency-Key is still running."),
        ("422", "This Idempotency-Key was sent with a different request."),
    ):
        responses.setdefault(
            code,
            {
                "description": description,
                "content": {
                    "application/json": {"schema": error},
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}},
                },
            },
        )


def document_http_headers(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """A postprocessing hook (settings): the headers every answer carries, which drf-spectacular
    cannot see because middleware adds them. RateLimit on every answer and Retry-After on a 429
    (partnership.middleware.rate_limit_headers); on reads an ETag, and If-None-Match answered with
    304 when it still matches (Django's ConditionalGetMiddleware)."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                content = response.get("content", {})
                if code.isdigit() and int(code) >= 400 and "application/json" in content:
                    content["application/problem+json"] = {"schema": {"$ref": "#/components/schemas/Problem"}}
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if parameter["in"] == "query" and schema.get("format") in ("date", "date-time"):
                    schema["pattern"] = YEARS_TAKEN  # what PostgreSQL and the record hold
            if method == "post" and operation.get("operationId") != "createToken":  # its key is never kept
                _document_idempotency(operation, responses)
            if method == "get":
                operation.setdefault("parameters", []).append(
                    {
                        "in": "header",
                        "name": "If-None-Match",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "The ETag of a copy you hold: 304, no body, while it still matches.",
                    }
                )
                responses.setdefault("304", {"description": "Not modified: the copy you hold is current."})
            for code, response in responses.items():
                headers = response.setdefault("headers", {})
                headers |= RATE_LIMIT_HEADERS
                if code == "429":
                    headers["Retry-After"] = _header("Seconds to wait before asking again.")
                if method == "get" and code in ("200", "304"):
                    headers["ETag"] = _header("The answer's version: send it back in If-None-Match.")
    return result
