"""Webhooks against a real HTTP receiver on 127.0.0.1: events, Standard Webhooks signatures (checked
with the `standardwebhooks` package, as a receiver would), clearance, the retry schedule, the outbox.

Tasks run in process (tests/conftest.py), so a delivery's task, and its retries, run inline when the
transaction's on_commit callbacks fire.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachable
from standardwebhooks import Webhook, WebhookVerificationError

from partnership.celery import app as celery_app
from provisions.explanations import WITHHELD
from provisions.models import (
    Gap,
    Level,
    Marking,
    Provision,
    ScanTrigger,
    Status,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from provisions.permissions import Reader
from provisions.services.scans import gaps_scan
from provisions.services.status import provision_transition
from provisions.services.webhooks import (
    WEBHOOK_MAX_ATTEMPTS,
    WEBHOOK_RETRY_SCHEDULE,
    WEBHOOK_TIMEOUT_SECONDS,
    transport,
    webhook_deliver,
    webhook_url_problem,
    webhooks_send_due,
)
from provisions.tasks import deliver_webhook
from tests.factories import CapabilityFactory, CoverageFactory, ProvisionFactory, UserFactory
from tests.receivers import Received, Receiver

pytestmark = pytest.mark.django_db

SECRET = "whsec_" + base64.b64encode(b"s3cret-shared-with-the-receiver").decode()
# The events these tests are about (provision.changed and gap.updated: tests/test_events.py).
ALL_EVENTS = ["provision.status_changed", "gap.opened", "gap.resolved", "gap.escalated"]


@pytest.fixture(autouse=True)
def receivers_on_this_machine(settings: Any) -> None:
    """The receiver listens on 127.0.0.1, which webhooks refuse unless this is allowed."""
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True


def endpoint_for(
    receiver: Receiver,
    path: str = "/hooks",
    *,
    events: list[str] | None = None,
    clearance: str = Marking.SECRET,
    active: bool = True,
) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        url=receiver.url + path,
        events=ALL_EVENTS if events is None else events,
        secret=SECRET,
        clearance=clearance,
        active=active,
    )


def assert_signed(request: Received, secret: str = SECRET) -> None:
    """Verified with the Standard Webhooks reference verifier, as a receiver would (the id, the
    timestamp and the body are all signed; the timestamp must be within 5 minutes)."""
    assert Webhook(secret).verify(request.body, request.headers) == request.payload
    assert abs(request.received_at - int(request.headers["webhook-timestamp"])) <= 5
    assert request.headers["webhook-id"] == request.payload["id"]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-tracker-event"] == request.event
    assert WebhookDelivery.objects.filter(payload=request.payload).exists()


def time_passes(delivery: WebhookDelivery) -> None:
    """As if the delivery's next attempt were due now: the clock moved on to it."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def today() -> datetime.date:
    return timezone.localdate()


def days_from_today(days: int) -> datetime.date:
    return today() + datetime.timedelta(days=days)


@pytest.fixture
def capability_at_risk() -> tuple[Any, Any]:
    """A high capability lapsing in 100 days, covered only by a provision under negotiation."""
    capability = CapabilityFactory(code="EAW", criticality=Level.HIGH, lapses_on=days_from_today(100))
    provision = ProvisionFactory(reference="SP-CJ-01", status=Status.UNDER_NEGOTIATION, created_on=today())
    CoverageFactory(provision=provision, capability=capability)
    return capability, provision


# --- events -------------------------------------------------------------------------------------------------


