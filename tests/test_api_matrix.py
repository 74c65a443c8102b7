"""The REST API's permission matrix: every endpoint, read and write, for every kind of caller
(anonymous, no role, viewer, analyst, negotiator of the provision's domain, negotiator of another
domain, administrator) at every clearance, against provisions at every marking.

Each case asserts both sides: what is allowed answers 2xx and its effect happened (the data is in
the response, the row changed); what is refused answers 401 (no credentials), 403 (role or
clearance) or 404 (a provision above the caller's clearance, answered exactly as one that does not
exist), always in the `{"error": {...}}` shape, and nothing changed. No response to a caller ever
contains the reference or the title of a provision above its clearance.

The expectations are derived from the rules of provisions/permissions.py (and README "Who may do
what"), not from the code under test.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.test import Client, override_settings
from django.utils import timezone

from provisions.explanations import WITHHELD
from provisions.models import (
    ApiToken,
    Capability,
    Domain,
    Extent,
    Gap,
    GapKind,
    GapScan,
    Level,
    Marking,
    Precedent,
    Provision,
    ScanRequest,
    Stance,
    Status,
    Territory,
    TerritoryKind,
)
from provisions.permissions import Reader, Role
from provisions.services.scans import gaps_scan
from provisions.services.tokens import api_token_create
from tests.factories import (
    CapabilityFactory,
    CoverageFactory,
    DomainFactory,
    PartyFactory,
    PositionFactory,
    ProvisionFactory,
    UserFactory,
)
from tests.test_api import bearer
from tests.test_editing import ACTORS, MARKINGS, expected_to_edit, make_actor

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

DOMAIN = "law-enforcement"
CAPABILITY = "SIS-II"
REFERENCE = {
    Marking.OFFICIAL: "SP-LE-01",
    Marking.OFFICIAL_SENSITIVE: "SP-LE-02",
    Marking.SECRET: "SP-LE-03",
}
TITLE = {  # distinct words, so a leaked title is found in any response body
    Marking.OFFICIAL: "Exchange of alerts",
    Marking.OFFICIAL_SENSITIVE: "Liaison officers at the agency",
    Marking.SECRET: "Covert channel for watchlists",
}
NONEXISTENT = "SP-LE-99"
ACKNOWLEDGING = ("analyst", "negotiator of the domain", "negotiator of another domain", "administrator")
SHORT = {"negotiator of the domain": "negotiator-own", "negotiator of another domain": "negotiator-other"}


# --- callers ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who calls: an actor of tests.test_editing.ACTORS, "no role", or None (anonymous), with a
    clearance, through a token that may be cleared lower than its user."""

    actor: str | None
    clearance: Marking = Marking.OFFICIAL
    token_clearance: Marking | None = None

    def __str__(self) -> str:
        if self.actor is None:
            return "anonymous"
        name = f"{SHORT.get(self.actor, self.actor.replace(' ', '-'))}:{self.clearance}"
        return f"{name}/token:{self.token_clearance}" if self.token_clearance else name

    @property
    def has_role(self) -> bool:
        return self.actor in ACTORS

    @property
    def effective(self) -> Marking:
        """The clearance the request acts at: the lower of the user's and the token's."""
        if self.token_clearance is None:
            return self.clearance
        return min(self.clearance, self.token_clearance, key=MARKINGS.index)

    def sees(self, marking: Marking) -> bool:
        return self.has_role and MARKINGS.index(self.effective) >= MARKINGS.index(marking)

    def edits(self, marking: Marking) -> bool:
        return self.has_role and expected_to_edit(str(self.actor), self.effective, marking)

    @property
    def acknowledges(self) -> bool:
        return self.actor in ACKNOWLEDGING

    def visible(self) -> list[str]:
        return [REFERENCE[marking] for marking in MARKINGS if self.sees(marking)]

    def refusal(self, *, visible: bool = True) -> int:
        """How a refusal is answered: no credentials, no role, hidden (as if absent), or forbidden."""
        if self.actor is None:
            return 401
        if not self.has_role or visible:
            return 403
        return 404


