"""A client generated from the OpenAPI schema alone (openapi-python-client) lists, filters, transitions
and reads gaps, without knowing our code: the schema is complete enough for other systems."""

from __future__ import annotations

import datetime
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone

from provisions.models import ApiToken, Domain, Gap, Provision, StatusChange, User, WebhookEndpoint
from provisions.permissions import Reader
from provisions.services.scans import gaps_scan
from provisions.services.status import provision_transition
from provisions.services.tokens import api_token_create
from tests.factories import ProvisionFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def _keep_the_test_connection(generated: Any) -> Any:  # after `generated`: its test-client request reconnects
    """Requests through the WSGI app fire request_started/finished, whose close_old_connections would
    close the test's own PostgreSQL connection mid-transaction (Django's test client disconnects it too)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def generated(tmp_path: Path, client: Any) -> Any:
    """The package openapi-python-client generates from /api/v1/schema/, imported."""
    negotiator = UserFactory(role="viewer")
    client.force_login(negotiator)
    schema = client.get("/api/v1/schema/", {"format": "json"}, HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    (tmp_path / "schema.json").write_text(json.dumps(schema.json()), encoding="utf-8")
    tool = Path(sys.executable).parent / "openapi-python-client"
    if not tool.exists() and shutil.which("openapi-python-client") is None:
        pytest.fail("openapi-python-client is not installed (pip install -e '.[dev]')")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [
            str(tool) if tool.exists() else "openapi-python-client",
            "generate",
            "--path",
            "schema.json",
            "--output-path",
            "tracker_client",
            "--meta",
            "none",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout, result.stdout  # every operation and shape was understood
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("tracker_client")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == "tracker_client"]:
            del sys.modules[name]


@pytest.fixture
def negotiator_api(generated: Any, shipped_partnership_file: str) -> Any:
    """The shipped partnership, and the generated client of a negotiator of security-defence cleared
    to secret, calling the app in process."""
    call_command("import_partnership", shipped_partnership_file, stdout=io.StringIO())
    negotiator = UserFactory(
        role="negotiator", clearance="secret", domains=[Domain.objects.get(code="security-defence")]
    )
    return client_of(generated, negotiator)


def client_of(generated: Any, user: User) -> Any:
    """The generated client with a token of the user's, calling the app in process."""
    _, key = api_token_create(owner=user, by=Reader.of(user), name="generated client")
    return generated.AuthenticatedClient(
        base_url="http://testserver",
        token=key,
        httpx_args={"transport": httpx.WSGITransport(app=get_wsgi_application())},
    )


@pytest.mark.usefixtures("_keep_the_test_connection")
def test_a_generated_client_lists_filters_transitions_and_reads_gaps(negotiator_api: Any) -> None:
    api = negotiator_api
    gaps_scan(trigger="command")
    negotiator = User.objects.get(api_tokens__name="generated client")
    provisions_list = importlib.import_module("tracker_client.api.provisions.list_provisions")
    transition = importlib.import_module("tracker_client.api.provisions.move_provision_status")
    gaps_list = importlib.import_module("tracker_client.api.gaps.list_gaps")
    models = importlib.import_module("tracker_client.models")

    page = provisions_list.sync(client=api, domain="security-defence", status=models.StatusEnum.AGREED)
    assert [provision.reference for provision in page.results] == ["SP-SD-04"]
    provision = page.results[0]

    moved = transition.sync(
        client=api,
        reference="SP-SD-04",
        body=models.TransitionRequest(
            to=models.StatusEnum.SIGNED, note="Signed in Brussels", version=provision.version
        ),
    )
    assert moved.status == models.StatusEnum.SIGNED
    assert StatusChange.objects.filter(provision__reference="SP-SD-04").latest("id").changed_by == negotiator
    assert Provision.objects.get(reference="SP-SD-04").status == "signed"

    critical = gaps_list.sync(
        client=api, severity=[models.ListGapsSeverityItem.CRITICAL], kind=[models.ListGapsKindItem.LAPSED]
    )
    assert critical.results and all(gap.severity == models.LevelEnum.CRITICAL for gap in critical.results)
    # Filters take several values: any of them.
    either = gaps_list.sync(
        client=api,
        severity=[models.ListGapsSeverityItem.CRITICAL, models.ListGapsSeverityItem.HIGH],
        domain=["law-enforcement", "security-defence"],
    )
    assert either.results
    assert {gap.severity for gap in either.results} == {models.LevelEnum.CRITICAL, models.LevelEnum.HIGH}
    assert {gap.domain for gap in either.results} <= {"law-enforcement", "security-defence"}
    past = gaps_list.sync(client=api, as_of=datetime.date(2020, 12, 20), domain=["law-enforcement"])
    assert {gap.subject_code for gap in past.results} >= {"SIS-II", "SP-LE-04"}


