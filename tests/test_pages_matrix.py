"""A permission matrix over the browser pages, through the test client.

Every page and every form POST, for every caller (anonymous, and each role of tests.test_editing's
ACTORS at each clearance), against a provision of each marking. Each case asserts both sides:
what the caller may do happens (200 or 302, the provision named, the write made), and what they
may not is refused (anonymous to the sign-in page, 403 for a role that may not, 404 for a
provision above their clearance, which must not reveal that it exists) with nothing changed and
the hidden provision named nowhere: not on the overview, the domain page, the gaps page, search,
the exports, another provision's page, nor in the explanation of a capability gap, where it reads
"[a provision above your clearance]". Counts count only what the caller may see.

The world of every case: one domain with a capability lapsing in 10 days, covered by the target
provision (the marking under test) and by an official neighbour; both proposed 100 days ago, and
the EU opposes the target. The scan then finds four gaps: the capability at risk, both provisions
stalled, and the target divergent; a reader below the target's marking sees two.

The target extends to Gibraltar, not yet consulted, so its page offers a consultation form.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import pypdf
import pytest
from django.db import transaction
from django.test import Client, override_settings
from django.utils import timezone

from provisions.models import (
    Extent,
    Gap,
    GapKind,
    Level,
    Marking,
    Provision,
    ScanTrigger,
    Stance,
    Status,
    Territory,
    TerritoryKind,
)
from provisions.services.scans import gaps_scan
from tests.factories import (
    CapabilityFactory,
    CoverageFactory,
    DomainFactory,
    PartyFactory,
    PositionFactory,
    ProvisionFactory,
)
from tests.test_editing import ACTORS, MARKINGS, expected_to_edit, make_actor

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

DOMAIN = "quokka-cooperation"
CAPABILITY = "CAP-QUOKKA"
TARGET, TARGET_TITLE = "SP-QUOKKA-T", "Tidewater quokka arrangement"
NEIGHBOUR, NEIGHBOUR_TITLE = "SP-OPEN-N", "Open quokka arrangement"
WITHHELD = "[a provision above your clearance]"
EXPORTERS = {"analyst", "negotiator of the domain", "negotiator of another domain", "administrator"}
GAPS_SEEN = {True: 4, False: 2}  # by whether the reader may see the target
ID = {
    "viewer": "viewer",
    "analyst": "analyst",
    "negotiator of the domain": "own-negotiator",
    "negotiator of another domain": "other-negotiator",
    "administrator": "administrator",
}

READERS = [
    pytest.param(actor, clearance, id=f"{ID[actor]}-cleared-{clearance}")
    for actor in ACTORS
    for clearance in MARKINGS
]
OFFICIAL_WORLD = pytest.mark.parametrize(
    "world", [Marking.OFFICIAL], indirect=True, ids=["official-provision"]
)


# --- the world ------------------------------------------------------------------------------------------


@dataclass
class World:
    marking: Marking  # the target's
    as_of: datetime.date  # yesterday: time travel, with everything already there
    users: dict[tuple[str, Marking], Any]  # (actor, clearance) -> user

    def client(self, actor: str | None = None, clearance: Marking | None = None) -> Client:
        client = Client()
        if actor is not None:
            assert clearance is not None
            client.force_login(self.users[actor, clearance])
        return client


def build_world(marking: Marking) -> World:
    today = timezone.localdate()
    long_ago = today - datetime.timedelta(days=100)
    domain = DomainFactory(code=DOMAIN, name="Quokka cooperation")
    PartyFactory(partnership=domain.partnership, code="UK")
    eu = PartyFactory(partnership=domain.partnership, code="EU")
    capability = CapabilityFactory(
        code=CAPABILITY,
        name="Quokka database",
        domain=domain,
        criticality=Level.HIGH,
        lapses_on=today + datetime.timedelta(days=10),
    )
    target = ProvisionFactory(
        reference=TARGET, title=TARGET_TITLE, domain=domain, marking=marking, created_on=long_ago
    )
    neighbour = ProvisionFactory(
        reference=NEIGHBOUR,
        title=NEIGHBOUR_TITLE,
        domain=domain,
        marking=Marking.OFFICIAL,
        created_on=long_ago,
    )
    for provision in (target, neighbour):
        CoverageFactory(provision=provision, capability=capability, extent=Extent.FULL)
    PositionFactory(provision=target, party=eu, stance=Stance.OPPOSES)
    target.territories.add(
        Territory.objects.create(code="GI", name="Gibraltar", kind=TerritoryKind.OVERSEAS_TERRITORY)
    )
    gaps_scan(trigger=ScanTrigger.COMMAND)
    users = {
        (actor, clearance): make_actor(actor, clearance, domain) for actor in ACTORS for clearance in MARKINGS
    }
    return World(marking=marking, as_of=today - datetime.timedelta(days=1), users=users)


@pytest.fixture(scope="module", params=MARKINGS, ids=[f"{marking}-provision" for marking in MARKINGS])
def world(request: pytest.FixtureRequest, django_db_setup: None, django_db_blocker: Any) -> Iterator[World]:
    """Built once per marking (like TestCase.setUpTestData): each test runs in a savepoint inside
    this transaction, so its writes are undone, and the whole world is rolled back at the end."""
    fast_passwords = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
    with django_db_blocker.unblock(), transaction.atomic():
        with fast_passwords:  # as tests/conftest.py has it for each test, not yet for the module
            built = build_world(request.param)
        yield built
        transaction.set_rollback(True)


def target_gap(kind: GapKind) -> Gap:
    if kind == GapKind.AT_RISK:
        return Gap.objects.open().get(kind=kind, capability__code=CAPABILITY)
    return Gap.objects.open().get(kind=kind, provision__reference=TARGET)


def cleared(clearance: Marking | None, marking: Marking) -> bool:
    return clearance is not None and MARKINGS.index(clearance) >= MARKINGS.index(marking)


# --- reading a response ---------------------------------------------------------------------------------


def body_of(response: Any) -> str:
    """The text a reader gets: the page, or the export's cells (CSV, JSON, XLSX cells, PDF text)."""
    if not getattr(response, "streaming", False):
        return str(response.content.decode())
    data = b"".join(response.streaming_content)
    content_type = response["Content-Type"]
    if content_type == "application/pdf":
        return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)
    if content_type.startswith("application/vnd.openxmlformats"):
        with zipfile.ZipFile(io.BytesIO(data)) as workbook:  # every part: cells, shared strings, names
            return "\n".join(f"=== {name}\n{workbook.read(name).decode()}" for name in workbook.namelist())
    return data.decode()