ANONYMOUS = Caller(None)
NO_ROLE = Caller("no role", Marking.SECRET)
TOKEN_CAPPED = [  # the token's clearance caps its user's
    Caller("administrator", Marking.SECRET, Marking.OFFICIAL),
    Caller("negotiator of the domain", Marking.SECRET, Marking.OFFICIAL_SENSITIVE),
    Caller("analyst", Marking.OFFICIAL_SENSITIVE, Marking.OFFICIAL),
]
CALLERS = [
    ANONYMOUS,
    NO_ROLE,
    *(Caller(actor, clearance) for actor in ACTORS for clearance in MARKINGS),
    *TOKEN_CAPPED,
]
ROLE_HOLDERS = [caller for caller in CALLERS if caller.has_role]
# Where neither clearance nor marking can matter: one caller of each kind.
ONE_OF_EACH = [
    ANONYMOUS,
    NO_ROLE,
    *(Caller(actor, Marking.OFFICIAL) for actor in ACTORS),
    TOKEN_CAPPED[0],
]


@dataclass
class Session:
    caller: Caller
    user: Any
    headers: dict[str, str]
    client: Client = field(default_factory=Client)

    def call(self, method: str, path: str, body: Any = None, **extra: str) -> Any:
        send = getattr(self.client, method)
        if body is None:
            return send(path, **self.headers, **extra)
        return send(path, body, content_type="application/json", **self.headers, **extra)


def sign_in(caller: Caller, world: dict[str, Any]) -> Session:
    """A fresh client for the caller, with its bearer token (none: anonymous)."""
    user, headers = world["callers"][caller]
    return Session(caller, user, headers)


# --- the world and the one assertion helper -----------------------------------------------------------------


def build_world() -> dict[str, Any]:
    """One domain, one capability about to lapse, covered by a provision at each marking (each with
    the UK's position), a territory, a precedent, a stranger's token, a scan's gaps (the capability
    at risk and each provision stalled), and every caller with its bearer token."""
    for role in Role:  # made by a migration, but a transaction=True test run earlier may have flushed them
        Group.objects.get_or_create(name=role.value)
    domain = DomainFactory(code=DOMAIN, name="Law enforcement")
    uk = PartyFactory(partnership=domain.partnership, code="UK")
    PartyFactory(partnership=domain.partnership, code="EU")
    capability = CapabilityFactory(
        code=CAPABILITY,
        domain=domain,
        criticality=Level.HIGH,
        lapses_on=timezone.localdate() + datetime.timedelta(days=20),
    )
    territory = Territory.objects.create(code="GI", name="Gibraltar", kind=TerritoryKind.OVERSEAS_TERRITORY)
    precedent = Precedent.objects.create(code="EU-CA-PNR", title="EU–Canada PNR agreement")
    for marking in MARKINGS:
        provision = ProvisionFactory(
            reference=REFERENCE[marking],
            title=TITLE[marking],
            text="The Parties shall exchange Schengen alerts.",
            domain=domain,
            marking=marking,
            status=Status.PROPOSED,
        )
        CoverageFactory(provision=provision, capability=capability, extent=Extent.FULL)
        PositionFactory(provision=provision, party=uk, stance=Stance.PROPOSES)
        provision.territories.add(territory)
        provision.precedents.add(precedent)
    stranger = UserFactory(role="viewer")
    stranger_token, _ = api_token_create(owner=stranger, by=Reader.of(stranger), name="stranger's script")
    scan = gaps_scan(trigger="command").scan
    callers: dict[Caller, tuple[Any, dict[str, str]]] = {ANONYMOUS: (None, {})}
    for caller in CALLERS[1:]:
        if caller.actor == "no role":
            user = UserFactory(clearance=caller.clearance)
        else:
            user = make_actor(caller.actor, caller.clearance, domain)
        callers[caller] = (user, bearer(user, clearance=caller.token_clearance or ""))
    return {"domain": domain, "scan": scan, "stranger_token": stranger_token, "callers": callers}


