"""The partnership model: constraints the database enforces, immutable history, one-row rules."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, models, transaction

from provisions.models import (
    Alignment,
    Capability,
    Coverage,
    Extent,
    Firmness,
    Level,
    Marking,
    Position,
    Provision,
    Stance,
    Status,
    StatusChange,
)
from tests.factories import (
    CapabilityFactory,
    CoverageFactory,
    DomainFactory,
    PartyFactory,
    PositionFactory,
    ProvisionFactory,
)

pytestmark = pytest.mark.django_db


def assert_rejected_by_database(write: Callable[[], object]) -> None:
    """The write raises IntegrityError; the savepoint keeps the test's transaction usable."""
    with pytest.raises(IntegrityError), transaction.atomic():
        write()


# --- uniqueness ------------------------------------------------------------------------------------------


def test_two_domains_cannot_share_a_code() -> None:
    DomainFactory(code="law-enforcement")

    assert_rejected_by_database(lambda: DomainFactory(code="law-enforcement"))


def test_two_capabilities_cannot_share_a_code() -> None:
    CapabilityFactory(code="SIS-II")

    assert_rejected_by_database(lambda: CapabilityFactory(code="SIS-II"))


def test_two_provisions_cannot_share_a_reference() -> None:
    ProvisionFactory(reference="SP-LE-03")

    assert_rejected_by_database(lambda: ProvisionFactory(reference="SP-LE-03"))
    assert Provision.objects.filter(reference="SP-LE-03").count() == 1


def test_a_partys_positions_are_a_dated_history_whose_latest_is_its_position() -> None:
    """Rules v2: an undated position holds from the start and is older than every dated one; on one
    day, the last recorded wins."""
    provision = ProvisionFactory()
    uk = PartyFactory(code="UK", partnership=provision.domain.partnership)
    PositionFactory(provision=provision, party=uk, stance=Stance.PROPOSES)  # from the start
    PositionFactory(provision=provision, party=uk, stance=Stance.OPPOSES, taken_on=datetime.date(2020, 10, 1))
    PositionFactory(
        provision=provision, party=uk, stance=Stance.RESERVED, taken_on=datetime.date(2020, 12, 1)
    )
    PositionFactory(
        provision=provision, party=uk, stance=Stance.SUPPORTS, taken_on=datetime.date(2020, 12, 1)
    )

    def stance_on(day: datetime.date) -> str:
        return provision.positions_at(day)[uk.pk].stance

    assert stance_on(datetime.date(2020, 9, 30)) == Stance.PROPOSES
    assert stance_on(datetime.date(2020, 10, 1)) == Stance.OPPOSES  # taken that day
    assert stance_on(datetime.date(2020, 11, 30)) == Stance.OPPOSES
    assert stance_on(datetime.date(2020, 12, 1)) == Stance.SUPPORTS  # the last of the day
    assert provision.alignment_at(datetime.date(2020, 10, 1)) == "conflict"


def test_each_party_may_take_a_position_on_each_provision() -> None:
    first, second = ProvisionFactory(), ProvisionFactory()
    uk, eu = PartyFactory(code="UK"), PartyFactory(code="EU")

    for provision in (first, second):
        for party in (uk, eu):
            PositionFactory(provision=provision, party=party)

    assert Position.objects.count() == 4


def test_a_provision_covers_a_capability_through_one_link_only() -> None:
    coverage = CoverageFactory(extent=Extent.FULL)

    assert_rejected_by_database(
        lambda: CoverageFactory(
            provision=coverage.provision, capability=coverage.capability, extent=Extent.PARTIAL
        )
    )


def test_a_capability_may_be_covered_by_several_provisions() -> None:
    capability = CapabilityFactory()

    CoverageFactory(capability=capability)
    CoverageFactory(capability=capability, extent=Extent.PARTIAL)

    assert Coverage.objects.filter(capability=capability).count() == 2


# --- choices enforced by check constraints ---------------------------------------------------------------


def _provision() -> Provision:
    return ProvisionFactory()


def _capability() -> Capability:
    return CapabilityFactory()


