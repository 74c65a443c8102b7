"""The negotiation lifecycle (DESIGN.md, "Negotiation status") and the service that enforces it."""

from __future__ import annotations

import datetime
import itertools
import threading
from typing import Any
from unittest import mock

import pytest
from django.db import connection

from provisions.models import Provision, ScanRequest, Status, StatusChange
from provisions.permissions import Reader
from provisions.services import status as status_service
from provisions.services.editing import StaleVersion
from provisions.services.status import (
    TransitionRefused,
    provision_record_first_status,
    provision_transition,
)
from tests.factories import DomainFactory, ProvisionFactory, UserFactory

# The ladder of DESIGN.md, written out here rather than read from the code under test.
LADDER_RANK = {
    "identified": 0,
    "scoping": 1,
    "proposed": 2,
    "under_negotiation": 3,
    "agreed_in_principle": 4,
    "agreed": 5,
    "signed": 6,
    "in_force": 7,
}
OFF_LADDER = ("suspended", "withdrawn")
ALL_STATUSES = (*LADDER_RANK, *OFF_LADDER)

NOTES = {"no note": "", "blank note": "  \n\t ", "a reason": "The EU asked for a pause."}


def design_allows(current: str, target: str, *, has_reason: bool) -> bool:
    """DESIGN.md: any move except a no-op and leaving in_force for anything but suspended;
    backwards on the ladder, to suspended or to withdrawn needs a reason."""
    if current == target:
        return False
    if current == "in_force" and target != "suspended":
        return False
    backwards = (
        current in LADDER_RANK and target in LADDER_RANK and LADDER_RANK[target] < LADDER_RANK[current]
    )
    needs_reason = backwards or target in OFF_LADDER
    return has_reason or not needs_reason


def test_the_test_knows_every_status() -> None:
    assert sorted(Status.values) == sorted(ALL_STATUSES)


def test_the_rules_table_spot_checks() -> None:
    """The expectation itself, checked by hand against DESIGN.md on a few moves."""
    assert design_allows("proposed", "agreed", has_reason=False)  # forwards, skipping rungs
    assert not design_allows("agreed", "proposed", has_reason=False)  # backwards
    assert design_allows("agreed", "proposed", has_reason=True)
    assert not design_allows("in_force", "withdrawn", has_reason=True)  # in force: only suspended
    assert design_allows("in_force", "suspended", has_reason=True)
    assert not design_allows("in_force", "suspended", has_reason=False)
    assert design_allows("suspended", "identified", has_reason=False)  # resuming is not "backwards"
    assert design_allows("withdrawn", "in_force", has_reason=False)
    assert not design_allows("suspended", "withdrawn", has_reason=False)
    assert not design_allows("withdrawn", "withdrawn", has_reason=True)


EVERY_MOVE = [
    pytest.param(current, target, note, id=f"{current}->{target}, {label}")
    for current, target in itertools.product(ALL_STATUSES, ALL_STATUSES)
    for label, note in NOTES.items()
]


@pytest.mark.parametrize(("current", "target", "note"), EVERY_MOVE)
def test_the_lifecycle_allows_exactly_the_moves_of_the_design(current: str, target: str, note: str) -> None:
    refusal = Status.move_refusal(current, target, note)

    if design_allows(current, target, has_reason=bool(note.strip())):
        assert refusal is None
    else:
        assert isinstance(refusal, str)
        assert refusal.strip()


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_a_first_status_can_be_any_status(status: str) -> None:
    assert Status.move_refusal(None, status, "") is None


def test_an_unknown_status_is_refused() -> None:
    assert Status.move_refusal("proposed", "drafting", "a reason") is not None
    assert Status.move_refusal(None, "drafting", "a reason") is not None


# --- the service -----------------------------------------------------------------------------------------


def _snapshot(provision: Provision) -> tuple[str, int, int, int]:
    stored = Provision.objects.get(pk=provision.pk)
    return stored.status, stored.version, stored.status_changes.count(), StatusChange.objects.count()


SERVICE_MOVES = [
    pytest.param(current, target, note, id=f"{current}->{target}, {label}")
    for current, target in itertools.product(ALL_STATUSES, ALL_STATUSES)
    for label, note in NOTES.items()
    if label != "blank note"
]


