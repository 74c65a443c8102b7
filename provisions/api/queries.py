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

Operations = list[tuple[re.Pattern[str], str, frozenset[str]]]


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
            names = frozenset(p["name"] for p in operation.get("parameters", []) if p["in"] == "query")
            operations.append((pattern, method.upper(), names))
    operations.sort(key=lambda operation: operation[0].pattern.count("[^/]+"))
    return operations


def known_query_parameters(request: Request) -> frozenset[str] | None:
    """The query parameters the schema gives the request's operation (None: not in the schema)."""
    for pattern, method, names in operations():
        if method == request.method and pattern.match(request.path_info):
            return names
    return None


class KnownQueryParameters:
    """A view whose requests may only carry the query parameters its schema names (checked after
    authentication and permissions: a caller who may not ask learns nothing about parameters)."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        known = known_query_parameters(request)
        if known is None:  # HEAD and OPTIONS answer as GET and DRF do
            return
        unknown = sorted(set(request.query_params) - known)
        if unknown:
            allowed = ", ".join(sorted(known)) or "none"
            raise ValidationError(
                {name: [f"unknown query parameter: this operation takes {allowed}"] for name in unknown}
            )
