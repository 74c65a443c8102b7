"""The events feed (`GET /api/v1/events/`): every recorded change, oldest first, from an opaque cursor,
as the caller's clearance may see it, with the payloads webhooks send."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.utils import encoders

from provisions.models import (
    Event,
    Gap,
    Level,
    Marking,
    Provision,
    ScanTrigger,
    Status,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from provisions.permissions import Reader
from provisions.services.provisions import provision_create, provision_update
from provisions.services.scans import gap_acknowledge, gaps_scan
from provisions.services.status import provision_transition
from tests.factories import CapabilityFactory, CoverageFactory, DomainFactory, ProvisionFactory, UserFactory
from tests.test_api import bearer

pytestmark = pytest.mark.django_db

FEED = "/api/v1/events/"


def read_all(client: Client, headers: dict[str, str], *, limit: int = 100, after: str | None = None) -> Any:
    """Every event after `after`, page by page; the events and the last cursor."""
    events: list[dict[str, Any]] = []
    while True:
        query: dict[str, Any] = {"limit": limit, **({"after": after} if after else {})}
        page = client.get(FEED, query, **headers)
        assert page.status_code == 200, page.content
        body = page.json()
        events += body["results"]
        after = body["cursor"]
        if not body["has_more"]:
            return events, after


def test_every_change_is_listed_oldest_first_and_read_on_from_the_cursor(client: Client) -> None:
    domain = DomainFactory()
    negotiator = UserFactory(role="negotiator", clearance=Marking.SECRET, domains=[domain])
    by = Reader.of(negotiator)
    headers = bearer(negotiator)
    capability = CapabilityFactory(
        code="PNR",
        domain=domain,
        criticality=Level.HIGH,
        lapses_on=timezone.localdate() + datetime.timedelta(days=90),
    )
    provision = provision_create(by=by, reference="SP-1", title="PNR", domain=domain, status=Status.PROPOSED)
    CoverageFactory(provision=provision, capability=capability)
    gaps_scan(trigger=ScanTrigger.COMMAND)

    first, cursor = read_all(client, headers, limit=1)

    assert [event["event"] for event in first] == ["provision.changed", "gap.opened"]
    assert first[0]["data"] == {
        "reference": "SP-1",
        "version": 1,
        "updated_at": first[0]["data"]["updated_at"],
        "marking": "official",
    }
    assert first[1]["data"]["subject_code"] == "PNR" and first[1]["clearance"] == "secret"
    assert len({event["id"] for event in first}) == 2

    provision_transition(by=by, provision=provision, to=Status.UNDER_NEGOTIATION, note="Opened")
    provision_update(by=by, provision=provision, title="PNR transfers", expected_version=2)
    gap_acknowledge(gap=Gap.objects.open().get(), by=Reader.system(), note="Known")
    then, cursor_after = read_all(client, headers, after=cursor)

    assert [event["event"] for event in then] == [
        "provision.status_changed",
        "provision.changed",
        "provision.changed",
        "gap.updated",
    ]
    assert [event["data"].get("version") for event in then[1:3]] == [2, 3]
    assert then[3]["data"]["state"] == "acknowledged"
    assert read_all(client, headers, after=cursor_after) == ([], cursor_after)  # nothing new: same cursor


def test_a_reader_sees_only_what_their_clearance_allows(client: Client) -> None:
    domain = DomainFactory()
    capability = CapabilityFactory(
        code="PNR",
        domain=domain,
        criticality=Level.HIGH,
        lapses_on=timezone.localdate() + datetime.timedelta(days=90),
    )
    official = ProvisionFactory(
        reference="SP-1", domain=domain, status=Status.PROPOSED, marking=Marking.OFFICIAL
    )
    secret = ProvisionFactory(reference="SP-9", domain=domain, status=Status.PROPOSED, marking=Marking.SECRET)
    for provision in (official, secret):
        CoverageFactory(provision=provision, capability=capability)
    gaps_scan(trigger=ScanTrigger.COMMAND)
    provision_transition(by=Reader.system(), provision=secret, to=Status.UNDER_NEGOTIATION, note="Opened")
    provision_transition(by=Reader.system(), provision=official, to=Status.UNDER_NEGOTIATION, note="Opened")

    cleared, _ = read_all(client, bearer(UserFactory(role="viewer", clearance=Marking.SECRET)))
    below, _ = read_all(client, bearer(UserFactory(role="viewer", clearance=Marking.OFFICIAL)))

    def told(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [
            (event["event"], event["data"].get("reference") or event["data"]["subject_code"])
            for event in events
        ]

    assert ("provision.status_changed", "SP-9") in told(cleared)
    assert [item for item in told(below) if item[1] == "SP-9"] == []
    [gap_seen_below] = [event for event in below if event["data"].get("subject_code") == "PNR"]
    assert gap_seen_below["data"]["covering_provisions"] == "SP-1" and "SP-9" not in str(gap_seen_below)
    assert {event["clearance"] for event in below} == {"official"}

    # Marked higher after the event: the event goes from what an official reader is shown.
    official.marking = Marking.SECRET
    official.save(update_fields=["marking"])
    again, _ = read_all(client, bearer(UserFactory(role="viewer", clearance=Marking.OFFICIAL)))
    assert [event for event in again if "SP-1" in str(event["data"])] == []


def test_a_provision_marked_above_a_readers_clearance_is_withdrawn_from_their_copy(client: Client) -> None:
    domain = DomainFactory()
    provision = ProvisionFactory(reference="SP-1", domain=domain, marking=Marking.OFFICIAL)
    by = Reader.of(UserFactory(role="negotiator", clearance=Marking.SECRET, domains=[domain]))
    official, sensitive, secret = (
        bearer(UserFactory(role="viewer", clearance=clearance))
        for clearance in (Marking.OFFICIAL, Marking.OFFICIAL_SENSITIVE, Marking.SECRET)
    )
    cursors = {name: read_all(client, headers)[1] for name, headers in (("o", official), ("s", secret))}

    provision_update(by=by, provision=provision, marking=Marking.OFFICIAL_SENSITIVE, expected_version=None)
    provision_update(by=by, provision=provision, marking=Marking.SECRET, expected_version=None)

    told_official, _ = read_all(client, official, after=cursors["o"])
    assert [(event["event"], event["data"]["reference"]) for event in told_official] == [
        ("provision.withdrawn", "SP-1")
    ]
    told_sensitive, _ = read_all(client, sensitive)  # saw it marked official-sensitive, then not
    assert [event["event"] for event in told_sensitive if event["data"].get("reference") == "SP-1"] == [
        "provision.withdrawn"
    ]
    told_secret, _ = read_all(client, secret, after=cursors["s"])
    assert [event["event"] for event in told_secret] == ["provision.changed", "provision.changed"]
    # Lowered again: a provision.changed tells them it is back.
    provision_update(by=by, provision=provision, marking=Marking.OFFICIAL, expected_version=None)
    back, _ = read_all(client, official, after=cursors["o"])
    assert [event["event"] for event in back] == ["provision.withdrawn", "provision.changed"]


def test_a_gap_event_holds_for_each_clearance_the_row_that_clearance_reads(client: Client) -> None:
    """The rows are built once and redacted only where a clearance would be shown less: the
    result must be what gap_row gives each clearance."""
    from provisions.redaction import Redaction, gap_row
    from provisions.services.webhooks.events import for_clearance

    today = timezone.localdate()
    domain = DomainFactory()
    for index, markings in enumerate(
        [
            (Marking.OFFICIAL,),
            (Marking.SECRET,),
            (Marking.OFFICIAL, Marking.SECRET),
            (Marking.OFFICIAL_SENSITIVE,),
        ]
    ):
        capability = CapabilityFactory(
            domain=domain, criticality=Level.HIGH, lapses_on=today + datetime.timedelta(days=20 + index)
        )
        for number, marking in enumerate(markings):
            provision = ProvisionFactory(
                reference=f"SP-{index}-{number}", domain=domain, status=Status.PROPOSED, marking=marking
            )
            CoverageFactory(provision=provision, capability=capability)
    gaps_scan(trigger=ScanTrigger.COMMAND)

    events = Event.objects.filter(event="gap.opened")
    assert events.count() >= 8
    shown_differently = 0
    for event in events:
        gap = Gap.objects.select_related("capability__domain", "provision__domain", "acknowledged_by").get(
            pk=for_clearance(event.data, Marking.SECRET)["id"]
        )
        rows = {}
        for clearance in Marking.values:
            expected = gap_row(gap, Redaction.for_reader(Reader.cleared(clearance)), today=today)
            stored = for_clearance(event.data, clearance)
            assert stored == (
                json.loads(json.dumps(expected, cls=encoders.JSONEncoder)) if expected else None
            )
            rows[clearance] = stored
        shown_differently += len({json.dumps(row, sort_keys=True) for row in rows.values()}) > 1
    assert shown_differently >= 3  # some rows differ by clearance: the redacted path ran


def test_the_feed_and_the_webhooks_tell_an_event_alike(
    client: Client, receiver, django_capture_on_commit_callbacks
) -> None:
    from provisions.services.webhooks.delivery import webhook_secret_new

    WebhookEndpoint.objects.create(
        url=receiver.url,
        events=["provision.changed", "provision.status_changed"],
        secret=webhook_secret_new(),
        clearance=Marking.OFFICIAL,
    )
    provision = ProvisionFactory(status=Status.PROPOSED, marking=Marking.OFFICIAL)
    with django_capture_on_commit_callbacks(execute=False):
        provision_transition(
            by=Reader.system(), provision=provision, to=Status.UNDER_NEGOTIATION, note="Opened"
        )

    listed, _ = read_all(client, bearer(UserFactory(role="viewer", clearance=Marking.OFFICIAL)))

    sent = [delivery.payload for delivery in WebhookDelivery.objects.order_by("id")]
    assert listed == sent and [event["event"] for event in sent] == [
        "provision.status_changed",
        "provision.changed",
    ]


@pytest.mark.parametrize(
    "query, field",
    [
        ({"after": "not-a-cursor"}, "after"),
        ({"after": "MTIzNA"}, "after"),  # base64 of "1234": no separator
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"since": "2026-01-01"}, "since"),
    ],
)
def test_a_bad_query_is_a_400_naming_it(client: Client, query: dict[str, Any], field: str) -> None:
    answer = client.get(FEED, query, **bearer(UserFactory(role="viewer")))

    assert answer.status_code == 400
    assert field in answer.json()["error"]["field_errors"]


def test_reading_a_page_takes_the_same_queries_however_many_events(
    client: Client, django_assert_max_num_queries
) -> None:
    headers = bearer(UserFactory(role="viewer", clearance=Marking.SECRET))
    provisions = [ProvisionFactory(status=Status.PROPOSED) for _ in range(3)]
    for provision in provisions:
        provision_transition(
            by=Reader.system(), provision=provision, to=Status.UNDER_NEGOTIATION, note="Opened"
        )
    client.get(FEED, **headers)  # warm: the token's first use writes last_used_at
    with django_assert_max_num_queries(6) as few:
        client.get(FEED, **headers)
    for provision in provisions * 10:
        provision_update(
            by=Reader.system(), provision=provision, text=f"{provision.version}", expected_version=None
        )
    assert Event.objects.count() == 36
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(FEED, {"limit": 1000}, **headers)


def test_events_are_kept_for_a_while_and_a_cursor_at_a_forgotten_one_is_a_410(
    client: Client, settings
) -> None:
    from provisions.services.webhooks.events import events_purge

    settings.EVENTS_KEPT_DAYS = 30
    headers = bearer(UserFactory(role="viewer", clearance=Marking.SECRET))
    for provision in [ProvisionFactory(status=Status.PROPOSED) for _ in range(3)]:
        provision_transition(
            by=Reader.system(), provision=provision, to=Status.UNDER_NEGOTIATION, note="Opened"
        )
    after_first = client.get(FEED, {"limit": 1}, **headers).json()["cursor"]
    after_second = client.get(FEED, {"limit": 2}, **headers).json()["cursor"]
    first, second, *rest = Event.objects.order_by("id")
    Event.objects.filter(pk=first.pk).update(occurred_at=timezone.now() - datetime.timedelta(days=31))
    Event.objects.filter(pk=second.pk).update(occurred_at=timezone.now() - datetime.timedelta(days=29))

    assert events_purge() == 1
    assert list(Event.objects.order_by("id")) == [second, *rest]
    assert client.get(FEED, {"after": after_second}, **headers).json()["results"][0]["id"] == rest[0].event_id
    # A reader whose cursor is at a forgotten event may have missed others forgotten after it.
    expired = client.get(FEED, {"after": after_first}, **headers)
    assert expired.status_code == 410
    assert expired.json()["error"]["code"] == "cursor_expired"
    assert "copy the lists again" in expired.json()["error"]["message"]
    problem = client.get(FEED, {"after": after_first}, HTTP_ACCEPT="application/problem+json", **headers)
    assert problem.status_code == 410 and problem.json()["type"].endswith(":cursor_expired")
    restarted, _ = read_all(client, headers)  # from the start: what is kept
    assert [event["id"] for event in restarted] == [event.event_id for event in (second, *rest)]


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_an_event_committed_late_is_never_left_behind_the_cursor(client: Client) -> None:
    """A write still running when a reader reads: what committed after it waits for it, so the
    cursor never passes an event that commits later (PostgreSQL, two real transactions)."""
    import threading

    from django.db import connection, transaction

    headers = bearer(UserFactory(role="viewer", clearance=Marking.SECRET))
    early, slow, quick = (ProvisionFactory(status=Status.PROPOSED) for _ in range(3))
    provision_transition(by=Reader.system(), provision=early, to=Status.UNDER_NEGOTIATION, note="1")
    seen, cursor = read_all(client, headers)
    assert {event["data"]["reference"] for event in seen} == {early.reference}
    written, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                provision_transition(
                    by=Reader.system(), provision=slow, to=Status.UNDER_NEGOTIATION, note="2"
                )
                written.set()
                assert release.wait(30)
        finally:
            connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert written.wait(30)
    provision_transition(by=Reader.system(), provision=quick, to=Status.UNDER_NEGOTIATION, note="3")

    held_back, cursor = read_all(client, headers, after=cursor)  # `quick` committed, but after `slow` began
    release.set()
    writer.join(30)
    rest, _ = read_all(client, headers, after=cursor)

    assert held_back == []
    assert [event["data"]["reference"] for event in rest] == [slow.reference] * 2 + [quick.reference] * 2


# --- a mirror kept by the feed alone ------------------------------------------------------------------------


class Mirror:
    """What another system keeps from the feed alone: each provision as the API last gave it (fetched
    when told `provision.changed`) and each gap still open, as its last event told it."""

    def __init__(self, client: Client, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers
        self.cursor: str | None = None
        self.provisions: dict[str, Any] = {}
        self.gaps: dict[int, Any] = {}
        self.events = 0

    def follow(self) -> bool:
        """Read one page and apply it; whether more wait."""
        query: dict[str, Any] = {"limit": 200, **({"after": self.cursor} if self.cursor else {})}
        page = self.client.get(FEED, query, **self.headers).json()
        for event in page["results"]:
            self.events += 1
            data = event["data"]
            if event["event"] == "provision.changed":
                answer = self.client.get(f"/api/v1/provisions/{data['reference']}/", **self.headers)
                self.provisions[data["reference"]] = answer.json()
            elif event["event"] == "gap.resolved":
                self.gaps.pop(data["id"], None)
            elif event["event"].startswith("gap."):
                self.gaps[data["id"]] = {key: value for key, value in data.items() if key != "escalated_from"}
        self.cursor = page["cursor"]
        return bool(page["has_more"])


def pages_of(client: Client, url: str, headers: dict[str, str]) -> list[Any]:
    rows: list[Any] = []
    while url:
        page = client.get(url, **headers).json()
        rows += page["results"]
        url = page["next"]
    return rows


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_mirrors_fed_by_the_feed_and_by_webhooks_end_equal_to_the_server_while_another_process_writes(
    client: Client, tmp_path: Any, receiver: Any, settings: Any, monkeypatch: Any
) -> None:
    """Both start empty; another process imports the shipped partnership and makes 1,000 random
    writes (each rescanned in process). One mirror follows the feed meanwhile; a webhook receiver
    is told of every event, but answers 503 for a while in the middle, and the periodic job (run
    here, as beat would) sends what it missed on the retry schedule."""
    import os
    import subprocess
    import sys
    import time

    from django.conf import settings as django_settings
    from django.db import connection
    from standardwebhooks import Webhook

    from provisions.api.conventions import PerCallerThrottle
    from provisions.services.webhooks import webhook_secret_new, webhooks_send_due

    # The mirrors read as fast as they can, past the per-token rate: pacing is not what this is about.
    monkeypatch.setattr(PerCallerThrottle, "THROTTLE_RATES", {"caller": "1000000/minute"})
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    secret = webhook_secret_new()
    WebhookEndpoint.objects.create(
        url=receiver.url + "/hooks", events=list(WebhookEvent.values), secret=secret, clearance=Marking.SECRET
    )
    database = connection.settings_dict
    environment = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
    }
    environment.pop("CELERY_BROKER_URL", None)  # its scans and first attempts run in process, on commit
    headers = bearer(UserFactory(role="viewer", clearance=Marking.SECRET))
    mirror = Mirror(client, headers)
    log = tmp_path / "writer.log"
    with log.open("wb") as written:
        writer = subprocess.Popen(
            [sys.executable, "-m", "tests.mirror_writer", "1000", "20261204"],
            cwd=django_settings.BASE_DIR,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=written,
        )
        followed_while_writing = 0
        while writer.poll() is None:
            if not mirror.follow():
                time.sleep(0.2)
            followed_while_writing = mirror.events
            # The receiver is down from the 500th event told to the 1,500th.
            receiver.default = (503, "deploying") if 500 <= len(receiver.requests) < 1500 else (200, "ok")
            webhooks_send_due()
    assert writer.returncode == 0, log.read_text()[-3000:]
    receiver.default = (200, "ok")
    while mirror.follow():
        pass
    refused = WebhookDelivery.objects.filter(attempts__gt=1).count()
    while WebhookDelivery.objects.filter(state="pending").exists():  # the clock moves to each retry
        WebhookDelivery.objects.filter(state="pending").update(next_attempt_at=timezone.now())
        webhooks_send_due()

    server_provisions = {
        row["reference"]: row for row in pages_of(client, "/api/v1/provisions/?page_size=500", headers)
    }
    open_gaps = [
        gap
        for state in ("open", "acknowledged")
        for gap in pages_of(client, f"/api/v1/gaps/?state={state}&page_size=500", headers)
    ]
    assert followed_while_writing > 100  # it followed while the writes went on, not only afterwards
    assert len(server_provisions) == Provision.objects.count() > 20
    assert mirror.provisions == server_provisions
    server_gaps = {gap["id"]: gap for gap in open_gaps}
    assert mirror.gaps == server_gaps
    assert len(server_gaps) > 10 and Event.objects.filter(event="provision.changed").count() > 500

    # The webhook receiver got every event, each verified; a mirror built from what it got (fetching
    # what each names, as deliveries may arrive out of order) equals the server too.
    assert refused > 100 and set(WebhookDelivery.objects.values_list("state", flat=True)) == {"delivered"}
    told = {}
    for request in receiver.requests:
        told[request.headers["webhook-id"]] = Webhook(secret).verify(request.body, request.headers)
    assert set(told) == set(Event.objects.values_list("event_id", flat=True))
    named_provisions = {
        event["data"]["reference"] for event in told.values() if event["event"].startswith("provision.")
    }
    named_gaps = {event["data"]["id"] for event in told.values() if event["event"].startswith("gap.")}
    fetched_gaps = [client.get(f"/api/v1/gaps/{gap_id}/", **headers).json() for gap_id in sorted(named_gaps)]
    assert named_provisions == set(server_provisions)
    assert {gap["id"]: gap for gap in fetched_gaps if gap["state"] != "resolved"} == server_gaps