def test_a_status_move_and_the_gap_it_opens_reach_the_receiver_signed(
    receiver, django_capture_on_commit_callbacks
):
    capability = CapabilityFactory(code="EAW", criticality=Level.HIGH, lapses_on=days_from_today(100))
    provision = ProvisionFactory(
        reference="SP-CJ-01", status=Status.AGREED, created_on=days_from_today(-10), marking=Marking.OFFICIAL
    )
    CoverageFactory(provision=provision, capability=capability)
    endpoint_for(receiver, clearance=Marking.OFFICIAL)
    negotiator = UserFactory(username="nadia", role="negotiator", domains=[provision.domain])

    with django_capture_on_commit_callbacks(execute=True):
        provision_transition(
            provision=provision,
            to=Status.UNDER_NEGOTIATION,
            note="Reopened on data retention",
            by=Reader.of(negotiator),
        )

    assert [request.event for request in receiver.requests] == ["provision.status_changed", "gap.opened"]
    for request in receiver.requests:
        assert_signed(request)
        assert request.path == "/hooks"
    moved, opened = (request.payload for request in receiver.requests)
    assert moved["data"] == {
        "reference": "SP-CJ-01",
        "title": provision.title,
        "domain": provision.domain.code,
        "marking": "official",
        "from": "agreed",
        "to": "under_negotiation",
        "changed_on": today().isoformat(),
        "note": "Reopened on data retention",
        "by": "nadia",
        "source": "web",
    }
    gap = Gap.objects.open().get()
    assert opened["data"]["id"] == gap.pk
    assert {
        key: opened["data"][key] for key in ("kind", "severity", "subject_type", "subject_code", "state")
    } == {
        "kind": "at_risk",
        "severity": "medium",
        "subject_type": "capability",
        "subject_code": "EAW",
        "state": "open",
    }
    assert opened["data"]["covering_provisions"] == "SP-CJ-01"
    assert opened["data"]["lapses_on"] == days_from_today(100).isoformat()
    assert opened["data"]["days_to_lapse"] == 100
    for payload in (moved, opened):
        assert set(payload) == {"event", "id", "occurred_at", "clearance", "data"}
        assert payload["clearance"] == "official"
        datetime.datetime.fromisoformat(payload["occurred_at"])
    assert set(WebhookDelivery.objects.values_list("state", "attempts")) == {("delivered", 1)}


def test_a_scan_that_resolves_a_gap_tells_gap_resolved(
    receiver, capability_at_risk, django_capture_on_commit_callbacks
):
    _, provision = capability_at_risk
    gaps_scan(trigger=ScanTrigger.COMMAND)
    gap = Gap.objects.open().get()
    endpoint_for(receiver, "/gaps", events=["gap.resolved"])
    endpoint_for(receiver, "/moves", events=["provision.status_changed"])

    with django_capture_on_commit_callbacks(execute=True):
        provision_transition(by=Reader.system(), provision=provision, to=Status.AGREED)

    [resolved] = receiver.at("/gaps")
    assert_signed(resolved)
    assert resolved.event == "gap.resolved"
    assert (resolved.payload["data"]["id"], resolved.payload["data"]["state"]) == (gap.pk, "resolved")
    assert resolved.payload["data"]["resolved_at"] is not None
    # Each endpoint got only what it subscribed to.
    assert [request.event for request in receiver.at("/moves")] == ["provision.status_changed"]


def test_at_risk_turning_lapsed_is_told_as_an_escalation(
    receiver, capability_at_risk, django_capture_on_commit_callbacks
):
    capability, _ = capability_at_risk
    gaps_scan(trigger=ScanTrigger.COMMAND)
    at_risk = Gap.objects.open().get()
    endpoint_for(receiver, "/all")
    endpoint_for(receiver, "/escalations", events=["gap.escalated"])

    capability.lapses_on = today()
    capability.save(update_fields=["lapses_on"])
    with django_capture_on_commit_callbacks(execute=True):
        gaps_scan(trigger=ScanTrigger.COMMAND)

    lapsed = Gap.objects.open().get()
    assert sorted(request.event for request in receiver.at("/all")) == [
        "gap.escalated",
        "gap.opened",
        "gap.resolved",
    ]
    [escalated] = receiver.at("/escalations")
    assert_signed(escalated)
    data = escalated.payload["data"]
    assert (data["id"], data["kind"], data["severity"], data["state"]) == (
        lapsed.pk,
        "lapsed",
        "critical",
        "open",
    )
    assert data["escalated_from"] == {"id": at_risk.pk, "kind": "at_risk", "severity": "medium"}


def test_an_endpoint_subscribed_only_to_escalations_hears_of_a_lapse(
    receiver, capability_at_risk, django_capture_on_commit_callbacks
):
    capability, _ = capability_at_risk
    gaps_scan(trigger=ScanTrigger.COMMAND)
    endpoint_for(receiver, events=["gap.escalated"])

    capability.lapses_on = today()
    capability.save(update_fields=["lapses_on"])
    with django_capture_on_commit_callbacks(execute=True):
        gaps_scan(trigger=ScanTrigger.COMMAND)

    assert [request.event for request in receiver.requests] == ["gap.escalated"]
    assert receiver.requests[0].payload["data"]["escalated_from"]["kind"] == "at_risk"


