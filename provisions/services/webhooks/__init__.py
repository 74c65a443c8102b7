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

from provisions.services.webhooks.delivery import (
    WEBHOOK_MAX_ATTEMPTS,
    WEBHOOK_RETRY_BACKOFF,
    WEBHOOK_RETRY_BACKOFF_MAX,
    WebhookDeliveryFailed,
    webhook_deliver,
    webhook_signature,
    webhook_signature_verify,
    webhooks_resend_pending,
)
from provisions.services.webhooks.events import webhooks_enqueue_gap_changes, webhooks_enqueue_status_change
from provisions.services.webhooks.transport import WEBHOOK_TIMEOUT_SECONDS, webhook_url_problem

__all__ = [
    "WEBHOOK_MAX_ATTEMPTS",
    "WEBHOOK_RETRY_BACKOFF",
    "WEBHOOK_RETRY_BACKOFF_MAX",
    "WEBHOOK_TIMEOUT_SECONDS",
    "WebhookDeliveryFailed",
    "webhook_deliver",
    "webhook_signature",
    "webhook_signature_verify",
    "webhook_url_problem",
    "webhooks_enqueue_gap_changes",
    "webhooks_enqueue_status_change",
    "webhooks_resend_pending",
]
