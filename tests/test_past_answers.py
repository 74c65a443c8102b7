"""Answers about a past day (the overview as of a date) are kept until a write reaches back to that
day, and never after: after every kind of write, the answer served equals the one worked out afresh."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from provisions.models import (
    Capability,
    Coverage,
    Firmness,
    Level,
    Marking,
    Party,
    Provision,
    RecordRevision,
    Stance,
    Status,
)
from provisions.permissions import Reader
from provisions.services.dated import capability_change_record, discussion_record
from provisions.services.past import record_written, revision_on
from provisions.services.provisions import coverage_set, position_set, provision_update
from provisions.services.reference_data import reference_data_save
from provisions.services.scans import gap_thresholds_set
from provisions.services.status import provision_transition
from tests.factories import (
    CapabilityFactory,
    CoverageFactory,
    DomainFactory,
    PartyFactory,
    ProvisionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
DAY = TODAY - datetime.timedelta(days=10)  # the past day asked about
EARLIER = DAY - datetime.timedelta(days=5)  # a write reaching back to before it
SYSTEM = Reader.system()
FIGURES = ("coverage", "severities", "gap_total", "lapses", "lapses_more", "aim_verdicts", "capability_total")


@pytest.fixture
def world() -> dict[str, Any]:
    """A domain with two capabilities lapsing within the warning, a provision under negotiation since
    2020 covering the first (stalled, no activity since), and a second provision covering nothing yet."""
    domain = DomainFactory(code="justice", name="Justice")
    PartyFactory(partnership=domain.partnership, code="UK")
    PartyFactory(partnership=domain.partnership, code="EU")
    first = CapabilityFactory(domain=domain, code="EAW", lapses_on=TODAY + datetime.timedelta(days=60))
    second = CapabilityFactory(domain=domain, code="ECRIS", lapses_on=TODAY + datetime.timedelta(days=90))
    negotiated = ProvisionFactory(domain=domain, reference="SP-1", status=Status.UNDER_NEGOTIATION)
    CoverageFactory(provision=negotiated, capability=first)
    spare = ProvisionFactory(domain=domain, reference="SP-2", status=Status.AGREED)
    return {"domain": domain, "first": first, "second": second, "negotiated": negotiated, "spare": spare}


def figures(client: Client) -> dict[str, Any]:
    response = client.get(f"/?as_of={DAY.isoformat()}")
    assert response.status_code == 200
    return {name: response.context[name] for name in FIGURES}


def served_and_afresh(client: Client) -> tuple[dict[str, Any], dict[str, Any]]:
    served = figures(client)
    cache.clear()
    return served, figures(client)


def evaluates(queries: CaptureQueriesContext) -> bool:
    """The queries evaluated the rules (read the coverage links), rather than serve a kept answer."""
    return any('"provisions_coverage"' in query["sql"] for query in queries.captured_queries)


def test_an_answer_about_a_past_day_is_kept_and_a_move_today_keeps_it(client: Client, world) -> None:
    client.force_login(UserFactory(role="viewer", clearance="secret"))
    with CaptureQueriesContext(connection) as working_out:
        first = figures(client)
    with CaptureQueriesContext(connection) as kept:
        assert figures(client) == first

    assert evaluates(working_out) and not evaluates(kept)
    assert len(kept.captured_queries) < len(working_out.captured_queries)

    provision_transition(provision=world["spare"], to=Status.SIGNED, by=SYSTEM)  # today: DAY unchanged
    with CaptureQueriesContext(connection) as after_the_move:
        served = figures(client)
    assert not evaluates(after_the_move)
    cache.clear()
    assert served == figures(client) == first


def test_edits_of_dated_values_today_keep_the_answers_about_past_days(client: Client, world) -> None:
    """A title, text or expiry edited today, or a capability's criticality changed today, changes no
    past day: the answers kept about one stay kept. The first edit also writes the history's base row,
    which holds what every day already had; after it, the columns hold only today's values."""
    client.force_login(UserFactory(role="viewer", clearance="secret"))
    first = figures(client)
    start = revision_on(DAY)
    assert not world["negotiated"].changes.exists()

    provision_update(provision=world["negotiated"], by=SYSTEM, expected_version=None, title="Surrender")
    assert world["negotiated"].changes.filter(at__isnull=True).exists()  # its base row now
    provision_update(
        provision=world["negotiated"],
        by=SYSTEM,
        expected_version=None,
        text="The Parties shall surrender.",
        expires_on=TODAY + datetime.timedelta(days=400),
    )
    capability_change_record(
        capability=world["second"], by=SYSTEM, on=timezone.localdate(), criticality=Level.CRITICAL
    )
    assert revision_on(DAY) == start
    with CaptureQueriesContext(connection) as kept:
        assert figures(client) == first
    assert not evaluates(kept)
    cache.clear()
    assert figures(client) == first  # and kept rightly: worked out afresh, the same

    # A column written without a history (no base row) is what every day reads: counted.
    spare = Provision.objects.get(pk=world["spare"].pk)
    assert not spare.changes.exists()
    spare.title = "Renamed in place"
    spare.save(update_fields=["title"])
    assert revision_on(DAY) > start


def _backdated_move(world: dict[str, Any]) -> None:
    provision_transition(provision=world["negotiated"], to=Status.AGREED, by=SYSTEM, on=EARLIER)


