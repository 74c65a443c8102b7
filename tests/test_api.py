"""The REST API, through HTTP as another system would use it."""

from __future__ import annotations

import datetime
import io
import re
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from provisions.models import (
    ApiToken,
    Discussion,
    Extent,
    Gap,
    GapScan,
    Marking,
    Provision,
    Status,
    StatusChange,
)
from provisions.permissions import Reader
from provisions.services.scans import gaps_scan
from provisions.services.tokens import api_token_create, api_token_revoke
from tests.factories import (
    CapabilityFactory,
    DomainFactory,
    PartyFactory,
    PositionFactory,
    ProvisionFactory,
    UserFactory,
)
from tests.test_pages import csp_directives

pytestmark = pytest.mark.django_db


def bearer(user: Any, **options: Any) -> dict[str, str]:
    _, key = api_token_create(owner=user, by=Reader.of(user), name="test system", **options)
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


@pytest.fixture
def world():
    """A domain with provisions at each marking, a negotiator of it, and other callers."""
    domain = DomainFactory(code="law-enforcement")
    PartyFactory(partnership=domain.partnership, code="UK")
    PartyFactory(partnership=domain.partnership, code="EU")
    capability = CapabilityFactory(
        code="SIS-II", domain=domain, lapses_on=timezone.localdate() + datetime.timedelta(days=20)
    )
    provisions = {
        marking: ProvisionFactory(reference=f"SP-{n}", domain=domain, marking=marking, status=Status.PROPOSED)
        for n, marking in enumerate(Marking.values)
    }
    provisions["official"].coverage.create(capability=capability, extent=Extent.FULL)
    return {
        "domain": domain,
        "capability": capability,
        "provisions": provisions,
        "negotiator": UserFactory(role="negotiator", clearance=Marking.SECRET, domains=[domain]),
        "viewer": UserFactory(role="viewer", clearance=Marking.OFFICIAL),
        "analyst": UserFactory(role="analyst", clearance=Marking.OFFICIAL_SENSITIVE),
    }


def test_without_credentials_every_endpoint_answers_401_with_the_error_shape(client: Client) -> None:
    for path in ["/api/v1/provisions/", "/api/v1/gaps/", "/api/v1/coverage/", "/api/v1/domains/"]:
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["status"] == 401
        assert response["WWW-Authenticate"] == "Bearer"


def test_a_token_authenticates_and_a_revoked_or_expired_one_does_not(client: Client, world) -> None:
    viewer = world["viewer"]
    token, key = api_token_create(owner=viewer, by=Reader.of(viewer), name="briefing tool")
    header = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    assert client.get("/api/v1/provisions/", **header).status_code == 200
    assert ApiToken.objects.get().key_hash != key and key.startswith(token.prefix)  # stored hashed

    api_token_revoke(token=token, by=Reader.of(viewer))
    assert client.get("/api/v1/provisions/", **header).status_code == 401

    expired = bearer(viewer, expires_at=timezone.now() + datetime.timedelta(minutes=1))
    ApiToken.objects.filter(name="test system").update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    response = client.get("/api/v1/provisions/", **expired)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "invalid, expired or revoked token"


@pytest.mark.parametrize(
    ("clearance", "token_clearance", "expected"),
    [
        ("official", "", ["SP-0"]),
        ("official_sensitive", "", ["SP-0", "SP-1"]),
        ("secret", "", ["SP-0", "SP-1", "SP-2"]),
        ("secret", "official", ["SP-0"]),
    ],
)
def test_a_caller_lists_only_provisions_up_to_its_clearance(
    client, world, clearance, token_clearance, expected
):
    user = UserFactory(role="viewer", clearance=clearance)
    headers = bearer(user, clearance=token_clearance)
    response = client.get("/api/v1/provisions/", **headers)
    assert [row["reference"] for row in response.json()["results"]] == expected
    hidden = set(Provision.objects.values_list("reference", flat=True)) - set(expected)
    for reference in hidden:
        assert client.get(f"/api/v1/provisions/{reference}/", **headers).status_code == 404


def test_a_provision_carries_positions_coverage_alignment_and_an_etag(client: Client, world) -> None:
    provision = world["provisions"]["official"]
    uk = provision.domain.partnership.parties.get(code="UK")
    provision.positions.create(party=uk, stance="proposes")

    response = client.get("/api/v1/provisions/SP-0/", **bearer(world["viewer"]))

    body = response.json()
    assert body["covers"] == [{"capability": "SIS-II", "extent": "full", "from": None, "until": None}]
    assert [(p["party"], p["stance"]) for p in body["positions"]] == [("UK", "proposes")]
    assert body["alignment"] == "undetermined"  # the EU has no position yet
    assert response["ETag"] == f'"{body["version"]}"'
    again = client.get(
        "/api/v1/provisions/SP-0/", HTTP_IF_NONE_MATCH=response["ETag"], **bearer(world["viewer"])
    )
    assert again.status_code == 304


def test_lists_answer_304_to_a_matching_if_none_match(client: Client, world) -> None:
    headers = bearer(world["viewer"])
    first = client.get("/api/v1/domains/", **headers)
    assert client.get("/api/v1/domains/", HTTP_IF_NONE_MATCH=first["ETag"], **headers).status_code == 304


