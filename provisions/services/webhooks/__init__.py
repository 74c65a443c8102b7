"""Webhooks: telling other systems of status moves and gap changes, up to each endpoint's clearance,
as Standard Webhooks (https://www.standardwebhooks.com).

An event becomes one `WebhookDelivery` row per active endpoint subscribed to it and cleared for its
subject, written in the transaction that caused it (an outbox: a broker outage loses nothing, the
periodic job sends it later); the task that POSTs it is queued once that transaction commits.
Each attempt is signed and recorded; a refused one is tried again on WEBHOOK_RETRY_SCHEDULE (about
a day). Delivery is at least once, so receivers de-duplicate on `webhook-id`.

Receivers verify `webhook-signature` (`v1,<base64>`, the HMAC-SHA256 with the endpoint's secret of
`f"{webhook-id}.{webhook-timestamp}.{body}"`) and refuse stale timestamps, with any Standard
Webhooks verifier, e.g. `standardwebhooks.Webhook(secret).verify(body, headers)`.
"""

from provisions.services.webhooks.delivery import (
    WEBHOOK_MAX_ATTEMPTS,
    WEBHOOK_RETRY_SCHEDULE,
    webhook_deliver,
    webhook_headers,
    webhook_secret_new,
    webhooks_send_due,
)
from provisions.services.webhooks.events import (
    event_payload,
    events_record_gap_changes,
    events_record_provision_changed,
    events_record_status_change,
)
from provisions.services.webhooks.transport import WEBHOOK_TIMEOUT_SECONDS, webhook_url_problem

__all__ = [
    "WEBHOOK_MAX_ATTEMPTS",
    "WEBHOOK_RETRY_SCHEDULE",
    "WEBHOOK_TIMEOUT_SECONDS",
    "event_payload",
    "events_record_gap_changes",
    "events_record_provision_changed",
    "events_record_status_change",
    "webhook_deliver",
    "webhook_headers",
    "webhook_secret_new",
    "webhook_url_problem",
    "webhooks_send_due",
]