@pytest.fixture(scope="module")
def world(django_db_setup: None, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    """Built once (like TestCase.setUpTestData): each test runs in a savepoint inside this
    transaction, so its writes are undone, and the whole world is rolled back at the end."""
    fast_hasher = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
    with django_db_blocker.unblock(), fast_hasher, transaction.atomic():
        yield build_world()
        transaction.set_rollback(True)


def check(response: Any, expected: int, caller: Caller) -> Any:
    """The response has the expected status; a refusal has the error shape; and whatever the
    answer, it names no provision above the caller's clearance. Returns the JSON body (or None)."""
    assert response.status_code == expected, (response.status_code, response.content[:600])
    content = response.content.decode()
    for marking in MARKINGS:
        if not caller.sees(marking):
            assert REFERENCE[marking] not in content, f"{REFERENCE[marking]} leaked to {caller}"
            assert TITLE[marking] not in content, f"the title of {REFERENCE[marking]} leaked to {caller}"
    if expected >= 400:
        error = response.json()["error"]
        assert error["status"] == expected
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["message"], str) and error["message"]
    return response.json() if content else None


def results(body: Any) -> list[Any]:
    return body["results"] if isinstance(body, dict) else body


def state(reference: str) -> dict[str, Any]:
    """What a write to a provision may change, as stored."""
    provision = Provision.objects.get(reference=reference)
    return {
        "title": provision.title,
        "marking": provision.marking,
        "status": provision.status,
        "version": provision.version,
        "status_changes": provision.status_changes.count(),
        # Today's: each party's latest position, and the links that count today (rules v2).
        "positions": sorted((p.party.code, p.stance, p.firmness) for p in provision.positions_at().values()),
        "covers": sorted((link.capability.code, link.extent) for link in provision.links_at()),
        "discussions": provision.discussions.count(),
    }


def shown(body: dict[str, Any]) -> dict[str, Any]:
    """The same, as the API shows it."""
    return {
        "title": body["title"],
        "marking": body["marking"],
        "status": body["status"],
        "version": body["version"],
        "positions": sorted((p["party"], p["stance"], p["firmness"]) for p in body["positions"]),
        "covers": sorted((c["capability"], c["extent"]) for c in body["covers"]),
    }


def everything() -> tuple[Any, ...]:
    return (
        Provision.objects.count(),
        Domain.objects.count(),
        Capability.objects.count(),
        GapScan.objects.count(),
        ScanRequest.objects.count(),
        [state(reference) for reference in REFERENCE.values()],
    )


def today() -> str:
    return timezone.localdate().isoformat()


# --- reads that no marking touches --------------------------------------------------------------------------


def codes(body: Any) -> list[str]:
    return [row["code"] for row in results(body)]


PLAIN_READS = [
    pytest.param("/api/v1/domains/", lambda body: DOMAIN in codes(body), id="domains"),
    pytest.param(f"/api/v1/domains/{DOMAIN}/", lambda body: body["name"] == "Law enforcement", id="domain"),
    pytest.param("/api/v1/capabilities/", lambda body: codes(body) == [CAPABILITY], id="capabilities"),
    pytest.param(
        f"/api/v1/capabilities/{CAPABILITY}/", lambda body: body["domain"] == DOMAIN, id="capability"
    ),
    pytest.param("/api/v1/territories/", lambda body: codes(body) == ["GI"], id="territories"),
    pytest.param("/api/v1/territories/GI/", lambda body: body["name"] == "Gibraltar", id="territory"),
    pytest.param("/api/v1/precedents/", lambda body: codes(body) == ["EU-CA-PNR"], id="precedents"),
    pytest.param("/api/v1/precedents/EU-CA-PNR/", lambda body: "PNR" in body["title"], id="precedent"),
    pytest.param(
        "/api/v1/gap-scans/",
        lambda body: [row["trigger"] for row in results(body)] == ["command"],
        id="scans",
    ),
    pytest.param("/api/v1/gap-scans/{scan}/", lambda body: body["trigger"] == "command", id="scan"),
    pytest.param(  # only the caller's own: not the stranger's
        "/api/v1/tokens/", lambda body: [row["name"] for row in results(body)] == ["test system"], id="tokens"
    ),
]