def _position() -> Position:
    return PositionFactory(party=PartyFactory(code="UK"))


def _coverage() -> Coverage:
    return CoverageFactory()


CHOICE_FIELDS = [
    pytest.param(_provision, "status", Status, id="provision.status"),
    pytest.param(_provision, "marking", Marking, id="provision.marking"),
    pytest.param(_capability, "criticality", Level, id="capability.criticality"),
    pytest.param(_position, "stance", Stance, id="position.stance"),
    pytest.param(_position, "firmness", Firmness, id="position.firmness"),
    pytest.param(_coverage, "extent", Extent, id="coverage.extent"),
]


@pytest.mark.parametrize(("make", "field", "choices"), CHOICE_FIELDS)
def test_a_value_outside_the_choices_is_rejected_by_the_database(
    make: Callable[[], models.Model], field: str, choices: type[models.TextChoices]
) -> None:
    row = make()
    manager: Any = type(row)._default_manager

    for bogus in ("bogus", "", choices.values[0].upper()):
        with pytest.raises(IntegrityError), transaction.atomic():
            manager.filter(pk=row.pk).update(**{field: bogus})

    row.refresh_from_db()
    assert getattr(row, field) in choices.values


@pytest.mark.parametrize(("make", "field", "choices"), CHOICE_FIELDS)
def test_every_value_in_the_choices_is_accepted_by_the_database(
    make: Callable[[], models.Model], field: str, choices: type[models.TextChoices]
) -> None:
    row = make()
    manager: Any = type(row)._default_manager

    for value in choices.values:
        assert manager.filter(pk=row.pk).update(**{field: value}) == 1
        row.refresh_from_db()
        assert getattr(row, field) == value


def test_creating_a_provision_with_an_unknown_status_is_rejected() -> None:
    domain = DomainFactory()

    assert_rejected_by_database(
        lambda: Provision.objects.create(reference="SP-X-01", title="x", domain=domain, status="drafting")
    )


# --- status changes --------------------------------------------------------------------------------------


def _status_change(provision: Provision, *, from_status: str, to_status: str) -> StatusChange:
    return StatusChange.objects.create(
        provision=provision,
        from_status=from_status,
        to_status=to_status,
        changed_on=datetime.date(2020, 2, 1),
    )


def test_a_status_change_to_the_same_status_is_rejected_by_the_database() -> None:
    provision = ProvisionFactory(status=Status.AGREED)

    assert_rejected_by_database(
        lambda: _status_change(provision, from_status=Status.AGREED, to_status=Status.AGREED)
    )
    assert provision.status_changes.count() == 1


def test_a_status_change_to_or_from_an_unknown_status_is_rejected_by_the_database() -> None:
    provision = ProvisionFactory(status=Status.PROPOSED)

    assert_rejected_by_database(
        lambda: _status_change(provision, from_status=Status.PROPOSED, to_status="bogus")
    )
    assert_rejected_by_database(
        lambda: _status_change(provision, from_status="bogus", to_status=Status.AGREED)
    )
    assert_rejected_by_database(lambda: _status_change(provision, from_status=Status.PROPOSED, to_status=""))


def test_a_first_status_change_comes_from_no_status() -> None:
    provision = ProvisionFactory(status=Status.SCOPING)

    first = provision.status_changes.get()

    assert (first.from_status, first.to_status) == ("", Status.SCOPING)


def test_a_recorded_status_change_cannot_be_saved_again() -> None:
    change = ProvisionFactory().status_changes.get()
    change.note = "rewritten history"

    with pytest.raises(TypeError):
        change.save()
    with pytest.raises(TypeError):
        change.save(update_fields=["note"])

    change.refresh_from_db()
    assert change.note == ""


def test_a_recorded_status_change_cannot_be_deleted() -> None:
    change = ProvisionFactory().status_changes.get()

    with pytest.raises(TypeError):
        change.delete()

    assert StatusChange.objects.filter(pk=change.pk).exists()