def squeezed(text: str) -> str:
    """Without whitespace: a PDF table wraps long cells, and a name must not hide in the wrapping."""
    return re.sub(r"\s+", "", text)


def export_row_count(fmt: str, body: str) -> int:
    if fmt == "csv":
        return len(list(csv.DictReader(io.StringIO(body))))
    if fmt == "json":
        return len(json.loads(body))
    if fmt == "xlsx":  # one <row> per gap on the rows sheet (after the summary sheet), after the header
        rows_sheet = body.split("=== xl/worksheets/sheet2.xml\n")[1].split("\n=== ")[0]
        return len(re.findall(r"<row ", rows_sheet)) - 1
    match = re.search(r"(\d+)gaps?,mostseverefirst", squeezed(body))
    assert match, "the PDF states how many gaps it lists"
    return int(match.group(1))


def assert_refused(response: Any, actor: str | None, status: int) -> None:
    """Anonymous callers go to the sign-in page; others get `status`, without a word of the target."""
    if actor is None:
        assert response.status_code == 302, response
        assert response["Location"].startswith("/accounts/login/?next="), response["Location"]
        return
    assert response.status_code == status, response
    if not getattr(response, "streaming", False):
        assert_names_target(response.content.decode(), shown=False)


def assert_names_target(text: str, *, shown: bool) -> None:
    for name in (TARGET, TARGET_TITLE):
        if shown:
            assert name in text or squeezed(name) in squeezed(text), f"{name!r} missing"
        else:
            assert squeezed(name) not in squeezed(text), f"{name!r} leaked above clearance"