def test_a_gap_still_open_whose_severity_rises_is_an_escalation_and_a_fall_is_not(
    receiver, capability_at_risk, django_capture_on_commit_callbacks
):
    capability, _ = capability_at_risk
    gaps_scan(trigger=ScanTrigger.COMMAND)
    gap = Gap.objects.open().get()
    endpoint_for(receiver)

    capability.lapses_on = days_from_today(20)  # within URGENT_DAYS: medium → high
    capability.save(update_fields=["lapses_on"])
    with django_capture_on_commit_callbacks(execute=True):
        gaps_scan(trigger=ScanTrigger.COMMAND)

    [escalated] = receiver.requests
    assert escalated.event == "gap.escalated"
    assert (escalated.payload["data"]["id"], escalated.payload["data"]["severity"]) == (gap.pk, "high")
    assert escalated.payload["data"]["escalated_from"] == {
        "id": gap.pk,
        "kind": "at_risk",
        "severity": "medium",
    }

    capability.lapses_on = days_from_today(100)  # back to medium: updated, not escalated
    capability.save(update_fields=["lapses_on"])
    with django_capture_on_commit_callbacks(execute=True):
        gaps_scan(trigger=ScanTrigger.COMMAND)
    assert len(receiver.requests) == 1


def test_endpoints_not_subscribed_or_inactive_get_nothing(
    receiver, capability_at_risk, django_capture_on_commit_callbacks
):
    _, provision = capability_at_risk
    endpoint_for(receiver, "/gaps-only", events=["gap.opened", "gap.resolved"])
    endpoint_for(receiver, "/inactive", active=False)

    with django_capture_on_commit_callbacks(execute=True):
        provision_transition(
            by=Reader.system(), provision=provision, to=Status.PROPOSED, note="Text sent back"
        )

    assert receiver.at("/inactive") == []
    assert [request.event for request in receiver.at("/gaps-only")] == ["gap.opened"]
    assert WebhookDelivery.objects.count() == 1


# --- clearance ----------------------------------------------------------------------------------------------


def test_an_endpoint_hears_nothing_about_a_provision_above_its_clearance(
    receiver, django_capture_on_commit_callbacks
):
    capability = CapabilityFactory(code="PNR", criticality=Level.HIGH, lapses_on=days_from_today(100))
    official = ProvisionFactory(reference="SP-LE-01", status=Status.UNDER_NEGOTIATION, created_on=today())
    secret = ProvisionFactory(
        reference="SP-LE-99", status=Status.UNDER_NEGOTIATION, created_on=today(), marking=Marking.SECRET
    )
    CoverageFactory(provision=official, capability=capability)
    CoverageFactory(provision=secret, capability=capability)
    # Proposed 100 days ago and never moved: a stalled gap on a secret provision.
    ProvisionFactory(
        reference="SP-LE-98", status=Status.PROPOSED, created_on=days_from_today(-100), marking=Marking.SECRET
    )
    endpoint_for(receiver, "/official", clearance=Marking.OFFICIAL)
    endpoint_for(receiver, "/secret", clearance=Marking.SECRET)

    with django_capture_on_commit_callbacks(execute=True):
        gaps_scan(trigger=ScanTrigger.COMMAND)
    with django_capture_on_commit_callbacks(execute=True):
        provision_transition(by=Reader.system(), provision=secret, to=Status.PROPOSED, note="Sent back")

    cleared = receiver.at("/secret")
    assert sorted((request.event, request.payload["data"].get("subject_code")) for request in cleared) == [
        ("gap.opened", "PNR"),
        ("gap.opened", "SP-LE-98"),
        ("provision.status_changed", None),
    ]
    [capability_gap_in_full] = [
        request for request in cleared if request.payload["data"].get("subject_code") == "PNR"
    ]
    assert capability_gap_in_full.payload["data"]["covering_provisions"] == "SP-LE-01;SP-LE-99"

    [capability_gap] = receiver.at("/official")  # no stalled gap, no status move of the secret provision
    assert_signed(capability_gap)
    data = capability_gap.payload["data"]
    assert (capability_gap.event, data["subject_code"]) == ("gap.opened", "PNR")
    assert data["covering_provisions"] == "SP-LE-01"
    assert "SP-LE-99" not in capability_gap.body.decode()
    assert "SP-LE-98" not in capability_gap.body.decode()
    if "SP-LE-01" in data["explanation"]:
        assert WITHHELD in data["explanation"]
    # One occurrence, told to each endpoint at its clearance.
    assert capability_gap.payload["id"] == capability_gap_in_full.payload["id"]


