"""`Idempotency-Key` on the API's POSTs: a repeat gets the first answer; the same key with another
request is a 422; keys are the caller's own and last a day."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from provisions.models import ApiToken, IdempotentRequest, Marking, Provision, Status, StatusChange
from provisions.services.idempotency import idempotency_keys_purge
from tests.factories import DomainFactory, ProvisionFactory, UserFactory
from tests.test_api import bearer

pytestmark = pytest.mark.django_db

MOVE = "/api/v1/provisions/SP-1/transition/"


@pytest.fixture
def negotiator() -> Any:
    domain = DomainFactory()
    ProvisionFactory(reference="SP-1", domain=domain, status=Status.PROPOSED, marking=Marking.OFFICIAL)
    return UserFactory(role="negotiator", domains=[domain])


def post(client: Client, headers: dict[str, str], body: dict[str, Any], key: str | None) -> Any:
    extra = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(MOVE, body, content_type="application/json", **headers, **extra)


def test_a_post_sent_again_with_its_key_gets_the_first_answer_and_is_done_once(
    client: Client, negotiator: Any
) -> None:
    headers = bearer(negotiator)
    move = {"to": "under_negotiation", "note": "Opened"}

    first = post(client, headers, move, "move-1")
    again = post(client, headers, move, "move-1")
    without = post(client, headers, move, None)

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert again["ETag"] == first["ETag"]
    assert "Idempotent-Replayed" not in first
    assert (
        StatusChange.objects.filter(provision__reference="SP-1", to_status="under_negotiation").count() == 1
    )
    assert without.status_code == 409  # without a key, the repeat is a repeat: the lifecycle refuses it


def test_the_same_key_with_another_request_is_a_422_and_nothing_is_done(
    client: Client, negotiator: Any
) -> None:
    headers = bearer(negotiator)
    post(client, headers, {"to": "under_negotiation", "note": "Opened"}, "move-1")

    reused = post(client, headers, {"to": "agreed", "note": "Agreed"}, "move-1")

    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert Provision.objects.get(reference="SP-1").status == "under_negotiation"


def test_keys_are_each_callers_own_and_last_a_day(client: Client, negotiator: Any) -> None:
    move = {"to": "under_negotiation", "note": "Opened"}
    assert post(client, bearer(negotiator), move, "k").status_code == 200
    # Another token of the same user is another caller: its key "k" is its own.
    assert (
        post(client, bearer(negotiator), move, "k").status_code == 409
    )  # runs, and the lifecycle refuses it

    IdempotentRequest.objects.update(created_at=timezone.now() - datetime.timedelta(hours=25))
    assert idempotency_keys_purge() == 2
    assert not IdempotentRequest.objects.exists()


def test_a_key_whose_first_request_still_runs_is_a_409_and_a_bad_key_a_400(
    client: Client, negotiator: Any
) -> None:
    headers = bearer(negotiator)
    move = {"to": "under_negotiation", "note": "Opened"}
    first = post(client, headers, move, "k")
    IdempotentRequest.objects.update(status_code=None)  # as if the first were still running

    running = post(
        client,
        headers,
        move,
        "k",
    )
    too_long = post(client, headers, move, "k" * 256)

    assert first.status_code == 200
    assert (running.status_code, running.json()["error"]["code"]) == (409, "idempotency_key_in_use")
    assert too_long.status_code == 400 and "Idempotency-Key" in too_long.json()["error"]["field_errors"]
    problem = post(client, {**headers, "HTTP_ACCEPT": "application/problem+json"}, {"to": "agreed"}, "k")
    assert problem.json()["type"] == "urn:security-partnership-tracker:problem:idempotency_key_reused"


def test_a_new_tokens_answer_is_never_kept(client: Client) -> None:
    user = UserFactory(role="viewer")
    client.force_login(user)
    made = [
        client.post(
            "/api/v1/tokens/", {"name": "t"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k"
        )
        for _ in range(2)
    ]
    assert [answer.status_code for answer in made] == [201, 201]
    assert made[0].json()["key"] != made[1].json()["key"] and ApiToken.objects.filter(user=user).count() == 2
    assert not IdempotentRequest.objects.exists()
