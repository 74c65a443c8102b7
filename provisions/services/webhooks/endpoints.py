"""Registering webhook endpoints: administrators only, never cleared above themselves, and only at
addresses that may receive webhooks (provisions.services.webhooks.transport)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from provisions.models import WebhookEndpoint, WebhookEvent
from provisions.permissions import Reader, can_administer, ensure
from provisions.services.webhooks.transport import webhook_url_problem


def webhook_endpoint_save(*, endpoint: WebhookEndpoint, by: Reader) -> WebhookEndpoint:
    """Register an endpoint or change one; ValidationError names what is wrong (nothing is saved)."""
    ensure(can_administer(by), "only administrators register webhook endpoints")
    ensure(by.sees(endpoint.clearance), "an endpoint cannot be cleared above the one registering it")
    problems: dict[str, str] = {}
    unknown = sorted(set(endpoint.events or ()) - set(WebhookEvent.values))
    if unknown or not endpoint.events:
        problems["events"] = f"choose events among {', '.join(WebhookEvent.values)}" + (
            f" (unknown: {', '.join(unknown)})" if unknown else ""
        )
    problem = webhook_url_problem(endpoint.url)
    if problem:
        problems["url"] = problem[0].upper() + problem[1:] + "."
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        if endpoint.pk is None:
            endpoint.created_by = by.user
        endpoint.full_clean()
        endpoint.save()
    return endpoint