def test_a_transition_needs_only_to_and_note_as_design_has_it(client: Client, world) -> None:
    response = client.post(
        "/api/v1/provisions/SP-0/transition/",
        {"to": "under_negotiation", "note": "Round 3"},
        content_type="application/json",
        **bearer(world["negotiator"]),
    )
    assert response.status_code == 200 and response.json()["status"] == "under_negotiation"
    again = client.post(  # the same move again: the lifecycle refuses a no-op, nothing is lost silently
        "/api/v1/provisions/SP-0/transition/",
        {"to": "under_negotiation", "note": "Round 3"},
        content_type="application/json",
        **bearer(world["negotiator"]),
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "transition_refused"
    assert StatusChange.objects.filter(provision__reference="SP-0").count() == 2


def test_a_transition_moves_the_status_and_writes_one_status_change(client: Client, world) -> None:
    headers = bearer(world["negotiator"])
    response = client.post(
        "/api/v1/provisions/SP-0/transition/",
        {"to": "under_negotiation", "note": "Round 3", "version": 1},
        content_type="application/json",
        **headers,
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "under_negotiation"
    change = StatusChange.objects.filter(provision__reference="SP-0").latest("id")
    assert (change.to_status, change.changed_by, change.source, change.note) == (
        "under_negotiation",
        world["negotiator"],
        "api",
        "Round 3",
    )


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({"to": "agreed", "version": 7}, {}, 412, "stale_version"),
        ({"to": "agreed"}, {"HTTP_IF_MATCH": '"7"'}, 412, "stale_version"),
        ({"to": "proposed", "version": 1}, {}, 409, "transition_refused"),
        ({"to": "identified", "version": 1}, {}, 409, "transition_refused"),
        ({"to": "nowhere", "version": 1}, {}, 400, "invalid"),
    ],
)
def test_a_bad_transition_gets_a_clear_error_and_changes_nothing(client, world, body, headers, status, code):
    response = client.post(
        "/api/v1/provisions/SP-0/transition/",
        body,
        content_type="application/json",
        **headers,
        **bearer(world["negotiator"]),
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert (error["status"], error["code"]) == (status, code)
    assert Provision.objects.get(reference="SP-0").status == Status.PROPOSED
    assert StatusChange.objects.filter(provision__reference="SP-0").count() == 1
    if code == "invalid":
        assert "to" in error["field_errors"]


@pytest.mark.parametrize("caller", ["viewer", "analyst"])
def test_readers_cannot_write(client: Client, world, caller: str) -> None:
    response = client.patch(
        "/api/v1/provisions/SP-0/",
        {"title": "Mine now", "version": 1},
        content_type="application/json",
        **bearer(world[caller]),
    )
    assert response.status_code == 403
    assert Provision.objects.get(reference="SP-0").title != "Mine now"


@pytest.mark.parametrize("action", ["", "transition/", "positions/", "coverage/"])
def test_a_caller_who_may_not_write_is_told_so_before_the_body_is_read(client, world, action: str) -> None:
    method = client.patch if not action else client.post
    response = method(
        f"/api/v1/provisions/SP-0/{action}",
        {"to": 42, "title": "", "extent": "enormous"},  # wrong in every way
        content_type="application/json",
        **bearer(world["viewer"]),
    )
    assert response.status_code == 403
    assert response.json()["error"]["message"].startswith("You may not edit this provision")


def test_a_negotiator_cannot_write_outside_their_domains(client: Client, world) -> None:
    ProvisionFactory(reference="SP-CJ-1", domain=DomainFactory(code="criminal-justice"))
    response = client.patch(
        "/api/v1/provisions/SP-CJ-1/",
        {"title": "Mine now", "version": 1},
        content_type="application/json",
        **bearer(world["negotiator"]),
    )
    assert response.status_code == 403


def test_an_edit_with_if_match_applies_and_a_stale_one_is_refused(client: Client, world) -> None:
    headers = bearer(world["negotiator"])
    first = client.patch(
        "/api/v1/provisions/SP-0/",
        {"title": "Agreed wording", "reason": "round 4"},
        content_type="application/json",
        HTTP_IF_MATCH='"1"',
        **headers,
    )
    assert first.status_code == 200 and first["ETag"] == '"2"'
    stale = client.patch(
        "/api/v1/provisions/SP-0/",
        {"title": "Overwrite"},
        content_type="application/json",
        HTTP_IF_MATCH='"1"',
        **headers,
    )
    assert stale.status_code == 412
    assert "you had version 1, it is now 2" in stale.json()["error"]["message"]
    assert Provision.objects.get(reference="SP-0").title == "Agreed wording"


def test_positions_and_coverage_are_written_through_the_api_and_show_in_the_history(client, world) -> None:
    headers = bearer(world["negotiator"])
    position = client.post(
        "/api/v1/provisions/SP-0/positions/",
        {
            "party": "EU",
            "stance": "opposes",
            "firmness": "definitive",
            "note": "Not without a data deal",
            "version": 1,
        },
        content_type="application/json",
        **headers,
    )
    assert position.status_code == 200, position.content
    assert position.json()["alignment"] == "conflict"
    coverage = client.post(
        "/api/v1/provisions/SP-0/coverage/",
        {"capability": "SIS-II", "extent": "partial", "version": 2},
        content_type="application/json",
        **headers,
    )
    # Rules v2: the partial link counts from today (the full one it replaced ended today).
    today = timezone.localdate().isoformat()
    assert coverage.json()["covers"] == [
        {"capability": "SIS-II", "extent": "partial", "from": today, "until": None}
    ]
    unknown = client.post(
        "/api/v1/provisions/SP-0/positions/",
        {"party": "XX", "stance": "supports", "version": 3},
        content_type="application/json",
        **headers,
    )
    assert unknown.status_code == 400 and "party" in unknown.json()["error"]["field_errors"]

    history = client.get("/api/v1/provisions/SP-0/history/", **headers).json()
    assert [change["to_status"] for change in history["status_changes"]] == ["proposed"]
    records = [(entry["record"], entry["by"]) for entry in history["audit"]]
    assert ("position of EU", world["negotiator"].username) in records
    assert ("coverage of SIS-II", world["negotiator"].username) in records


def test_gaps_are_listed_filtered_evaluated_at_a_date_and_acknowledged(client: Client, world) -> None:
    gaps_scan(trigger="command")
    headers = bearer(world["analyst"])

    listed = client.get("/api/v1/gaps/?kind=at_risk", **headers).json()["results"]
    assert [(row["kind"], row["subject_code"], row["state"]) for row in listed] == [
        ("at_risk", "SIS-II", "open")
    ]
    assert listed[0]["covering_provisions"] == "SP-0"

    past = client.get("/api/v1/gaps/?as_of=2019-01-01", **headers).json()["results"]
    # No provision existed then, and SIS-II was far from lapsing: uncovered, one level lower.
    assert [(row["kind"], row["severity"], row["id"], row["state"]) for row in past] == [
        ("uncovered", "medium", None, None)
    ]
    assert client.get("/api/v1/gaps/?as_of=not-a-date", **headers).status_code == 400
    assert client.get("/api/v1/gaps/?as_of=2020-01-01&state=open", **headers).status_code == 400

    gap_id = listed[0]["id"]
    response = client.post(
        f"/api/v1/gaps/{gap_id}/acknowledge/",
        {"note": "Escalated"},
        content_type="application/json",
        **headers,
    )
    assert response.status_code == 200 and response.json()["state"] == "acknowledged"
    assert Gap.objects.get(pk=gap_id).acknowledged_by == world["analyst"]
    viewer = client.post(
        f"/api/v1/gaps/{gap_id}/acknowledge/",
        {"note": "me too"},
        content_type="application/json",
        **bearer(world["viewer"]),
    )
    assert viewer.status_code == 403


def test_coverage_has_one_row_per_domain_counting_only_visible_provisions(client: Client, world) -> None:
    headers = bearer(world["viewer"])
    # Today's coverage is what the scans recorded, as the overview shows it: before any scan, the
    # capability is counted but in no state yet.
    [unscanned] = client.get("/api/v1/coverage/", **headers).json()
    assert unscanned["capabilities"] == 1 and unscanned["unscanned"] == 1
    assert sum(unscanned["capabilities_by_state"].values()) == 0
    gaps_scan(trigger="command")
    rows = client.get("/api/v1/coverage/", **headers).json()
    assert [row["domain"] for row in rows] == ["law-enforcement"]
    assert rows[0]["capabilities_by_state"] == {
        "secured": 0,
        "partial": 0,
        "in_negotiation": 1,
        "uncovered": 0,
    }
    assert rows[0]["unscanned"] == 0
    assert rows[0]["provisions_by_status"]["proposed"] == 1  # the official one only
    assert rows[0]["coverage_ratio"] == 0.0
    # With as_of, the rules are evaluated at that date, scanned or not: the same row today.
    today = timezone.localdate().isoformat()
    assert client.get(f"/api/v1/coverage/?as_of={today}", **headers).json() == rows


def test_todays_coverage_reads_the_scans_in_a_fixed_number_of_queries(
    client: Client, world, django_assert_max_num_queries
) -> None:
    headers = bearer(world["viewer"])
    gaps_scan(trigger="command")
    with django_assert_max_num_queries(14) as small:
        assert client.get("/api/v1/coverage/", **headers).status_code == 200
    for n in range(30):
        domain = DomainFactory(code=f"domain-{n:02d}", partnership=world["domain"].partnership)
        provision = ProvisionFactory(reference=f"SP-C-{n:02d}", domain=domain)
        provision.coverage.create(capability=CapabilityFactory(domain=domain), extent=Extent.PARTIAL)
    gaps_scan(trigger="command")
    with django_assert_max_num_queries(len(small.captured_queries)):
        rows = client.get("/api/v1/coverage/", **headers).json()
    assert len(rows) == 31 and sum(sum(row["capabilities_by_state"].values()) for row in rows) == 31
    today = timezone.localdate().isoformat()
    assert client.get(f"/api/v1/coverage/?as_of={today}", **headers).json() == rows  # the rules agree


def test_a_gap_is_read_by_its_id_open_or_resolved_within_the_callers_clearance(client: Client, world) -> None:
    gaps_scan(trigger="command")
    listed = client.get("/api/v1/gaps/", **bearer(world["viewer"])).json()["results"]
    assert listed
    for row in listed:
        assert client.get(f"/api/v1/gaps/{row['id']}/", **bearer(world["viewer"])).json() == row
    # A gap of a provision above the caller's clearance is as if it did not exist.
    secret = Gap.objects.filter(provision=world["provisions"]["secret"]).first()
    assert secret is not None  # the scan found the secret provision's gap too
    assert client.get(f"/api/v1/gaps/{secret.pk}/", **bearer(world["viewer"])).status_code == 404
    assert client.get(f"/api/v1/gaps/{secret.pk}/", **bearer(world["negotiator"])).status_code == 200
    # Resolved gaps stay readable (webhooks name them); unknown ids are a 404 in the error shape.
    Gap.objects.filter(pk=listed[0]["id"]).update(resolved_at=timezone.now())
    resolved = client.get(f"/api/v1/gaps/{listed[0]['id']}/", **bearer(world["viewer"])).json()
    assert resolved["resolved_at"] is not None
    missing = client.get("/api/v1/gaps/999999/", **bearer(world["viewer"]))
    assert missing.status_code == 404 and missing.json()["error"]["status"] == 404


def test_posting_a_gap_scan_runs_one(client: Client, world, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/gap-scans/", **bearer(world["analyst"]))
    assert response.status_code == 202
    scans = client.get("/api/v1/gap-scans/", **bearer(world["analyst"])).json()["results"]
    assert len(scans) == 1 and scans[0]["trigger"] == "api"
    assert client.post("/api/v1/gap-scans/", **bearer(world["viewer"])).status_code == 403
    assert GapScan.objects.count() == 1


def test_a_scan_counts_only_for_readers_cleared_to_every_marking(client: Client, world) -> None:
    """A scan counts every subject, SECRET ones too: a reader who cannot see them must not learn from
    its counts that something they cannot see changed."""
    scan = GapScan.objects.create(as_of=datetime.date(2026, 1, 1), trigger="command", opened=3, unchanged=7)
    below = client.get(f"/api/v1/gap-scans/{scan.pk}/", **bearer(world["analyst"])).json()
    assert below["trigger"] == "command"
    assert {name: below[name] for name in GapScan.COUNTS} == dict.fromkeys(GapScan.COUNTS)
    cleared = client.get(f"/api/v1/gap-scans/{scan.pk}/", **bearer(world["negotiator"])).json()
    assert (cleared["opened"], cleared["unchanged"], cleared["evaluated_subjects"]) == (3, 7, 0)


def test_search_finds_provisions_by_their_words(client: Client, world) -> None:
    ProvisionFactory(reference="SP-CJ-9", domain=world["domain"], title="Surrender of requested persons")
    found = client.get("/api/v1/provisions/?search=surrender", **bearer(world["viewer"])).json()["results"]
    assert [row["reference"] for row in found] == ["SP-CJ-9"]


@pytest.mark.services
def test_search_is_served_by_the_gin_index(world) -> None:
    from django.db import connection

    from provisions.filters import search_provisions

    query = search_provisions(Provision.objects.all(), "surrender of persons")
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a handful of rows: make the planner show its hand
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # The search's expression is the index's, exactly: otherwise PostgreSQL could not use it.
    assert "Index Scan on provision_search" in plan, plan


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/provisions/?",
        "/api/v1/provisions/?as_of=2024-01-01&",
        "/api/v1/gaps/?",
        "/api/v1/capabilities/?",
    ],
)
def test_list_queries_do_not_grow_with_the_page(client, world, path, django_assert_max_num_queries) -> None:
    for n in range(30):
        provision = ProvisionFactory(reference=f"SP-X-{n:02d}", domain=world["domain"])
        provision.coverage.create(capability=CapabilityFactory(domain=world["domain"]), extent=Extent.PARTIAL)
        PositionFactory(provision=provision, party=world["domain"].partnership.parties.first())
    gaps_scan(trigger="command")
    headers = bearer(world["viewer"])
    with django_assert_max_num_queries(14) as small:
        assert len(client.get(f"{path}page_size=2", **headers).json()["results"]) == 2
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert len(client.get(f"{path}page_size=40", **headers).json()["results"]) >= 30