@pytest.mark.django_db
@pytest.mark.parametrize(("current", "target", "note"), SERVICE_MOVES)
def test_the_service_enforces_the_lifecycle_on_every_move(current: str, target: str, note: str) -> None:
    provision = ProvisionFactory(status=current)
    before = _snapshot(provision)

    if design_allows(current, target, has_reason=bool(note)):
        change = provision_transition(by=Reader.system(), provision=provision, to=target, note=note)
        assert (change.from_status, change.to_status) == (current, target)
        assert _snapshot(provision) == (target, before[1] + 1, before[2] + 1, before[3] + 1)
    else:
        with pytest.raises(TransitionRefused):
            provision_transition(by=Reader.system(), provision=provision, to=target, note=note)
        assert _snapshot(provision) == before


# Midnight has passed in London (BST, UTC+1) but not in UTC or New York.
AN_INSTANT = datetime.datetime(2024, 6, 30, 23, 30, tzinfo=datetime.UTC)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("time_zone", "expected_day"),
    [
        ("Europe/London", datetime.date(2024, 7, 1)),
        ("UTC", datetime.date(2024, 6, 30)),
        ("America/New_York", datetime.date(2024, 6, 30)),
    ],
)
def test_a_move_writes_one_status_change_dated_today_in_the_project_time_zone(
    settings: Any, time_zone: str, expected_day: datetime.date
) -> None:
    settings.TIME_ZONE = time_zone
    provision = ProvisionFactory(reference="SP-LE-03", status=Status.PROPOSED)
    negotiator = UserFactory(username="negotiator", role="negotiator", domains=[provision.domain])
    version = provision.version
    changes_before = StatusChange.objects.count()

    with mock.patch("django.utils.timezone.now", return_value=AN_INSTANT):
        change = provision_transition(
            provision=provision,
            to=Status.UNDER_NEGOTIATION,
            note="  Both sides tabled text.  ",
            by=Reader.of(negotiator),
            source="api",
        )

    assert StatusChange.objects.count() == changes_before + 1
    stored = StatusChange.objects.order_by("-id").first()
    assert stored is not None and stored.pk == change.pk
    assert stored.provision_id == provision.pk
    assert (stored.from_status, stored.to_status) == (Status.PROPOSED, Status.UNDER_NEGOTIATION)
    assert stored.changed_on == expected_day
    assert stored.changed_by == negotiator
    assert stored.note == "Both sides tabled text."
    assert stored.source == "api"
    provision_row = Provision.objects.get(pk=provision.pk)
    assert (provision_row.status, provision_row.version) == (Status.UNDER_NEGOTIATION, version + 1)
    assert (provision.status, provision.version) == (Status.UNDER_NEGOTIATION, version + 1)


@pytest.mark.django_db
def test_a_move_on_a_given_day_is_dated_that_day_and_asks_for_a_scan_of_the_provision() -> None:
    provision = ProvisionFactory(status=Status.AGREED, created_on=datetime.date(2020, 3, 1))
    scan_requests_before = ScanRequest.objects.count()

    change = provision_transition(
        by=Reader.system(), provision=provision, to=Status.SIGNED, on=datetime.date(2020, 12, 24)
    )

    change.refresh_from_db()
    assert change.changed_on == datetime.date(2020, 12, 24)
    assert change.changed_by is None
    assert change.source == "web"
    assert ScanRequest.objects.count() == scan_requests_before + 1
    assert ScanRequest.objects.order_by("-id")[0].provision_ids == [provision.pk]


