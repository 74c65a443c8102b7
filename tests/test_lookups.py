"""`field__id_in`: the same rows as `__in`, with the ids sent as one parameter (SQLite and PostgreSQL);
and `ByIds`, such a query compiled once."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Collection
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.db.models import QuerySet
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext

from provisions.models import Capability, Coverage
from provisions.models.lookups import ByIds
from tests.factories import CapabilityFactory, CoverageFactory

pytestmark = pytest.mark.django_db


def test_id_in_finds_what_in_finds_on_ids_and_foreign_keys_with_one_parameter() -> None:
    links = CoverageFactory.create_batch(6)
    CapabilityFactory.create_batch(3)  # not linked
    wanted = {link.capability_id for link in links[:4]} | {10**9}  # and an id that does not exist
    provisions = {links[1].provision_id, links[5].provision_id}

    by_id = Capability.objects.filter(id__id_in=wanted)
    found = set(by_id.values_list("pk", flat=True))
    linked = set(Coverage.objects.filter(provision_id__id_in=provisions).values_list("pk", flat=True))

    assert found == set(Capability.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    assert found == wanted - {10**9}
    assert linked == {links[1].pk, links[5].pk}
    _, params = by_id.query.sql_with_params()
    assert len(params) == 1  # the ids as one parameter (`__in` sends one per id)
    _, params = Capability.objects.filter(pk__in=wanted).query.sql_with_params()
    assert len(params) == len(wanted)


def test_id_in_an_empty_set_finds_nothing() -> None:
    CapabilityFactory.create_batch(2)

    assert not Capability.objects.filter(id__id_in=set()).exists()
    assert Capability.objects.exclude(id__id_in=[]).count() == 2


def _links(ids: Collection[int]) -> QuerySet[Coverage, tuple[Any, ...]]:
    return (
        Coverage.objects.filter(provision_id__id_in=ids)
        .order_by("provision_id", "id")
        .values_list(
            "provision_id", "capability__code", "extent", "valid_from", "valid_until", "provision__updated_at"
        )
    )


def test_a_query_compiled_once_gives_the_querysets_rows_for_other_ids_in_one_query() -> None:
    links = CoverageFactory.create_batch(5, valid_from=datetime.date(2026, 1, 5))
    compiled = ByIds(_links)
    first = [links[0].provision_id, links[3].provision_id]
    second = [links[1].provision_id, links[2].provision_id, links[4].provision_id]

    assert compiled.rows(first) == list(_links(first))
    # Compiled already: the same statement with other ids, Django's compiler not called again.
    with (
        CaptureQueriesContext(connection) as queries,
        mock.patch.object(SQLCompiler, "as_sql", side_effect=AssertionError("compiled again")),
    ):
        rows = compiled.rows(second)
        nothing = compiled.rows([])

    assert rows == list(_links(second))
    assert len(rows) == 3 and nothing == []
    assert len(queries) == 2
    # Through Django's converters (SQLite hands dates and times back as text).
    assert rows[0][3] == datetime.date(2026, 1, 5)
    assert isinstance(rows[0][5], datetime.datetime) and rows[0][5].tzinfo is not None


@pytest.mark.django_db(transaction=True)
def test_each_thread_compiles_the_query_on_its_own_connection() -> None:
    links = CoverageFactory.create_batch(2)
    compiled = ByIds(_links)
    ids = [link.provision_id for link in links]
    here = compiled.rows(ids)
    there: list[Any] = []

    def other_thread() -> None:
        try:
            there.extend(compiled.rows(ids))
        finally:
            connection.close()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()

    assert here == there == list(_links(ids))