@pytest.mark.parametrize("path, holds", PLAIN_READS)
@pytest.mark.parametrize("caller", ONE_OF_EACH, ids=str)
def test_plain_reads_are_open_to_every_role(world, caller: Caller, path: str, holds: Callable) -> None:
    session = sign_in(caller, world)
    response = session.call("get", path.format(scan=world["scan"].pk))
    if caller.has_role:
        assert holds(check(response, 200, caller))
    else:
        check(response, caller.refusal(), caller)


# --- reads of collections: only what the caller's clearance allows ------------------------------------------


def references(body: Any) -> list[str]:
    return sorted(row["reference"] for row in results(body))


def subjects(body: Any) -> list[str]:
    return sorted(row["subject_code"] for row in results(body))


def proposed_in_domain(body: Any) -> int:
    (row,) = [row for row in body if row["domain"] == DOMAIN]
    assert row["capabilities_by_state"]["in_negotiation"] == 1  # the rules count all
    return int(row["provisions_by_status"][Status.PROPOSED])


COLLECTIONS = [
    pytest.param("/api/v1/provisions/", references, sorted, id="provisions"),
    pytest.param("/api/v1/provisions/?search=Schengen", references, sorted, id="provisions-search"),
    pytest.param(
        "/api/v1/provisions/?marking=secret",
        references,
        lambda visible: [ref for ref in visible if ref == REFERENCE[Marking.SECRET]],
        id="provisions-marking-secret",
    ),
    pytest.param(f"/api/v1/provisions/?covers={CAPABILITY}", references, sorted, id="provisions-covers"),
    pytest.param(
        f"/api/v1/provisions/?domain={DOMAIN}&status=proposed&ordering=-updated_at",
        references,
        sorted,
        id="provisions-filtered",
    ),
    pytest.param("/api/v1/gaps/", subjects, lambda visible: sorted([CAPABILITY, *visible]), id="gaps"),
    pytest.param("/api/v1/gaps/?kind=stalled", subjects, sorted, id="gaps-stalled"),
    pytest.param(
        f"/api/v1/gaps/?state=open&domain={DOMAIN}",
        subjects,
        lambda visible: sorted([CAPABILITY, *visible]),
        id="gaps-open-in-domain",
    ),
    pytest.param(
        "/api/v1/gaps/?as_of={today}",
        subjects,
        lambda visible: sorted([CAPABILITY, *visible]),
        id="gaps-as-of",
    ),
    pytest.param("/api/v1/gaps/?as_of={today}&kind=stalled", subjects, sorted, id="gaps-as-of-stalled"),
    pytest.param("/api/v1/coverage/", proposed_in_domain, len, id="coverage"),
    pytest.param("/api/v1/coverage/?as_of={today}", proposed_in_domain, len, id="coverage-as-of"),
]


@pytest.mark.parametrize("path, seen, expected", COLLECTIONS)
@pytest.mark.parametrize("caller", CALLERS, ids=str)
def test_collections_hold_only_what_the_clearance_allows(
    world, caller: Caller, path: str, seen: Callable, expected: Callable
) -> None:
    session = sign_in(caller, world)
    response = session.call("get", path.format(today=today()))
    if caller.has_role:
        assert seen(check(response, 200, caller)) == expected(caller.visible())
    else:
        check(response, caller.refusal(), caller)