def test_a_delivery_prepared_before_the_clearance_was_lowered_is_not_sent(
    receiver, capability_at_risk, django_capture_on_commit_callbacks
):
    _, provision = capability_at_risk
    endpoint = endpoint_for(receiver, events=["provision.status_changed"], clearance=Marking.SECRET)
    with django_capture_on_commit_callbacks(execute=False):
        provision_transition(by=Reader.system(), provision=provision, to=Status.PROPOSED, note="Sent back")
    endpoint.clearance = Marking.OFFICIAL
    endpoint.save(update_fields=["clearance"])

    delivery = webhook_deliver(delivery_id=WebhookDelivery.objects.get().pk)

    assert delivery is not None and delivery.state == "failed" and delivery.attempts == 0
    assert "clearance" in delivery.last_error
    assert receiver.requests == []


@pytest.mark.parametrize("events", [["provision.status_changed"], ["gap.opened"]])
def test_a_delivery_naming_a_provision_marked_higher_since_is_not_sent(
    receiver, capability_at_risk, django_capture_on_commit_callbacks, events
):
    """Prepared while the provision was official; raised to secret before it went out."""
    _, provision = capability_at_risk
    endpoint_for(receiver, events=events, clearance=Marking.OFFICIAL)
    with django_capture_on_commit_callbacks(execute=False):  # recorded, not sent yet
        provision_transition(by=Reader.system(), provision=provision, to=Status.PROPOSED, note="Sent back")
        gaps_scan(trigger=ScanTrigger.COMMAND)
    delivery = WebhookDelivery.objects.get()
    assert provision.reference in json.dumps(delivery.payload)
    Provision.objects.filter(pk=provision.pk).update(marking=Marking.SECRET)

    sent = webhook_deliver(delivery_id=delivery.pk)

    assert sent is not None and (sent.state, sent.attempts) == ("failed", 0)
    assert "marked above the endpoint's clearance" in sent.last_error
    assert receiver.requests == []


# --- delivery, retries, failures ----------------------------------------------------------------------------


@pytest.fixture
def pending_delivery(receiver: Receiver) -> WebhookDelivery:
    endpoint = endpoint_for(receiver)
    return WebhookDelivery.objects.create(
        endpoint=endpoint,
        event=WebhookEvent.GAP_OPENED,
        next_attempt_at=timezone.now(),
        payload={
            "event": "gap.opened",
            "id": "e-1",
            "occurred_at": "2026-01-01T00:00:00Z",
            "clearance": "secret",
            "data": {},
        },
    )


def test_each_attempt_and_its_answer_is_recorded(receiver, pending_delivery, caplog):
    receiver.answers = [(500, "boom: database down")]

    with caplog.at_level(logging.INFO, logger="provisions.services.webhooks.delivery"):
        webhook_deliver(delivery_id=pending_delivery.pk)
        pending_delivery.refresh_from_db()
        assert (pending_delivery.state, pending_delivery.attempts) == ("pending", 1)
        assert (pending_delivery.last_status_code, pending_delivery.last_response) == (
            500,
            "boom: database down",
        )
        assert pending_delivery.last_error == "HTTP 500"
        assert pending_delivery.last_attempt_at is not None and pending_delivery.delivered_at is None
        assert pending_delivery.next_attempt_at is not None

        webhook_deliver(delivery_id=pending_delivery.pk)  # not due yet: nothing sent
        assert len(receiver.requests) == 1

        time_passes(pending_delivery)
        webhook_deliver(delivery_id=pending_delivery.pk)

    pending_delivery.refresh_from_db()
    assert (pending_delivery.state, pending_delivery.attempts) == ("delivered", 2)
    assert (pending_delivery.last_status_code, pending_delivery.last_response) == (200, "thanks")
    assert pending_delivery.last_error == "" and pending_delivery.next_attempt_at is None
    assert pending_delivery.delivered_at == pending_delivery.last_attempt_at
    # Each attempt has its own record; the delivery row keeps the latest, and both are in the log.
    attempts = list(WebhookAttempt.objects.filter(delivery=pending_delivery).order_by("number"))
    assert [(a.number, a.status_code, a.response, a.error) for a in attempts] == [
        (1, 500, "boom: database down", "HTTP 500"),
        (2, 200, "thanks", ""),
    ]
    assert attempts[0].sent_at < attempts[1].sent_at == pending_delivery.last_attempt_at
    assert all(a.duration_ms < WEBHOOK_TIMEOUT_SECONDS * 1000 for a in attempts)
    messages = [record.getMessage() for record in caplog.records]
    assert any("attempt 1 of 8 failed (HTTP 500); next at" in message for message in messages)
    assert any("delivered" in message and "HTTP 200" in message for message in messages)
    assert len(receiver.requests) == 2
    assert receiver.requests[0].body == receiver.requests[1].body
    assert receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers["webhook-id"]
    for request in receiver.requests:
        assert_signed(request)