def test_every_operation_id_reads_as_a_verb_and_its_object(client: Client, world) -> None:
    """Generated clients name their functions after operation ids: `listGaps`, `moveProvisionStatus`."""
    schema = client.get("/api/v1/schema/?format=json", **bearer(world["viewer"])).json()
    ids = [
        operation["operationId"]
        for operations in schema["paths"].values()
        for operation in operations.values()
    ]
    verbs = "list|get|create|update|delete|set|record|move|start|acknowledge|revoke|rotate|redeliver"
    assert [id_ for id_ in ids if not re.fullmatch(rf"({verbs})([A-Z][a-z]+)+", id_)] == []
    assert len(set(ids)) == len(ids)
    assert {"listGaps", "getGap", "moveProvisionStatus", "setProvisionCoverage", "getBriefingPack"} <= set(
        ids
    )


def test_every_request_body_in_the_schema_is_json_only(client: Client, world) -> None:
    schema = client.get("/api/v1/schema/?format=json", **bearer(world["viewer"])).json()
    bodies = {
        f"{method} {path}": operation["requestBody"]["content"]
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    }
    assert len(bodies) >= 6  # PATCH a provision, its transition, positions, coverage, discussions, tokens...
    assert {operation: list(content) for operation, content in bodies.items()} == {
        operation: ["application/json"] for operation in bodies
    }


