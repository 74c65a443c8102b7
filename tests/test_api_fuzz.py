"""Property-based fuzzing of the REST API with schemathesis, against the schema the API serves.

The schema is loaded once, at collection, from /api/v1/schema/ through the WSGI application (in
process: no server, no network). Every operation becomes one test, which sends schemathesis's
coverage cases (boundary and invalid values, missing fields, unexpected methods) and
`EXAMPLES_PER_OPERATION` fuzzed cases, valid and invalid, as an administrator cleared to secret
with a bearer token, so the writes run as well as the reads. Every response must not be a 5xx and
must conform to the schema: a documented status code, a documented content type, and a body that
matches the documented schema. Another test per operation sends requests the schema says are
valid, to a resource that exists, and checks that one succeeds (the data and the token work).

The real partnership is loaded (and scanned for gaps) once for the module, in a transaction rolled
back when the module ends; each operation's test runs in a savepoint of it, so each starts from the
same data. Generation is deterministic: a fixed seed, derandomized, no example database.

The bugs the fuzzing found (a 500 on a malformed gap id, Django's HTML 404 under /api/, undocumented
error codes on the gap-scan reads) are fixed; each has its own test at the end.
"""

from __future__ import annotations

import collections
import io
import warnings
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.conf import settings as django_settings
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.test import Client
from django.test.utils import override_settings
from django.utils import timezone
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from provisions.api.conventions import PerCallerThrottle
from provisions.models import (
    Capability,
    Domain,
    Gap,
    GapScan,
    Marking,
    Precedent,
    Provision,
    ScanTrigger,
    Status,
    Territory,
    WebhookDelivery,
    WebhookEndpoint,
)
from provisions.permissions import Reader
from provisions.services.provisions import provision_update
from provisions.services.scans import gaps_scan
from provisions.services.tokens import api_token_create
from tests.factories import UserFactory

SCHEMA_URL = "/api/v1/schema/"
HOST = "localhost"  # the Host header of schemathesis's WSGI client
EXAMPLES_PER_OPERATION = 40
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# The provision every write addresses, in every phase (a random reference only reaches the 404 of
# get_object, which the reads cover): agreed, so its status can still move, and marked
# official-sensitive by the fixture, so the administrator's clearance is exercised.
WRITTEN_PROVISION = "SP-SD-04"
WRITES = [
    "updateProvision",
    "moveProvisionStatus",
    "recordProvisionPosition",
    "setProvisionCoverage",
]

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _load_schema() -> Any:
    config = schemathesis.Config.from_dict(
        {
            "seed": 20_201_231,
            "generation": {"max-examples": EXAMPLES_PER_OPERATION, "deterministic": True, "database": "none"},
            "operations": [
                {"include-operation-id": WRITES, "parameters": {"path.reference": WRITTEN_PROVISION}},
            ],
        }
    )
    # The application speaks plain HTTP to schemathesis, as the conftest's test client does (its
    # middleware reads the setting once, when made: here, before any fixture runs).
    with warnings.catch_warnings(), override_settings(SECURE_SSL_REDIRECT=False):
        # WhiteNoise warns that STATIC_ROOT does not exist (tests run without collectstatic); the API serves
        # no static files. The conftest points STATIC_ROOT somewhere real, but only once tests run.
        warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
        application = get_wsgi_application()
    with override_settings(ALLOWED_HOSTS=[HOST]):
        return schemathesis.openapi.from_wsgi(SCHEMA_URL, application, config=config)


schema = _load_schema()
OPERATION_BY_LABEL = {
    operation.label: operation for operation in (r.ok() for r in schema.get_all_operations())
}
OPERATIONS = set(OPERATION_BY_LABEL)
# The codes, references and ids that exist, per collection in the path (filled by the `partnership` fixture).
EXISTING: dict[str, list[Any]] = {}
# Roles fuzzed with every check besides the administrator, and their bearer keys (the fixture's).
ROLES = ("analyst", "negotiator")
ROLE_KEYS: dict[str, str] = {}
# The path of a delivery that exists (an endpoint's id and the delivery's), for the redelivery.
DELIVERY: dict[str, int] = {}


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    """Half the time, the path names a resource that exists, so detail views and writes get past the 404."""
    resource = context.operation.path.removeprefix("/api/v1/").split("/")[0]
    existing = EXISTING.get(resource)
    if not existing or not path_parameters or len(path_parameters) != 1:
        return st.just(path_parameters)
    (name,) = path_parameters
    return st.one_of(st.just(path_parameters), st.sampled_from(existing).map(lambda value: {name: value}))