def test_a_refused_delivery_is_retried_on_a_schedule_of_about_a_day(receiver, pending_delivery):
    """5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after each failure; then it is given up."""
    receiver.default = (503, "unavailable")
    waits = []
    for attempt in range(1, WEBHOOK_MAX_ATTEMPTS + 1):
        deliver_webhook.delay(pending_delivery.pk)
        pending_delivery.refresh_from_db()
        assert pending_delivery.attempts == attempt
        if pending_delivery.next_attempt_at is not None:
            waits.append(pending_delivery.next_attempt_at - pending_delivery.last_attempt_at)
            time_passes(pending_delivery)

    assert waits == list(WEBHOOK_RETRY_SCHEDULE)
    assert sum(WEBHOOK_RETRY_SCHEDULE, datetime.timedelta()) > datetime.timedelta(hours=27)
    assert (pending_delivery.state, pending_delivery.attempts) == ("failed", WEBHOOK_MAX_ATTEMPTS)
    assert (pending_delivery.last_status_code, pending_delivery.last_response) == (503, "unavailable")
    assert len(receiver.requests) == WEBHOOK_MAX_ATTEMPTS == 8

    time_passes(pending_delivery)
    deliver_webhook.delay(pending_delivery.pk)  # a failed delivery is not tried again
    assert len(receiver.requests) == WEBHOOK_MAX_ATTEMPTS


def test_a_receiver_down_for_twenty_minutes_still_gets_every_event(
    receiver, capability_at_risk, django_capture_on_commit_callbacks
):
    """Three moves while the receiver answers 503; the clock advances from one due attempt to the
    next (the periodic job queues what is due) until the receiver is back, 20 minutes on."""
    _, provision = capability_at_risk
    endpoint_for(receiver, events=["provision.status_changed"])
    receiver.default = (503, "deploying")
    for to in (Status.PROPOSED, Status.UNDER_NEGOTIATION, Status.PROPOSED):
        with django_capture_on_commit_callbacks(execute=True):
            provision_transition(by=Reader.system(), provision=provision, to=to, note="moved")
    assert len(receiver.requests) == 3

    down_for = datetime.timedelta()
    while WebhookDelivery.objects.filter(state="pending").exists():
        pending = WebhookDelivery.objects.filter(state="pending")
        wait = min(delivery.next_attempt_at - delivery.last_attempt_at for delivery in pending)
        down_for += wait
        if down_for >= datetime.timedelta(minutes=20):
            receiver.default = (200, "back")
        pending.update(next_attempt_at=timezone.now())
        assert webhooks_send_due() == 3

    assert down_for == datetime.timedelta(seconds=5 + 5 * 60 + 30 * 60)  # the 4th attempt gets through
    assert set(WebhookDelivery.objects.values_list("state", "attempts")) == {("delivered", 4)}
    assert len(receiver.requests) == 3 * 4
    assert sorted(request.payload["data"]["to"] for request in receiver.requests[-3:]) == [
        "proposed",
        "proposed",
        "under_negotiation",
    ]
    for request in receiver.requests:
        assert_signed(request)


def test_without_a_worker_a_refused_delivery_waits_for_its_retry_and_others_still_go(
    receiver, capability_at_risk, django_capture_on_commit_callbacks
):
    _, provision = capability_at_risk
    refusing = endpoint_for(receiver, "/refusing", events=["provision.status_changed"])
    endpoint_for(receiver, "/accepting", events=["provision.status_changed"])
    receiver.answers = [(500, "no")]  # the first request is the refusing endpoint's (lower id)

    with django_capture_on_commit_callbacks(execute=True):
        change = provision_transition(
            by=Reader.system(), provision=provision, to=Status.PROPOSED, note="Sent back"
        )

    assert change.pk is not None
    assert dict(WebhookDelivery.objects.values_list("endpoint_id", "state")) == {
        refusing.pk: "pending",
        refusing.pk + 1: "delivered",
    }
    assert [request.path for request in receiver.requests] == ["/refusing", "/accepting"]
    waiting = WebhookDelivery.objects.get(state="pending")
    assert waiting.next_attempt_at - waiting.last_attempt_at == WEBHOOK_RETRY_SCHEDULE[0]


