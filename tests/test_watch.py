"""The watch list: following domains, provisions and capabilities, notifications of what happened to
them (status moves, positions, gaps), clearance on every one, and the daily digest by email."""

from __future__ import annotations

import datetime

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from partnership.celery import app as celery_app
from provisions.models import Digest, Follow, Level, Marking, Notification, Provision, Status
from provisions.permissions import Reader
from provisions.services.provisions import position_set, provision_update
from provisions.services.scans import gaps_scan
from provisions.services.status import provision_transition
from provisions.services.watch import digests_send, follow_set
from tests.factories import CapabilityFactory, CoverageFactory, PartyFactory, ProvisionFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> dict[str, object]:
    provision = ProvisionFactory(reference="SP-1", title="Data exchange", status=Status.PROPOSED)
    capability = CapabilityFactory(
        code="CAP-1", domain=provision.domain, lapses_on=None, criticality=Level.HIGH
    )
    CoverageFactory(provision=provision, capability=capability)
    negotiator = UserFactory(
        username="negotiator", role="negotiator", clearance="secret", domains=[provision.domain]
    )
    watcher = UserFactory(username="watcher", role="viewer", clearance="secret", email="watcher@example.org")
    low = UserFactory(username="low", role="viewer", clearance="official", email="low@example.org")
    return {
        "provision": provision,
        "capability": capability,
        "negotiator": negotiator,
        "watcher": watcher,
        "low": low,
    }


def move(world: dict[str, object], to: str, by: object | None = None) -> None:
    provision = Provision.objects.get(reference="SP-1")
    actor = Reader.of(by or world["negotiator"])
    provision_transition(
        provision=provision, to=to, note="Round 3", by=actor, expected_version=provision.version
    )


def texts(user: object) -> list[str]:
    return list(Notification.objects.filter(user=user).order_by("id").values_list("text", flat=True))


def test_a_follower_is_told_of_a_status_move_and_the_mover_is_not(world) -> None:
    follow_set(user=world["watcher"], subject=world["provision"], following=True)
    follow_set(user=world["negotiator"], subject=world["provision"], following=True)

    move(world, Status.UNDER_NEGOTIATION)

    assert texts(world["watcher"]) == ["SP-1 Data exchange: proposed → under negotiation. Round 3"]
    assert texts(world["negotiator"]) == []  # nobody is told of their own change


def test_no_one_below_the_provisions_marking_is_told(world) -> None:
    Provision.objects.filter(pk=world["provision"].pk).update(marking=Marking.SECRET)
    for user in (world["watcher"], world["low"]):
        follow_set(user=user, subject=world["provision"].domain, following=True)  # the domain: SP-1 is in it

    move(world, Status.UNDER_NEGOTIATION)

    assert len(texts(world["watcher"])) == 1
    assert texts(world["low"]) == []


def test_a_notification_is_withheld_once_its_provision_is_marked_above_the_reader(
    client: Client, world
) -> None:
    follow_set(user=world["low"], subject=world["provision"], following=True)
    move(world, Status.UNDER_NEGOTIATION)
    client.force_login(world["low"])
    assert "proposed → under negotiation" in client.get("/notifications/").content.decode()

    provision_update(
        provision=Provision.objects.get(reference="SP-1"),
        by=Reader.system(),
        expected_version=None,
        marking=Marking.SECRET,
    )

    page = client.get("/notifications/").content.decode()
    assert "SP-1" not in page and "Nothing yet." in page


def test_positions_and_gaps_reach_the_followers_of_the_provision_and_the_capability(world) -> None:
    follow_set(user=world["watcher"], subject=world["capability"], following=True)
    party = PartyFactory(partnership=world["provision"].domain.partnership, code="EU")
    provision = Provision.objects.get(reference="SP-1")

    position_set(
        provision=provision,
        party=party,
        stance="opposes",
        firmness="definitive",
        note="Not acceptable",
        by=Reader.of(world["negotiator"]),
        expected_version=provision.version,
    )
    gaps_scan(trigger="command")  # CAP-1: in negotiation, no lapse date, no gap; SP-1 moved today
    CapabilityFactory(
        code="CAP-2", domain=provision.domain, lapses_on=timezone.localdate() + datetime.timedelta(days=10)
    )
    follow_set(user=world["watcher"], subject=provision.domain, following=True)
    gaps_scan(trigger="command")

    said = texts(world["watcher"])
    assert said[0] == "SP-1 Data exchange: European Union opposes (definitive). Not acceptable"
    assert "Gap opened: uncovered on CAP-2 (high)" in said


