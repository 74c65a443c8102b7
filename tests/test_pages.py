"""The negotiators' pages through the HTTP client: access, content, time travel, writes, exports."""

from __future__ import annotations

import csv
import datetime
import io
import re
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from provisions.models import Gap, Marking, Provision, Status
from provisions.permissions import Reader
from provisions.services.provisions import provision_update
from provisions.services.scans import gaps_scan
from tests.factories import (
    CapabilityFactory,
    CoverageFactory,
    DomainFactory,
    PartyFactory,
    ProvisionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

PAGES = ["/", "/domains/law-enforcement/", "/provisions/SP-LE-04/", "/gaps/", "/search/?q=europol"]


@pytest.fixture
def partnership(shipped_partnership_file: str) -> None:
    """The shipped partnership, with SP-LE-04 marked official-sensitive (the file marks nothing
    above official), so that a reader cleared to official has something not to see."""
    call_command("import_partnership", shipped_partnership_file, stdout=io.StringIO())
    provision_update(
        provision=Provision.objects.get(reference="SP-LE-04"),
        by=Reader.system(),
        expected_version=None,
        marking=Marking.OFFICIAL_SENSITIVE,
    )
    gaps_scan(trigger="command")


def signed_in(client: Client, **user_options: object) -> Client:
    client.force_login(UserFactory(**user_options))
    return client


@pytest.mark.parametrize("path", PAGES)
def test_every_page_needs_a_sign_in(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_user_without_a_role_is_refused(client: Client, partnership) -> None:
    assert signed_in(client, clearance=Marking.SECRET).get("/").status_code == 403


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_for_a_viewer_cleared_for_it(client: Client, partnership, path: str) -> None:
    response = signed_in(client, role="viewer", clearance=Marking.OFFICIAL_SENSITIVE).get(path)
    assert response.status_code == 200
    assert b'<main id="main"' in response.content


def test_the_overview_shows_coverage_gaps_lapses_and_movements(client: Client, partnership) -> None:
    page = (
        signed_in(client, role="viewer", clearance=Marking.SECRET).get("/?as_of=2020-12-20").content.decode()
    )
    assert "Showing the partnership as it stood on <strong>20 December 2020</strong>" in page
    assert 'role="img"' in page and "Coverage by domain" in page
    assert "41 gaps</a> found by the rules at that date" in page
    # As it stood: DATA-FLOWS's lapse date moved to 30 June 2021 only with the bridge clause of 24 December.
    assert (
        "<strong>DATA-FLOWS</strong></a> Free flow of personal data for law enforcement: "
        'lapses <span class="nowrap">31 December 2020</span> (in 11 days)'
    ) in page
    # The list shows the next eight; it says how many more lapse later.
    assert re.search(r"And \d+ more capabilities lapse later", page)
    assert "UK draft agreement published" in page  # SP-AM-02's move on 2020-05-19


def test_a_provision_above_clearance_is_nowhere_to_be_seen(client: Client, partnership) -> None:
    client = signed_in(client, role="viewer", clearance=Marking.OFFICIAL)
    assert client.get("/provisions/SP-LE-04/").status_code == 404  # official-sensitive
    assert "SP-LE-04" not in client.get("/domains/law-enforcement/").content.decode()
    assert "SP-LE-04" not in client.get("/gaps/").content.decode()
    assert "SP-LE-04" not in client.get("/search/?q=alerts").content.decode()
    assert "SP-LE-04" not in client.get("/").content.decode()


def test_only_a_negotiator_of_the_domain_sees_the_edit_forms(client: Client, partnership) -> None:
    from provisions.models import Domain

    law_enforcement = Domain.objects.get(code="law-enforcement")
    own = signed_in(Client(), role="negotiator", clearance=Marking.SECRET, domains=[law_enforcement])
    other = signed_in(Client(), role="negotiator", clearance=Marking.SECRET)
    assert "Move status" in own.get("/provisions/SP-LE-04/").content.decode()
    assert "Move status" not in other.get("/provisions/SP-LE-04/").content.decode()
    refused = other.post("/provisions/SP-LE-04/transition/", {"to": "agreed", "version": 2})
    assert refused.status_code == 403
    assert Provision.objects.get(reference="SP-LE-04").status == Status.WITHDRAWN


def test_a_move_from_the_page_closes_its_gap_after_the_scan(
    client: Client, django_capture_on_commit_callbacks
) -> None:
    domain = DomainFactory(code="law-enforcement")
    capability = CapabilityFactory(code="SIS-II", domain=domain, lapses_on=None)
    provision = ProvisionFactory(reference="SP-1", domain=domain, status=Status.UNDER_NEGOTIATION)
    CoverageFactory(provision=provision, capability=capability)
    gaps_scan(trigger="command")
    assert Gap.objects.open().filter(kind="stalled").exists()
    client = signed_in(client, role="negotiator", domains=[domain])

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/provisions/SP-1/transition/", {"to": "agreed", "version": provision.version})

    assert response.status_code == 302
    page = client.get("/provisions/SP-1/").content.decode()
    assert "SP-1 is now agreed." in page
    assert not Gap.objects.open().exists()


def test_a_stale_edit_is_refused_with_what_changed(client: Client) -> None:
    provision = ProvisionFactory(reference="SP-1", status=Status.PROPOSED)
    client = signed_in(client, role="negotiator", domains=[provision.domain])
    loaded = provision.version
    client.post("/provisions/SP-1/transition/", {"to": "under_negotiation", "version": loaded})

    response = client.post(
        "/provisions/SP-1/transition/", {"to": "agreed", "version": loaded, "note": "Round 3"}
    )

    page = response.content.decode()
    assert response.status_code == 200 and "There is a problem: nothing was saved" in page
    assert "Not saved: SP-1 has changed since you loaded it (you had version 1, it is now 2)" in page
    assert "Changed since you loaded the page" in page
    assert "Status: Proposed → Under negotiation" in page
    # What was typed is kept, on the current version: pressing the button again applies it.
    assert ">Round 3</textarea>" in page and '<option value="agreed" selected>' in page
    assert '<input type="hidden" name="version" value="2">' in page
    assert Provision.objects.get(reference="SP-1").status == Status.UNDER_NEGOTIATION


def test_positions_and_coverage_are_edited_in_place(client: Client) -> None:
    provision = ProvisionFactory(reference="SP-1", status=Status.PROPOSED)
    from tests.factories import PartyFactory

    PartyFactory(partnership=provision.domain.partnership, code="EU")
    capability = CapabilityFactory(code="PNR", domain=provision.domain)
    client = signed_in(client, role="negotiator", domains=[provision.domain])

    client.post(
        "/provisions/SP-1/position/",
        {"party": "EU", "stance": "opposes", "firmness": "definitive", "note": "No", "version": 1},
    )
    client.post("/provisions/SP-1/coverage/", {"capability": "PNR", "extent": "partial", "version": 2})

    provision.refresh_from_db()
    assert provision.positions.get().stance == "opposes"
    assert provision.coverage.get().capability == capability and provision.version == 3


@pytest.mark.parametrize(
    "action, data, error",
    [
        (
            "coverage",
            {"capability": "NO-SUCH", "extent": "full"},
            "no capability has the code &#x27;NO-SUCH&#x27;",
        ),
        ("coverage", {"capability": "", "extent": "full"}, "give a capability&#x27;s code"),
        (
            "details",
            {"title": "T", "target_date": "31/03/2031"},
            "the target date must be a date (YYYY-MM-DD)",
        ),
        ("details", {"title": ""}, "This field cannot be blank"),
        (
            "consultation",
            {"territory": "SCT", "consulted_on": "2026-01-15", "outcome": "content"},
            "choose a territory",
        ),
        ("consultation", {"territory": "GI", "consulted_on": "", "outcome": "content"}, "give the date"),
        (
            "consultation",
            {"territory": "GI", "consulted_on": "2026-01-15", "outcome": "delighted"},
            "delighted",
        ),
        (
            "consultation",
            {"territory": "UK", "consulted_on": "2026-01-15", "outcome": "content"},
            "not consulted",
        ),
        ("details", {"title": "New", "version": ""}, "did not say which version"),
        ("details", {"title": "New", "version": "abc"}, "did not say which version"),
        ("coverage", {"capability": "PNR", "extent": "full", "version": ""}, "did not say which version"),
        ("position", {"party": "EU", "stance": "supports", "version": ""}, "did not say which version"),
        ("transition", {"to": "under_negotiation", "version": ""}, "did not say which version"),
    ],
)
def test_a_bad_form_is_refused_with_what_was_wrong_and_changes_nothing(
    client: Client, action: str, data: dict[str, str], error: str
) -> None:
    from provisions.models import Territory

    provision = ProvisionFactory(reference="SP-1", title="Original", status=Status.PROPOSED)
    provision.territories.add(
        Territory.objects.create(code="GI", name="Gibraltar", kind="overseas_territory"),
        Territory.objects.create(code="UK", name="United Kingdom", kind="state"),
    )
    Territory.objects.create(code="SCT", name="Scotland", kind="devolved_administration")
    PartyFactory(partnership=provision.domain.partnership, code="EU")
    CapabilityFactory(code="PNR")
    client = signed_in(client, role="negotiator", domains=[provision.domain])

    response = client.post(f"/provisions/SP-1/{action}/", {"version": provision.version, **data})

    # The page itself, the form as it was sent, with what was wrong.
    page = response.content.decode()
    assert response.status_code == 200 and "There is a problem: nothing was saved" in page
    assert "<title>Error: SP-1 · " in page
    assert error in page
    provision.refresh_from_db()
    assert (provision.version, provision.title, provision.target_date) == (1, "Original", None)
    assert not provision.coverage.exists() and not provision.consultations.exists()


def test_details_and_consultations_are_recorded_from_the_page_with_a_reason(client: Client) -> None:
    from provisions.models import Territory

    provision = ProvisionFactory(reference="SP-1", title="Original", status=Status.PROPOSED)
    provision.territories.add(
        Territory.objects.create(code="GI", name="Gibraltar", kind="overseas_territory")
    )
    client = signed_in(client, role="negotiator", domains=[provision.domain])
    page = client.get("/provisions/SP-1/").content.decode()
    assert "Not yet consulted: Gibraltar" in page

    client.post(
        "/provisions/SP-1/details/",
        {
            "title": "Retitled",
            "text": "New text",
            "review_date": "2027-02-01",
            "version": 1,
            "reason": "Round 5",
        },
    )
    client.post(
        "/provisions/SP-1/consultation/",
        {
            "territory": "GI",
            "consulted_on": "2026-01-15",
            "outcome": "concerns",
            "note": "Ports",
            "version": 2,
        },
    )
    stale = client.post("/provisions/SP-1/details/", {"title": "Lost edit", "version": 1}, follow=True)

    provision.refresh_from_db()
    assert (provision.title, provision.text, provision.review_date) == (
        "Retitled",
        "New text",
        datetime.date(2027, 2, 1),
    )
    assert provision.version == 3
    assert "you had version 1, it is now 3" in stale.content.decode()
    assert provision.history.filter(history_change_reason="Round 5").exists()
    page = client.get("/provisions/SP-1/").content.decode()
    assert 'Gibraltar, <span class="nowrap">15 January 2026</span>: Raised concerns. Ports' in page
    assert "Not yet consulted" not in page
    # Every change, with who, what (before and after) and why, newest first.
    trail = page[page.index('id="audit-heading"') :]
    assert trail.index("Consultation of Gibraltar created") < trail.index("Provision changed")
    # Field names and values as people read them (the API's history keeps the codes).
    assert "<strong>Title</strong>: Original → Retitled" in trail
    assert "<strong>Review date</strong>: – → 1 February 2027" in trail
    assert "<strong>Outcome</strong>: – → Raised concerns" in trail
    assert "Round 5" in trail and provision.history.first().history_user.username in trail


@pytest.mark.parametrize(
    "status, suggested",
    [
        (Status.UNDER_NEGOTIATION, "agreed_in_principle"),
        (Status.IDENTIFIED, "scoping"),
        (Status.SUSPENDED, ""),
    ],
)
def test_the_move_form_suggests_the_next_step_up_never_a_step_back(client: Client, status, suggested) -> None:
    provision = ProvisionFactory(reference="SP-1", status=status)
    client = signed_in(client, role="negotiator", domains=[provision.domain])
    page = client.get("/provisions/SP-1/").content.decode()
    start = page.index('<select id="transition-to"')
    form = page[start : page.index("</select>", start)]
    assert re.findall(r'<option value="([a-z_]*)" selected>', form) == ([suggested] if suggested else [])
    assert ('<option value="">Choose a status</option>' in form) == (suggested == "")


def test_gaps_filter_and_export_exactly_what_is_shown(client: Client, partnership) -> None:
    client = signed_in(client, role="analyst", clearance=Marking.SECRET)
    page = client.get("/gaps/?as_of=2020-12-20&severity=critical&domain=law-enforcement").content.decode()
    # EUROPOL, PNR, PRUM and SIS-II at risk; SP-LE-04 divergent.
    assert page.count('class="edge-critical"') == 5 and 'class="edge-high"' not in page

    export = client.get("/gaps/export.csv?as_of=2020-12-20&severity=critical&domain=law-enforcement")
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode("utf-8-sig"))))
    assert export["Content-Type"] == "text/csv; charset=utf-8"
    assert len(rows) == 5 and {row["severity"] for row in rows} == {"critical"}
    # The file name says what it holds.
    assert (
        export["Content-Disposition"] == 'attachment; filename="gaps-law-enforcement-critical-2020-12-20.csv"'
    )
    for fmt, start in (("xlsx", b"PK"), ("pdf", b"%PDF"), ("json", b"[")):
        body = b"".join(client.get(f"/gaps/export.{fmt}?severity=critical").streaming_content)
        assert body.startswith(start), fmt


