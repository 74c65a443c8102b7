"""`field__id_in=ids`: membership in a set of ids, sent as one parameter.

`__in` gives each id a placeholder and prepares each on its own: for the fifty thousand ids of a
full scan's batch Django spends seconds building the query and psycopg2 quoting it. This sends the
ids as one array (`= ANY(%s)`) on PostgreSQL, one JSON list on SQLite; the planner treats it as
it treats `IN` (PostgreSQL turns an `IN` list into `= ANY` itself).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:  # generic in django-stubs only: the runtime class takes no subscript
    _Lookup = models.Lookup[Any]
else:
    _Lookup = models.Lookup


class IdIn(_Lookup):
    lookup_name = "id_in"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, Any]:
        lhs, params = self.process_lhs(compiler, connection)
        ids = [int(pk) for pk in self.rhs]
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s::bigint[])", [*params, ids]
        # lhs is the column Django compiled; the ids are a parameter.
        return f"{lhs} IN (SELECT value FROM json_each(%s))", [*params, json.dumps(ids)]  # noqa: S608


models.IntegerField.register_lookup(IdIn)  # ids (AutoField and BigAutoField are IntegerFields)
models.ForeignKey.register_lookup(IdIn)  # and foreign keys