@pytest.mark.django_db
def test_successive_moves_each_bump_the_version_and_leave_the_status_at_the_latest_change() -> None:
    provision = ProvisionFactory(status=Status.IDENTIFIED)
    start = provision.version
    path = [Status.SCOPING, Status.PROPOSED, Status.AGREED, Status.SIGNED, Status.IN_FORCE]

    for target in path:
        provision_transition(by=Reader.system(), provision=provision, to=target)

    stored = Provision.objects.get(pk=provision.pk)
    assert stored.version == start + len(path)
    history = list(stored.status_changes.chronological().values_list("from_status", "to_status"))
    assert history == [("", Status.IDENTIFIED), *zip([Status.IDENTIFIED, *path[:-1]], path, strict=True)]
    assert stored.status == history[-1][1]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("current", "target", "note"),
    [
        pytest.param(Status.AGREED, Status.AGREED, "a reason", id="no-op"),
        pytest.param(Status.IN_FORCE, Status.SIGNED, "a reason", id="leaving in force"),
        pytest.param(Status.AGREED, Status.SCOPING, "", id="backwards without a reason"),
        pytest.param(Status.AGREED, Status.SUSPENDED, "   ", id="suspending with a blank reason"),
        pytest.param(Status.PROPOSED, Status.WITHDRAWN, "", id="withdrawing without a reason"),
        pytest.param(Status.PROPOSED, "drafting", "a reason", id="unknown status"),
    ],
)
def test_a_refused_move_names_the_provision_the_move_and_the_reason_and_writes_nothing(
    current: str, target: str, note: str
) -> None:
    provision = ProvisionFactory(reference="SP-LE-03", status=current)
    before = _snapshot(provision)
    scan_requests_before = ScanRequest.objects.count()

    with pytest.raises(TransitionRefused) as refused:
        provision_transition(by=Reader.system(), provision=provision, to=target, note=note)

    message = str(refused.value)
    assert "SP-LE-03" in message
    assert target in message[message.index(current) + len(current) :]  # the move: from, then to
    assert refused.value.reason and refused.value.reason in message
    assert (refused.value.reference, refused.value.current, refused.value.target) == (
        "SP-LE-03",
        current,
        target,
    )
    assert _snapshot(provision) == before
    assert ScanRequest.objects.count() == scan_requests_before


@pytest.mark.django_db
def test_moving_back_without_a_reason_says_a_reason_is_needed() -> None:
    provision = ProvisionFactory(status=Status.AGREED)

    with pytest.raises(TransitionRefused, match="reason"):
        provision_transition(by=Reader.system(), provision=provision, to=Status.PROPOSED)

    change = provision_transition(
        by=Reader.system(), provision=provision, to=Status.PROPOSED, note="Text reopened."
    )
    assert change.note == "Text reopened."


@pytest.mark.django_db
def test_a_move_based_on_a_stale_version_raises_and_writes_nothing() -> None:
    provision = ProvisionFactory(reference="SP-CJ-01", status=Status.PROPOSED)
    loaded_version = provision.version
    provision_transition(
        by=Reader.system(), provision=Provision.objects.get(pk=provision.pk), to=Status.UNDER_NEGOTIATION
    )
    before = _snapshot(provision)

    with pytest.raises(StaleVersion) as stale:
        provision_transition(
            by=Reader.system(), provision=provision, to=Status.AGREED, expected_version=loaded_version
        )

    assert (stale.value.expected, stale.value.actual) == (loaded_version, loaded_version + 1)
    assert "SP-CJ-01" in str(stale.value)
    assert _snapshot(provision) == before


@pytest.mark.django_db
def test_a_move_based_on_the_current_version_goes_through() -> None:
    provision = ProvisionFactory(status=Status.PROPOSED)

    provision_transition(
        by=Reader.system(), provision=provision, to=Status.AGREED, expected_version=provision.version
    )

    assert Provision.objects.get(pk=provision.pk).status == Status.AGREED


@pytest.mark.django_db
def test_a_move_dated_before_the_latest_recorded_change_is_refused() -> None:
    provision = ProvisionFactory(status=Status.PROPOSED, created_on=datetime.date(2020, 5, 10))
    provision_transition(
        by=Reader.system(), provision=provision, to=Status.UNDER_NEGOTIATION, on=datetime.date(2020, 6, 1)
    )
    before = _snapshot(provision)

    with pytest.raises(TransitionRefused, match="2020-05-31"):
        provision_transition(
            by=Reader.system(), provision=provision, to=Status.AGREED, on=datetime.date(2020, 5, 31)
        )

    assert _snapshot(provision) == before


@pytest.mark.django_db
def test_several_moves_on_the_same_day_keep_their_order() -> None:
    day = datetime.date(2020, 5, 10)
    provision = ProvisionFactory(status=Status.PROPOSED, created_on=day)

    provision_transition(by=Reader.system(), provision=provision, to=Status.UNDER_NEGOTIATION, on=day)
    provision_transition(by=Reader.system(), provision=provision, to=Status.AGREED, on=day)

    assert list(provision.status_changes.chronological().values_list("to_status", flat=True)) == [
        Status.PROPOSED,
        Status.UNDER_NEGOTIATION,
        Status.AGREED,
    ]
    latest = StatusChange.objects.latest_per_provision(on_or_before=day).get(provision=provision)
    assert latest.to_status == Status.AGREED == Provision.objects.get(pk=provision.pk).status