def test_a_resolved_gap_is_told_too(world) -> None:
    capability = CapabilityFactory(code="CAP-3", domain=world["provision"].domain, lapses_on=None)
    gaps_scan(trigger="command")  # CAP-3 uncovered
    follow_set(user=world["watcher"], subject=capability, following=True)
    CoverageFactory(
        provision=ProvisionFactory(reference="SP-2", domain=capability.domain, status=Status.AGREED),
        capability=capability,
    )

    gaps_scan(trigger="command")

    assert texts(world["watcher"]) == ["Gap resolved: uncovered on CAP-3"]


def test_following_and_reading_from_the_pages(client: Client, world) -> None:
    client.force_login(world["watcher"])

    client.post(
        "/follow/", {"type": "provision", "code": "SP-1", "following": "yes", "next": "/provisions/SP-1/"}
    )
    assert Follow.objects.filter(user=world["watcher"], provision__reference="SP-1").exists()
    assert "Stop following" in client.get("/provisions/SP-1/").content.decode()
    move(world, Status.UNDER_NEGOTIATION)
    move(world, Status.AGREED_IN_PRINCIPLE)

    page = client.get("/gaps/").content.decode()
    assert '<span class="count-badge">2<span class="visually-hidden"> unread</span></span>' in page
    listed = client.get("/notifications/").content.decode()
    assert listed.index("under negotiation → agreed in principle") < listed.index(
        "proposed → under negotiation"
    )
    client.post("/notifications/read/")
    assert "count-badge" not in client.get("/gaps/").content.decode()

    client.post("/follow/", {"type": "provision", "code": "SP-1", "following": "no"})
    assert not Follow.objects.filter(user=world["watcher"]).exists()


def test_nothing_above_clearance_can_be_followed(client: Client, world) -> None:
    Provision.objects.filter(pk=world["provision"].pk).update(marking=Marking.SECRET)
    client.force_login(world["low"])

    assert (
        client.post("/follow/", {"type": "provision", "code": "SP-1", "following": "yes"}).status_code == 404
    )
    assert client.post("/follow/", {"type": "planet", "code": "SP-1", "following": "yes"}).status_code == 404
    assert not Follow.objects.exists()


def test_the_digest_is_sent_once_a_day_to_each_follower_with_an_address(world) -> None:
    for user in (world["watcher"], world["low"]):
        follow_set(user=user, subject=world["provision"], following=True)
    UserFactory(username="no-address", role="viewer", email="")
    follow_set(user=world["watcher"], subject=world["capability"], following=True)
    move(world, Status.UNDER_NEGOTIATION)
    today = timezone.localdate()

    assert digests_send(today=today) == 2
    move(world, Status.AGREED_IN_PRINCIPLE)
    assert digests_send(today=today) == 0  # once a day, whatever happens later that day

    assert sorted(message.to[0] for message in mail.outbox) == ["low@example.org", "watcher@example.org"]
    body = next(message.body for message in mail.outbox if message.to == ["watcher@example.org"])
    assert "SP-1 Data exchange: proposed → under negotiation" in body
    assert Digest.objects.filter(sent_on=today).count() == 2
    assert digests_send(today=today + datetime.timedelta(days=1)) == 2  # the next day: what came since
    assert "under negotiation → agreed in principle" in mail.outbox[-1].body


def test_the_digest_never_carries_what_the_reader_may_not_see(world) -> None:
    follow_set(user=world["low"], subject=world["provision"], following=True)
    move(world, Status.UNDER_NEGOTIATION)
    Provision.objects.filter(pk=world["provision"].pk).update(marking=Marking.SECRET)

    assert digests_send() == 0
    assert mail.outbox == []


def test_beat_sends_the_digest_every_day() -> None:
    entry = celery_app.conf.beat_schedule["daily-digest"]
    assert entry["task"] == "provisions.tasks.send_digests" and entry["task"] in celery_app.tasks
    assert entry["schedule"].hour == {7} and entry["schedule"].minute == {0}


def test_an_escalated_gap_is_told_from_its_severity_before(world) -> None:
    """CAP-4 (medium, uncovered) lapses in 200 days: low (beyond WARNING_DAYS, lowered); its lapse
    moved into the warning window, the same gap becomes medium: escalated, as webhooks tell it."""
    from provisions.models import Capability

    today = timezone.localdate()
    capability = CapabilityFactory(
        code="CAP-4",
        domain=world["provision"].domain,
        criticality=Level.MEDIUM,
        lapses_on=today + datetime.timedelta(days=200),
    )
    gaps_scan(trigger="command")
    follow_set(user=world["watcher"], subject=capability, following=True)
    Capability.objects.filter(pk=capability.pk).update(lapses_on=today + datetime.timedelta(days=100))

    gaps_scan(trigger="command")

    assert texts(world["watcher"]) == ["Gap escalated: uncovered on CAP-4, low → medium"]