@pytest.mark.parametrize("source", ["/api/v1/gaps/?kind=at_risk", "/api/v1/gaps/?kind=at_risk&as_of={today}"])
@pytest.mark.parametrize("caller", ROLE_HOLDERS, ids=str)
def test_a_capability_gap_withholds_the_provisions_above_the_clearance(world, caller, source) -> None:
    body = check(sign_in(caller, world).call("get", source.format(today=today())), 200, caller)
    (row,) = results(body)
    visible = caller.visible()
    assert row["subject_code"] == CAPABILITY
    assert row["covering_provisions"] == (";".join(visible) or None)
    assert row["explanation"].count(WITHHELD) == len(REFERENCE) - len(visible)
    assert all(reference in row["explanation"] for reference in visible)


# --- reads of one provision ---------------------------------------------------------------------------------


def provision_detail(body: Any, marking: Marking) -> None:
    assert body["reference"] == REFERENCE[marking]
    assert body["title"] == TITLE[marking]
    assert [(p["party"], p["stance"]) for p in body["positions"]] == [("UK", "proposes")]
    assert body["covers"] == [{"capability": CAPABILITY, "extent": "full", "from": None, "until": None}]
    assert (body["territories"], body["precedents"]) == (["GI"], ["EU-CA-PNR"])


def provision_history(body: Any, marking: Marking) -> None:
    assert [change["to_status"] for change in body["status_changes"]] == ["proposed"]


ONE_PROVISION = [
    pytest.param("/api/v1/provisions/{reference}/", provision_detail, id="detail"),
    pytest.param("/api/v1/provisions/{reference}/history/", provision_history, id="history"),
]


@pytest.mark.parametrize("path, holds", ONE_PROVISION)
@pytest.mark.parametrize("marking", MARKINGS, ids=lambda marking: f"provision:{marking}")
@pytest.mark.parametrize("caller", CALLERS, ids=str)
def test_a_provision_is_read_up_to_the_clearance_and_is_otherwise_not_found(
    world, caller: Caller, marking: Marking, path: str, holds: Callable
) -> None:
    session = sign_in(caller, world)
    response = session.call("get", path.format(reference=REFERENCE[marking]))
    if caller.sees(marking):
        holds(check(response, 200, caller), marking)
        return
    refused = check(response, caller.refusal(visible=False), caller)
    absent = session.call("get", path.format(reference=NONEXISTENT))
    assert (absent.status_code, absent.json()) == (response.status_code, refused)  # indistinguishable


# --- writes to a provision ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    method: str
    path: str
    body: dict[str, Any]
    effect: Callable[[dict[str, Any]], dict[str, Any]]
    headers: dict[str, str] = field(default_factory=dict)
    needs: Marking = Marking.OFFICIAL  # a clearance the write needs beyond the provision's marking


WRITES = {
    "edit-title-if-match": Write(
        "patch",
        "/api/v1/provisions/{reference}/",
        {"title": "Retitled", "reason": "round 4"},
        lambda before: {**before, "title": "Retitled"},
        headers={"HTTP_IF_MATCH": '"1"'},
    ),
    "mark-secret": Write(
        "patch",
        "/api/v1/provisions/{reference}/",
        {"marking": "secret", "version": 1},
        lambda before: {**before, "marking": "secret"},
        needs=Marking.SECRET,
    ),
    "transition": Write(
        "post",
        "/api/v1/provisions/{reference}/transition/",
        {"to": "under_negotiation", "note": "Round 3", "version": 1},
        lambda before: {
            **before,
            "status": "under_negotiation",
            "status_changes": before["status_changes"] + 1,
        },
    ),
    "position": Write(
        "post",
        "/api/v1/provisions/{reference}/positions/",
        {"party": "EU", "stance": "opposes", "firmness": "definitive", "note": "Not yet", "version": 1},
        lambda before: {
            **before,
            "positions": sorted([*before["positions"], ("EU", "opposes", "definitive")]),
        },
    ),
    "coverage": Write(
        "post",
        "/api/v1/provisions/{reference}/coverage/",
        {"capability": CAPABILITY, "extent": "partial"},
        lambda before: {**before, "covers": [(CAPABILITY, "partial")]},
        headers={"HTTP_IF_MATCH": '"1"'},
    ),
    "discussion": Write(
        "post",
        "/api/v1/provisions/{reference}/discussions/",
        {"on": "{today}", "note": "Round 7: no move", "version": 1},
        lambda before: {**before, "discussions": before["discussions"] + 1},
    ),
}