def _position_then(world: dict[str, Any]) -> None:
    position_set(
        provision=world["negotiated"],
        party=Party.objects.get(code="EU"),
        stance=Stance.OPPOSES,
        firmness=Firmness.DEFINITIVE,
        by=SYSTEM,
        expected_version=None,
        reason="recorded late",
        effective_on=EARLIER,
    )


def _link_then(world: dict[str, Any]) -> None:
    coverage_set(
        provision=world["spare"],
        capability=world["second"],
        extent="full",
        by=SYSTEM,
        expected_version=None,
        reason="recorded late",
        effective_on=EARLIER,
    )


def _link_deleted(world: dict[str, Any]) -> None:
    Coverage.objects.filter(provision=world["negotiated"]).delete()


def _marked_secret(world: dict[str, Any]) -> None:
    provision_update(provision=world["spare"], by=SYSTEM, expected_version=None, marking=Marking.SECRET)


def _renamed(world: dict[str, Any]) -> None:
    capability = Capability.objects.get(pk=world["first"].pk)
    capability.name = "European Arrest Warrant (renamed)"
    reference_data_save(instance=capability, by=SYSTEM)


def _lapse_moved_then(world: dict[str, Any]) -> None:
    capability_change_record(
        capability=world["second"], by=SYSTEM, on=EARLIER, note="recorded late", criticality=Level.CRITICAL
    )


def _discussed_then(world: dict[str, Any]) -> None:
    discussion_record(provision=world["negotiated"], by=SYSTEM, on=EARLIER, note="Round 9: no move")


def _thresholds(world: dict[str, Any]) -> None:
    gap_thresholds_set(
        by=SYSTEM, secured_status=Status.AGREED, warning_days=30, urgent_days=10, stall_days=90
    )


def _title_then(world: dict[str, Any]) -> None:  # activity then: no longer stalled on the day
    provision_update(
        provision=world["negotiated"],
        by=SYSTEM,
        expected_version=None,
        title="Surrender (as first agreed)",
        reason="recorded late",
        effective_on=EARLIER,
    )


WRITES: dict[str, Callable[[dict[str, Any]], None]] = {
    "a status change dated before the day": _backdated_move,
    "a position taken before the day": _position_then,
    "a link from before the day": _link_then,
    "a link deleted": _link_deleted,
    "a provision marked above the reader": _marked_secret,
    "a capability renamed": _renamed,
    "a capability's criticality from before the day": _lapse_moved_then,
    "a discussion before the day": _discussed_then,
    "the gap rules' thresholds": _thresholds,
    "a title from before the day": _title_then,
}


@pytest.mark.parametrize("write", WRITES)
def test_a_write_reaching_back_to_the_day_is_in_the_next_answer(client: Client, world, write: str) -> None:
    client.force_login(UserFactory(role="viewer", clearance="official"))
    before = figures(client)
    figures(client)  # kept now

    WRITES[write](world)

    served, afresh = served_and_afresh(client)
    assert served == afresh
    assert afresh != before  # the write changed the answer: the test could have caught a stale one


def test_writes_are_counted_on_the_earliest_day_they_change_and_today_is_not_counted(world) -> None:
    today = timezone.localdate()  # not the module's TODAY: a run may pass midnight before it gets here
    start = revision_on(DAY)
    record_written(today)  # reaches no past day
    record_written(today + datetime.timedelta(days=3))
    record_written(DAY + datetime.timedelta(days=1))  # after the day: not its record
    assert revision_on(DAY) == start
    record_written(EARLIER)
    counted = revision_on(DAY)
    assert counted > start
    record_written(EARLIER)
    assert revision_on(DAY) == counted + 1
    record_written()  # from the start: every day's record
    assert revision_on(DAY) > counted + 1
    assert revision_on(DAY + datetime.timedelta(days=1)) > revision_on(DAY)  # the day after: counted too
    assert not RecordRevision.objects.filter(day__gte=today).exists()


def test_an_import_counts_what_it_changes_and_a_repeat_counts_nothing(shipped_partnership_file: str) -> None:
    import copy

    import yaml

    from provisions.services.partnership_file import partnership_import

    with open(shipped_partnership_file, encoding="utf-8") as file:
        shipped = yaml.safe_load(file)
    without = copy.deepcopy(shipped)
    without["provisions"][0]["positions"] = []  # one provision with no position yet
    partnership_import(data=without)
    start = revision_on(datetime.date.min)
    assert start > 0

    partnership_import(data=without)  # the same file: nothing written, every kept answer still true
    assert revision_on(datetime.date.min) == start

    # Its positions arrive: the import writes them with bulk_create, which sends no signal (nor does
    # deleting the none there were), and counts the write itself.
    partnership_import(data=shipped)
    assert revision_on(datetime.date.min) > start


def test_the_apis_coverage_as_of_a_past_day_is_kept_until_a_write_reaches_back(client: Client, world) -> None:
    client.force_login(UserFactory(role="viewer", clearance="official"))
    path = f"/api/v1/coverage/?as_of={DAY.isoformat()}"
    before = client.get(path).json()
    with CaptureQueriesContext(connection) as kept:
        assert client.get(path).json() == before
    assert not any('"provisions_coverage"' in query["sql"] for query in kept.captured_queries)

    _backdated_move(world)

    served = client.get(path).json()
    cache.clear()
    assert served == client.get(path).json() != before