def test_status_changes_cannot_be_updated_through_a_queryset() -> None:
    change = ProvisionFactory(status=Status.PROPOSED).status_changes.get()

    with pytest.raises(TypeError):
        StatusChange.objects.filter(pk=change.pk).update(to_status=Status.AGREED)
    with pytest.raises(TypeError):
        StatusChange.objects.all().update(note="rewritten history")
    change.note = "rewritten history"
    # bulk_update opens an atomic block without a savepoint: give it one so the test can go on.
    with pytest.raises(TypeError), transaction.atomic():
        StatusChange.objects.bulk_update([change], ["note"])

    change.refresh_from_db()
    assert (change.to_status, change.note) == (Status.PROPOSED, "")


def test_status_changes_cannot_be_deleted_through_a_queryset() -> None:
    change = ProvisionFactory().status_changes.get()

    with pytest.raises(TypeError):
        StatusChange.objects.filter(pk=change.pk).delete()

    assert StatusChange.objects.filter(pk=change.pk).exists()


def test_a_new_instance_cannot_overwrite_a_recorded_status_change() -> None:
    provision = ProvisionFactory(status=Status.PROPOSED)
    change = provision.status_changes.get()
    impostor = StatusChange(
        pk=change.pk,
        provision=provision,
        from_status="",
        to_status=Status.WITHDRAWN,
        changed_on=change.changed_on,
    )

    with pytest.raises((TypeError, IntegrityError)), transaction.atomic():
        impostor.save()

    change.refresh_from_db()
    assert change.to_status == Status.PROPOSED


# --- alignment -------------------------------------------------------------------------------------------

PRO, SUP, CON, RES, OPP = (
    Stance.PROPOSES,
    Stance.SUPPORTS,
    Stance.CONDITIONAL,
    Stance.RESERVED,
    Stance.OPPOSES,
)


@pytest.mark.parametrize(
    ("stances", "expected"),
    [
        # conflict: a party opposes, whatever the others say (or do not say)
        ([OPP, SUP], Alignment.CONFLICT),
        ([PRO, OPP], Alignment.CONFLICT),
        ([OPP, OPP], Alignment.CONFLICT),
        ([OPP, None], Alignment.CONFLICT),
        ([CON, OPP], Alignment.CONFLICT),
        # aligned: every party proposes or supports
        ([PRO, SUP], Alignment.ALIGNED),
        ([SUP, SUP], Alignment.ALIGNED),
        ([PRO, PRO], Alignment.ALIGNED),
        ([SUP, PRO, SUP], Alignment.ALIGNED),
        # undetermined: nobody opposes, but a party has no position
        ([SUP, None], Alignment.UNDETERMINED),
        ([None, PRO], Alignment.UNDETERMINED),
        ([None, None], Alignment.UNDETERMINED),
        ([CON, None], Alignment.UNDETERMINED),
        ([RES, None], Alignment.UNDETERMINED),
        # asymmetric: everything else
        ([SUP, CON], Alignment.ASYMMETRIC),
        ([PRO, RES], Alignment.ASYMMETRIC),
        ([CON, CON], Alignment.ASYMMETRIC),
        ([RES, RES], Alignment.ASYMMETRIC),
        ([CON, RES], Alignment.ASYMMETRIC),
    ],
)
def test_alignment_follows_from_each_partys_stance(stances: list[str | None], expected: Alignment) -> None:
    assert Alignment.of(stances) == expected
    assert Alignment.of(iter(stances)) == expected  # any iterable, read once
    assert (
        Alignment.of([None if s is None else str(s) for s in stances]) == expected
    )  # plain strings from rows


