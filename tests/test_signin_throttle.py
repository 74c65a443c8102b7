"""Sign-in throttling (django-axes, the real backend and middleware): after SIGNIN_FAILURE_LIMIT wrong
passwords in a row, for one username or from one address, both sign-in pages refuse even the right
password until the lockout ends or an administrator unlocks; and an address sending bad API tokens
gets 429 in the API's error shape."""

from __future__ import annotations

import datetime
import io

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.db.models import F
from django.test import Client, override_settings

from provisions.permissions import Reader
from provisions.services.tokens import api_token_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"  # UserFactory's
LIMIT = settings.SIGNIN_FAILURE_LIMIT
SIGN_IN_PAGES = ["/accounts/login/", "/admin/login/"]


def sign_in(page: str, username: str, password: str, address: str = "192.0.2.10") -> tuple[int, Client]:
    """A fresh browser signing in through the page's form; the status, and the client to look further."""
    client = Client(REMOTE_ADDR=address)
    response = client.post(page, {"username": username, "password": password, "next": "/"})
    return response.status_code, client


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def lockout_ends() -> None:
    """As if SIGNIN_LOCKOUT_MINUTES had passed since the failures."""
    AccessAttempt.objects.update(
        attempt_time=F("attempt_time")
        - datetime.timedelta(minutes=settings.SIGNIN_LOCKOUT_MINUTES, seconds=1)
    )


def test_the_default_limit_locks_well_before_the_41st_attempt() -> None:
    assert 1 <= LIMIT <= 40
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"


@pytest.mark.parametrize("page", SIGN_IN_PAGES)
def test_after_the_limit_the_right_password_is_refused_until_the_lockout_ends(page: str) -> None:
    user = UserFactory(username="amira", role="administrator", is_staff=True)
    for _ in range(LIMIT - 1):
        status, _client = sign_in(page, user.username, "wrong password")
        assert status == 200  # the form again, with its error

    status, client = sign_in(page, user.username, "wrong password")  # the limit-th failure locks
    assert status == 429

    status, client = sign_in(page, user.username, PASSWORD)
    assert status == 429 and not signed_in(client)
    page_text = client.post(page, {"username": user.username, "password": PASSWORD}).content.decode()
    assert "Signing in is locked for now" in page_text
    assert "site-header" in page_text  # the site's own page (base.html), not a bare message
    assert f"{settings.SIGNIN_LOCKOUT_MINUTES} minutes" in page_text

    lockout_ends()
    status, client = sign_in(page, user.username, PASSWORD)
    assert status == 302 and signed_in(client)


@pytest.mark.parametrize("page", SIGN_IN_PAGES)
def test_one_address_trying_many_usernames_is_locked_out(page: str) -> None:
    user = UserFactory(username="bilal", role="administrator", is_staff=True)
    for attempt in range(LIMIT):
        sign_in(page, f"guess-{attempt}", "wrong password", address="198.51.100.7")

    assert sign_in(page, user.username, PASSWORD, address="198.51.100.7")[0] == 429
    status, client = sign_in(page, user.username, PASSWORD, address="198.51.100.8")  # elsewhere: fine
    assert status == 302 and signed_in(client)


def test_one_username_tried_from_many_addresses_is_locked_out() -> None:
    user = UserFactory(username="carys")
    for attempt in range(LIMIT):
        sign_in("/accounts/login/", user.username, "wrong password", address=f"203.0.113.{attempt + 1}")

    status, client = sign_in("/accounts/login/", user.username, PASSWORD, address="203.0.113.200")
    assert status == 429 and not signed_in(client)


def test_signing_in_clears_the_count_so_only_failures_in_a_row_lock() -> None:
    user = UserFactory(username="dai")
    for _ in range(2):
        for _ in range(LIMIT - 1):
            sign_in("/accounts/login/", user.username, "wrong password")
        status, client = sign_in("/accounts/login/", user.username, PASSWORD)
        assert status == 302 and signed_in(client)