def test_a_viewer_cannot_export_or_acknowledge(client: Client, partnership) -> None:
    client = signed_in(client, role="viewer", clearance=Marking.SECRET)
    assert client.get("/gaps/export.csv").status_code == 403
    gap = Gap.objects.open().first()
    assert gap is not None
    assert "Acknowledge</button>" not in client.get("/gaps/").content.decode()
    client.post(f"/gaps/{gap.pk}/acknowledge/", {"note": "seen"})
    gap.refresh_from_db()
    assert gap.acknowledged_at is None


def test_an_analyst_acknowledges_a_gap_from_the_page(client: Client, partnership) -> None:
    client = signed_in(client, role="analyst", clearance=Marking.SECRET)
    gap = Gap.objects.open().filter(kind="lapsed").first()
    assert gap is not None
    response = client.post(
        f"/gaps/{gap.pk}/acknowledge/", {"note": "Handled by the fallback", "next": "/gaps/"}
    )
    assert response.status_code == 302
    gap.refresh_from_db()
    assert gap.acknowledgement_note == "Handled by the fallback"


@pytest.mark.parametrize(
    "as_of, message",
    [
        ("31-12-2020", "&#x27;31-12-2020&#x27; is not a date (YYYY-MM-DD): showing today"),
        ("9999-12-31", "9999-12-31 is outside 1900-01-01 to 2999-12-31: showing today"),
        ("0001-01-01", "0001-01-01 is outside 1900-01-01 to 2999-12-31: showing today"),
    ],
)
@pytest.mark.parametrize("path", ["/", "/domains/law-enforcement/", "/gaps/"])
def test_a_bad_date_is_ignored_with_a_message(client: Client, partnership, path, as_of, message) -> None:
    response = signed_in(client, role="viewer").get(f"{path}?as_of={as_of}")
    assert response.status_code == 200 and message in response.content.decode()


