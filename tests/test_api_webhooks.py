"""Managing webhook endpoints through the API (administrators only): register, change, rotate the
secret, read deliveries with their attempts, send one again; deliveries checked at a real receiver
with the `standardwebhooks` verifier."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.test import Client
from standardwebhooks import Webhook

from provisions.models import Marking, Status, WebhookDelivery, WebhookEndpoint
from provisions.permissions import Reader
from provisions.services.status import provision_transition
from tests.factories import ProvisionFactory, UserFactory
from tests.receivers import Receiver
from tests.test_api import bearer

pytestmark = pytest.mark.django_db

ENDPOINTS = "/api/v1/webhook-endpoints/"


@pytest.fixture(autouse=True)
def receivers_on_this_machine(settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True


@pytest.fixture
def administrator() -> dict[str, str]:
    return bearer(UserFactory(role="administrator", clearance=Marking.OFFICIAL_SENSITIVE))


def register(client: Client, headers: dict[str, str], receiver: Receiver, **fields: Any) -> Any:
    body = {"url": receiver.url + "/hooks", "events": ["provision.status_changed"], **fields}
    return client.post(ENDPOINTS, body, content_type="application/json", **headers)


def test_only_administrators_manage_endpoints(client: Client, receiver: Receiver) -> None:
    for role in ("viewer", "negotiator", "analyst"):
        headers = bearer(UserFactory(role=role, clearance=Marking.SECRET))
        assert client.get(ENDPOINTS, **headers).status_code == 403
        refused = register(client, headers, receiver)
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == "Only administrators manage webhook endpoints."
    assert not WebhookEndpoint.objects.exists()


def test_an_administrator_registers_an_endpoint_and_gets_its_secret_once(
    client: Client, administrator: dict[str, str], receiver: Receiver
) -> None:
    created = register(client, administrator, receiver, clearance="official_sensitive")

    assert created.status_code == 201, created.content
    body = created.json()
    endpoint = WebhookEndpoint.objects.get()
    assert body["secret"] == endpoint.secret and body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) == 32
    assert {key: body[key] for key in ("url", "events", "clearance", "active")} == {
        "url": receiver.url + "/hooks",
        "events": ["provision.status_changed"],
        "clearance": "official_sensitive",
        "active": True,
    }
    listed = client.get(ENDPOINTS, **administrator).json()["results"]
    assert [row["id"] for row in listed] == [endpoint.pk]
    assert "secret" not in listed[0]
    assert "secret" not in client.get(f"{ENDPOINTS}{endpoint.pk}/", **administrator).json()


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"events": []}, "events", "Ensure this field has at least 1 elements."),
        ({"events": ["gap.forgotten"]}, "events", '"gap.forgotten" is not a valid choice.'),
        ({"url": "ftp://example.org/hooks"}, "url", "Only http and https URLs can receive webhooks."),
        ({"url": "not a url"}, "url", "Enter a valid URL."),
        ({"clearance": "top_secret"}, "clearance", '"top_secret" is not a valid choice.'),
    ],
)
def test_a_bad_endpoint_is_refused_with_what_is_wrong_and_nothing_is_saved(
    client: Client, administrator: dict[str, str], receiver: Receiver, fields: Any, field: str, message: str
) -> None:
    refused = register(client, administrator, receiver, **fields)

    assert refused.status_code == 400
    errors = refused.json()["error"]["field_errors"]
    assert set(errors) == {field} and message in " ".join(errors[field]), errors
    assert not WebhookEndpoint.objects.exists()


def test_an_internal_address_or_a_clearance_above_the_administrators_is_refused(
    client: Client, administrator: dict[str, str], receiver: Receiver, settings: Any
) -> None:
    above = register(client, administrator, receiver, clearance="secret")
    assert above.status_code == 403
    assert "cleared above" in above.json()["error"]["message"]

    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    internal = register(client, administrator, receiver)
    assert internal.status_code == 400
    assert "127.0.0.1, an internal address" in internal.json()["error"]["field_errors"]["url"][0]
    assert not WebhookEndpoint.objects.exists()


def test_an_endpoint_is_changed_and_deleted(
    client: Client, administrator: dict[str, str], receiver: Receiver
) -> None:
    endpoint_id = register(client, administrator, receiver).json()["id"]
    url = f"{ENDPOINTS}{endpoint_id}/"

    changed = client.patch(
        url,
        {"active": False, "events": ["gap.opened", "gap.resolved"]},
        content_type="application/json",
        **administrator,
    )
    assert changed.status_code == 200, changed.content
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.active, endpoint.events) == (False, ["gap.opened", "gap.resolved"])

    refused = client.patch(url, {"events": []}, content_type="application/json", **administrator)
    assert refused.status_code == 400
    assert WebhookEndpoint.objects.get().events == ["gap.opened", "gap.resolved"]

    assert client.delete(url, **administrator).status_code == 204
    assert not WebhookEndpoint.objects.exists()


def test_an_administrator_below_an_endpoints_clearance_cannot_see_it(
    client: Client, administrator: dict[str, str], receiver: Receiver
) -> None:
    secret_endpoint = WebhookEndpoint.objects.create(
        url=receiver.url, events=["gap.opened"], secret="whsec_MTIz", clearance=Marking.SECRET
    )

    assert client.get(ENDPOINTS, **administrator).json()["results"] == []
    for answer in (
        client.get(f"{ENDPOINTS}{secret_endpoint.pk}/", **administrator),
        client.post(f"{ENDPOINTS}{secret_endpoint.pk}/rotate-secret/", **administrator),
        client.get(f"{ENDPOINTS}{secret_endpoint.pk}/deliveries/", **administrator),
    ):
        assert answer.status_code == 404
    assert WebhookEndpoint.objects.get().secret == "whsec_MTIz"


def test_rotating_the_secret_signs_with_both_until_the_old_one_expires(
    client: Client, administrator: dict[str, str], receiver: Receiver, django_capture_on_commit_callbacks
) -> None:
    created = register(client, administrator, receiver).json()

    rotated = client.post(f"{ENDPOINTS}{created['id']}/rotate-secret/", **administrator)

    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != created["secret"] and rotated.json()["previous_secret_expires_at"]
    provision = ProvisionFactory(status=Status.PROPOSED, marking=Marking.OFFICIAL)
    with django_capture_on_commit_callbacks(execute=True):
        provision_transition(by=Reader.system(), provision=provision, to=Status.UNDER_NEGOTIATION)
    [request] = receiver.requests
    for secret in (created["secret"], new_secret):
        assert Webhook(secret).verify(request.body, request.headers) == request.payload


def test_deliveries_are_listed_with_their_attempts_and_one_is_sent_again(
    client: Client, administrator: dict[str, str], receiver: Receiver, django_capture_on_commit_callbacks
) -> None:
    created = register(client, administrator, receiver).json()
    provision = ProvisionFactory(status=Status.PROPOSED, marking=Marking.OFFICIAL)
    receiver.answers = [(503, "deploying")]
    with django_capture_on_commit_callbacks(execute=True):
        provision_transition(by=Reader.system(), provision=provision, to=Status.UNDER_NEGOTIATION)
    deliveries_url = f"{ENDPOINTS}{created['id']}/deliveries/"

    with django_capture_on_commit_callbacks(execute=True):
        listed = client.get(deliveries_url, **administrator)
    [row] = listed.json()["results"]
    assert (row["event"], row["state"], row["attempts"]) == ("provision.status_changed", "pending", 1)
    assert row["next_attempt_at"] is not None
    assert [(a["number"], a["status_code"], a["response"]) for a in row["attempt_log"]] == [
        (1, 503, "deploying")
    ]
    assert row["payload"]["data"]["reference"] == provision.reference

    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(f"{deliveries_url}{row['id']}/redeliver/", **administrator)

    assert again.status_code == 202, again.content
    assert again.json()["id"] != row["id"] and again.json()["payload"] == row["payload"]
    assert WebhookDelivery.objects.get(pk=again.json()["id"]).state == "delivered"
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]  # the receiver can tell it had it
    assert Webhook(created["secret"]).verify(second.body, second.headers) == row["payload"]
    assert client.post(f"{deliveries_url}99999/redeliver/", **administrator).status_code == 404


def test_a_delivery_of_an_inactive_endpoint_is_not_sent_again(
    client: Client, administrator: dict[str, str], receiver: Receiver
) -> None:
    created = register(client, administrator, receiver, active=False).json()
    endpoint = WebhookEndpoint.objects.get()
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event="gap.opened", payload={"id": "e-1", "clearance": "official", "data": {}}
    )

    refused = client.post(f"{ENDPOINTS}{created['id']}/deliveries/{delivery.pk}/redeliver/", **administrator)

    assert refused.status_code == 400
    assert "inactive" in refused.json()["error"]["field_errors"]["non_field_errors"][0]
    assert WebhookDelivery.objects.count() == 1


def as_json_schema(node: Any, components: dict[str, Any]) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema: references resolved, `nullable` as a null alternative,
    objects closed (a key the schema does not document fails)."""
    if isinstance(node, list):
        return [as_json_schema(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return as_json_schema(components[node["$ref"].rsplit("/", 1)[1]], components)
    converted = {key: as_json_schema(value, components) for key, value in node.items() if key != "nullable"}
    if "properties" in node:
        converted["properties"] = {
            name: as_json_schema(value, components) for name, value in node["properties"].items()
        }
        converted["additionalProperties"] = False
    return {"anyOf": [converted, {"type": "null"}]} if node.get("nullable") else converted


def test_every_event_a_receiver_gets_is_the_shape_the_schema_documents(
    client: Client, receiver: Receiver, django_capture_on_commit_callbacks
) -> None:
    import datetime

    import jsonschema
    from django.utils import timezone

    from provisions.models import Aim, Gap, Level, ScanTrigger
    from provisions.services.changed import aims_changed
    from provisions.services.provisions import provision_update
    from provisions.services.reference_data import reference_data_delete, reference_data_save
    from provisions.services.scans import gap_acknowledge, gaps_scan
    from tests.factories import CapabilityFactory, CoverageFactory

    schema = client.get(
        "/api/v1/schema/?format=json", **bearer(UserFactory(role="viewer", clearance=Marking.SECRET))
    ).json()
    WebhookEndpoint.objects.create(
        url=receiver.url, events=list(schema["webhooks"]), secret="whsec_MTIz", clearance=Marking.SECRET
    )
    today = timezone.localdate()
    capability = CapabilityFactory(criticality=Level.HIGH, lapses_on=today + datetime.timedelta(days=100))
    provision = ProvisionFactory(status=Status.AGREED, created_on=today, marking=Marking.OFFICIAL)
    CoverageFactory(provision=provision, capability=capability)
    with django_capture_on_commit_callbacks(execute=True):  # status_changed, gap.opened (at risk)
        provision_transition(
            by=Reader.system(), provision=provision, to=Status.UNDER_NEGOTIATION, note="Reopened"
        )
    capability.lapses_on = today
    capability.save(update_fields=["lapses_on"])
    with django_capture_on_commit_callbacks(execute=True):  # lapsed: escalated, opened, resolved
        gaps_scan(trigger=ScanTrigger.COMMAND)
    with django_capture_on_commit_callbacks(execute=True):  # gap.updated
        gap_acknowledge(
            gap=Gap.objects.open().get(), by=Reader.system(), note="Known: a bridging deal is close"
        )

    administrator = Reader.of(UserFactory(role="administrator", clearance=Marking.SECRET))
    with django_capture_on_commit_callbacks(execute=True):  # capability.changed, capability.deleted
        capability.name = "Renamed"
        reference_data_save(instance=capability, by=administrator)
        reference_data_delete(instances=[CapabilityFactory()], by=administrator)
    WebhookEndpoint.objects.create(  # told of what is marked above it
        url=receiver.url, events=["provision.withdrawn"], secret="whsec_MTIz", clearance=Marking.OFFICIAL
    )
    with django_capture_on_commit_callbacks(execute=True):  # provision.withdrawn (and provision.changed)
        provision_update(by=administrator, provision=provision, marking=Marking.SECRET, expected_version=None)
    with django_capture_on_commit_callbacks(execute=True):  # aim.changed
        aims_changed(
            [Aim.objects.create(partnership=capability.domain.partnership, code="A1", title="Aim").pk]
        )

    assert sorted({request.event for request in receiver.requests}) == sorted(schema["webhooks"])
    for request in receiver.requests:
        documented = schema["webhooks"][request.event]["post"]["requestBody"]["content"]["application/json"]
        jsonschema.validate(
            request.payload, as_json_schema(documented["schema"], schema["components"]["schemas"])
        )
