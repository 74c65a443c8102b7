"""The negotiation workflow's writes: who may do what, stale versions, audit trail, consultations."""

from __future__ import annotations

import datetime
import threading

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from provisions.models import (
    Consultation,
    ConsultationOutcome,
    Extent,
    Gap,
    GapKind,
    Level,
    Marking,
    Position,
    Provision,
    Stance,
    Status,
    StatusChange,
    Territory,
    TerritoryKind,
)
from provisions.permissions import Reader, Role, can_edit_provision
from provisions.services.editing import StaleVersion
from provisions.services.provisions import consultation_record, coverage_set, position_set, provision_update
from provisions.services.scans import gap_acknowledge
from provisions.services.status import provision_transition
from tests.factories import (
    CapabilityFactory,
    DomainFactory,
    PartyFactory,
    ProvisionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

MARKINGS = [Marking.OFFICIAL, Marking.OFFICIAL_SENSITIVE, Marking.SECRET]
ACTORS = ["viewer", "analyst", "negotiator of the domain", "negotiator of another domain", "administrator"]


def make_actor(actor: str, clearance: Marking, domain: object):
    if actor == "negotiator of the domain":
        return UserFactory(role="negotiator", clearance=clearance, domains=[domain])
    if actor == "negotiator of another domain":
        return UserFactory(role="negotiator", clearance=clearance, domains=[DomainFactory()])
    return UserFactory(role=actor, clearance=clearance)


def expected_to_edit(actor: str, clearance: Marking, marking: Marking) -> bool:
    cleared = MARKINGS.index(clearance) >= MARKINGS.index(marking)
    return cleared and actor in ("negotiator of the domain", "administrator")


WRITES = {
    "move status": lambda p, user, party, capability: provision_transition(
        provision=p, to=Status.UNDER_NEGOTIATION, by=Reader.of(user)
    ),
    "edit title": lambda p, user, party, capability: provision_update(
        provision=p, by=Reader.of(user), expected_version=p.version, title="Retitled"
    ),
    "set position": lambda p, user, party, capability: position_set(
        provision=p,
        party=party,
        stance=Stance.SUPPORTS,
        firmness="definitive",
        by=Reader.of(user),
        expected_version=None,
    ),
    "set coverage": lambda p, user, party, capability: coverage_set(
        provision=p, capability=capability, extent=Extent.PARTIAL, by=Reader.of(user), expected_version=None
    ),
}


def snapshot(provision: Provision) -> tuple[object, ...]:
    provision.refresh_from_db()
    return (
        provision.title,
        provision.status,
        provision.version,
        StatusChange.objects.filter(provision=provision).count(),
        Position.objects.filter(provision=provision).count(),
        provision.coverage.count(),
    )


@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize("marking", MARKINGS)
@pytest.mark.parametrize("clearance", MARKINGS)
@pytest.mark.parametrize("actor", ACTORS)
def test_every_write_is_allowed_exactly_to_cleared_negotiators_of_the_domain_and_administrators(
    actor: str, clearance: Marking, marking: Marking, write: str
) -> None:
    provision = ProvisionFactory(status=Status.PROPOSED, marking=marking)
    party = PartyFactory(partnership=provision.domain.partnership, code="UK")
    capability = CapabilityFactory(domain=provision.domain)
    user = make_actor(actor, clearance, provision.domain)
    before = snapshot(provision)

    if expected_to_edit(actor, clearance, marking):
        WRITES[write](provision, user, party, capability)
        assert snapshot(provision) != before
        assert provision.version == before[2] + 1
    else:
        with pytest.raises(PermissionDenied):
            WRITES[write](provision, user, party, capability)
        assert snapshot(provision) == before


@pytest.mark.parametrize("clearance", MARKINGS)
@pytest.mark.parametrize("actor", [None, *ACTORS])
def test_a_user_sees_only_provisions_up_to_their_clearance(actor: str | None, clearance: Marking) -> None:
    domain = DomainFactory()
    for marking in MARKINGS:
        ProvisionFactory(reference=f"SP-{marking}", marking=marking, domain=domain)
    user = make_actor(actor, clearance, domain) if actor else UserFactory(clearance=clearance)  # no role

    seen = set(Provision.objects.visible_to(Reader.of(user)).values_list("marking", flat=True))

    expected = set() if actor is None else {m.value for m in MARKINGS[: MARKINGS.index(clearance) + 1]}
    assert seen == expected


def test_anonymous_and_inactive_users_have_no_role_and_see_nothing() -> None:
    from django.contrib.auth.models import AnonymousUser

    inactive = UserFactory(role="administrator", clearance=Marking.SECRET, is_active=False)
    assert Reader.of(AnonymousUser()).role is None and Reader.of(AnonymousUser()).markings == ()
    assert Reader.of(inactive).role is None and Reader.of(inactive).markings == ()


def test_roles_are_ordered_and_a_superuser_is_an_administrator_cleared_to_secret() -> None:
    superuser = UserFactory(is_superuser=True, clearance=Marking.OFFICIAL)
    assert Reader.of(superuser).role == Role.ADMINISTRATOR
    assert list(Reader.of(superuser).markings) == [m.value for m in MARKINGS]
    assert can_edit_provision(Reader.of(superuser), ProvisionFactory(marking=Marking.SECRET))


def test_a_negotiator_cannot_mark_a_provision_above_their_clearance() -> None:
    provision = ProvisionFactory(marking=Marking.OFFICIAL)
    negotiator = UserFactory(role="negotiator", clearance=Marking.OFFICIAL, domains=[provision.domain])

    with pytest.raises(PermissionDenied, match="above your clearance"):
        provision_update(
            provision=provision, by=Reader.of(negotiator), expected_version=None, marking=Marking.SECRET
        )

    provision.refresh_from_db()
    assert provision.marking == Marking.OFFICIAL


@pytest.mark.parametrize("actor", ACTORS)
def test_only_analysts_and_above_acknowledge_gaps(actor: str) -> None:
    capability = CapabilityFactory()
    gap = Gap.objects.create(
        kind=GapKind.UNCOVERED,
        severity=Level.HIGH,
        capability=capability,
        domain=capability.domain,
        explanation="x",
    )
    user = make_actor(actor, Marking.OFFICIAL, capability.domain)

    if actor == "viewer":
        with pytest.raises(PermissionDenied):
            gap_acknowledge(gap=gap, by=Reader.of(user), note="seen")
    else:
        gap_acknowledge(gap=gap, by=Reader.of(user), note="seen")
    gap.refresh_from_db()
    assert (gap.acknowledged_by == user) is (actor != "viewer")


def test_a_gap_on_a_provision_above_clearance_cannot_be_acknowledged() -> None:
    provision = ProvisionFactory(marking=Marking.SECRET)
    gap = Gap.objects.create(
        kind=GapKind.STALLED,
        severity=Level.LOW,
        provision=provision,
        domain=provision.domain,
        explanation="x",
    )

    with pytest.raises(PermissionDenied):
        gap_acknowledge(
            gap=gap, by=Reader.of(UserFactory(role="analyst", clearance=Marking.OFFICIAL)), note="seen"
        )


# --- stale versions -----------------------------------------------------------------------------------------


@pytest.fixture
def negotiator_and_provision():
    provision = ProvisionFactory(status=Status.PROPOSED)
    return UserFactory(role="negotiator", domains=[provision.domain]), provision


def test_an_edit_based_on_a_stale_version_is_refused_and_changes_nothing(negotiator_and_provision) -> None:
    negotiator, provision = negotiator_and_provision
    loaded = provision.version
    provision_update(
        provision=provision, by=Reader.of(negotiator), expected_version=loaded, title="First edit"
    )

    stale = Provision.objects.get(pk=provision.pk)
    stale.version = loaded
    with pytest.raises(StaleVersion, match=r"you had version 1, it is now 2"):
        provision_update(
            provision=stale, by=Reader.of(negotiator), expected_version=loaded, title="Second edit"
        )

    provision.refresh_from_db()
    assert (provision.title, provision.version) == ("First edit", 2)


@pytest.mark.parametrize("write", ["set position", "set coverage"])
def test_position_and_coverage_writes_are_refused_on_a_stale_version(negotiator_and_provision, write) -> None:
    negotiator, provision = negotiator_and_provision
    party = PartyFactory(partnership=provision.domain.partnership, code="EU")
    capability = CapabilityFactory(domain=provision.domain)
    provision_update(provision=provision, by=Reader.of(negotiator), expected_version=None, title="Moved on")
    before = snapshot(provision)

    with pytest.raises(StaleVersion):
        if write == "set position":
            position_set(
                provision=provision,
                party=party,
                stance=Stance.OPPOSES,
                firmness="provisional",
                by=Reader.of(negotiator),
                expected_version=1,
            )
        else:
            coverage_set(
                provision=provision,
                capability=capability,
                extent=Extent.FULL,
                by=Reader.of(negotiator),
                expected_version=1,
            )
    assert snapshot(provision) == before


def test_invalid_values_are_refused_with_the_field_named_and_nothing_written(
    negotiator_and_provision,
) -> None:
    negotiator, provision = negotiator_and_provision
    before = snapshot(provision)

    with pytest.raises(ValidationError) as invalid:
        provision_update(provision=provision, by=Reader.of(negotiator), expected_version=None, title="")
    assert "title" in invalid.value.message_dict
    with pytest.raises(ValidationError) as invalid:
        provision_update(
            provision=provision, by=Reader.of(negotiator), expected_version=None, status="agreed"
        )
    assert "status" in invalid.value.message_dict
    with pytest.raises(ValidationError) as invalid:
        position_set(
            provision=provision,
            party=PartyFactory(partnership=provision.domain.partnership),
            stance="maybe",
            firmness="provisional",
            by=Reader.of(negotiator),
            expected_version=None,
        )
    assert "stance" in invalid.value.message_dict
    assert snapshot(provision) == before


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_edits_never_lose_a_change_silently():
    provision = ProvisionFactory(status=Status.PROPOSED)
    editors = [UserFactory(role="negotiator", domains=[provision.domain]) for _ in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def edit(user, title: str) -> None:
        try:
            barrier.wait()
            provision_update(
                provision=Provision.objects.get(pk=provision.pk),
                by=Reader.of(user),
                expected_version=1,
                title=title,
            )
            outcomes.append(f"saved {title}")
        except StaleVersion:
            outcomes.append(f"told {title} is stale")
        finally:
            connection.close()

    threads = [threading.Thread(target=edit, args=(user, f"Title {n}")) for n, user in enumerate(editors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    provision.refresh_from_db()
    saved = [outcome for outcome in outcomes if outcome.startswith("saved")]
    assert len(saved) == 1 and len(outcomes) == 2
    assert f"saved {provision.title}" == saved[0]
    assert provision.version == 2


# --- audit trail ------------------------------------------------------------------------------------------


def test_every_edit_is_recorded_with_who_when_what_and_why(negotiator_and_provision) -> None:
    negotiator, provision = negotiator_and_provision
    party = PartyFactory(partnership=provision.domain.partnership, code="UK")
    capability = CapabilityFactory(domain=provision.domain)

    provision_update(
        provision=provision,
        by=Reader.of(negotiator),
        expected_version=None,
        title="New title",
        reason="Agreed wording at round 4",
    )
    position_set(
        provision=provision,
        party=party,
        stance=Stance.PROPOSES,
        firmness="provisional",
        by=Reader.of(negotiator),
        expected_version=None,
        reason="Tabled",
    )
    position_set(
        provision=provision,
        party=party,
        stance=Stance.SUPPORTS,
        firmness="definitive",
        by=Reader.of(negotiator),
        expected_version=None,
        reason="Confirmed by ministers",
    )
    coverage_set(
        provision=provision,
        capability=capability,
        extent=Extent.FULL,
        by=Reader.of(negotiator),
        expected_version=None,
        reason="Covers the database",
    )
    coverage_set(
        provision=provision,
        capability=capability,
        extent=None,
        by=Reader.of(negotiator),
        expected_version=None,
        reason="Moved to another provision",
    )
    provision_transition(
        provision=provision, to=Status.UNDER_NEGOTIATION, by=Reader.of(negotiator), note="Round 5"
    )

    latest, previous = provision.history.all()[:2]
    assert (latest.history_user, latest.history_change_reason, latest.status) == (
        negotiator,
        "Round 5",
        "under_negotiation",
    )
    change = latest.diff_against(previous)
    assert {(c.field, c.old, c.new) for c in change.changes} >= {("status", "proposed", "under_negotiation")}
    title_record = provision.history.filter(history_change_reason="Agreed wording at round 4").get()
    title_diff = title_record.diff_against(title_record.prev_record)
    assert [(c.field, c.new) for c in title_diff.changes] == [("title", "New title")]

    position_history = Position.history.filter(provision_id=provision.pk).order_by("history_date")
    assert [(h.stance, h.history_change_reason, h.history_user) for h in position_history] == [
        ("proposes", "Tabled", negotiator),
        ("supports", "Confirmed by ministers", negotiator),
    ]
    coverage_history = capability.coverage.model.history.filter(provision_id=provision.pk).order_by(
        "history_date"
    )
    assert [(h.history_type, h.history_change_reason) for h in coverage_history] == [
        ("+", "Covers the database"),
        ("-", "Moved to another provision"),
    ]


# --- consultations ----------------------------------------------------------------------------------------


def test_a_provision_shows_stakeholders_not_yet_consulted_until_consulted(negotiator_and_provision) -> None:
    negotiator, provision = negotiator_and_provision
    uk = Territory.objects.create(code="UK", name="United Kingdom", kind=TerritoryKind.STATE)
    gibraltar = Territory.objects.create(code="GIB", name="Gibraltar", kind=TerritoryKind.OVERSEAS_TERRITORY)
    jersey = Territory.objects.create(code="JER", name="Jersey", kind=TerritoryKind.CROWN_DEPENDENCY)
    provision.territories.set([uk, gibraltar, jersey])

    assert provision.territories_awaiting_consultation == [gibraltar, jersey]

    consultation_record(
        provision=provision,
        territory=gibraltar,
        consulted_on=datetime.date(2020, 6, 1),
        outcome=ConsultationOutcome.CONTENT,
        note="No concerns",
        by=Reader.of(negotiator),
        expected_version=None,
    )

    provision = Provision.objects.get(pk=provision.pk)
    assert provision.territories_awaiting_consultation == [jersey]
    assert Consultation.objects.get().recorded_by == negotiator


def test_a_consultation_with_a_territory_the_provision_does_not_extend_to_is_refused(
    negotiator_and_provision,
) -> None:
    negotiator, provision = negotiator_and_provision
    isle_of_man = Territory.objects.create(
        code="IOM", name="Isle of Man", kind=TerritoryKind.CROWN_DEPENDENCY
    )

    with pytest.raises(ValidationError, match="does not extend to Isle of Man"):
        consultation_record(
            provision=provision,
            territory=isle_of_man,
            consulted_on=datetime.date(2020, 6, 1),
            outcome=ConsultationOutcome.CONTENT,
            by=Reader.of(negotiator),
            expected_version=None,
        )
    assert not Consultation.objects.exists()


def test_the_gap_report_never_names_a_provision_above_the_readers_clearance() -> None:
    from django.utils import timezone

    from provisions.reports.gaps import gap_report

    today = timezone.localdate()
    capability = CapabilityFactory(code="SIS-II", lapses_on=today + datetime.timedelta(days=10))
    secret = ProvisionFactory(
        reference="SP-SECRET-1", marking=Marking.SECRET, status=Status.PROPOSED, created_on=today
    )
    open_one = ProvisionFactory(
        reference="SP-OPEN-1", marking=Marking.OFFICIAL, status=Status.PROPOSED, created_on=today
    )
    for provision in (secret, open_one):
        provision.coverage.create(capability=capability, extent=Extent.FULL)
        PartyFactory(partnership=provision.domain.partnership, code="EU")
    secret.positions.create(
        party=PartyFactory(partnership=secret.domain.partnership, code="EU"), stance="opposes"
    )

    cleared = gap_report(
        as_of=today, reader=Reader.of(UserFactory(role="viewer", clearance=Marking.SECRET))
    ).rows
    uncleared = gap_report(
        as_of=today, reader=Reader.of(UserFactory(role="viewer", clearance=Marking.OFFICIAL))
    ).rows

    assert {row["subject_code"] for row in cleared} == {"SIS-II", "SP-SECRET-1"}
    assert [row["subject_code"] for row in uncleared] == ["SIS-II"]
    assert uncleared[0]["covering_provisions"] == "SP-OPEN-1"
    assert "SP-SECRET-1" not in uncleared[0]["explanation"]
    assert "SP-SECRET-1" in next(r for r in cleared if r["subject_code"] == "SIS-II")["explanation"]


def test_a_long_reason_is_kept_whole_in_the_audit_trail(negotiator_and_provision) -> None:
    negotiator, provision = negotiator_and_provision
    reason = "Agreed after the fifth round, subject to the data protection review; " * 5

    provision_transition(
        provision=provision, to=Status.UNDER_NEGOTIATION, by=Reader.of(negotiator), note=reason
    )

    assert provision.history.latest("history_date").history_change_reason == reason.strip()


def test_a_reader_never_sees_what_was_recorded_while_a_provision_was_above_their_clearance(client) -> None:
    """Downgraded after redaction: the text, notes and moves of its sensitive days stay hidden from
    readers below that marking, on the page and through the API; what came after is shown."""
    from tests.test_api import bearer

    domain = DomainFactory()
    provision = ProvisionFactory(
        reference="SP-NJ-1",
        domain=domain,
        marking=Marking.OFFICIAL_SENSITIVE,
        status=Status.PROPOSED,
        text="Operation Nightjar intercepts",
    )
    negotiator = UserFactory(role="negotiator", clearance=Marking.SECRET, domains=[domain])
    party = PartyFactory(partnership=domain.partnership, code="EU")
    position_set(
        provision=provision,
        party=party,
        stance=Stance.OPPOSES,
        firmness="definitive",
        note="Nightjar sources at risk",
        by=Reader.of(negotiator),
        expected_version=None,
    )
    provision_transition(
        provision=provision, to=Status.UNDER_NEGOTIATION, note="Nightjar round", by=Reader.of(negotiator)
    )
    provision_update(
        provision=provision,
        by=Reader.of(negotiator),
        expected_version=provision.version,
        reason="Redacted for release",
        text="Exchange of operational information",
        marking=Marking.OFFICIAL,
    )
    position_set(
        provision=provision,
        party=party,
        stance=Stance.SUPPORTS,
        firmness="definitive",
        note="Agreed after redaction",
        by=Reader.of(negotiator),
        expected_version=None,
    )
    viewer = UserFactory(role="viewer", clearance=Marking.OFFICIAL)
    cleared = UserFactory(role="viewer", clearance=Marking.OFFICIAL_SENSITIVE)

    client.force_login(viewer)
    page = client.get("/provisions/SP-NJ-1/").content.decode()
    api = client.get("/api/v1/provisions/SP-NJ-1/history/", **bearer(viewer)).content.decode()
    for body in (page, api):
        assert "Nightjar" not in body
        assert "Exchange of operational information" in body and "Agreed after redaction" in body
    client.force_login(cleared)
    page = client.get("/provisions/SP-NJ-1/").content.decode()
    api = client.get("/api/v1/provisions/SP-NJ-1/history/", **bearer(cleared)).content.decode()
    for body in (page, api):
        for sensitive in ("Operation Nightjar intercepts", "Nightjar sources at risk", "Nightjar round"):
            assert sensitive in body, sensitive


# --- coverage across domains (issue 9) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "editor, allowed",
    [
        ("negotiator of the provision's domain only", False),
        ("negotiator of both domains", True),
        ("administrator", True),
    ],
)
def test_a_link_to_another_domains_capability_needs_its_negotiator_or_an_administrator(
    editor: str, allowed: bool
) -> None:
    """A law-enforcement negotiator could close the foreign-policy SANCTIONS gap by linking it."""
    provision = ProvisionFactory(domain=DomainFactory(code="law-enforcement"))
    sanctions = CapabilityFactory(code="SANCTIONS", domain=DomainFactory(code="foreign-policy"))
    domains = {
        "negotiator of the provision's domain only": [provision.domain],
        "negotiator of both domains": [provision.domain, sanctions.domain],
        "administrator": [],
    }[editor]
    role = "administrator" if editor == "administrator" else "negotiator"
    reader = Reader.of(UserFactory(role=role, clearance=Marking.SECRET, domains=domains))

    if not allowed:
        with pytest.raises(PermissionDenied, match="SANCTIONS is a capability of a domain you do not"):
            coverage_set(
                provision=provision,
                capability=sanctions,
                extent=Extent.FULL,
                by=reader,
                expected_version=None,
            )
        assert not provision.coverage.exists() and provision.version == 1
        return
    coverage_set(
        provision=provision, capability=sanctions, extent=Extent.FULL, by=reader, expected_version=None
    )
    assert provision.coverage.get().capability == sanctions