def test_the_schema_and_the_docs_are_served(client: Client, world) -> None:
    schema = client.get("/api/v1/schema/", **bearer(world["viewer"]))
    assert schema.status_code == 200
    assert b"/api/v1/provisions/{reference}/transition/" in schema.content
    docs = client.get("/api/v1/docs/", **bearer(world["viewer"]))
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
    # Every script, stylesheet and icon is ours: a path on this server, never another host.
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.content.decode())
    assert assets and all(url.startswith("/") and not url.startswith("//") for url in assets), assets
    assert csp_directives(docs)["default-src"] == "'self'" and "script-src" not in csp_directives(docs)
    script = client.get("/api/v1/docs/?script=", **bearer(world["viewer"]))
    assert script.status_code == 200 and b"SwaggerUIBundle" in script.content


def test_a_token_is_throttled(client: Client, world, monkeypatch) -> None:
    from provisions.api.conventions import PerCallerThrottle

    # DRF reads the rates once, into the class: patch them there (undone after the test).
    monkeypatch.setattr(PerCallerThrottle, "THROTTLE_RATES", {"caller": "3/minute"})
    headers = bearer(world["viewer"])
    answers = [client.get("/api/v1/domains/", **headers) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    # Each answer says the rate and what is left of it (IETF RateLimit fields); the 429 when to retry.
    assert {answer["RateLimit-Policy"] for answer in answers} == {'"caller";q=3;w=60'}
    left = [re.fullmatch(r'"caller";r=(\d+);t=(\d+)', answer["RateLimit"]) for answer in answers]
    assert all(left) and [int(match.group(1)) for match in left if match] == [2, 1, 0, 0]
    assert all(0 < int(match.group(2)) <= 60 for match in left if match)
    assert 0 < int(answers[3]["Retry-After"]) <= 60
    assert "RateLimit" not in client.get("/healthz")  # pages and probes are not throttled


def test_a_user_creates_lists_and_revokes_their_own_tokens(client: Client, world) -> None:
    client.force_login(world["analyst"])
    created = client.post(
        "/api/v1/tokens/", {"name": "my script", "clearance": "official"}, content_type="application/json"
    )
    assert created.status_code == 201
    key, token_id = created.json()["key"], created.json()["id"]
    assert created.json()["clearance"] == "official"
    as_token = Client().get("/api/v1/provisions/", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert [row["reference"] for row in as_token.json()["results"]] == ["SP-0"]  # the token's clearance
    listed = client.get("/api/v1/tokens/").json()["results"]
    assert [(row["id"], "key" in row) for row in listed] == [(token_id, False)]

    past = client.post(
        "/api/v1/tokens/",
        {"name": "x", "expires_at": "2020-01-01T00:00:00Z"},
        content_type="application/json",
    )
    assert past.status_code == 400 and "expires_at" in past.json()["error"]["field_errors"]
    too_high = client.post(
        "/api/v1/tokens/", {"name": "x", "clearance": "secret"}, content_type="application/json"
    )
    assert too_high.status_code == 403  # above the analyst's own clearance
    someone_else = UserFactory(role="viewer")
    assert client.delete(f"/api/v1/tokens/{token_id}/").status_code == 204
    assert Client().get("/api/v1/provisions/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401
    other_token, _ = api_token_create(owner=someone_else, by=Reader.of(someone_else), name="theirs")
    assert client.delete(f"/api/v1/tokens/{other_token.pk}/").status_code == 404


def test_a_token_made_through_an_expiring_token_expires_with_it(client: Client, world) -> None:
    soon = timezone.now() + datetime.timedelta(minutes=5)
    _, key = api_token_create(
        owner=world["analyst"], by=Reader.of(world["analyst"]), name="short", expires_at=soon
    )
    later = (timezone.now() + datetime.timedelta(days=30)).isoformat()

    for body in ({"name": "forever"}, {"name": "longer", "expires_at": later}):
        made = client.post(
            "/api/v1/tokens/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
        )
        assert made.status_code == 201
        assert ApiToken.objects.get(pk=made.json()["id"]).expires_at == soon
    client.force_login(world["analyst"])  # a signed-in user is not limited by any token, only the default
    made = client.post("/api/v1/tokens/", {"name": "mine"}, content_type="application/json").json()
    assert ApiToken.objects.get(pk=made["id"]).expires_at > soon + datetime.timedelta(days=80)


def test_an_unreadable_body_or_an_unanswerable_accept_gets_the_documented_error(
    client: Client, world
) -> None:
    headers = bearer(world["negotiator"])
    wrong_type = client.post(
        "/api/v1/provisions/SP-0/transition/", "to=agreed", content_type="text/plain", **headers
    )
    wrong_accept = client.get("/api/v1/provisions/", HTTP_ACCEPT="application/xml", **headers)
    schema = client.get("/api/v1/schema/?format=json", **headers).json()
    transition = schema["paths"]["/api/v1/provisions/{reference}/transition/"]["post"]["responses"]
    listing = schema["paths"]["/api/v1/provisions/"]["get"]["responses"]
    assert wrong_type.status_code == 415 and "415" in transition
    assert wrong_accept.status_code == 406 and "406" in listing
    for response in (wrong_type, wrong_accept):
        assert set(response.json()["error"]) >= {"status", "code", "message"}


def test_ordering_by_severity_or_status_follows_their_rank_not_their_spelling(client: Client, world) -> None:
    for status in (Status.SIGNED, Status.IDENTIFIED, Status.AGREED_IN_PRINCIPLE, Status.WITHDRAWN):
        ProvisionFactory(domain=world["domain"], status=status)
    headers = bearer(world["negotiator"])  # cleared to secret: every provision
    statuses = [
        row["status"]
        for row in client.get("/api/v1/provisions/?ordering=status&page_size=100", **headers).json()[
            "results"
        ]
    ]
    ladder = [status.value for status in Status]
    assert statuses == sorted(statuses, key=ladder.index) and len(set(statuses)) >= 4
    for level in ("low", "critical", "medium", "high"):
        Gap.objects.create(
            kind="uncovered",
            severity=level,
            capability=CapabilityFactory(domain=world["domain"]),
            domain=world["domain"],
        )
    severities = [
        row["severity"] for row in client.get("/api/v1/gaps/?ordering=-severity", **headers).json()["results"]
    ]
    assert severities == ["critical", "high", "medium", "low"]


def test_an_unknown_query_parameter_is_a_400_naming_the_ones_the_operation_takes(
    client: Client, world
) -> None:
    headers = bearer(world["analyst"])
    schema = client.get("/api/v1/schema/?format=json", **headers).json()
    declared = {
        p["name"] for p in schema["paths"]["/api/v1/gaps/"]["get"]["parameters"] if p["in"] == "query"
    }
    assert {"as_of", "domain", "kind", "severity", "state", "ordering", "cursor", "page_size"} <= declared
    # A guessed parameter no longer returns everything as if it had filtered.
    refused = client.get("/api/v1/gaps/?severity=high&changed_after=2026-01-01", **headers)
    assert refused.status_code == 400
    [message] = refused.json()["error"]["field_errors"]["changed_after"]
    assert message == f"unknown query parameter: this operation takes {', '.join(sorted(declared))}"
    assert set(refused.json()["error"]["field_errors"]) == {"changed_after"}  # the known one is not blamed
    # Each operation by its own schema: a detail read takes as_of, a write takes none.
    today = timezone.localdate().isoformat()
    assert client.get(f"/api/v1/provisions/SP-0/?as_of={today}", **headers).status_code == 200
    assert client.get("/api/v1/provisions/SP-0/?page=2", **headers).status_code == 400
    assert client.get("/api/v1/coverage/?domain=law-enforcement", **headers).status_code == 400
    assert client.get(f"/api/v1/coverage/?as_of={today}", **headers).status_code == 200
    # Who may not ask is told that first; the parameters are checked after.
    assert client.get("/api/v1/gaps/?changed_after=2026-01-01").status_code == 401


def test_updated_since_lists_the_provisions_any_write_has_touched_since(client: Client, world) -> None:
    headers = bearer(world["negotiator"])
    since = timezone.now()
    assert (
        client.get("/api/v1/provisions/", {"updated_since": since.isoformat()}, **headers).json()["results"]
        == []
    )
    positioned, covering = world["provisions"]["secret"], world["provisions"]["official"]
    # A position and a coverage change are writes to the provision: both move its updated_at.
    assert (
        client.post(
            f"/api/v1/provisions/{positioned.reference}/positions/",
            {"party": "EU", "stance": "supports", "firmness": "definitive", "version": positioned.version},
            content_type="application/json",
            **headers,
        ).status_code
        == 200
    )
    assert (
        client.post(
            f"/api/v1/provisions/{covering.reference}/coverage/",
            {"capability": world["capability"].code, "extent": "partial", "version": covering.version},
            content_type="application/json",
            **headers,
        ).status_code
        == 200
    )
    touched = client.get("/api/v1/provisions/", {"updated_since": since.isoformat()}, **headers).json()
    assert {row["reference"] for row in touched["results"]} == {positioned.reference, covering.reference}
    for row in touched["results"]:
        assert datetime.datetime.fromisoformat(row["updated_at"]) >= since
    for nonsense in (
        "yesterday",
        "0455-04-05T02:17:16-17:52",
        "2026-12-01T09:00:00+15:00",
        "1800-01-01T00:00Z",
    ):
        refused = client.get("/api/v1/provisions/", {"updated_since": nonsense}, **headers)
        assert refused.status_code == 400, nonsense  # the last three reached PostgreSQL: a 500 there
        assert "updated_since" in refused.json()["error"]["field_errors"]


def test_ordering_is_an_enum_of_the_lists_fields_and_an_unknown_one_is_a_400(client: Client, world) -> None:
    headers = bearer(world["negotiator"])
    schema = client.get("/api/v1/schema/?format=json", **headers).json()
    [ordering] = [p for p in schema["paths"]["/api/v1/gaps/"]["get"]["parameters"] if p["name"] == "ordering"]
    assert ordering["schema"]["enum"] == ["opened_at", "-opened_at", "severity", "-severity"]
    for term in ordering["schema"]["enum"]:
        assert client.get(f"/api/v1/gaps/?ordering={term}", **headers).status_code == 200, term
    assert client.get("/api/v1/gaps/?ordering=-severity,opened_at", **headers).status_code == 200  # several
    for term in ("kind", "-explanation", "severity,nonsense", "password"):
        refused = client.get(f"/api/v1/gaps/?ordering={term}", **headers)
        assert refused.status_code == 400, term
        [message] = refused.json()["error"]["field_errors"]["ordering"]
        assert message.endswith("expected one of opened_at, -opened_at, severity, -severity"), message


@pytest.mark.parametrize("as_of", ["", "&as_of=2020-12-20"])
def test_an_unknown_domain_in_the_gap_filters_is_a_400_with_or_without_as_of(
    client: Client, world, as_of
) -> None:
    response = client.get(f"/api/v1/gaps/?domain=nowhere{as_of}", **bearer(world["viewer"]))
    assert response.status_code == 400 and "domain" in response.json()["error"]["field_errors"]
    known = client.get(f"/api/v1/gaps/?domain=law-enforcement{as_of}", **bearer(world["viewer"]))
    assert known.status_code == 200


# --- rules v2: the record as it stood, aims and what changed ------------------------------------------------


@pytest.fixture
def shipped(shipped_partnership_file):
    from django.core.management import call_command

    call_command("import_partnership", shipped_partnership_file, stdout=io.StringIO())


def test_a_provision_and_a_capability_read_as_they_stood_on_a_date(client: Client, shipped) -> None:
    headers = bearer(UserFactory(role="viewer", clearance="secret"))
    before = client.get("/api/v1/capabilities/DATA-FLOWS/?as_of=2020-12-23", **headers).json()
    after = client.get("/api/v1/capabilities/DATA-FLOWS/?as_of=2020-12-24", **headers).json()
    assert (before["lapses_on"], after["lapses_on"]) == ("2020-12-31", "2021-06-30")  # the bridge clause

    then = client.get("/api/v1/provisions/SP-LE-01/?as_of=2020-10-01", **headers).json()
    assert then["status"] == "under_negotiation"
    assert {p["party"]: p["stance"] for p in then["positions"]} == {"UK": "proposes", "EU": "conditional"}
    assert then["alignment"] == "asymmetric"

    def expires(day: str) -> str | None:
        return client.get(f"/api/v1/provisions/SP-LE-01/?as_of={day}", **headers).json()["expires_on"]

    # Its interim period: to 2021-10-01, extended on 2021-09-24 to 2022-07-01, then ended on 2022-06-17.
    assert [expires(day) for day in ("2021-09-23", "2021-09-24", "2022-06-16", "2022-06-17")] == [
        "2021-10-01",
        "2022-07-01",
        "2022-07-01",
        None,
    ]
    # A provision that did not exist yet is not in the list then.
    listed = client.get("/api/v1/provisions/?as_of=2020-01-01&page_size=100", **headers).json()["results"]
    assert "SP-AM-03" not in {p["reference"] for p in listed} and "SP-LE-01" in {
        p["reference"] for p in listed
    }


def test_the_aims_and_what_changed_are_served(client: Client, shipped) -> None:
    headers = bearer(UserFactory(role="viewer", clearance="secret"))
    aims = client.get("/api/v1/aims/?as_of=2021-01-05", **headers).json()
    assert [aim["aim_code"] for aim in aims] == sorted(aim["aim_code"] for aim in aims)
    first = aims[0]
    columns = ["aim_code", "aim_title", "verdict", "capabilities", "secured", "partial", "in_negotiation"]
    assert list(first)[:8] == [*columns, "uncovered"]
    assert first["capabilities"] == sum(
        first[state] for state in ("secured", "partial", "in_negotiation", "uncovered")
    )

    changes = client.get("/api/v1/changes/?from=2020-12-01&to=2021-01-01", **headers)
    assert changes.status_code == 200
    moved = {(row["change"], row["subject_code"]) for row in changes.json()["gaps"]}
    assert ("opened", "SIS-II") in moved and ("eased", "DATA-FLOWS") in moved
    kinds = {event["kind"] for event in changes.json()["events"]}
    assert {"status_change", "position", "capability_change"} <= kinds  # agreed, positions, the bridge clause
    refused = client.get("/api/v1/changes/?from=2021-01-01&to=2020-12-01", **headers)
    assert refused.status_code == 400 and "from" in refused.json()["error"]["field_errors"]


def test_writes_take_an_effective_date_and_discussions_are_recorded(client: Client, shipped) -> None:
    from provisions.models import Domain

    negotiator = UserFactory(
        role="negotiator", clearance="secret", domains=[Domain.objects.get(code="security-defence")]
    )
    headers = bearer(negotiator)
    version = client.get("/api/v1/provisions/SP-SD-04/", **headers).json()["version"]
    future = (timezone.localdate() + datetime.timedelta(days=1)).isoformat()

    refused = client.post(
        "/api/v1/provisions/SP-SD-04/positions/",
        {"party": "EU", "stance": "supports", "version": version, "effective_on": future},
        content_type="application/json",
        **headers,
    )
    assert refused.status_code == 400 and "in the future" in str(refused.json()["error"]["field_errors"])
    without_reason = client.post(
        "/api/v1/provisions/SP-SD-04/positions/",
        {"party": "EU", "stance": "supports", "version": version, "effective_on": "2023-01-10"},
        content_type="application/json",
        **headers,
    )
    assert without_reason.status_code == 400 and "needs a reason" in str(without_reason.json())
    taken = client.post(
        "/api/v1/provisions/SP-SD-04/positions/",
        {
            "party": "EU",
            "stance": "supports",
            "version": version,
            "effective_on": "2023-01-10",
            "reason": "Minutes",
        },
        content_type="application/json",
        **headers,
    )
    assert taken.status_code == 200
    eu = next(p for p in taken.json()["positions"] if p["party"] == "EU")
    assert (eu["stance"], eu["at"]) == ("supports", "2023-01-10")

    discussed = client.post(
        "/api/v1/provisions/SP-SD-04/discussions/",
        {"on": timezone.localdate().isoformat(), "note": "PESCO round: no move"},
        content_type="application/json",
        **headers,
    )
    assert discussed.status_code == 200
    assert Discussion.objects.filter(provision__reference="SP-SD-04", note="PESCO round: no move").exists()
    before = client.post(
        "/api/v1/provisions/SP-SD-04/discussions/",
        {"on": "2020-01-01", "note": "Too early"},
        content_type="application/json",
        **headers,
    )
    assert before.status_code == 400 and "before the provision existed" in str(before.json())


def test_the_schema_documents_the_headers_middleware_adds(client: Client, world) -> None:
    """RateLimit on every answer, Retry-After on 429, and on reads ETag with If-None-Match and its 304."""
    headers = bearer(world["viewer"])
    schema = client.get("/api/v1/schema/?format=json", **headers).json()
    operations = [
        (method, operation) for item in schema["paths"].values() for method, operation in item.items()
    ]
    assert len(operations) > 30
    for method, operation in operations:
        for code, response in operation["responses"].items():
            assert {"RateLimit-Policy", "RateLimit"} <= set(response["headers"]), (
                operation["operationId"],
                code,
            )
        assert (
            ("Retry-After" in operation["responses"]["429"]["headers"])
            if "429" in operation["responses"]
            else True
        )
        if method == "post" and operation["operationId"] != "createToken":  # a new token's key is never kept
            assert "Idempotency-Key" in {parameter["name"] for parameter in operation["parameters"]}
            assert {"409", "422"} <= set(operation["responses"])
        if method == "get":
            assert "If-None-Match" in {parameter["name"] for parameter in operation["parameters"]}
            assert "ETag" in operation["responses"]["200"]["headers"] and "304" in operation["responses"]

    first = client.get("/api/v1/events/", **headers)
    again = client.get("/api/v1/events/", HTTP_IF_NONE_MATCH=first["ETag"], **headers)
    assert (first.status_code, again.status_code) == (200, 304)
    assert again["RateLimit"].startswith('"caller";r=')


def _follow(client: Client, url: str, headers: dict[str, str], *, between: Any = None) -> list[Any]:
    """Every row of a list, page after page by its `next` link, calling `between` after the first page."""
    rows: list[Any] = []
    while url:
        page = client.get(url, **headers)
        assert page.status_code == 200, page.content
        rows += page.json()["results"]
        url = page.json()["next"]
        if between is not None:
            between()
            between = None
    return rows


@pytest.mark.parametrize("ordering", ["", "&ordering=-severity", "&ordering=severity,-opened_at"])
def test_gap_pages_neither_repeat_nor_skip_rows_while_gaps_are_opened(client: Client, ordering: str) -> None:
    from provisions.models import Gap, GapKind, Level

    capabilities = [CapabilityFactory() for _ in range(9)]
    levels = [Level.LOW, Level.MEDIUM, Level.HIGH]
    for number, capability in enumerate(capabilities[:6]):
        Gap.objects.create(
            kind=GapKind.UNCOVERED,
            severity=levels[number % 3],
            capability=capability,
            domain=capability.domain,
            explanation="x",
        )
    before = set(Gap.objects.values_list("id", flat=True))
    headers = bearer(UserFactory(role="viewer", clearance=Marking.SECRET))

    def open_more() -> None:  # newer gaps, of every severity, while the list is being read
        for number, capability in enumerate(capabilities[6:]):
            Gap.objects.create(
                kind=GapKind.UNCOVERED,
                severity=levels[number % 3],
                capability=capability,
                domain=capability.domain,
                explanation="y",
            )

    rows = _follow(client, f"/api/v1/gaps/?page_size=2{ordering}", headers, between=open_more)

    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids))  # no row twice
    assert before <= set(ids)  # none of those there from the start skipped


def test_provision_pages_follow_a_cursor_and_a_bad_cursor_is_a_400(client: Client, world) -> None:
    headers = bearer(world["negotiator"])
    first = client.get("/api/v1/provisions/?page_size=1", **headers).json()
    assert set(first) == {"next", "previous", "results"} and len(first["results"]) == 1
    rows = _follow(client, "/api/v1/provisions/?page_size=1", headers)
    assert [row["reference"] for row in rows] == sorted(row["reference"] for row in rows)
    assert len(rows) == len(world["provisions"])

    refused = client.get("/api/v1/provisions/?cursor=bogus", **headers)
    assert refused.status_code == 400 and "cursor" in refused.json()["error"]["field_errors"]


def test_a_read_only_evaluation_of_gaps_pages_by_cursor_too(client: Client, world) -> None:
    headers = bearer(world["analyst"])
    today = timezone.localdate().isoformat()
    whole = client.get(f"/api/v1/gaps/?as_of={today}&page_size=500", **headers).json()["results"]
    paged = _follow(client, f"/api/v1/gaps/?as_of={today}&page_size=1", headers)
    assert len(whole) >= 2 and paged == whole
    assert client.get(f"/api/v1/gaps/?as_of={today}&cursor=bm9wZQ", **headers).status_code == 400


PROBLEM = "application/problem+json"


def test_errors_come_as_problem_details_to_a_caller_who_asks(client: Client, world) -> None:
    headers = {**bearer(world["negotiator"]), "HTTP_ACCEPT": f"{PROBLEM}, application/json"}
    invalid = client.post(
        "/api/v1/provisions/SP-0/transition/", {"to": "nowhere"}, content_type="application/json", **headers
    )
    missing = client.get("/api/v1/no-such-list/", **headers)
    fine = client.get("/api/v1/domains/", HTTP_ACCEPT=PROBLEM, **bearer(world["viewer"]))

    assert invalid.status_code == 400 and invalid["Content-Type"] == PROBLEM
    body = invalid.json()
    assert {key: body[key] for key in ("type", "title", "status", "code", "instance")} == {
        "type": "urn:security-partnership-tracker:problem:invalid",
        "title": "Some values are not valid",
        "status": 400,
        "code": "invalid",
        "instance": "/api/v1/provisions/SP-0/transition/",
    }
    assert body["detail"] and "to" in body["errors"]
    assert (missing.status_code, missing["Content-Type"], missing.json()["type"]) == (
        404,
        PROBLEM,
        "urn:security-partnership-tracker:problem:not_found",
    )
    assert (fine.status_code, fine["Content-Type"]) == (200, "application/json")  # not a 406
    # Without asking, the envelope as before.
    assert set(client.get("/api/v1/no-such-list/", **bearer(world["viewer"])).json()) == {"error"}


def test_a_repeated_move_a_refused_move_and_a_stale_version_are_each_their_own_problem(
    client: Client, world
) -> None:
    negotiator = bearer(world["negotiator"])
    asks = {**negotiator, "HTTP_ACCEPT": PROBLEM}
    move = {"to": "under_negotiation", "note": "Opened"}
    url = "/api/v1/provisions/SP-0/transition/"
    assert client.post(url, move, content_type="application/json", **negotiator).status_code == 200

    repeated = client.post(url, move, content_type="application/json", **asks)
    backwards = client.post(url, {"to": "identified"}, content_type="application/json", **asks)
    enveloped = client.post(url, move, content_type="application/json", **negotiator).json()["error"]
    stale = client.post(url, {**move, "to": "agreed", "version": 1}, content_type="application/json", **asks)

    assert (repeated.status_code, repeated.json()["type"]) == (
        409,
        "urn:security-partnership-tracker:problem:already_in_status",
    )
    assert (backwards.status_code, backwards.json()["code"]) == (409, "reason_required")
    assert (enveloped["code"], enveloped["refusal"]) == ("transition_refused", "already_in_status")
    current = Provision.objects.get(reference="SP-0").version
    assert stale.status_code == 412 and stale.json()["current_version"] == current == 2
    assert stale["ETag"] == f'"{current}"'


def test_gaps_updated_since_lists_those_acknowledged_or_rescanned_since(client: Client) -> None:
    from provisions.models import Gap, GapKind, Level, ScanTrigger
    from provisions.services.scans import gap_acknowledge, gaps_scan

    headers = bearer(UserFactory(role="analyst", clearance=Marking.SECRET))
    untouched, acknowledged = (
        Gap.objects.create(
            kind=GapKind.UNCOVERED,
            severity=Level.LOW,
            capability=capability,
            domain=capability.domain,
            explanation="x",
        )
        for capability in CapabilityFactory.create_batch(2)
    )
    Gap.objects.update(updated_at=timezone.now() - datetime.timedelta(days=2))
    since = (timezone.now() - datetime.timedelta(minutes=1)).isoformat()

    def changed() -> set[int]:
        answer = client.get("/api/v1/gaps/", {"updated_since": since, "page_size": 500}, **headers)
        return {row["id"] for row in answer.json()["results"]}

    gap_acknowledge(gap=acknowledged, by=Reader.system(), note="Known")
    assert changed() == {acknowledged.pk}

    gaps_scan(trigger=ScanTrigger.COMMAND)  # re-explains or resolves the hand-made gaps, opens others
    rescanned = changed()
    assert {untouched.pk, acknowledged.pk} <= rescanned
    assert rescanned == set(Gap.objects.filter(updated_at__gte=since).values_list("id", flat=True))
    assert client.get("/api/v1/gaps/", {"updated_since": "soon"}, **headers).status_code == 400