@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize("marking", MARKINGS, ids=lambda marking: f"provision:{marking}")
@pytest.mark.parametrize("caller", CALLERS, ids=str)
def test_a_write_is_allowed_only_in_the_callers_domains_and_clearance(
    world, caller: Caller, marking: Marking, write: str
) -> None:
    spec = WRITES[write]
    reference = REFERENCE[marking]
    session = sign_in(caller, world)
    before = state(reference)

    body = {key: value.format(today=timezone.localdate()) if isinstance(value, str) else value
            for key, value in (spec.body or {}).items()}  # fmt: skip
    response = session.call(spec.method, spec.path.format(reference=reference), body, **spec.headers)

    if caller.edits(marking) and caller.sees(spec.needs):
        body = check(response, 200, caller)
        after = state(reference)
        assert after == {**spec.effect(before), "version": before["version"] + 1}
        unshown = ("status_changes", "discussions")  # counted in the record, not in a provision's shape
        assert shown(body) == {key: value for key, value in after.items() if key not in unshown}
        assert response["ETag"] == f'"{after["version"]}"'
        return
    refused = check(response, caller.refusal(visible=caller.sees(marking)), caller)
    assert state(reference) == before
    if refused["error"]["status"] == 404:
        absent = session.call(spec.method, spec.path.format(reference=NONEXISTENT), body, **spec.headers)
        assert (absent.status_code, absent.json()) == (404, refused)  # indistinguishable


# --- gaps: acknowledge, scans -------------------------------------------------------------------------------


GAP_SUBJECTS = {"capability": None, **{f"provision-{marking}": marking for marking in MARKINGS}}


def gap_of(subject: Marking | None) -> Gap:
    if subject is None:
        return Gap.objects.get(capability__code=CAPABILITY, kind=GapKind.AT_RISK)
    return Gap.objects.get(provision__reference=REFERENCE[subject], kind=GapKind.STALLED)


@pytest.mark.parametrize("subject", GAP_SUBJECTS)
@pytest.mark.parametrize("caller", CALLERS, ids=str)
def test_analysts_and_above_acknowledge_the_gaps_they_may_see(world, caller: Caller, subject: str) -> None:
    marking = GAP_SUBJECTS[subject]
    gap = gap_of(marking)
    visible = marking is None or caller.sees(marking)
    session = sign_in(caller, world)

    response = session.call("post", f"/api/v1/gaps/{gap.pk}/acknowledge/", {"note": "Escalated"})

    gap.refresh_from_db()
    if caller.acknowledges and visible:
        body = check(response, 200, caller)
        assert (body["id"], body["state"], body["acknowledged_by"]) == (
            gap.pk,
            "acknowledged",
            session.user.username,
        )
        assert (gap.acknowledged_by, gap.acknowledgement_note) == (session.user, "Escalated")
        return
    check(response, caller.refusal(visible=visible), caller)
    assert (gap.acknowledged_at, gap.acknowledged_by, gap.acknowledgement_note) == (None, None, "")


@pytest.mark.parametrize("caller", CALLERS, ids=str)
def test_analysts_and_above_start_a_gap_scan(world, caller: Caller) -> None:
    session = sign_in(caller, world)
    response = session.call("post", "/api/v1/gap-scans/")
    requested = ScanRequest.objects.filter(trigger="api", full=True)
    if caller.acknowledges:
        body = check(response, 202, caller)
        assert body == {"status": "queued", "request": requested.get().pk}
    else:
        check(response, caller.refusal(), caller)
        assert not requested.exists()


