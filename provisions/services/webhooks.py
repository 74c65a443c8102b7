"""Webhooks: telling other systems of status moves and gap changes, up to each endpoint's clearance.

An event becomes one `WebhookDelivery` row per active endpoint subscribed to it and cleared for its
subject, written in the transaction that caused it (an outbox: a broker outage loses nothing, the
periodic resend sends it later); the task that POSTs it is queued once that transaction commits.
Each attempt is signed and recorded; delivery is at least once, so receivers de-duplicate on
`X-Tracker-Delivery` (a worker lost after the receiver answered sends it again).

Receivers check `X-Tracker-Signature: sha256=<hex>`, the HMAC-SHA256 with the endpoint's secret of
`f"{X-Tracker-Timestamp}.{body}"` (the raw body bytes), and refuse stale timestamps:
see `webhook_signature_verify`.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from celery.exceptions import Retry
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from provisions.models import (
    Gap,
    GapKind,
    Level,
    Provision,
    StatusChange,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from provisions.permissions import markings_up_to
from provisions.reports.gaps import persisted_gap_row, withhold_hidden

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 5.0
# Attempts in all: the first and six retries, spaced about 10, 20, 40, 80, 160, 320 s (full jitter).
WEBHOOK_MAX_ATTEMPTS = 7
WEBHOOK_RETRY_BACKOFF = 10
WEBHOOK_RETRY_BACKOFF_MAX = 600
# The periodic resend takes a pending delivery as lost (its task never reached the broker, or the
# broker lost it) once nothing can still be scheduled for it: never tried this long after it was
# recorded, or not tried again for longer than the longest retry delay.
WEBHOOK_UNSENT_AFTER = datetime.timedelta(minutes=2)
WEBHOOK_RETRY_LOST_AFTER = datetime.timedelta(seconds=WEBHOOK_RETRY_BACKOFF_MAX) + datetime.timedelta(
    minutes=5
)
WEBHOOK_RESEND_AGAIN_AFTER = datetime.timedelta(minutes=10)
WEBHOOK_RESEND_BATCH = 500
WEBHOOK_SIGNATURE_TOLERANCE_SECONDS = 300
RESPONSE_KEPT_CHARS = 2000

_USER_AGENT = "security-partnership-tracker-webhooks/1"


class WebhookDeliveryFailed(Exception):
    """An attempt the receiver did not accept (no answer, or not 2xx); the task retries it."""


# --- signing ------------------------------------------------------------------------------------------------


def webhook_signature(*, secret: str, timestamp: int | str, body: bytes) -> str:
    """The `X-Tracker-Signature` value: `sha256=` and the hex HMAC-SHA256 of `{timestamp}.{body}`."""
    signed = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def webhook_signature_verify(
    *,
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance: int = WEBHOOK_SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """What a receiver checks: the signature matches (compared in constant time) and the timestamp
    is within `tolerance` seconds of now, so a captured request cannot be replayed later."""
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent_at) > tolerance:
        return False
    expected = webhook_signature(secret=secret, timestamp=sent_at, body=body)
    return hmac.compare_digest(expected, signature)


# --- recording events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookOccurrence:
    """One event to tell endpoints of.

    `marking` is the subject provision's marking: endpoints cleared below it get nothing (None: a
    subject without a marking, such as a capability). `data_for` builds the event's data for the
    markings an endpoint may see (None: nothing to send at that clearance).
    """

    event: WebhookEvent
    occurred_at: datetime.datetime
    marking: str | None
    data_for: Callable[[tuple[str, ...]], dict[str, Any] | None]


def webhooks_enqueue(*, occurrences: Sequence[WebhookOccurrence]) -> list[WebhookDelivery]:
    """Record a delivery for each occurrence and each active endpoint subscribed to its event and
    cleared for its subject, with data built for that endpoint's clearance; send them on commit.

    Called inside the transaction that caused the events, so the rows commit (or not) with it.
    """
    if not occurrences:
        return []
    wanted = {occurrence.event.value for occurrence in occurrences}
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(active=True).order_by("id")
        if wanted.intersection(endpoint.events or ())
    ]
    if not endpoints:
        return []
    deliveries: list[WebhookDelivery] = []
    for occurrence in occurrences:
        built: dict[tuple[str, ...], dict[str, Any] | None] = {}
        event_id = str(uuid.uuid4())  # the same for every endpoint told of this occurrence
        for endpoint in endpoints:
            if occurrence.event.value not in endpoint.events:
                continue
            visible = tuple(markings_up_to(endpoint.clearance))
            if occurrence.marking is not None and occurrence.marking not in visible:
                continue
            if visible not in built:
                built[visible] = occurrence.data_for(visible)
            data = built[visible]
            if data is None:
                continue
            payload = {
                "event": occurrence.event.value,
                "id": event_id,
                "occurred_at": occurrence.occurred_at,
                "clearance": endpoint.clearance,
                "data": data,
            }
            deliveries.append(
                WebhookDelivery(endpoint=endpoint, event=occurrence.event.value, payload=_plain_json(payload))
            )
    if not deliveries:
        return []
    WebhookDelivery.objects.bulk_create(deliveries, batch_size=1000)
    ids = [delivery.pk for delivery in deliveries]
    if None in ids:  # a database that returns no ids from a bulk insert
        raise RuntimeError("bulk_create returned no ids for webhook deliveries")
    transaction.on_commit(lambda: _send_deliveries(ids), robust=True)
    return deliveries


def _plain_json(value: Any) -> Any:
    """Dates and times as ISO 8601 strings: what is stored is exactly what is sent."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _send_deliveries(delivery_ids: list[int]) -> None:
    """Queue a task per delivery. The first broker error stops the loop (robust on_commit logs it):
    the rest would fail alike, and the periodic resend sends them all once the broker is back."""
    for delivery_id in delivery_ids:
        _queue(delivery_id)