@pytest.mark.usefixtures("_keep_the_test_connection")
def test_a_generated_client_sends_null_to_clear_a_date_and_remove_coverage(negotiator_api: Any) -> None:
    """Bodies are JSON only, so a generated client sends JSON, and JSON can say null."""
    api = negotiator_api
    domain = Domain.objects.get(code="security-defence")
    update = importlib.import_module("tracker_client.api.provisions.update_provision")
    cover = importlib.import_module("tracker_client.api.provisions.set_provision_coverage")
    models = importlib.import_module("tracker_client.models")
    provision = Provision.objects.filter(domain=domain, coverage__isnull=False).order_by("reference").first()
    assert provision is not None
    link = provision.coverage.select_related("capability").first()
    Provision.objects.filter(pk=provision.pk).update(target_date=datetime.date(2027, 6, 30))
    provision.refresh_from_db()

    cleared = update.sync(
        client=api,
        reference=provision.reference,
        body=models.PatchedProvisionUpdateRequest(target_date=None, version=provision.version),
    )
    assert isinstance(cleared, models.Provision), cleared
    assert cleared.target_date is None
    provision.refresh_from_db()
    assert provision.target_date is None

    removed = cover.sync(
        client=api,
        reference=provision.reference,
        body=models.CoverageInputRequest(
            capability=link.capability.code, extent=None, version=provision.version
        ),
    )
    assert isinstance(removed, models.Provision), removed
    assert link.capability.code not in {covered.capability for covered in removed.covers}
    link.refresh_from_db()  # the link ends today (the record keeps what counted when)
    assert not link.counts_on(timezone.localdate())