@pytest.mark.parametrize("as_of", ["9999-12-31", "31-12-2020"])
def test_the_api_refuses_a_date_the_rules_do_not_take(client: Client, partnership, as_of: str) -> None:
    from tests.test_api import bearer

    viewer = UserFactory(role="viewer")
    for path in ("/api/v1/gaps/", "/api/v1/coverage/"):
        response = client.get(f"{path}?as_of={as_of}", **bearer(viewer))
        assert response.status_code == 400 and "as_of" in response.json()["error"]["field_errors"]


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/domains/d-0/",
        "/gaps/",
        "/provisions/SP-FIRST/",
        "/provisions/SP-FIRST/?as_of=2020-06-01",
        "/capabilities/CAP-FIRST/",
        "/aims/",
        "/changes/?from=2000-01-01",
    ],
)
def test_pages_do_not_grow_queries_with_the_data(
    client: Client, path: str, django_assert_max_num_queries
) -> None:
    domain = DomainFactory(code="d-0")
    UserFactory(username="reader", role="viewer", clearance=Marking.SECRET)

    def grow(count: int) -> None:
        for _ in range(count):
            provision = ProvisionFactory(domain=domain)
            CoverageFactory(provision=provision, capability=CapabilityFactory(domain=domain))
            CoverageFactory(provision=provision, capability=first_capability, extent="partial")
        gaps_scan(trigger="command")

    first_capability = CapabilityFactory(code="CAP-FIRST", domain=domain)
    ProvisionFactory(reference="SP-FIRST", domain=domain)
    client.force_login(UserFactory(username="reader"))
    grow(3)
    with django_assert_max_num_queries(40) as few:
        assert client.get(path).status_code == 200
    grow(30)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(path).status_code == 200


