"""`field__id_in`: the same rows as `__in`, with the ids sent as one parameter (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from provisions.models import Capability, Coverage
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
