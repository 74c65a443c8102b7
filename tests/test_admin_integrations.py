"""The admin pages for other systems: API tokens and webhook endpoints (administrators only)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone

from provisions.models import ApiToken, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from provisions.permissions import Reader
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def administrator_client(client: Client) -> Client:
    client.force_login(UserFactory(username="root", role="administrator", clearance="secret", is_staff=True))
    return client


def test_an_administrator_creates_a_token_whose_key_is_shown_once_and_works(administrator_client) -> None:
    system = UserFactory(username="briefing-tool", role="viewer")
    response = administrator_client.post(
        "/admin/provisions/apitoken/add/",
        {"user": system.pk, "name": "Briefing tool", "clearance": "", "expires_at_0": "", "expires_at_1": ""},
        follow=True,
    )
    page = response.content.decode()
    key = re.search(r"shown this once: (spt_[\w-]+)", page)
    assert key is not None, page[:2000]
    token = ApiToken.objects.get()
    assert token.user == system and token.key_hash != key.group(1)
    api = Client().get("/api/v1/domains/", HTTP_AUTHORIZATION=f"Bearer {key.group(1)}")
    assert api.status_code == 200
    assert (
        key.group(1)
        not in administrator_client.get(f"/admin/provisions/apitoken/{token.pk}/change/").content.decode()
    )


def test_an_administrator_revokes_tokens(administrator_client) -> None:
    from provisions.services.tokens import api_token_create

    system = UserFactory(role="viewer")
    token, key = api_token_create(owner=system, by=Reader.of(system), name="old")
    administrator_client.post(
        "/admin/provisions/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}
    )
    assert Client().get("/api/v1/domains/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401


def test_a_webhook_endpoint_takes_only_known_events(administrator_client) -> None:
    bad = administrator_client.post(
        "/admin/provisions/webhookendpoint/add/",
        {
            "url": "https://receiver.example/hook",
            "events": ["gap.exploded"],
            "clearance": "official",
        },
    )
    assert bad.status_code == 200 and not WebhookEndpoint.objects.exists()
    administrator_client.post(
        "/admin/provisions/webhookendpoint/add/",
        {
            "url": "https://receiver.example/hook",
            "events": ["gap.opened", "provision.status_changed"],
            "secret": "chosen by hand",  # not a field: the secret is made, never typed
            "clearance": "official",
            "active": "on",
        },
    )
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == ["gap.opened", "provision.status_changed"]
    assert endpoint.created_by.username == "root"
    assert endpoint.secret.startswith("whsec_") and len(endpoint.secret) > 40
    page = administrator_client.get(
        f"/admin/provisions/webhookendpoint/{endpoint.pk}/change/"
    ).content.decode()
    assert endpoint.secret in page  # administrators read it there, to give it to the receiver's owner


def test_an_administrator_rotates_a_secret_and_sends_a_delivery_again(administrator_client) -> None:
    endpoint = WebhookEndpoint.objects.create(
        url="https://receiver.invalid/hook", events=["gap.opened"], secret="whsec_MTIz", clearance="official"
    )
    administrator_client.post(
        "/admin/provisions/webhookendpoint/", {"action": "rotate_secret", "_selected_action": [endpoint.pk]}
    )
    endpoint.refresh_from_db()
    assert endpoint.previous_secret == "whsec_MTIz" and endpoint.secret.startswith("whsec_")
    assert endpoint.previous_secret_expires_at > timezone.now()

    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event="gap.opened",
        state="failed",
        payload={"id": "e-1", "clearance": "official", "data": {}},
    )
    administrator_client.post(
        "/admin/provisions/webhookdelivery/", {"action": "redeliver", "_selected_action": [delivery.pk]}
    )
    again = WebhookDelivery.objects.exclude(pk=delivery.pk).get()
    assert (again.payload, again.state) == (delivery.payload, "pending")


@pytest.mark.parametrize(
    "url, error",
    [
        ("http://127.0.0.1:8000/hooks", "127.0.0.1, an internal address"),
        ("http://169.254.169.254/latest/", "169.254.169.254, an internal address"),
        ("ftp://receiver.example/", "Only http and https URLs can receive webhooks"),
    ],
)
def test_a_webhook_endpoint_at_an_internal_address_is_refused(
    administrator_client, url: str, error: str
) -> None:
    form = {"url": url, "events": ["gap.opened"], "secret": "s", "clearance": "official", "active": "on"}
    response = administrator_client.post("/admin/provisions/webhookendpoint/add/", form)
    assert response.status_code == 200 and not WebhookEndpoint.objects.exists()
    assert error in response.content.decode()


def test_a_webhook_deliverys_page_lists_every_attempt(administrator_client) -> None:
    endpoint = WebhookEndpoint.objects.create(
        url="https://receiver.example/hook", events=["gap.opened"], secret="s"
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event="gap.opened", payload={"clearance": "official"}, attempts=2
    )
    for number, code, answer in [(1, 503, "busy, try later"), (2, 200, "thanks")]:
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            sent_at=timezone.now(),
            duration_ms=12,
            status_code=code,
            response=answer,
        )
    page = administrator_client.get(f"/admin/provisions/webhookdelivery/{delivery.pk}/change/")
    assert page.status_code == 200
    assert "busy, try later" in page.content.decode() and "thanks" in page.content.decode()


@pytest.mark.parametrize("role", ["viewer", "analyst", "negotiator"])
@pytest.mark.parametrize("page", ["apitoken", "webhookendpoint", "webhookdelivery"])
def test_only_administrators_reach_tokens_and_webhooks(client: Client, role: str, page: str) -> None:
    client.force_login(UserFactory(role=role, clearance="secret", is_staff=True))
    assert client.get(f"/admin/provisions/{page}/").status_code == 403


@pytest.fixture
def official_administrator(client: Client) -> Client:
    client.force_login(UserFactory(username="low", role="administrator", clearance="official", is_staff=True))
    return client


def test_an_administrator_cannot_clear_an_endpoint_above_their_own_clearance(official_administrator) -> None:
    form = {"url": "https://8.8.8.8/hook", "events": ["gap.opened"], "secret": "s", "active": "on"}
    add = "/admin/provisions/webhookendpoint/add/"
    refused = official_administrator.post(add, {**form, "clearance": "secret"})
    assert refused.status_code == 200 and not WebhookEndpoint.objects.exists()
    assert "Select a valid choice" in refused.content.decode()
    assert official_administrator.post(add, {**form, "clearance": "official"}).status_code == 302
    assert WebhookEndpoint.objects.get().clearance == "official"


def test_an_administrator_sees_only_deliveries_and_endpoints_up_to_their_clearance(
    official_administrator,
) -> None:
    endpoint = WebhookEndpoint.objects.create(url="https://8.8.8.8/hook", events=["gap.opened"], secret="s")
    secret_endpoint = WebhookEndpoint.objects.create(
        url="https://8.8.4.4/hook", events=["gap.opened"], secret="s", clearance="secret"
    )
    official = WebhookDelivery.objects.create(
        endpoint=endpoint, event="gap.opened", payload={"clearance": "official"}
    )
    secret = WebhookDelivery.objects.create(
        endpoint=secret_endpoint,
        event="gap.opened",
        payload={"clearance": "secret", "data": {"title": "Nightjar"}},
    )
    listed = official_administrator.get("/admin/provisions/webhookdelivery/")
    assert [row.pk for row in listed.context["cl"].result_list] == [official.pk]
    assert (
        official_administrator.get(f"/admin/provisions/webhookdelivery/{secret.pk}/change/").status_code
        == 302
    )
    endpoints = official_administrator.get("/admin/provisions/webhookendpoint/")
    assert [row.pk for row in endpoints.context["cl"].result_list] == [endpoint.pk]


def test_an_administrator_cannot_raise_a_clearance_above_their_own_nor_change_a_higher_user(
    official_administrator,
) -> None:
    me = UserFactory._meta.model.objects.get(username="low")
    someone = UserFactory(role="viewer", clearance="official")
    higher = UserFactory(role="viewer", clearance="secret")
    page = official_administrator.get(f"/admin/provisions/user/{me.pk}/change/").content.decode()
    assert 'value="secret"' not in page and 'name="is_superuser"' not in page
    for user in (me, someone):
        form = (
            official_administrator.get(f"/admin/provisions/user/{user.pk}/change/").context["adminform"].form
        )
        data = {
            **form.initial,
            "clearance": "secret",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        }
        data = {key: value for key, value in data.items() if value is not None and key != "password"}
        data["groups"] = [group.pk for group in user.groups.all()]
        data["domains"] = []
        data.pop("last_login", None)
        url = f"/admin/provisions/user/{user.pk}/change/"
        refused = official_administrator.post(url, data)
        assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
        accepted = official_administrator.post(
            url, {**data, "clearance": "official", "first_name": "Renamed"}
        )
        assert accepted.status_code == 302, accepted.context["adminform"].form.errors
        user.refresh_from_db()
        assert (user.clearance, user.first_name) == ("official", "Renamed")
    # A user cleared above them: shown read-only, never changed, and no new password for them.
    view = official_administrator.get(f"/admin/provisions/user/{higher.pk}/change/")
    assert view.status_code == 200 and 'name="clearance"' not in view.content.decode()
    assert official_administrator.post(f"/admin/provisions/user/{higher.pk}/change/", {}).status_code == 403
    password = f"/admin/provisions/user/{higher.pk}/password/"
    assert official_administrator.get(password).status_code == 403
    official_administrator.post(password, {"password1": "taken-over-1", "password2": "taken-over-1"})
    higher.refresh_from_db()
    assert not higher.check_password("taken-over-1")


def test_an_administrator_sets_the_gap_rules_thresholds_and_a_full_scan_is_asked_for(
    administrator_client, django_capture_on_commit_callbacks
) -> None:
    from provisions.models import GapRuleThresholds, ScanRequest

    add = "/admin/provisions/gaprulethresholds/add/"
    form = administrator_client.get(add).context["adminform"].form
    assert form.initial == {
        "secured_status": "agreed",
        "warning_days": 180,
        "urgent_days": 30,
        "stall_days": 60,
    }

    refused = administrator_client.post(
        add, {"secured_status": "agreed", "warning_days": 20, "urgent_days": 30, "stall_days": 60}
    )
    assert (
        refused.status_code == 200
        and "Urgent must be no more days away than warning." in refused.content.decode()
    )
    assert not GapRuleThresholds.objects.exists()
    suspended = administrator_client.post(
        add, {"secured_status": "suspended", "warning_days": 90, "urgent_days": 30, "stall_days": 60}
    )
    assert suspended.status_code == 200 and not GapRuleThresholds.objects.exists()

    with django_capture_on_commit_callbacks(execute=False):
        saved = administrator_client.post(
            add, {"secured_status": "signed", "warning_days": 90, "urgent_days": 14, "stall_days": 45}
        )
    assert saved.status_code == 302
    thresholds = GapRuleThresholds.objects.get()
    assert (
        thresholds.secured_status,
        thresholds.warning_days,
        thresholds.urgent_days,
        thresholds.stall_days,
    ) == (
        "signed",
        90,
        14,
        45,
    )
    assert thresholds.updated_by.username == "root"
    assert ScanRequest.objects.filter(full=True).exists()
    assert administrator_client.get(add).status_code == 403  # one row: change it, do not add another


def test_only_administrators_set_the_thresholds(client: Client) -> None:
    from django.core.exceptions import PermissionDenied

    from provisions.services.scans import gap_thresholds_set

    analyst = UserFactory(role="analyst", clearance="secret", is_staff=True)
    client.force_login(analyst)
    assert client.get("/admin/provisions/gaprulethresholds/").status_code == 403
    with pytest.raises(PermissionDenied):
        gap_thresholds_set(
            by=Reader.of(analyst), secured_status="agreed", warning_days=180, urgent_days=30, stall_days=60
        )


@pytest.fixture
def sensitive_administrator(client: Client) -> Client:
    client.force_login(
        UserFactory(username="os-admin", role="administrator", clearance="official_sensitive", is_staff=True)
    )
    return client


def token_form(user_pk: int, clearance: str = "") -> dict[str, object]:
    dates = {"expires_at_0": "", "expires_at_1": ""}
    return {"user": user_pk, "name": "Mine now", "clearance": clearance, **dates}


def test_an_administrator_below_secret_cannot_make_a_token_for_a_secret_user(sensitive_administrator) -> None:
    """The critical hole: a blank clearance meant "as cleared as its owner", SECRET here."""
    secret_user = UserFactory(username="secret-negotiator", role="negotiator", clearance="secret")
    response = sensitive_administrator.post("/admin/provisions/apitoken/add/", token_form(secret_user.pk))
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert "shown this once" not in response.content.decode()
    assert not ApiToken.objects.exists()


def test_a_token_an_administrator_makes_is_cleared_no_higher_than_they_are(sensitive_administrator) -> None:
    owner = UserFactory(username="tool", role="viewer", clearance="official_sensitive")
    refused = sensitive_administrator.post("/admin/provisions/apitoken/add/", token_form(owner.pk, "secret"))
    assert refused.status_code == 200 and not ApiToken.objects.exists()
    made = sensitive_administrator.post("/admin/provisions/apitoken/add/", token_form(owner.pk), follow=True)
    assert "shown this once" in made.content.decode()
    assert ApiToken.objects.get().clearance == "official_sensitive"


def test_the_user_pickers_offer_only_users_cleared_no_higher(sensitive_administrator) -> None:
    UserFactory(username="secret-negotiator", role="negotiator", clearance="secret")
    UserFactory(username="root-user", clearance="official", is_superuser=True, is_staff=True)
    UserFactory(username="sensitive-analyst", role="analyst", clearance="official_sensitive")
    found = sensitive_administrator.get(
        "/admin/autocomplete/",
        {"app_label": "provisions", "model_name": "apitoken", "field_name": "user", "term": ""},
    )
    assert found.status_code == 200
    names = {result["text"] for result in found.json()["results"]}
    assert "sensitive-analyst" in names and "os-admin" in names
    assert not names & {"secret-negotiator", "root-user"}


def test_tokens_of_users_cleared_higher_are_not_listed(sensitive_administrator) -> None:
    from provisions.services.tokens import api_token_create

    secret_user = UserFactory(role="negotiator", clearance="secret")
    token, _ = api_token_create(owner=secret_user, by=Reader.of(secret_user), name="secret script")
    listing = sensitive_administrator.get("/admin/provisions/apitoken/")
    assert "secret script" not in listing.content.decode()
    assert sensitive_administrator.get(f"/admin/provisions/apitoken/{token.pk}/change/").status_code == 302