def test_the_overview_draws_coverage_over_time_from_the_status_history(client: Client, partnership) -> None:
    call_command("snapshot_coverage", "--from", "2020-01-01", "--to", "2021-06-30", stdout=io.StringIO())
    from provisions.models import CoverageSnapshot

    end_of_2020 = CoverageSnapshot.objects.get(as_of="2020-12-31")
    # Every one of the 33 capabilities is counted in exactly one state.
    assert (
        end_of_2020.secured + end_of_2020.partial + end_of_2020.in_negotiation + end_of_2020.uncovered == 33
    )
    assert CoverageSnapshot.objects.get(as_of="2020-01-31").secured == 0
    page = signed_in(client, role="viewer").get("/?as_of=2021-06-30").content.decode()
    assert "Coverage over time" in page and 'id="over-time-title"' in page
    assert '<td class="nowrap">31 December 2020</td>' in page


def csp_directives(response: Any) -> dict[str, str]:
    return dict(d.strip().split(" ", 1) for d in response["Content-Security-Policy"].split(";"))


@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/", "/provisions/SP-LE-04/", "/admin/provisions/provision/"]
)
def test_pages_carry_a_strict_content_security_policy(client: Client, partnership, path: str) -> None:
    signed_in(client, role="administrator", clearance=Marking.SECRET, is_staff=True)
    response = client.get(path)
    assert response.status_code == 200
    directives = csp_directives(response)
    assert directives["default-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert "script-src" not in directives  # no inline script anywhere: default-src 'self' applies
    # Only Django's admin may use inline style attributes (its autocomplete widget writes them).
    expected_style = "'self' 'unsafe-inline'" if path.startswith("/admin/") else None
    assert directives.get("style-src") == expected_style


@pytest.mark.parametrize(
    "method, path, data",
    [
        ("get", "/search/?q=euro%00pol", None),
        ("get", "/gaps/?domain=law%00", None),
        ("post", "/provisions/SP-LE-04/position/", {"party": "EU\x00", "stance": "supports", "version": "2"}),
        ("post", "/provisions/SP-LE-04/details/", {"title": "T\x00", "version": "2"}),
    ],
)
def test_a_nul_character_gets_a_clear_400_and_changes_nothing(
    client: Client, partnership, method, path, data
):
    client = signed_in(client, role="administrator", clearance=Marking.SECRET)
    before = Provision.objects.get(reference="SP-LE-04").version
    response = getattr(client, method)(path, data) if data else client.get(path)
    assert response.status_code == 400 and b"NUL character" in response.content
    assert Provision.objects.get(reference="SP-LE-04").version == before


def test_the_coverage_report_is_exported_as_the_api_counts_it(client: Client, partnership) -> None:
    """CSV, Excel and PDF, read back with real readers, against the API's coverage rows."""
    import openpyxl
    import pypdf

    from tests.test_api import bearer

    analyst = UserFactory(role="analyst", clearance=Marking.OFFICIAL)
    client.force_login(analyst)
    overview = client.get("/?as_of=2020-12-20").content.decode()
    assert 'href="/coverage/export.csv?as_of=2020-12-20"' in overview
    expected = Client().get("/api/v1/coverage/?as_of=2020-12-20", **bearer(analyst)).json()

    response = client.get("/coverage/export.csv?as_of=2020-12-20")
    assert response["Content-Disposition"] == 'attachment; filename="coverage-2020-12-20.csv"'
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert [row["domain"] for row in rows] == [row["domain"] for row in expected]
    for row, api in zip(rows, expected, strict=True):
        assert int(row["capabilities"]) == api["capabilities"]
        assert {state: int(row[state]) for state in api["capabilities_by_state"]} == api[
            "capabilities_by_state"
        ]
        assert {s: int(row[f"provisions_{s}"]) for s in api["provisions_by_status"]} == api[
            "provisions_by_status"
        ]
    # An official reader's counts leave out SP-LE-04 (official-sensitive), which a secret reader's include.
    secret = UserFactory(role="analyst", clearance=Marking.SECRET)
    fuller = Client().get("/api/v1/coverage/?as_of=2020-12-20", **bearer(secret)).json()
    law = next(row for row in rows if row["domain"] == "law-enforcement")
    assert (
        int(law["provisions"])
        == sum(next(r for r in fuller if r["domain"] == "law-enforcement")["provisions_by_status"].values())
        - 1
    )

    workbook = openpyxl.load_workbook(
        io.BytesIO(b"".join(client.get("/coverage/export.xlsx").streaming_content))
    )
    sheet = workbook["Coverage"]
    header = [cell.value for cell in sheet[1]]
    assert header[:4] == ["domain", "name", "capabilities", "secured"] and sheet.max_row == len(rows) + 1

    pdf = pypdf.PdfReader(io.BytesIO(b"".join(client.get("/coverage/export.pdf").streaming_content)))
    text = "\n".join(page.extract_text() for page in pdf.pages)
    assert "Coverage report" in text and "Law enforcement" in text

    client.force_login(UserFactory(role="viewer"))
    assert client.get("/coverage/export.csv").status_code == 403
    assert 'href="/coverage/export.csv' not in client.get("/").content.decode()


def test_the_gaps_page_as_of_a_date_filters_as_the_api_does(client: Client, partnership) -> None:
    client = signed_in(client, role="analyst", clearance=Marking.SECRET)
    page = client.get("/gaps/?as_of=2020-12-20&domain=atlantis").content.decode()
    api = client.get("/api/v1/gaps/?as_of=2020-12-20&domain=atlantis")
    assert "Not filtered: domain: unknown domain &#x27;atlantis&#x27;." in page
    assert api.status_code == 400 and "unknown domain" in api.json()["error"]["field_errors"]["domain"][0]


@pytest.mark.parametrize(
    "path",
    [
        "/gaps/?as_of=2020-12-15",
        "/capabilities/DATA-FLOWS/?as_of=2020-12-15",
        "/changes/?from=2020-10-01&to=2021-01-05",
    ],
)
def test_gap_kinds_and_severities_read_as_words(client: Client, partnership, path: str) -> None:
    text = signed_in(client, role="viewer").get(path).content.decode()
    assert "At risk" in text and "Critical" in text
    assert not re.search(r">\s*(at_?risk|critical)\b", text)  # no raw code where a label belongs


def test_the_changes_page_lists_a_bounded_number_of_rows(client: Client, partnership, monkeypatch) -> None:
    """At 100,000 provisions a month holds tens of thousands of moves: the page shows the first of them
    and says how many the exports hold."""
    from provisions.views import record

    monkeypatch.setattr(record, "CHANGES_PAGE_ROWS", 2)
    response = signed_in(client, role="viewer").get("/changes/?from=2020-10-01&to=2021-01-05")
    text = response.content.decode()
    assert len(response.context["rows"]) == 2 and len(response.context["events"]) == 2
    moved, events = len(response.context["report"].rows), len(response.context["report"].events)
    assert moved > 2 and events > 2
    assert f"The first 2 of {moved} in report order" in text and f"The latest 2 of {events}" in text