@pytest.mark.parametrize(
    ("uk_stance", "eu_stance", "expected"),
    [
        (Stance.PROPOSES, Stance.SUPPORTS, Alignment.ALIGNED),
        (Stance.SUPPORTS, Stance.OPPOSES, Alignment.CONFLICT),
        (Stance.SUPPORTS, None, Alignment.UNDETERMINED),
        (None, None, Alignment.UNDETERMINED),
        (None, Stance.OPPOSES, Alignment.CONFLICT),
        (Stance.PROPOSES, Stance.CONDITIONAL, Alignment.ASYMMETRIC),
        (Stance.RESERVED, Stance.SUPPORTS, Alignment.ASYMMETRIC),
    ],
)
def test_a_provisions_alignment_reads_the_positions_of_its_partnerships_parties(
    uk_stance: str | None, eu_stance: str | None, expected: Alignment
) -> None:
    provision = ProvisionFactory()
    for code, stance in (("UK", uk_stance), ("EU", eu_stance)):
        party = PartyFactory(code=code)
        assert party.partnership_id == provision.domain.partnership_id
        if stance is not None:
            PositionFactory(provision=provision, party=party, stance=stance)

    assert Provision.objects.get(pk=provision.pk).alignment == expected


def test_a_provisions_alignment_uses_prefetched_positions_and_parties(
    django_assert_num_queries: Any,
) -> None:
    provision = ProvisionFactory()
    PositionFactory(provision=provision, party=PartyFactory(code="UK"), stance=Stance.PROPOSES)
    PositionFactory(provision=provision, party=PartyFactory(code="EU"), stance=Stance.CONDITIONAL)
    loaded = (
        Provision.objects.select_related("domain__partnership")
        .prefetch_related("positions", "domain__partnership__parties")
        .get(pk=provision.pk)
    )

    with django_assert_num_queries(0):
        assert loaded.alignment == Alignment.ASYMMETRIC


# --- levels and ranks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "raised", "lowered"),
    [
        (Level.CRITICAL, Level.CRITICAL, Level.HIGH),
        (Level.HIGH, Level.CRITICAL, Level.MEDIUM),
        (Level.MEDIUM, Level.HIGH, Level.LOW),
        (Level.LOW, Level.MEDIUM, Level.LOW),
    ],
)
def test_a_level_moves_one_step_and_stays_within_critical_and_low(
    level: Level, raised: Level, lowered: Level
) -> None:
    assert level.raised() is raised
    assert level.lowered() is lowered


def test_raising_or_lowering_repeatedly_stops_at_the_ends_of_the_scale() -> None:
    level = Level.LOW
    for _ in range(10):
        level = level.raised()
    assert level is Level.CRITICAL
    for _ in range(10):
        level = level.lowered()
    assert level is Level.LOW


# Written out from DESIGN.md, "Negotiation status".
DESIGN_RANKS: dict[str, int | None] = {
    "identified": 0,
    "scoping": 1,
    "proposed": 2,
    "under_negotiation": 3,
    "agreed_in_principle": 4,
    "agreed": 5,
    "signed": 6,
    "in_force": 7,
    "suspended": None,
    "withdrawn": None,
}


def test_the_statuses_are_those_of_the_design() -> None:
    assert set(Status.values) == set(DESIGN_RANKS)


@pytest.mark.parametrize(("status", "rank"), DESIGN_RANKS.items())
def test_a_status_has_its_rank_on_the_ladder_or_none_off_it(status: str, rank: int | None) -> None:
    assert Status(status).rank == rank


def test_a_partnership_without_parties_has_undetermined_alignment() -> None:
    assert Alignment.of([]) == Alignment.UNDETERMINED


@pytest.mark.parametrize("reference", ["SP;LE-99", "SP/LE-99", "-SP", "SP LE", "x" * 65, ""])
def test_a_reference_outside_the_files_pattern_is_refused_with_what_is_allowed(reference: str) -> None:
    from django.core.exceptions import ValidationError

    from tests.factories import DomainFactory

    provision = Provision(reference=reference, title="T", domain=DomainFactory(), status="proposed")
    with pytest.raises(ValidationError) as refused:
        provision.full_clean()
    assert "reference" in refused.value.message_dict


@pytest.mark.parametrize("reference", ["SP-LE-99", "sp.le_99", "9"])
def test_a_reference_in_the_files_pattern_is_accepted(reference: str) -> None:
    from tests.factories import DomainFactory

    Provision(reference=reference, title="T", domain=DomainFactory(), status="proposed").full_clean(
        exclude=["domain"]
    )