# --- Fixtures ----------------------------------------------------------------------------------------------


def _administrator_key() -> str:
    """A bearer key for an administrator cleared to secret. The role groups come from a migration, but a
    transactional test run earlier may have flushed them."""
    Group.objects.get_or_create(name="administrator")
    admin = UserFactory(username="api-fuzzer", role="administrator", clearance=Marking.SECRET)
    _, key = api_token_create(owner=admin, by=Reader.of(admin), name="fuzz")
    return key


@pytest.fixture(scope="module")
def partnership(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """The real partnership, scanned once for gaps, and an administrator's bearer key; all in a transaction
    rolled back when the module ends. Yields the key."""
    path = django_settings.BASE_DIR / "provisions" / "data" / "uk-eu-security-partnership.yaml"
    atomic = transaction.atomic()
    with django_db_blocker.unblock():
        atomic.__enter__()
    try:
        with django_db_blocker.unblock():
            call_command("import_partnership", str(path), stdout=io.StringIO())
            gaps_scan(trigger=ScanTrigger.COMMAND)
            key = _administrator_key()
            for role in ROLES:
                Group.objects.get_or_create(name=role)
                user = UserFactory(
                    username=f"api-fuzzer-{role}",
                    role=role,
                    clearance=Marking.SECRET,
                    domains=list(Domain.objects.filter(code="security-defence")),
                )
                ROLE_KEYS[role] = api_token_create(owner=user, by=Reader.of(user), name="fuzz")[1]
            fuzzer = UserFactory._meta.model.objects.get(username="api-fuzzer")
            spare, _ = api_token_create(owner=fuzzer, by=Reader.of(fuzzer), name="spare, to revoke")
            endpoint = WebhookEndpoint.objects.create(
                url="https://receiver.invalid/hooks",
                events=["gap.opened"],
                secret="whsec_MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0",
                clearance=Marking.SECRET,
            )
            delivery = WebhookDelivery.objects.create(
                endpoint=endpoint,
                event="gap.opened",
                payload={"id": "e-1", "clearance": "secret", "data": {}},
            )
            written = Provision.objects.get(reference=WRITTEN_PROVISION)
            assert written.status == Status.AGREED, "the writes need a movable status"
            provision_update(
                provision=written,
                by=Reader.system(),
                expected_version=None,
                marking=Marking.OFFICIAL_SENSITIVE,
            )
            EXISTING.update(
                {
                    "domains": sorted(Domain.objects.values_list("code", flat=True)),
                    "capabilities": sorted(Capability.objects.values_list("code", flat=True)),
                    "territories": sorted(Territory.objects.values_list("code", flat=True)),
                    "precedents": sorted(Precedent.objects.values_list("code", flat=True)),
                    "provisions": sorted(Provision.objects.values_list("reference", flat=True)),
                    "gaps": sorted(Gap.objects.values_list("id", flat=True)),
                    "gap-scans": sorted(GapScan.objects.values_list("id", flat=True)),
                    "tokens": [spare.pk],  # not the one sending the requests
                    "webhook-endpoints": [endpoint.pk],
                }
            )
            DELIVERY.update({"id": endpoint.pk, "delivery_id": delivery.pk})
        yield key
    finally:
        EXISTING.clear()
        ROLE_KEYS.clear()
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


@pytest.fixture
def bearer(partnership: str, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]
    # One token sends every request, far past the per-token rate; the throttle is not under test here.
    monkeypatch.setattr(PerCallerThrottle, "THROTTLE_RATES", {"caller": "1000000/minute"})
    # Django closes "obsolete" connections when a request starts and ends; inside the test's transaction
    # that closes PostgreSQL's connection under the test (Django's test client disconnects them too).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield {"Authorization": f"Bearer {partnership}"}
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


# --- The fuzzing -------------------------------------------------------------------------------------------


@schema.parametrize()
# The fixtures hold the data and the token for every example of an operation: sharing them is the intent.
@hypothesis.settings(suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
def test_api_conforms_to_its_schema(case: schemathesis.Case, bearer: dict[str, str]) -> None:
    case.call_and_validate(headers=bearer, checks=CHECKS)


# For the roles below the administrator, besides conformance: the headers answers document, methods
# an operation does not take, and credentials that must be checked. Two more of schemathesis's checks
# (negative_data_rejection, positive_data_acceptance) are not run in CI yet: README.md, "The REST API",
# says what they still find and why.
ROLE_CHECKS = [
    *CHECKS,
    response_headers_conformance,
    unsupported_method,
    missing_required_header,
    ignored_auth,
]


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
# 50 generated cases an operation a role: about 1,900 each, 3,800 in all (measured with
# --hypothesis-show-statistics), besides the coverage cases.
@hypothesis.settings(max_examples=50, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
def test_api_conforms_for_analysts_and_negotiators(
    case: schemathesis.Case, bearer: dict[str, str], role: str
) -> None:
    """As an analyst and as a negotiator (of one domain, cleared to secret): no server error, and every
    answer (403s included) documented, in its documented type, shape and headers."""
    case.call_and_validate(headers={"Authorization": f"Bearer {ROLE_KEYS[role]}"}, checks=ROLE_CHECKS)


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_valid_requests_to_each_operation_succeed_and_conform(label: str, bearer: dict[str, str]) -> None:
    """Requests the schema says are valid, to a resource that exists: at least one succeeds (the data
    and the token work) and every answer conforms. Self-contained: it does not count what other
    tests sent, so it means the same on a partial run."""
    operation = OPERATION_BY_LABEL[label]
    parameters = [parameter.name for parameter in operation.path_parameters]
    resource = operation.path.removeprefix("/api/v1/").split("/")[0]
    path_parameters = None
    if operation.label.split()[0] != "GET" and len(parameters) == 1 and resource == "provisions":
        path_parameters = {parameters[0]: WRITTEN_PROVISION}
    elif len(parameters) == 1 and EXISTING.get(resource):
        path_parameters = {parameters[0]: EXISTING[resource][0]}
    elif set(parameters) == set(DELIVERY):
        path_parameters = dict(DELIVERY)
    answered: collections.Counter[int] = collections.Counter()

    @hypothesis.given(case=operation.as_strategy(path_parameters=path_parameters))
    @hypothesis.settings(max_examples=20, derandomize=True, database=None, deadline=None)
    def send(case: schemathesis.Case) -> None:
        headers = dict(bearer)
        if path_parameters == {"reference": WRITTEN_PROVISION}:
            # A write names the version it is based on and things that exist (else: 428, 404, 400).
            written = Provision.objects.select_related("domain").get(reference=WRITTEN_PROVISION)
            headers["If-Match"] = f'"{written.version}"'
            if isinstance(case.body, dict) and "party" in case.body:
                case.body["party"] = "EU"
            if isinstance(case.body, dict) and "on" in case.body:
                case.body["on"] = timezone.localdate().isoformat()
            if isinstance(case.body, dict) and "effective_on" in case.body:
                case.body["effective_on"] = None
            if isinstance(case.body, dict) and "capability" in case.body:
                case.body["capability"] = written.domain.capabilities.order_by("code").first().code
        answered[case.call_and_validate(headers=headers, checks=CHECKS).status_code] += 1

    send()
    assert any(200 <= status < 300 for status in answered), f"never answered 2xx: {dict(answered)}"


# --- Bugs the fuzzing found, each pinned by a test that would have caught it ------------------------------


@pytest.fixture
def api_client() -> tuple[Client, dict[str, str]]:
    client = Client(raise_request_exception=False)
    return client, {"HTTP_AUTHORIZATION": f"Bearer {_administrator_key()}"}


def test_a_path_value_outside_the_url_pattern_answers_the_json_error(api_client: Any) -> None:
    client, auth = api_client
    for path in ("/api/v1/domains/%C2%84/", "/api/v1/provisions/%C2%84/history/", "/api/v1/gap-scans/1.5/"):
        response = client.get(path, **auth)
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json", path


def test_a_non_integer_gap_id_is_not_found(api_client: Any) -> None:
    client, auth = api_client
    response = client.post(
        "/api/v1/gaps/null,null/acknowledge/", {"note": "seen"}, content_type="application/json", **auth
    )
    assert response.status_code == 404


def test_the_gap_scan_reads_document_their_errors() -> None:
    for path in ("/api/v1/gap-scans/", "/api/v1/gap-scans/{id}/"):
        documented = set(schema.raw_schema["paths"][path]["get"]["responses"])
        assert {"401", "403", "404", "429"} <= documented, path