def test_a_delivered_delivery_is_never_sent_again(receiver, pending_delivery):
    webhook_deliver(delivery_id=pending_delivery.pk)
    webhook_deliver(delivery_id=pending_delivery.pk)
    deliver_webhook.delay(pending_delivery.pk)

    pending_delivery.refresh_from_db()
    assert (pending_delivery.state, pending_delivery.attempts) == ("delivered", 1)
    assert len(receiver.requests) == 1


def test_a_redirect_is_an_answer_not_a_delivery(receiver, pending_delivery):
    receiver.answers = [(302, "moved")]

    webhook_deliver(delivery_id=pending_delivery.pk)

    pending_delivery.refresh_from_db()
    assert (pending_delivery.state, pending_delivery.last_status_code) == ("pending", 302)
    assert [request.path for request in receiver.requests] == ["/hooks"]  # /elsewhere never asked


def test_an_unreachable_receiver_is_recorded_as_an_error(pending_delivery):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pending_delivery.endpoint.url = f"http://127.0.0.1:{port}/hooks"
    pending_delivery.endpoint.save(update_fields=["url"])

    webhook_deliver(delivery_id=pending_delivery.pk)

    pending_delivery.refresh_from_db()
    assert (pending_delivery.state, pending_delivery.attempts, pending_delivery.last_status_code) == (
        "pending",
        1,
        None,
    )
    assert "refused" in pending_delivery.last_error.lower()


def test_a_slow_receiver_times_out(receiver, pending_delivery, monkeypatch):
    monkeypatch.setattr(transport, "WEBHOOK_TIMEOUT_SECONDS", 0.2)
    receiver.delay = 1.0

    webhook_deliver(delivery_id=pending_delivery.pk)

    pending_delivery.refresh_from_db()
    assert (pending_delivery.state, pending_delivery.last_status_code) == ("pending", None)
    assert "timed out" in pending_delivery.last_error


# --- outbox: a broker outage loses nothing ------------------------------------------------------------------


def test_deliveries_survive_a_broker_outage_and_the_periodic_job_sends_them(
    receiver, capability_at_risk, django_capture_on_commit_callbacks, monkeypatch
):
    _, provision = capability_at_risk
    endpoint_for(receiver)

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise BrokerUnreachable("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with monkeypatch.context() as patched:
        patched.setattr(deliver_webhook, "delay", broker_down)
        with django_capture_on_commit_callbacks(execute=True):
            change = provision_transition(
                by=Reader.system(), provision=provision, to=Status.PROPOSED, note="Sent back"
            )

    assert change.pk is not None  # the write stands
    assert receiver.requests == []
    assert set(WebhookDelivery.objects.values_list("event", "state")) == {
        ("provision.status_changed", "pending"),
        ("gap.opened", "pending"),
    }
    assert webhooks_send_due() == 0  # queued just now: their task may still be on its way

    WebhookDelivery.objects.update(queued_at=timezone.now() - datetime.timedelta(minutes=5))
    assert webhooks_send_due() == 2

    assert sorted(request.event for request in receiver.requests) == [
        "gap.opened",
        "provision.status_changed",
    ]
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"delivered"}


def test_the_periodic_job_leaves_deliveries_waiting_for_a_retry_alone(receiver, pending_delivery):
    receiver.answers = [(500, "boom")]
    deliver_webhook.delay(pending_delivery.pk)

    assert webhooks_send_due() == 0  # attempted just now: its next attempt is 5 s away

    time_passes(pending_delivery)
    assert webhooks_send_due() == 1
    pending_delivery.refresh_from_db()
    assert (pending_delivery.state, pending_delivery.attempts) == ("delivered", 2)