# --- tokens -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("caller", CALLERS, ids=str)
def test_a_token_made_through_a_token_is_capped_like_it(world, caller: Caller) -> None:
    """A token cleared below its user must not mint one that sees more (blank clearance: "yours")."""
    session = sign_in(caller, world)
    response = session.call("post", "/api/v1/tokens/", {"name": "my script"})
    made = ApiToken.objects.filter(name="my script")
    if not caller.has_role:
        check(response, caller.refusal(), caller)
        assert not made.exists()
        return
    body = check(response, 201, caller)
    assert made.get().user == session.user and body["user"] == session.user.username
    listing = Client().get("/api/v1/provisions/", HTTP_AUTHORIZATION=f"Bearer {body['key']}")
    assert references(check(listing, 200, caller)) == caller.visible()


@pytest.mark.parametrize("clearance", MARKINGS, ids=str)
@pytest.mark.parametrize("caller", CALLERS, ids=str)
def test_a_token_is_cleared_at_most_as_high_as_its_caller(world, caller: Caller, clearance: Marking) -> None:
    session = sign_in(caller, world)
    response = session.call("post", "/api/v1/tokens/", {"name": "my script", "clearance": clearance})
    made = ApiToken.objects.filter(name="my script")
    if caller.sees(clearance):
        body = check(response, 201, caller)
        assert (made.get().user, made.get().clearance, body["clearance"]) == (
            session.user,
            clearance,
            clearance,
        )
    else:
        check(response, caller.refusal(), caller)
        assert not made.exists()


@pytest.mark.parametrize("whose", ["own", "stranger's"])
@pytest.mark.parametrize("caller", ONE_OF_EACH, ids=str)
def test_a_caller_revokes_only_its_own_tokens(world, caller: Caller, whose: str) -> None:
    session = sign_in(caller, world)
    if whose == "own" and session.user is not None:
        token, _ = api_token_create(owner=session.user, by=Reader.of(session.user), name="spare")
    else:
        token = world["stranger_token"]

    response = session.call("delete", f"/api/v1/tokens/{token.pk}/")

    token.refresh_from_db()
    if caller.has_role and whose == "own":
        assert check(response, 204, caller) is None
        assert token.revoked_at is not None
        return
    check(response, caller.refusal(visible=False) if caller.has_role else caller.refusal(), caller)
    assert token.revoked_at is None


# --- what the API does not offer ----------------------------------------------------------------------------


UNSUPPORTED = [
    pytest.param(
        "post", "/api/v1/provisions/", {"reference": "SP-NEW", "title": "New"}, id="create-provision"
    ),
    pytest.param(
        "put", f"/api/v1/provisions/{REFERENCE[Marking.OFFICIAL]}/", {"title": "X"}, id="put-provision"
    ),
    pytest.param("delete", f"/api/v1/provisions/{REFERENCE[Marking.SECRET]}/", None, id="delete-provision"),
    pytest.param("post", "/api/v1/domains/", {"code": "new", "name": "New"}, id="create-domain"),
    pytest.param("delete", f"/api/v1/capabilities/{CAPABILITY}/", None, id="delete-capability"),
    pytest.param("delete", "/api/v1/gap-scans/{scan}/", None, id="delete-scan"),
    pytest.param("post", "/api/v1/coverage/", {}, id="post-coverage"),
]


@pytest.mark.parametrize("method, path, body", UNSUPPORTED)
@pytest.mark.parametrize("caller", ONE_OF_EACH, ids=str)
def test_writes_the_api_does_not_offer_change_nothing(world, caller: Caller, method, path, body) -> None:
    session = sign_in(caller, world)
    before = everything()
    response = session.call(method, path.format(scan=world["scan"].pk), body)
    check(response, 405 if caller.has_role else caller.refusal(), caller)
    assert everything() == before
