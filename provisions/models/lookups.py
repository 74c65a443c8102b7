"""`field__id_in=ids`: membership in a set of ids, sent as one parameter.

`__in` gives each id a placeholder and prepares each on its own: for the fifty thousand ids of a
full scan's batch Django spends seconds building the query and psycopg2 quoting it. This sends the
ids as one array (`= ANY(%s)`) on PostgreSQL, one JSON list on SQLite; the planner treats it as
it treats `IN` (PostgreSQL turns an `IN` list into `= ANY` itself).

Since the statement's text does not depend on the ids, `ByIds` compiles a query once per connection
and runs it again with other ids (the API's provision rows: building and compiling their six
querysets was a third of a 50-provision page's Python).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS, connections, models

if TYPE_CHECKING:  # generic in django-stubs only: the runtime class takes no subscript
    _Lookup = models.Lookup[Any]
else:
    _Lookup = models.Lookup


class IdIn(_Lookup):
    lookup_name = "id_in"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, Any]:
        lhs, params = self.process_lhs(compiler, connection)
        ids = _parameter(connection, self.rhs)
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s::bigint[])", [*params, ids]
        # lhs is the column Django compiled; the ids are a parameter.
        return f"{lhs} IN (SELECT value FROM json_each(%s))", [*params, ids]  # noqa: S608


def _parameter(connection: Any, ids: Collection[Any]) -> Any:
    """The ids as the one parameter the lookup sends: an array on PostgreSQL, JSON text on SQLite."""
    numbers = [int(pk) for pk in ids]
    return numbers if connection.vendor == "postgresql" else json.dumps(numbers)


models.IntegerField.register_lookup(IdIn)  # ids (AutoField and BigAutoField are IntegerFields)
models.ForeignKey.register_lookup(IdIn)  # and foreign keys


# Compiled with these ids, found again among the statement's parameters and replaced at each call.
_MARKER = (-7_310_291, -7_310_292)


@dataclass(frozen=True, slots=True)
class _Compiled:
    compiler: Any
    sql: str
    params: list[Any]
    at: int  # where the ids go among the parameters
    converters: dict[int, Any]  # Django's, by column (SQLite's dates and times, for one)


class ByIds:
    """A `values_list()` query over a set of ids, compiled once per database connection.

    `build(ids)` returns the queryset, filtered once with `field__id_in=ids` and by nothing that changes
    between calls (no "today": the statement is kept as first compiled); `rows(ids)` runs its
    compiled statement with these ids (the same rows, in the same order, through the same converters,
    and counted by query-counting tests like any query). Kept by thread, as Django keeps connections:
    what one thread compiled goes with it.
    """

    def __init__(self, build: Callable[[Collection[int]], models.QuerySet[Any, Any]]) -> None:
        self._build = build
        self._compiled = threading.local()

    def _compile(self, connection: Any) -> _Compiled:
        compiler = self._build(_MARKER).query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        marker = _parameter(connection, _MARKER)
        (at,) = (index for index, value in enumerate(params) if value == marker)
        columns = [column for column, _, _ in compiler.select[: compiler.col_count]]
        compiled = _Compiled(compiler, sql, list(params), at, compiler.get_converters(columns))
        setattr(self._compiled, connection.alias, compiled)
        return compiled

    def rows(self, ids: Collection[int], using: str = DEFAULT_DB_ALIAS) -> list[tuple[Any, ...]]:
        connection = connections[using]
        compiled = getattr(self._compiled, using, None)
        if compiled is None or compiled.compiler.connection is not connection:
            compiled = self._compile(connection)
        params = list(compiled.params)
        params[compiled.at] = _parameter(connection, ids)
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        if compiled.converters:
            return list(map(tuple, compiled.compiler.apply_converters(rows, compiled.converters)))
        return rows