@pytest.mark.django_db
def test_the_status_change_and_the_new_status_are_written_in_one_transaction() -> None:
    provision = ProvisionFactory(status=Status.PROPOSED)
    before = _snapshot(provision)

    # Fail after the status change and the provision have been written, before the block ends.
    with (
        mock.patch.object(status_service, "scan_request", side_effect=RuntimeError("broker down")),
        pytest.raises(RuntimeError, match="broker down"),
    ):
        provision_transition(by=Reader.system(), provision=provision, to=Status.AGREED)

    assert _snapshot(provision) == before


@pytest.mark.django_db
def test_the_first_status_change_brings_a_provision_into_existence() -> None:
    author = UserFactory()
    provision = Provision.objects.create(
        reference="SP-HS-02", title="Health security", domain=DomainFactory(), status=Status.SCOPING
    )

    change = provision_record_first_status(
        provision=provision,
        on=datetime.date(2020, 2, 3),
        note=" Imported. ",
        by=Reader.of(author),
        source="import",
    )

    stored = StatusChange.objects.get(provision=provision)
    assert stored.pk == change.pk
    assert (stored.from_status, stored.to_status, stored.changed_on) == (
        "",
        Status.SCOPING,
        datetime.date(2020, 2, 3),
    )
    assert (stored.changed_by, stored.note, stored.source) == (author, "Imported.", "import")


@pytest.mark.django_db
def test_a_first_status_outside_the_lifecycle_is_refused() -> None:
    provision = Provision(reference="SP-HS-03", title="x", domain=DomainFactory(), status="drafting")

    with pytest.raises(TransitionRefused, match="SP-HS-03"):
        provision_record_first_status(by=Reader.system(), provision=provision)

    assert not StatusChange.objects.exists()


# --- concurrency (PostgreSQL) ----------------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_moves_from_the_same_version_let_exactly_one_through() -> None:
    provision = ProvisionFactory(status=Status.PROPOSED)
    version = provision.version
    changes_before = StatusChange.objects.filter(provision=provision).count()
    targets = (Status.UNDER_NEGOTIATION, Status.AGREED_IN_PRINCIPLE)
    start = threading.Barrier(len(targets))
    outcomes: dict[str, object] = {}
    real_scan_request = status_service.scan_request

    def slow_scan_request(**kwargs: Any) -> None:
        # Runs while the winner holds the row lock: the other thread is certainly waiting by now.
        threading.Event().wait(0.5)
        real_scan_request(**kwargs)

    def move(target: str) -> None:
        try:
            own_copy = Provision.objects.get(pk=provision.pk)
            start.wait(timeout=10)
            outcomes[target] = provision_transition(
                by=Reader.system(), provision=own_copy, to=target, expected_version=version
            )
        except Exception as error:
            outcomes[target] = error
        finally:
            connection.close()

    with mock.patch.object(status_service, "scan_request", slow_scan_request):
        threads = [threading.Thread(target=move, args=(target,)) for target in targets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)

    moved = [target for target, outcome in outcomes.items() if isinstance(outcome, StatusChange)]
    stale = [outcome for outcome in outcomes.values() if isinstance(outcome, StaleVersion)]
    assert len(moved) == 1, outcomes
    assert len(stale) == 1, outcomes
    assert (stale[0].expected, stale[0].actual) == (version, version + 1)
    stored = Provision.objects.get(pk=provision.pk)
    assert (stored.status, stored.version) == (moved[0], version + 1)
    assert StatusChange.objects.filter(provision=provision).count() == changes_before + 1
    assert stored.status_changes.order_by("-id")[0].to_status == moved[0]


@pytest.mark.django_db
def test_a_provision_with_history_cannot_be_given_a_first_status_again() -> None:
    provision = ProvisionFactory.create(status=Status.PROPOSED)

    with pytest.raises(TransitionRefused, match="already has a status history"):
        provision_record_first_status(by=Reader.system(), provision=provision)

    assert provision.status_changes.count() == 1