# --- signatures ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://127.0.0.1:8000/hooks", "127.0.0.1, an internal address"),
        ("http://localhost/hooks", "an internal address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, an internal address"),
        ("http://10.1.2.3/hooks", "10.1.2.3, an internal address"),
        ("https://[::1]/hooks", "::1, an internal address"),
        ("http://0.0.0.0/", "0.0.0.0, an internal address"),
        ("ftp://8.8.8.8/hooks", "only http and https"),
        ("https:///hooks", "names no host"),
        ("https://8.8.8.8/hooks", ""),
        ("https://receiver.invalid/hooks", ""),  # does not resolve now: sending fails and is retried
    ],
)
def test_webhooks_go_only_to_public_addresses(settings, url: str, problem: str) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    found = webhook_url_problem(url)
    assert (problem in found) if problem else found == "", found
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    assert webhook_url_problem(url) == ("" if "internal" in problem else found)


def test_a_delivery_to_an_internal_address_is_not_sent(settings, receiver, pending_delivery) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False

    delivery = webhook_deliver(delivery_id=pending_delivery.pk)

    assert delivery is not None and (delivery.state, delivery.attempts) == ("failed", 0)
    assert "127.0.0.1, an internal address" in delivery.last_error
    assert receiver.requests == [] and not WebhookAttempt.objects.exists()


def test_a_delivery_verifies_only_with_its_secret_its_id_its_body_and_a_fresh_timestamp(
    receiver, pending_delivery
):
    webhook_deliver(delivery_id=pending_delivery.pk)
    [request] = receiver.requests
    headers = request.headers
    assert headers["webhook-signature"].startswith("v1,") and " " not in headers["webhook-signature"]
    assert Webhook(SECRET).verify(request.body, headers) == request.payload

    other_secret = "whsec_" + base64.b64encode(b"another endpoint's secret").decode()
    for forged_body, forged_headers, secret in [
        (request.body, headers, other_secret),
        (request.body + b" ", headers, SECRET),
        (request.body, {**headers, "webhook-id": "e-2"}, SECRET),  # the id is signed: replays as another fail
        (request.body, {**headers, "webhook-timestamp": str(int(time.time()) + 1)}, SECRET),
    ]:
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(forged_body, forged_headers)