# --- GET: every page ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    path: str  # {as_of} is yesterday
    names_target: bool = True  # names the target to a reader cleared for it
    explains_capability_gap: bool = False  # shows the capability gap's explanation
    gap_count: str | None = None  # how an HTML page states the number of gaps ({n})
    export: str | None = None  # the format of an export
    of_target: bool = False  # the target's own page: 404 above clearance
    forms: bool = False  # the gaps page today: export links and acknowledge forms


PAGES = {
    "overview": Page("/", gap_count=">{n} gaps</a>"),
    "overview-as-of": Page("/?as_of={as_of}", gap_count=">{n} gaps</a> found by the rules at that date"),
    "domain": Page(f"/domains/{DOMAIN}/", explains_capability_gap=True),
    "domain-as-of": Page(f"/domains/{DOMAIN}/?as_of={{as_of}}", explains_capability_gap=True),
    "target-provision": Page(f"/provisions/{TARGET}/", of_target=True),
    # The neighbour covers the capability too: its page shows the capability's gap, explained (naming
    # the target, not its title, to a cleared reader).
    "neighbour-provision": Page(
        f"/provisions/{NEIGHBOUR}/", names_target=False, explains_capability_gap=True
    ),
    "gaps": Page("/gaps/", explains_capability_gap=True, gap_count="<p>{n} gaps.", forms=True),
    "gaps-as-of": Page(
        "/gaps/?as_of={as_of}", explains_capability_gap=True, gap_count="<p>{n} gaps found by the rules on"
    ),
    "search": Page("/search/?q=quokka"),
    "capability": Page(f"/capabilities/{CAPABILITY}/", explains_capability_gap=True),
    "capability-as-of": Page(f"/capabilities/{CAPABILITY}/?as_of={{as_of}}", explains_capability_gap=True),
    "aims": Page("/aims/", names_target=False),
    "changes": Page("/changes/?from=2000-01-01&to={as_of}", explains_capability_gap=True),
    **{
        f"export-{fmt}": Page(f"/gaps/export.{fmt}", explains_capability_gap=True, export=fmt)
        for fmt in ("csv", "xlsx", "pdf", "json")
    },
    "export-csv-as-of": Page("/gaps/export.csv?as_of={as_of}", explains_capability_gap=True, export="csv"),
    "export-json-as-of": Page("/gaps/export.json?as_of={as_of}", explains_capability_gap=True, export="json"),
}
EXPORT_LINKS = [f'href="/gaps/export.{fmt}?' for fmt in ("csv", "xlsx", "pdf", "json")]
EDIT_FORMS = [
    "Move status</button>",
    "Record position</button>",
    "Save coverage</button>",
    "Save</button>",
    "Record consultation</button>",
    "Record discussion</button>",
]


def expected_page_status(actor: str, clearance: Marking, marking: Marking, page: Page) -> int:
    if page.export and actor not in EXPORTERS:
        return 403
    if page.of_target and not cleared(clearance, marking):
        return 404
    return 200


@pytest.mark.parametrize(("actor", "clearance"), READERS)
@pytest.mark.parametrize("name", PAGES)
def test_a_page_shows_exactly_what_the_reader_may_see(
    name: str, actor: str, clearance: Marking, world: World
) -> None:
    page, client = PAGES[name], world.client(actor, clearance)

    response = client.get(page.path.format(as_of=world.as_of.isoformat()))

    status = expected_page_status(actor, clearance, world.marking, page)
    if status != 200:
        assert_refused(response, actor, status)
        if status == 404:  # exactly as for a provision that does not exist
            assert response.content == client.get("/provisions/SP-NO-SUCH-THING/").content
        return
    assert response.status_code == 200
    text, sees_target = body_of(response), cleared(clearance, world.marking)
    if page.names_target or not sees_target:  # a page that need not name it may, to a cleared reader
        assert_names_target(text, shown=sees_target and page.names_target)
    if page.explains_capability_gap:
        assert squeezed(NEIGHBOUR) in squeezed(text) and CAPABILITY in text
        assert (squeezed(WITHHELD) in squeezed(text)) is not sees_target
    if page.gap_count:
        assert page.gap_count.format(n=GAPS_SEEN[sees_target]) in text
    if page.export:
        assert response["Content-Disposition"].startswith("attachment; filename=")
        assert export_row_count(page.export, text) == GAPS_SEEN[sees_target]
    if name == "overview":  # the severities count only what the reader may see, too
        high = medium = 1 + sees_target  # the capability at risk, the target divergent; both stalled
        assert f'<span class="count">{high}</span> high' in text
        assert f'<span class="count">{medium}</span> medium' in text
    if page.of_target:
        may_edit = expected_to_edit(actor, clearance, world.marking)
        for form in EDIT_FORMS:
            assert (form in text) is may_edit, form
        version = Provision.objects.get(reference=TARGET).version
        assert (f'<input type="hidden" name="version" value="{version}">' in text) is may_edit
    if page.forms:
        for link in EXPORT_LINKS:
            assert (link in text) is (actor in EXPORTERS), link
        acknowledgeable = GAPS_SEEN[sees_target] if actor in EXPORTERS else 0  # every gap shown, open
        assert text.count("Acknowledge</button>") == acknowledgeable
    if name == "gaps-as-of":  # the past is read-only
        assert "Acknowledge</button>" not in text


