"""API tokens (provisions.services.tokens): nobody obtains through a token more than they may see."""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from provisions.models import ApiToken, Marking
from provisions.permissions import Reader
from provisions.services.tokens import api_token_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

MARKINGS = list(Marking)


def administrator(clearance: Marking) -> object:
    return UserFactory(role="administrator", clearance=clearance, is_staff=True)


@pytest.mark.parametrize("actor_clearance", MARKINGS, ids=str)
@pytest.mark.parametrize("owner_clearance", MARKINGS, ids=str)
def test_an_administrator_makes_a_token_only_for_a_user_cleared_no_higher(
    actor_clearance: Marking, owner_clearance: Marking
) -> None:
    actor = administrator(actor_clearance)
    owner = UserFactory(role="negotiator", clearance=owner_clearance)
    if MARKINGS.index(owner_clearance) > MARKINGS.index(actor_clearance):
        with pytest.raises(PermissionDenied, match="cleared above you"):
            api_token_create(owner=owner, by=Reader.of(actor), name="briefing tool")
        assert not ApiToken.objects.exists()
        return
    token, _ = api_token_create(owner=owner, by=Reader.of(actor), name="briefing tool")
    # Written on the token: the lower of the two clearances, which here is the owner's.
    assert token.clearance == owner_clearance


def test_a_token_made_by_another_keeps_its_clearance_when_its_user_is_cleared_higher_later() -> None:
    actor = administrator(Marking.OFFICIAL_SENSITIVE)
    owner = UserFactory(role="negotiator", clearance=Marking.OFFICIAL_SENSITIVE)
    token, _ = api_token_create(owner=owner, by=Reader.of(actor), name="script")
    owner.clearance = Marking.SECRET
    owner.save(update_fields=["clearance"])
    token.refresh_from_db()
    assert token.clearance == Marking.OFFICIAL_SENSITIVE


def test_a_superuser_counts_as_cleared_to_secret() -> None:
    actor = administrator(Marking.OFFICIAL_SENSITIVE)
    superuser = UserFactory(clearance=Marking.OFFICIAL, is_superuser=True, is_staff=True)
    with pytest.raises(PermissionDenied, match="cleared above you"):
        api_token_create(owner=superuser, by=Reader.of(actor), name="root's script")


def test_a_token_for_another_cannot_be_cleared_above_the_administrator() -> None:
    actor = administrator(Marking.OFFICIAL)
    owner = UserFactory(role="viewer", clearance=Marking.OFFICIAL)
    with pytest.raises(PermissionDenied, match="above its user or above you"):
        api_token_create(owner=owner, by=Reader.of(actor), name="x", clearance=Marking.SECRET)
    assert not ApiToken.objects.exists()


def test_only_administrators_make_tokens_for_others() -> None:
    analyst = UserFactory(role="analyst", clearance=Marking.SECRET)
    owner = UserFactory(role="viewer", clearance=Marking.OFFICIAL)
    with pytest.raises(PermissionDenied, match="only administrators"):
        api_token_create(owner=owner, by=Reader.of(analyst), name="x")


def test_a_token_asked_without_an_expiry_lives_the_default_and_a_longer_one_may_be_asked() -> None:
    user = UserFactory(role="viewer")
    token, _ = api_token_create(owner=user, by=Reader.of(user), name="forever?")
    longer, _ = api_token_create(
        owner=user,
        by=Reader.of(user),
        name="a year",
        expires_at=timezone.now() + datetime.timedelta(days=300),
    )

    expected = timezone.now() + datetime.timedelta(days=settings.API_TOKEN_DEFAULT_LIFETIME_DAYS)
    assert settings.API_TOKEN_DEFAULT_LIFETIME_DAYS == 90
    assert token.expires_at is not None
    assert abs((token.expires_at - expected).total_seconds()) < 60
    assert longer.expires_at is not None and longer.expires_at - token.expires_at > datetime.timedelta(
        days=200
    )


def test_a_user_holds_at_most_the_configured_number_of_usable_tokens(client, settings) -> None:
    from provisions.services.tokens import api_token_revoke

    settings.API_TOKENS_PER_USER = 3
    user = UserFactory(role="viewer")
    made = [api_token_create(owner=user, by=Reader.of(user), name=f"system {n}") for n in range(3)]

    client.force_login(user)
    refused = client.post("/api/v1/tokens/", {"name": "one more"}, content_type="application/json")
    assert refused.status_code == 400
    assert "holds 3 usable tokens" in refused.json()["error"]["field_errors"]["name"][0]
    assert user.api_tokens.count() == 3

    api_token_revoke(token=made[0][0], by=Reader.of(user))
    assert (
        client.post("/api/v1/tokens/", {"name": "one more"}, content_type="application/json").status_code
        == 201
    )


@pytest.mark.parametrize("years", [2, 7973])  # 2028, and the year 9999 of the report
def test_a_token_expiring_beyond_the_maximum_is_refused(years: int) -> None:

    user = UserFactory(role="viewer")
    with pytest.raises(ValidationError) as refused:
        api_token_create(
            owner=user,
            by=Reader.of(user),
            name="too long",
            expires_at=timezone.now() + datetime.timedelta(days=365 * years),
        )
    assert "at most 365 days" in refused.value.message_dict["expires_at"][0]
    assert not ApiToken.objects.exists()


def test_a_token_made_without_expiry_before_the_maximum_existed_stops_working_at_that_age() -> None:

    user = UserFactory(role="viewer")
    token, key = api_token_create(owner=user, by=Reader.of(user), name="legacy")
    ApiToken.objects.filter(pk=token.pk).update(
        expires_at=None, created_at=timezone.now() - datetime.timedelta(days=364)
    )
    assert Client().get("/api/v1/domains/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200

    ApiToken.objects.filter(pk=token.pk).update(created_at=timezone.now() - datetime.timedelta(days=366))
    assert Client().get("/api/v1/domains/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401


def test_the_api_refuses_a_token_expiring_in_9999(client) -> None:
    user = UserFactory(role="viewer")
    client.force_login(user)

    made = client.post(
        "/api/v1/tokens/",
        {"name": "x", "expires_at": "9999-12-31T00:00:00Z"},
        content_type="application/json",
    )

    assert made.status_code == 400
    assert "at most 365 days" in made.json()["error"]["field_errors"]["expires_at"][0]


def test_the_admin_form_refuses_a_token_expiring_beyond_the_maximum(client) -> None:
    client.force_login(UserFactory(role="administrator", clearance="secret", is_staff=True))
    system = UserFactory(role="viewer")

    response = client.post(
        "/admin/provisions/apitoken/add/",
        {
            "user": system.pk,
            "name": "Briefing tool",
            "clearance": "",
            "expires_at_0": "9999-12-31",
            "expires_at_1": "00:00:00",
        },
    )

    assert response.status_code == 200  # the form again, with the error
    assert "A token may last at most 365 days" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_a_tokens_last_use_is_written_to_the_minute_not_on_every_request(client: Client) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    owner = UserFactory(role="viewer")
    token, key = api_token_create(owner=owner, by=Reader.system(), name="integration")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}

    assert client.get("/api/v1/domains/", **headers).status_code == 200
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    with CaptureQueriesContext(connection) as within_a_minute:
        client.get("/api/v1/domains/", **headers)
    assert not [query for query in within_a_minute.captured_queries if query["sql"].startswith("UPDATE")]
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - datetime.timedelta(minutes=2))
    client.get("/api/v1/domains/", **headers)
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first
