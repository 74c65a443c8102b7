"""API tokens (provisions.services.tokens): nobody obtains through a token more than they may see."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

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