def test_a_new_endpoint_gets_a_standard_secret_and_a_rotation_signs_with_both_for_a_day(
    receiver, capability_at_risk, django_capture_on_commit_callbacks
):
    from provisions.services.webhooks.endpoints import webhook_endpoint_rotate_secret, webhook_endpoint_save

    _, provision = capability_at_risk
    administrator = Reader.of(UserFactory(role="administrator", clearance=Marking.SECRET))
    endpoint = webhook_endpoint_save(
        endpoint=WebhookEndpoint(url=receiver.url + "/hooks", events=["provision.status_changed"]),
        by=administrator,
    )
    assert endpoint.secret.startswith("whsec_") and len(base64.b64decode(endpoint.secret[6:])) == 32
    old_secret = endpoint.secret

    webhook_endpoint_rotate_secret(endpoint=endpoint, by=administrator)
    assert endpoint.secret.startswith("whsec_") and endpoint.secret != old_secret
    assert endpoint.previous_secret == old_secret
    lasts = endpoint.previous_secret_expires_at - timezone.now()
    assert datetime.timedelta(hours=23, minutes=59) < lasts <= datetime.timedelta(hours=24)
    with django_capture_on_commit_callbacks(execute=True):
        provision_transition(by=Reader.system(), provision=provision, to=Status.PROPOSED, note="Sent back")

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(previous_secret_expires_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        provision_transition(by=Reader.system(), provision=provision, to=Status.UNDER_NEGOTIATION)

    during, after = receiver.requests
    assert len(during.headers["webhook-signature"].split(" ")) == 2  # a receiver on either secret accepts
    for secret in (old_secret, endpoint.secret):
        assert Webhook(secret).verify(during.body, during.headers) == during.payload
    assert len(after.headers["webhook-signature"].split(" ")) == 1  # the old secret's day is over
    assert Webhook(endpoint.secret).verify(after.body, after.headers) == after.payload
    with pytest.raises(WebhookVerificationError):
        Webhook(old_secret).verify(after.body, after.headers)


# --- a real worker ------------------------------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_through_redis_and_the_periodic_job_retries_when_due(receiver):
    from celery.contrib.testing.worker import start_worker

    capability = CapabilityFactory(criticality=Level.HIGH, lapses_on=days_from_today(100))
    provision = ProvisionFactory(status=Status.UNDER_NEGOTIATION, created_on=today())
    CoverageFactory(provision=provision, capability=capability)
    endpoint_for(receiver)
    receiver.answers = [(500, "not yet")]

    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        # Autocommit: the move commits, on_commit publishes to Redis, the worker consumes.
        provision_transition(by=Reader.system(), provision=provision, to=Status.PROPOSED, note="Sent back")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if WebhookDelivery.objects.filter(state="delivered").count() == 2:
                break
            webhooks_send_due()  # as beat does, every few seconds
            time.sleep(0.5)

    deliveries = {delivery.event: delivery for delivery in WebhookDelivery.objects.all()}
    assert set(deliveries) == {"provision.status_changed", "gap.opened"}
    assert {delivery.state for delivery in deliveries.values()} == {"delivered"}
    assert sorted(delivery.attempts for delivery in deliveries.values()) == [1, 2]
    assert len(receiver.requests) == 3
    retried = next(delivery for delivery in deliveries.values() if delivery.attempts == 2)
    first, second = WebhookAttempt.objects.filter(delivery=retried).order_by("number")
    assert second.sent_at - first.sent_at >= WEBHOOK_RETRY_SCHEDULE[0]
    for request in receiver.requests:
        assert_signed(request)


def test_the_periodic_job_queues_a_lost_delivery_once_then_waits(receiver, pending_delivery, monkeypatch):
    """A backed-up queue: the task it queued has not run yet, so the next runs must not add copies."""
    queued: list[int] = []
    monkeypatch.setattr(deliver_webhook, "delay", queued.append)

    assert webhooks_send_due() == 1
    assert webhooks_send_due() == 0  # seconds later, the first copy still waiting
    WebhookDelivery.objects.update(queued_at=timezone.now() - datetime.timedelta(minutes=3))
    assert webhooks_send_due() == 1  # long enough: that copy is taken as lost
    assert queued == [pending_delivery.pk, pending_delivery.pk] and receiver.requests == []


@pytest.mark.parametrize(
    "address, internal",
    [
        ("8.8.8.8", False),
        ("2001:4860:4860::8888", False),
        ("127.0.0.1", True),
        ("::ffff:127.0.0.1", True),  # IPv4-mapped
        ("2002:7f00:1::", True),  # 6to4 of 127.0.0.1
        ("64:ff9b::7f00:1", True),  # NAT64 of 127.0.0.1
        ("64:ff9b::808:808", False),  # NAT64 of 8.8.8.8
        ("fe80::1%eth0", True),
    ],
)
def test_internal_addresses_are_seen_through_their_ipv6_forms(address: str, internal: bool) -> None:
    assert transport._internal_address(address) is internal


def test_a_name_that_rebinds_to_an_internal_address_after_the_check_is_not_connected_to(
    settings, receiver, pending_delivery, monkeypatch
) -> None:
    """The check before sending sees a public address; the connection would see 127.0.0.1."""
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    port = int(receiver.url.rsplit(":", 1)[1])
    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", port))]])

    def rebinding(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "rebind.example"
        return next(answers, [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))])

    monkeypatch.setattr(transport.socket, "getaddrinfo", rebinding)
    pending_delivery.endpoint.url = f"http://rebind.example:{port}/hooks"
    pending_delivery.endpoint.save(update_fields=["url"])

    webhook_deliver(delivery_id=pending_delivery.pk)

    attempt = WebhookAttempt.objects.get(delivery=pending_delivery)
    assert "127.0.0.1, an internal address: not connected" in attempt.error and attempt.status_code is None
    assert receiver.requests == []


def test_the_readmes_receiver_example_accepts_a_real_delivery_once_and_refuses_a_forgery(
    receiver, pending_delivery
):
    """The example in README.md's "Webhooks", run as written against what the tracker sent."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Webhooks") :]
    example = section[
        section.index("```python\n") + len("```python\n") : section.index(
            "```", section.index("```python") + 3
        )
    ]
    seen: set[str] = set()
    handled: list[dict[str, Any]] = []
    namespace: dict[str, Any] = {
        "already_seen": lambda event_id: event_id in seen,
        "handle": lambda event: (seen.add(event["id"]), handled.append(event)),
    }
    exec(compile(example.replace('"whsec_..."', repr(SECRET)), "README.md", "exec"), namespace)  # noqa: S102
    webhook_deliver(delivery_id=pending_delivery.pk)
    [request] = receiver.requests

    assert namespace["receive"](request.body, request.headers) == 200
    assert (
        namespace["receive"](request.body, request.headers) == 200
    )  # the same event again: not handled twice
    assert namespace["receive"](request.body.replace(b"gap.opened", b"gap.closed"), request.headers) == 400
    assert handled == [request.payload]