def _queue(delivery_id: int) -> None:
    from provisions.tasks import deliver_webhook

    try:
        deliver_webhook.delay(delivery_id)
    except Retry:
        # Only without a broker (tasks in process, their errors propagated): the failed attempt is
        # recorded, but its retry cannot be scheduled in process. The resend job sends it again.
        logger.warning("Webhook delivery %s left pending for resend_pending_webhooks", delivery_id)


def webhooks_enqueue_status_change(*, change: StatusChange) -> list[WebhookDelivery]:
    """`provision.status_changed` for a recorded move; endpoints cleared below the provision's
    marking are not told of it."""
    provision = change.provision
    data = {
        "reference": provision.reference,
        "title": provision.title,
        "domain": provision.domain.code,
        "marking": provision.marking,
        "from": change.from_status or None,
        "to": change.to_status,
        "changed_on": change.changed_on,
        "note": change.note,
        "by": change.changed_by.get_username() if change.changed_by else None,
        "source": change.source,
    }
    occurrence = WebhookOccurrence(
        event=WebhookEvent.PROVISION_STATUS_CHANGED,
        occurred_at=change.recorded_at,
        marking=provision.marking,
        data_for=lambda visible: data,
    )
    return webhooks_enqueue(occurrences=[occurrence])


def webhooks_enqueue_gap_changes(
    *,
    opened: Collection[Gap],
    resolved: Collection[Gap],
    updated: Collection[Gap],
    severities_before: dict[int, str],
    as_of: datetime.date,
) -> list[WebhookDelivery]:
    """`gap.opened`, `gap.resolved` and `gap.escalated` for what one scan reconciled.

    Every opened and resolved gap is told as such. A gap escalated when a capability's gap was
    replaced in the scan by one that is lapsed or more severe (at_risk to lapsed), or when a gap
    still open became more severe; its data is the gap now open and `escalated_from`.
    A provision gap goes only to endpoints cleared for the provision; a capability gap goes to all,
    provisions above an endpoint's clearance withheld from its covering provisions and explanation.
    """
    if not (opened or resolved or updated):
        return []
    subscribed = _subscribed_events()
    escalations = (
        _escalations(opened=opened, resolved=resolved, updated=updated, before=severities_before)
        if WebhookEvent.GAP_ESCALATED in subscribed
        else []
    )
    opened = opened if WebhookEvent.GAP_OPENED in subscribed else ()
    resolved = resolved if WebhookEvent.GAP_RESOLVED in subscribed else ()
    changed = [*opened, *resolved, *(gap for gap, _ in escalations)]
    if not changed:
        return []
    loaded = {
        gap.pk: gap
        for gap in Gap.objects.filter(pk__in={gap.pk for gap in changed}).select_related(
            "capability__domain", "provision__domain", "acknowledged_by"
        )
    }
    rows = {pk: persisted_gap_row(gap, today=as_of) for pk, gap in loaded.items()}
    shown: dict[tuple[str, ...], dict[int, dict[str, Any]]] = {}

    def gap_data(
        visible: tuple[str, ...], *, pk: int, escalated_from: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        if visible not in shown:  # once per clearance, not per gap and endpoint
            kept = withhold_hidden(list(rows.values()), markings=visible)
            shown[visible] = {row["id"]: row for row in kept}
        row = shown[visible].get(pk)
        if row is None or escalated_from is None:
            return row
        return {**row, "escalated_from": escalated_from}

    def marking_of(gap: Gap) -> str | None:
        provision = loaded[gap.pk].provision
        return provision.marking if provision is not None else None

    now = timezone.now()
    occurrences = [
        WebhookOccurrence(
            event=event,
            occurred_at=(gap.resolved_at if event == WebhookEvent.GAP_RESOLVED else gap.opened_at) or now,
            marking=marking_of(gap),
            data_for=functools.partial(gap_data, pk=gap.pk),
        )
        for event, gaps in ((WebhookEvent.GAP_OPENED, opened), (WebhookEvent.GAP_RESOLVED, resolved))
        for gap in gaps
    ]
    occurrences += [
        WebhookOccurrence(
            event=WebhookEvent.GAP_ESCALATED,
            occurred_at=now,
            marking=marking_of(gap),
            data_for=functools.partial(gap_data, pk=gap.pk, escalated_from=previous),
        )
        for gap, previous in escalations
    ]
    return webhooks_enqueue(occurrences=occurrences)


def _escalations(
    *, opened: Collection[Gap], resolved: Collection[Gap], updated: Collection[Gap], before: dict[int, str]
) -> list[tuple[Gap, dict[str, Any]]]:
    """The gaps now open that escalated, each with what it escalated from (id, kind, severity)."""
    found: list[tuple[Gap, dict[str, Any]]] = []
    replaced = {gap.capability_id: gap for gap in resolved if gap.capability_id is not None}
    for gap in opened:
        old = replaced.get(gap.capability_id) if gap.capability_id is not None else None
        if old is None:
            continue
        lapsed_now = gap.kind == GapKind.LAPSED and old.kind != GapKind.LAPSED
        if lapsed_now or _weight(gap.severity) > _weight(old.severity):
            found.append((gap, {"id": old.pk, "kind": old.kind, "severity": old.severity}))
    for gap in updated:
        previous = before.get(gap.pk)
        if previous is not None and _weight(gap.severity) > _weight(previous):
            found.append((gap, {"id": gap.pk, "kind": gap.kind, "severity": previous}))
    return found


def _weight(severity: str) -> int:
    return Level(severity).weight


def _subscribed_events() -> set[str]:
    """The events some active endpoint subscribes to (one query; endpoints are few)."""
    return {
        event
        for events in WebhookEndpoint.objects.filter(active=True).values_list("events", flat=True)
        for event in events or ()
    }


# --- delivering ---------------------------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirected POST would arrive as a GET without its body: a 3xx is an answer, not a success."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _internal_address(address: str) -> bool:
    """Whether an address is not on the public internet, looking through the IPv6 forms that carry
    an IPv4 address (mapped, 6to4, NAT64)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        candidates += [embedded for embedded in (ip.ipv4_mapped, ip.sixtofour) if embedded is not None]
        if ip in _NAT64:
            candidates.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return any(not candidate.is_global for candidate in candidates)


def _connect_to_public_address(
    address: tuple[str, int], timeout: Any = None, source_address: Any = None
) -> socket.socket:
    """socket.create_connection, refusing internal addresses at the moment of connecting: the name
    is resolved once, and the address checked is the address connected to (no DNS rebinding)."""
    host, port = address
    resolved = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    allow_private = settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES
    error: OSError | None = None
    for family, kind, protocol, _, sockaddr in resolved:
        if not allow_private and _internal_address(str(sockaddr[0])):
            error = OSError(f"{host} is at {sockaddr[0]}, an internal address: not connected")
            continue
        connection = socket.socket(family, kind, protocol)
        try:
            if isinstance(timeout, int | float):  # else http.client's "no timeout given" marker
                connection.settimeout(timeout)
            if source_address:
                connection.bind(source_address)
            connection.connect(sockaddr)
            return connection
        except OSError as failed:
            connection.close()
            error = failed
    raise error or OSError(f"{host} did not resolve")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _connect_to_public_address


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _connect_to_public_address


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_GuardedHTTPConnection, req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_GuardedHTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]


# No proxies from the environment (a proxy's address would be checked, not the receiver's), no
# redirects, and connections only to public addresses.
_opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), _GuardedHTTPHandler, _GuardedHTTPSHandler, _NoRedirects
)


@dataclass(frozen=True)
class _Answer:
    status_code: int | None
    text: str
    error: str
    duration_ms: int


def _post(url: str, *, body: bytes, headers: dict[str, str]) -> _Answer:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    started = time.perf_counter()
    try:
        with _opener.open(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            text, status_code, error = _start_of(response.read(RESPONSE_KEPT_CHARS * 4)), response.status, ""
    except urllib.error.HTTPError as answer:  # a 3xx, 4xx or 5xx: an answer, with a body
        with answer:
            text = _start_of(answer.read(RESPONSE_KEPT_CHARS * 4))
        status_code, error = answer.code, f"HTTP {answer.code}"
    # Refused, unreachable, timed out, TLS, a broken answer, a malformed URL.
    except (OSError, http.client.HTTPException, ValueError) as failure:
        reason = getattr(failure, "reason", None) or failure
        text, status_code, error = "", None, f"{type(failure).__name__}: {reason}"[:2000]
    return _Answer(status_code, text, error, round((time.perf_counter() - started) * 1000))


def _start_of(content: bytes) -> str:
    return content.decode("utf-8", errors="replace")[:RESPONSE_KEPT_CHARS]


def webhook_deliver(*, delivery_id: int) -> WebhookDelivery | None:
    """POST one pending delivery, signed with the endpoint's secret, and record the attempt.

    A delivered or failed delivery is never sent again. An attempt the receiver does not accept
    raises WebhookDeliveryFailed (the task retries with backoff) until the last, which marks it
    failed. The row stays locked while sending, so two tasks for one delivery never both send;
    None when there is nothing to do (gone, or another worker is sending it).
    """
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.state != WebhookDelivery.State.PENDING:
            return delivery
        endpoint = delivery.endpoint
        refusal = _refusal(delivery, endpoint)
        if refusal:
            delivery.state, delivery.last_error = WebhookDelivery.State.FAILED, refusal
            delivery.save(update_fields=["state", "last_error"])
            logger.warning("Webhook delivery %s not sent: %s", delivery.pk, refusal)
            return delivery
        body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        answer = _post(
            endpoint.url,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": _USER_AGENT,
                "X-Tracker-Event": delivery.event,
                "X-Tracker-Delivery": str(delivery.pk),
                "X-Tracker-Timestamp": timestamp,
                "X-Tracker-Signature": webhook_signature(
                    secret=endpoint.secret, timestamp=timestamp, body=body
                ),
            },
        )
        accepted = answer.status_code is not None and 200 <= answer.status_code < 300
        delivery.attempts += 1
        delivery.last_attempt_at = timezone.now()
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            sent_at=delivery.last_attempt_at,
            duration_ms=answer.duration_ms,
            status_code=answer.status_code,
            response=answer.text,
            error=answer.error,
        )
        delivery.last_status_code = answer.status_code
        delivery.last_response = answer.text
        delivery.last_error = answer.error
        if accepted:
            delivery.state, delivery.delivered_at = WebhookDelivery.State.DELIVERED, delivery.last_attempt_at
        elif delivery.attempts >= WEBHOOK_MAX_ATTEMPTS:
            delivery.state = WebhookDelivery.State.FAILED
        delivery.save(
            update_fields=[
                "attempts",
                "last_attempt_at",
                "last_status_code",
                "last_response",
                "last_error",
                "state",
                "delivered_at",
            ]
        )
    outcome = answer.error or f"HTTP {answer.status_code}"
    if accepted:
        logger.info("Webhook delivery %s delivered to %s (%s)", delivery.pk, endpoint.url, outcome)
        return delivery
    logger.warning(
        "Webhook delivery %s to %s: attempt %d of %d failed (%s)",
        delivery.pk,
        endpoint.url,
        delivery.attempts,
        WEBHOOK_MAX_ATTEMPTS,
        outcome,
    )
    if delivery.state == WebhookDelivery.State.FAILED:
        return delivery
    raise WebhookDeliveryFailed(f"delivery {delivery.pk}, attempt {delivery.attempts}: {outcome}")


def _refusal(delivery: WebhookDelivery, endpoint: WebhookEndpoint) -> str:
    """Why a recorded delivery must not be sent now (empty: send it)."""
    if not endpoint.active:
        return "the endpoint was deactivated before this delivery was sent"
    prepared_for = delivery.payload.get("clearance") if isinstance(delivery.payload, dict) else None
    cleared = markings_up_to(endpoint.clearance)
    if prepared_for not in cleared:
        return "the endpoint's clearance was lowered after this delivery was prepared"
    named = _named_references(delivery.payload.get("data"))
    if named and Provision.objects.filter(reference__in=named).exclude(marking__in=cleared).exists():
        return "a provision it names was marked above the endpoint's clearance after it was prepared"
    return webhook_url_problem(endpoint.url)


def _named_references(data: Any) -> set[str]:
    """The provision references an event's data names: its subject, and the provisions covering a
    capability gap (in the gap escalated from, too)."""
    if not isinstance(data, dict):
        return set()
    named = {data["reference"]} if isinstance(data.get("reference"), str) else set()
    if data.get("subject_type") == "provision" and isinstance(data.get("subject_code"), str):
        named.add(data["subject_code"])
    if isinstance(data.get("covering_provisions"), str):
        named.update(reference for reference in data["covering_provisions"].split(";") if reference)
    return named | _named_references(data.get("escalated_from"))


def webhook_url_problem(url: str) -> str:
    """Why `url` cannot receive webhooks; empty when it can.

    Only http and https; and, unless settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES, only a host whose
    every address is on the public internet: not loopback, private, link-local (cloud metadata),
    shared or reserved. A name that does not resolve now is no problem here: sending it fails and
    is retried like any unreachable receiver. Checked when an endpoint is registered and again
    before each delivery (a name may resolve elsewhere later).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "only http and https URLs can receive webhooks"
    if not parts.hostname:
        return "the URL names no host"
    if settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        return ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        resolved = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        addresses = {str(info[4][0]) for info in resolved}
    except (OSError, ValueError):  # does not resolve (now), or a malformed port
        return ""
    for address in sorted(addresses):
        if _internal_address(address):
            return (
                f"{parts.hostname} is at {address}, an internal address: webhooks go only to public "
                "addresses (set WEBHOOK_ALLOW_PRIVATE_ADDRESSES to allow a receiver on this network)"
            )
    return ""


def webhooks_resend_pending(*, limit: int = WEBHOOK_RESEND_BATCH) -> int:
    """Queue again the pending deliveries no task is working on (their task never reached the
    broker, or was lost), oldest first; returns how many. Sending twice is harmless: a delivered
    delivery is never sent again."""
    now = timezone.now()
    lost = (
        WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING)
        .filter(
            Q(last_attempt_at__isnull=True, created_at__lt=now - WEBHOOK_UNSENT_AFTER)
            | Q(last_attempt_at__lt=now - WEBHOOK_RETRY_LOST_AFTER)
        )
        # Not again while an earlier resend may still wait in a backed-up queue: each copy would
        # spend an attempt at once, without the backoff.
        .filter(Q(resent_at__isnull=True) | Q(resent_at__lt=now - WEBHOOK_RESEND_AGAIN_AFTER))
        .order_by("created_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    delivery_ids = list(lost)
    WebhookDelivery.objects.filter(pk__in=delivery_ids).update(resent_at=now)
    for delivery_id in delivery_ids:
        _queue(delivery_id)
    return len(delivery_ids)