# --- POST: the provision's forms ------------------------------------------------------------------------


class ProvisionState(NamedTuple):
    title: str
    status: str
    version: int
    moves: list[tuple[str, str, str]]  # (from, to, note) of every status change
    positions: list[tuple[str, str, str, str]]  # (party, stance, firmness, note)
    coverage: list[tuple[str, str]]  # (capability, extent)
    details: tuple[str, datetime.date | None, datetime.date | None]  # (text, target date, review date)
    consultations: list[tuple[str, datetime.date, str, str]]  # (territory, on, outcome, note)
    discussions: list[tuple[datetime.date, str]]  # (on, note)


def provision_state(reference: str) -> ProvisionState:
    provision = Provision.objects.get(reference=reference)
    return ProvisionState(
        provision.title,
        provision.status,
        provision.version,
        list(provision.status_changes.order_by("id").values_list("from_status", "to_status", "note")),
        # Today's: each party's latest position, and the links that count today (rules v2).
        sorted((p.party.code, p.stance, p.firmness, p.note) for p in provision.positions_at().values()),
        sorted((link.capability.code, link.extent) for link in provision.links_at()),
        (provision.text, provision.target_date, provision.review_date),
        sorted(provision.consultations.values_list("territory__code", "consulted_on", "outcome", "note")),
        list(provision.discussions.order_by("on", "id").values_list("on", "note")),
    )


@dataclass(frozen=True)
class Form:
    action: str
    data: dict[str, str]
    made: Callable[[ProvisionState], bool]  # the write shows in the provision's state


FORMS = {
    "move-status": Form(
        "transition",
        {"to": Status.UNDER_NEGOTIATION, "note": "Round five"},
        lambda state: (
            state.status == Status.UNDER_NEGOTIATION
            and state.moves[-1] == (Status.PROPOSED, Status.UNDER_NEGOTIATION, "Round five")
        ),
    ),
    "record-position": Form(
        "position",
        {"party": "UK", "stance": Stance.SUPPORTS, "firmness": "definitive", "note": "Ministers agree"},
        lambda state: ("UK", Stance.SUPPORTS, "definitive", "Ministers agree") in state.positions,
    ),
    "edit-coverage": Form(
        "coverage",
        {"capability": CAPABILITY, "extent": Extent.PARTIAL},
        lambda state: state.coverage == [(CAPABILITY, Extent.PARTIAL)],
    ),
    "edit-details": Form(
        "details",
        {"title": "Retitled quokka arrangement", "text": "Revised text", "target_date": "2031-03-31"},
        lambda state: (
            state.title == "Retitled quokka arrangement"
            and state.details == ("Revised text", datetime.date(2031, 3, 31), None)
        ),
    ),
    "record-consultation": Form(
        "consultation",
        {"territory": "GI", "consulted_on": "2026-01-15", "outcome": "concerns", "note": "Border checks"},
        lambda state: (
            state.consultations == [("GI", datetime.date(2026, 1, 15), "concerns", "Border checks")]
        ),
    ),
}


DISCUSSED_ON = timezone.localdate()  # one day for the form and its check, should the run pass midnight
FORMS["record-discussion"] = Form(
    "discussion",
    {"on": DISCUSSED_ON.isoformat(), "note": "Round 7: no move"},
    lambda state: state.discussions == [(DISCUSSED_ON, "Round 7: no move")],
)


