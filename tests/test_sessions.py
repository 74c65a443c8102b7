"""Sessions and caching: nothing the application renders is stored by browsers (pages, API answers,
exports); a session ends after SESSION_IDLE_MINUTES idle and SESSION_MAX_HOURS after signing in; password
reset exists only when an SMTP server is configured."""

from __future__ import annotations

import datetime
import re
import time

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import Client, override_settings
from django.utils import timezone

from partnership.middleware import SIGNED_IN_AT
from provisions.permissions import Reader
from provisions.services.tokens import api_token_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"  # UserFactory's


def assert_not_stored(response) -> None:
    cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"no-store", "private"} <= cache_control, response["Cache-Control"]


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/gaps/",
        "/gaps/export.csv",
        "/gaps/export.json",
        "/coverage/export.csv",
        "/api/v1/gaps/",
        "/admin/",
    ],
)
def test_nothing_behind_sign_in_is_stored_by_the_browser(client: Client, path: str) -> None:
    client.force_login(UserFactory(role="administrator", clearance="secret", is_staff=True))

    response = client.get(path)

    assert response.status_code == 200
    assert_not_stored(response)


def test_api_answers_to_a_token_are_not_stored_and_make_no_session(client: Client) -> None:
    viewer = UserFactory(role="viewer")
    _, key = api_token_create(owner=viewer, by=Reader.of(viewer), name="system")

    response = client.get("/api/v1/domains/", HTTP_AUTHORIZATION=f"Bearer {key}")

    assert response.status_code == 200
    assert_not_stored(response)
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert not Session.objects.exists()


def test_a_conditional_304_is_not_stored_either(client: Client) -> None:
    client.force_login(UserFactory(role="viewer"))
    first = client.get("/api/v1/domains/")

    again = client.get("/api/v1/domains/", HTTP_IF_NONE_MATCH=first["ETag"])

    assert again.status_code == 304
    assert_not_stored(again)


def test_the_session_expires_when_idle_and_a_request_renews_it(client: Client) -> None:
    assert settings.SESSION_COOKIE_AGE == settings.SESSION_IDLE_MINUTES * 60
    client.force_login(UserFactory(role="viewer"))
    session = Session.objects.get()
    session.expire_date = timezone.now() + datetime.timedelta(minutes=1)
    session.save(update_fields=["expire_date"])

    assert client.get("/").status_code == 200
    renewed = Session.objects.get(pk=session.pk).expire_date
    assert renewed > timezone.now() + datetime.timedelta(minutes=settings.SESSION_IDLE_MINUTES - 1)

    Session.objects.filter(pk=session.pk).update(expire_date=timezone.now() - datetime.timedelta(seconds=1))
    idle = client.get("/")
    assert idle.status_code == 302 and idle["Location"].startswith("/accounts/login/")


def test_signing_in_through_the_form_records_when(client: Client) -> None:
    user = UserFactory(username="gwen")
    before = time.time()

    response = client.post("/accounts/login/", {"username": "gwen", "password": PASSWORD})

    assert response.status_code == 302
    assert before <= client.session[SIGNED_IN_AT] <= time.time()
    assert client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.parametrize(("path", "refused"), [("/", 302), ("/api/v1/domains/", 403)])
def test_a_session_ends_at_its_absolute_lifetime_however_active(
    client: Client, path: str, refused: int
) -> None:
    client.force_login(UserFactory(role="viewer"))
    assert client.get(path).status_code == 200
    session = client.session
    almost = time.time() - settings.SESSION_MAX_HOURS * 3600 + 60
    session[SIGNED_IN_AT] = almost
    session.save()
    assert client.get(path).status_code == 200  # still within its lifetime, and active

    session = client.session
    session[SIGNED_IN_AT] = almost - 120
    session.save()
    response = client.get(path)

    assert response.status_code in {refused, 401}
    if refused == 302:
        assert response["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session


def test_without_an_smtp_server_password_reset_does_not_exist(client: Client) -> None:
    assert settings.PASSWORD_RESET_ENABLED is False  # no EMAIL_HOST in the test environment

    assert client.get("/accounts/password_reset/").status_code == 404
    assert client.post("/accounts/password_reset/", {"email": "a@example.org"}).status_code == 404
    assert "password_reset" not in client.get("/accounts/login/").content.decode()


@override_settings(PASSWORD_RESET_ENABLED=True)
def test_with_an_smtp_server_password_reset_sends_a_link_that_sets_a_new_password(client: Client) -> None:
    UserFactory(username="huw", email="huw@example.org")
    assert "/accounts/password_reset/" in client.get("/accounts/login/").content.decode()

    sent = client.post("/accounts/password_reset/", {"email": "huw@example.org"})

    assert sent.status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["huw@example.org"]
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body)
    assert link is not None, mail.outbox[0].body
    form = client.get(link.group(1), follow=True)
    assert form.status_code == 200 and "Set a new password" in form.content.decode()
    new_password = "a brand new passphrase 42"
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password}
    )
    assert done.status_code == 302
    signed = Client().post("/accounts/login/", {"username": "huw", "password": new_password})
    assert signed.status_code == 302


def test_a_burst_of_requests_writes_the_session_once(client: Client, django_assert_num_queries) -> None:
    """The idle timeout is renewed at most once a minute: not a session write on every page."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(UserFactory(role="viewer"))
    writes = []
    for _ in range(3):
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/search/?q=x").status_code == 200
        writes.append(sum('UPDATE "django_session"' in query["sql"] for query in queries.captured_queries))
    assert writes == [1, 0, 0]