@pytest.mark.usefixtures("_keep_the_test_connection")
def test_a_generated_client_manages_webhook_endpoints(
    generated: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """An administrator's system registers an endpoint, changes it, rotates its secret, reads its
    deliveries, sends one again and deletes it, through the generated functions alone."""
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True  # nothing listens: the attempt is recorded as refused
    administrator = UserFactory(role="administrator", clearance="official_sensitive")
    api = client_of(generated, administrator)
    endpoints = "tracker_client.api.webhook_endpoints."
    create = importlib.import_module(endpoints + "create_webhook_endpoint")
    update = importlib.import_module(endpoints + "update_webhook_endpoint")
    rotate = importlib.import_module(endpoints + "rotate_webhook_secret")
    deliveries = importlib.import_module(endpoints + "list_webhook_deliveries")
    redeliver = importlib.import_module(endpoints + "redeliver_webhook")
    delete = importlib.import_module(endpoints + "delete_webhook_endpoint")
    models = importlib.import_module("tracker_client.models")

    created = create.sync(
        client=api,
        body=models.WebhookEndpointRequest(
            url="http://127.0.0.1:9/hooks",
            events=[models.WebhookEventEnum.GAP_OPENED],
            clearance=models.MarkingEnum.OFFICIAL,
        ),
    )
    assert isinstance(created, models.WebhookEndpointWithSecret), created
    assert created.secret.startswith("whsec_")
    changed = update.sync(
        id=created.id,
        client=api,
        body=models.PatchedWebhookEndpointRequest(events=[models.WebhookEventEnum.PROVISION_STATUS_CHANGED]),
    )
    assert isinstance(changed, models.WebhookEndpoint) and changed.events == [
        models.WebhookEventEnum.PROVISION_STATUS_CHANGED
    ]
    rotated = rotate.sync(id=created.id, client=api)
    assert isinstance(rotated, models.WebhookEndpointWithSecret) and rotated.secret != created.secret

    provision = ProvisionFactory(status="proposed", marking="official")
    with django_capture_on_commit_callbacks(execute=True):
        provision_transition(by=Reader.system(), provision=provision, to="under_negotiation")
    page = deliveries.sync(id=created.id, client=api)
    [delivery] = page.results
    assert delivery.attempts == 1 and delivery.attempt_log[0].error  # nothing listens on port 9
    with django_capture_on_commit_callbacks(execute=True):
        again = redeliver.sync(id=created.id, delivery_id=delivery.id, client=api)
    assert isinstance(again, models.WebhookDelivery) and again.id != delivery.id

    assert delete.sync_detailed(id=created.id, client=api).status_code == 204
    assert not WebhookEndpoint.objects.exists()


# Every write in the schema, each driven through the generated client by a test in this module.
WRITES_DRIVEN = {
    "moveProvisionStatus": "test_a_generated_client_lists_filters_transitions_and_reads_gaps",
    "updateProvision": "test_a_generated_client_sends_null_to_clear_a_date_and_remove_coverage",
    "setProvisionCoverage": "test_a_generated_client_sends_null_to_clear_a_date_and_remove_coverage",
    "recordProvisionPosition": "test_a_generated_client_records_positions_discussions_scans_and_tokens",
    "recordProvisionDiscussion": "test_a_generated_client_records_positions_discussions_scans_and_tokens",
    "acknowledgeGap": "test_a_generated_client_records_positions_discussions_scans_and_tokens",
    "startGapScan": "test_a_generated_client_records_positions_discussions_scans_and_tokens",
    "createToken": "test_a_generated_client_records_positions_discussions_scans_and_tokens",
    "revokeToken": "test_a_generated_client_records_positions_discussions_scans_and_tokens",
    "createWebhookEndpoint": "test_a_generated_client_manages_webhook_endpoints",
    "updateWebhookEndpoint": "test_a_generated_client_manages_webhook_endpoints",
    "rotateWebhookSecret": "test_a_generated_client_manages_webhook_endpoints",
    "redeliverWebhook": "test_a_generated_client_manages_webhook_endpoints",
    "deleteWebhookEndpoint": "test_a_generated_client_manages_webhook_endpoints",
}


def test_every_write_in_the_schema_is_driven_through_the_generated_client(client: Any) -> None:
    client.force_login(UserFactory(role="viewer"))
    schema = client.get("/api/v1/schema/", {"format": "json"}).json()
    writes = {
        operation["operationId"]
        for operations in schema["paths"].values()
        for method, operation in operations.items()
        if method in ("post", "put", "patch", "delete")
    }
    assert writes == set(WRITES_DRIVEN)
    assert set(WRITES_DRIVEN.values()) <= {name for name in globals() if name.startswith("test_")}


@pytest.mark.usefixtures("_keep_the_test_connection")
def test_a_generated_client_records_positions_discussions_scans_and_tokens(
    generated: Any, negotiator_api: Any
) -> None:
    api = negotiator_api
    provisions = "tracker_client.api.provisions."
    position = importlib.import_module(provisions + "record_provision_position")
    discussion = importlib.import_module(provisions + "record_provision_discussion")
    acknowledge = importlib.import_module("tracker_client.api.gaps.acknowledge_gap")
    scan = importlib.import_module("tracker_client.api.gap_scans.start_gap_scan")
    create_token = importlib.import_module("tracker_client.api.tokens.create_token")
    revoke_token = importlib.import_module("tracker_client.api.tokens.revoke_token")
    models = importlib.import_module("tracker_client.models")
    provision = Provision.objects.get(reference="SP-SD-04")

    recorded = position.sync(
        client=api,
        reference="SP-SD-04",
        body=models.PositionInputRequest(
            party="EU",
            stance=models.StanceEnum.OPPOSES,
            note="Wants a sunset clause",
            version=provision.version,
        ),
    )
    assert isinstance(recorded, models.Provision), recorded
    discussed = discussion.sync(
        client=api,
        reference="SP-SD-04",
        body=models.DiscussionInputRequest(
            on=timezone.localdate(), note="Round 7: no move", version=recorded.version
        ),
    )
    assert isinstance(discussed, models.Provision), discussed
    assert Provision.objects.get(reference="SP-SD-04").version == provision.version + 2

    analyst = UserFactory(role="analyst", clearance="secret")
    analyst_api = client_of(generated, analyst)
    gaps_scan(trigger="command")
    gap = Gap.objects.open().order_by("id").first()
    assert gap is not None
    acknowledged = acknowledge.sync(
        id=gap.pk, client=analyst_api, body=models.AcknowledgeRequest(note="Known: bridging deal close")
    )
    assert isinstance(acknowledged, models.Gap) and acknowledged.state == models.GapStateEnum.ACKNOWLEDGED
    queued = scan.sync(client=analyst_api)
    assert queued is not None and queued.status == "queued"

    made = create_token.sync(client=analyst_api, body=models.ApiTokenCreateRequest(name="second system"))
    assert isinstance(made, models.ApiTokenCreated) and made.key.startswith("spt_")
    assert revoke_token.sync_detailed(id=made.id, client=analyst_api).status_code == 204
    assert ApiToken.objects.get(pk=made.id).revoked_at is not None


def _generated_operation(operation_id: str, tag: str) -> Any:
    """The module openapi-python-client generates for an operation (api/<tag>/<operation in snake case>)."""
    snake = "".join(f"_{letter.lower()}" if letter.isupper() else letter for letter in operation_id)
    return importlib.import_module(f"tracker_client.api.{tag.replace('-', '_')}.{snake}")


@pytest.mark.usefixtures("_keep_the_test_connection")
def test_every_read_in_the_schema_answers_through_the_generated_client(
    generated: Any, shipped_partnership_file: str
) -> None:
    """Each GET operation of the schema, called through its generated function with no hand-written
    request code, answers 200 with a body the generated models parse."""
    from provisions.models import Capability, GapScan, Precedent, Territory

    call_command("import_partnership", shipped_partnership_file, stdout=io.StringIO())
    gaps_scan(trigger="command")
    administrator = UserFactory(role="administrator", clearance="secret")
    api = client_of(generated, administrator)
    endpoint = WebhookEndpoint.objects.create(
        url="https://receiver.example/hooks", events=["gap.opened"], secret="whsec_MTIz"
    )
    path_values = {
        "/api/v1/capabilities/{code}/": {"code": Capability.objects.order_by("code").first().code},
        "/api/v1/domains/{code}/": {"code": "security-defence"},
        "/api/v1/precedents/{code}/": {"code": Precedent.objects.order_by("code").first().code},
        "/api/v1/territories/{code}/": {"code": Territory.objects.order_by("code").first().code},
        "/api/v1/provisions/{reference}/": {"reference": "SP-SD-04"},
        "/api/v1/provisions/{reference}/history/": {"reference": "SP-SD-04"},
        "/api/v1/gaps/{id}/": {"id": Gap.objects.open().order_by("id").first().pk},
        "/api/v1/gap-scans/{id}/": {"id": GapScan.objects.order_by("id").first().pk},
        "/api/v1/webhook-endpoints/{id}/": {"id": endpoint.pk},
        "/api/v1/webhook-endpoints/{id}/deliveries/": {"id": endpoint.pk},
    }
    # Through the generated client's own transport: Django's test client would connect again the
    # signal handlers that close the test's connection (see _keep_the_test_connection).
    schema = api.get_httpx_client().get("/api/v1/schema/", params={"format": "json"}).json()
    reads = [(path, operations["get"]) for path, operations in schema["paths"].items() if "get" in operations]
    assert len(reads) > 20

    for path, operation in reads:
        generated_function = _generated_operation(operation["operationId"], operation["tags"][0])
        answer = generated_function.sync_detailed(client=api, **path_values.get(path, {}))
        assert answer.status_code == 200, (operation["operationId"], answer.content[:300])
        if "application/json" in operation["responses"]["200"]["content"]:
            assert answer.parsed is not None, operation["operationId"]
        else:  # the briefing pack: a PDF the client hands over as bytes
            assert answer.content.startswith(b"%PDF-"), operation["operationId"]
