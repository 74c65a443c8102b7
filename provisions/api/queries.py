"""Query parameters the API does not know are a 400 naming the ones it does: a guessed parameter
(`updated_since` on a list that has none) must not quietly return everything as if it had worked.

What each operation takes is read from the OpenAPI schema, the one definition integrators see
(filters, ordering, pagination, `as_of`, `from`/`to`), once per process.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

Operations = list[tuple[re.Pattern[str], str, dict[str, dict[str, Any]]]]


@functools.cache
def operations() -> Operations:
    """(path pattern, method, query parameter names) of every operation in the schema; paths with
    fewer `{placeholders}` first, so that a literal segment wins over a placeholder."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations: Operations = []
    for path, methods in schema["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$")
        for method, operation in methods.items():
            parameters = {
                p["name"]: p.get("schema", {}) for p in operation.get("parameters", []) if p["in"] == "query"
            }
            operations.append((pattern, method.upper(), parameters))
    operations.sort(key=lambda operation: operation[0].pattern.count("[^/]+"))
    return operations


def known_query_parameters(request: Request) -> dict[str, dict[str, Any]] | None:
    """The query parameters the schema gives the request's operation, with their schemas (None: the
    operation is not in the schema)."""
    for pattern, method, parameters in operations():
        if method == request.method and pattern.match(request.path_info):
            return parameters
    return None


def _misfit(value: str, schema: dict[str, Any]) -> str | None:
    """What is wrong with a query value for its schema's type, before any filter reads it (filters and
    pagination would take an empty or mistyped value as no value): only the kinds they would drop."""
    kind = schema.get("type")
    if kind == "array":
        return None  # several values: each is the filter's to check
    if value == "" and (kind != "string" or "format" in schema or "enum" in schema):
        return "give a value, or leave the parameter out"
    if kind == "integer" and not re.fullmatch(r"-?[0-9]+", value):
        return f"{value!r} is not a whole number"
    return None


class KnownQueryParameters:
    """A view whose requests may only carry the query parameters its schema names (checked after
    authentication and permissions: a caller who may not ask learns nothing about parameters)."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        known = known_query_parameters(request)
        if known is None:  # HEAD and OPTIONS answer as GET and DRF do
            return
        unknown = sorted(set(request.query_params) - set(known))
        if unknown:
            allowed = ", ".join(sorted(known)) or "none"
            raise ValidationError(
                {name: [f"unknown query parameter: this operation takes {allowed}"] for name in unknown}
            )
        misfits = {
            name: [problem]
            for name in request.query_params
            for value in request.query_params.getlist(name)
            if (problem := _misfit(value, known[name])) is not None
        }
        if misfits:
            raise ValidationError(misfits)