def post_form(client: Client, form: Form) -> Any:
    version = Provision.objects.get(reference=TARGET).version  # as the page's hidden field has it
    return client.post(f"/provisions/{TARGET}/{form.action}/", {**form.data, "version": str(version)})


@pytest.mark.parametrize(("actor", "clearance"), READERS)
@pytest.mark.parametrize("form_name", FORMS)
def test_a_provision_form_writes_exactly_for_cleared_negotiators_of_its_domain_and_administrators(
    form_name: str, actor: str, clearance: Marking, world: World
) -> None:
    form, client = FORMS[form_name], world.client(actor, clearance)
    before = provision_state(TARGET)

    response = post_form(client, form)

    after = provision_state(TARGET)
    if expected_to_edit(actor, clearance, world.marking):
        assert response.status_code == 302 and response["Location"] == f"/provisions/{TARGET}/"
        assert form.made(after) and after.version == before.version + 1, after
        page = client.get(response["Location"]).content.decode()
        assert "Not saved" not in page and "Not moved" not in page
        return
    assert_refused(response, actor, 403 if cleared(clearance, world.marking) else 404)
    assert after == before


# --- POST: acknowledging a gap --------------------------------------------------------------------------

ACK = {"note": "Seen at the weekly review", "next": "/gaps/"}


@pytest.mark.parametrize(("actor", "clearance"), READERS)
@pytest.mark.parametrize("kind", [GapKind.STALLED, GapKind.AT_RISK], ids=["provision-gap", "capability-gap"])
def test_a_gap_is_acknowledged_exactly_by_analysts_and_above_who_may_see_it(
    kind: GapKind, actor: str, clearance: Marking, world: World
) -> None:
    gap, user = target_gap(kind), world.users[actor, clearance]

    response = world.client(actor, clearance).post(f"/gaps/{gap.pk}/acknowledge/", ACK)

    gap.refresh_from_db()
    # A capability gap is everyone's to see (its explanation withholds the target); a provision's
    # gap only theirs who may see the provision.
    visible = kind == GapKind.AT_RISK or cleared(clearance, world.marking)
    if actor in EXPORTERS and visible:
        assert response.status_code == 302 and response["Location"] == "/gaps/"
        assert (gap.acknowledged_by, gap.acknowledgement_note) == (user, ACK["note"]) and gap.acknowledged_at
        return
    assert_refused(response, actor, 403 if visible else 404)
    assert gap.acknowledged_at is None and gap.acknowledged_by is None and not gap.acknowledgement_note


@pytest.mark.parametrize(
    "next_url", ["https://elsewhere.example/phish", "//elsewhere.example/", "/gaps/?kind=at_risk"]
)
@OFFICIAL_WORLD
def test_acknowledging_returns_only_to_a_page_of_this_site(next_url: str, world: World) -> None:
    client = world.client("analyst", Marking.OFFICIAL)

    response = client.post(f"/gaps/{target_gap(GapKind.AT_RISK).pk}/acknowledge/", {**ACK, "next": next_url})

    assert response.status_code == 302
    assert response["Location"] == (next_url if next_url.startswith("/gaps/") else "/gaps/")


# --- anonymous callers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_name",
    [*(f"GET {name}" for name in PAGES), *(f"POST {name}" for name in FORMS), "POST acknowledge"],
)
@OFFICIAL_WORLD
def test_an_anonymous_caller_is_sent_to_sign_in_and_changes_nothing(request_name: str, world: World) -> None:
    method, name = request_name.split(" ")
    client, gap, before = world.client(), target_gap(GapKind.STALLED), provision_state(TARGET)

    if method == "GET":
        response = client.get(PAGES[name].path.format(as_of=world.as_of.isoformat()))
    elif name == "acknowledge":
        response = client.post(f"/gaps/{gap.pk}/acknowledge/", ACK)
    else:
        response = post_form(client, FORMS[name])

    assert_refused(response, None, 302)
    gap.refresh_from_db()
    assert provision_state(TARGET) == before and gap.acknowledged_at is None