@pytest.mark.parametrize(
    ("command", "argument"),
    [("axes_reset_username", "eira"), ("axes_reset_ip", "192.0.2.10"), ("axes_reset", None)],
)
def test_an_administrator_unlocks_with_a_command(command: str, argument: str | None) -> None:
    user = UserFactory(username="eira")
    for _ in range(LIMIT):
        sign_in("/accounts/login/", user.username, "wrong password")
    assert sign_in("/accounts/login/", user.username, PASSWORD)[0] == 429

    call_command(command, *([argument] if argument else []), stdout=io.StringIO())

    status, client = sign_in("/accounts/login/", user.username, PASSWORD)
    assert status == 302 and signed_in(client)


@pytest.mark.parametrize("unlocker", ["superuser", "administrator"])
def test_an_administrator_unlocks_in_the_admin(unlocker: str) -> None:
    user = UserFactory(username="ffion")
    for _ in range(LIMIT):
        sign_in("/accounts/login/", user.username, "wrong password")
    attempt = AccessAttempt.objects.get(username="ffion")
    root = Client()
    if unlocker == "superuser":
        root.force_login(UserFactory(username="root", is_staff=True, is_superuser=True, clearance="secret"))
    else:  # the administrator role's group holds the lockouts' permissions (provisions/roles.py)
        root.force_login(
            UserFactory(username="admin", role="administrator", is_staff=True, clearance="official")
        )
    listed = root.get("/admin/axes/accessattempt/")
    assert listed.status_code == 200 and "ffion" in listed.content.decode()

    root.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"},
    )

    assert not AccessAttempt.objects.filter(username="ffion").exists()
    status, client = sign_in("/accounts/login/", user.username, PASSWORD, address="192.0.2.99")
    assert status == 302 and signed_in(client)


@override_settings(API_TOKEN_FAILURE_LIMIT=3)
def test_an_address_sending_bad_tokens_gets_429_in_the_api_error_shape() -> None:
    viewer = UserFactory(role="viewer")
    _, key = api_token_create(owner=viewer, by=Reader.of(viewer), name="good")
    attacker = Client(REMOTE_ADDR="192.0.2.66")
    for attempt in range(3):
        refused = attacker.get("/api/v1/domains/", HTTP_AUTHORIZATION=f"Bearer spt_guess{attempt}")
        assert refused.status_code == 401

    throttled = attacker.get("/api/v1/domains/", HTTP_AUTHORIZATION="Bearer spt_guess-again")
    assert throttled.status_code == 429
    error = throttled.json()["error"]
    assert error["status"] == 429 and error["code"] == "throttled"
    assert "too many bad tokens" in error["message"]
    assert "Retry-After" in throttled
    # The address is locked out, whatever it sends; another address is not.
    assert attacker.get("/api/v1/domains/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 429
    elsewhere = Client(REMOTE_ADDR="192.0.2.67")
    assert elsewhere.get("/api/v1/domains/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200


@override_settings(API_TOKEN_FAILURE_LIMIT=3, BEHIND_TLS_PROXY=True)
def test_behind_a_proxy_the_address_is_the_one_the_proxy_saw() -> None:
    proxy = Client(REMOTE_ADDR="10.0.0.2")
    for attempt in range(3):
        # The client forges the start of X-Forwarded-For; the proxy appends what it saw last.
        proxy.get(
            "/api/v1/domains/",
            HTTP_AUTHORIZATION=f"Bearer spt_guess{attempt}",
            HTTP_X_FORWARDED_FOR=f"1.2.3.{attempt}, 192.0.2.70",
        )
    blocked = proxy.get(
        "/api/v1/domains/", HTTP_AUTHORIZATION="Bearer spt_x", HTTP_X_FORWARDED_FOR="192.0.2.70"
    )
    other = proxy.get(
        "/api/v1/domains/", HTTP_AUTHORIZATION="Bearer spt_x", HTTP_X_FORWARDED_FOR="192.0.2.71"
    )
    assert (blocked.status_code, other.status_code) == (429, 401)
