"""Pages v2: the most urgent gaps first, tables sorted by their headers, filters with several values in
the URL, export names that say what they hold, a provision's own gaps and what a write did to them,
words instead of codes, and the header's Admin link only for those who can change something there.

Expected orders are written out by hand from DESIGN.md's report order (severity, critical first;
lapse date, empty last; kind; subject code), never computed by the code under test.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
from html.parser import HTMLParser

import pypdf
import pytest
from django.core.management import call_command
from django.db.models import Q
from django.test import Client
from django.utils import timezone

from provisions.models import Firmness, Gap, Level, Position, Provision, Stance, Status, StatusChange
from provisions.services.scans import gaps_scan
from tests.factories import (
    CapabilityFactory,
    CoverageFactory,
    DomainFactory,
    PartyFactory,
    PositionFactory,
    ProvisionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SUBJECT = re.compile(r'class="gap-subject">\s*<a href="[^"]*">([^<]+)</a>')


def subjects(page: str) -> list[str]:
    """The subject codes of a page's gap table, top to bottom."""
    return SUBJECT.findall(page)


def signed_in(client: Client, **user_options: object) -> Client:
    client.force_login(UserFactory(**user_options))
    return client


@pytest.fixture
def world() -> dict[str, object]:
    """Five uncovered or lapsed capabilities, whose gaps are (by DESIGN.md's tables, today):

    CAP-A critical, lapsed 2020-12-31, no fallback: lapsed, critical (raised: already the highest)
    CAP-B low, lapsed 2020-12-31, no fallback:      lapsed, medium (raised)
    CAP-C high, lapses in 10 days, uncovered:        uncovered, high (warned)
    CAP-D high, no lapse date, uncovered:            uncovered, medium (not warned: lowered)
    CAP-E medium (migration), lapses in 100 days:    uncovered, medium (warned)

    They are created least urgent first, so an order by opening cannot pass for the report order.
    """
    today = timezone.localdate()
    law_enforcement = DomainFactory(code="law-enforcement", name="Law enforcement")
    migration = DomainFactory(code="migration", name="Migration")
    made = {}
    for code, criticality, lapses_on, domain in (
        ("CAP-D", Level.HIGH, None, law_enforcement),
        ("CAP-E", Level.MEDIUM, today + datetime.timedelta(days=100), migration),
        ("CAP-B", Level.LOW, datetime.date(2020, 12, 31), law_enforcement),
        ("CAP-C", Level.HIGH, today + datetime.timedelta(days=10), law_enforcement),
        ("CAP-A", Level.CRITICAL, datetime.date(2020, 12, 31), law_enforcement),
    ):
        made[code] = CapabilityFactory(code=code, criticality=criticality, lapses_on=lapses_on, domain=domain)
    gaps_scan(trigger="command")
    return {"law_enforcement": law_enforcement, "migration": migration, **made}


def test_the_gaps_page_starts_with_the_most_urgent_gap(client: Client, world) -> None:
    page = signed_in(client, role="viewer").get("/gaps/").content.decode()

    assert subjects(page) == ["CAP-A", "CAP-C", "CAP-B", "CAP-E", "CAP-D"]
    assert re.findall(r'class="edge-(\w+)"', page) == ["critical", "high", "medium", "medium", "medium"]
    assert "Most urgent first." in page
    # With no sort chosen, the severity column is the sorted one (critical first).
    assert re.search(r'<th scope="col" aria-sort="descending"><a href="\?sort=severity">Severity', page)
    assert page.count("aria-sort=") == 1


def test_the_domain_page_lists_its_gaps_in_the_report_order(client: Client, world) -> None:
    page = signed_in(client, role="viewer").get("/domains/law-enforcement/").content.decode()

    assert subjects(page) == ["CAP-A", "CAP-C", "CAP-B", "CAP-D"]


@pytest.mark.parametrize("as_of", ["", "yesterday"], ids=["recorded-today", "evaluated-as-of-yesterday"])
@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("subject", ["CAP-A", "CAP-B", "CAP-C", "CAP-D", "CAP-E"]),
        ("-subject", ["CAP-E", "CAP-D", "CAP-C", "CAP-B", "CAP-A"]),
        # Ties (A and B lapsed on the same day) keep the report order; no date comes last either way.
        ("lapses", ["CAP-A", "CAP-B", "CAP-C", "CAP-E", "CAP-D"]),
        ("-lapses", ["CAP-E", "CAP-C", "CAP-A", "CAP-B", "CAP-D"]),
        ("severity", ["CAP-B", "CAP-E", "CAP-D", "CAP-C", "CAP-A"]),
        ("domain", ["CAP-A", "CAP-C", "CAP-B", "CAP-D", "CAP-E"]),
        ("-domain", ["CAP-E", "CAP-A", "CAP-C", "CAP-B", "CAP-D"]),
        ("nonsense", ["CAP-A", "CAP-C", "CAP-B", "CAP-E", "CAP-D"]),  # unknown: the report order
    ],
)
def test_a_column_header_sorts_the_gaps_both_ways(client: Client, world, as_of, sort, expected) -> None:
    query = f"sort={sort}"
    if as_of:  # a read-only evaluation: the rows are sorted in memory, the same way
        query += f"&as_of={timezone.localdate() - datetime.timedelta(days=1):%Y-%m-%d}"
    page = signed_in(client, role="viewer").get(f"/gaps/?{query}").content.decode()

    assert subjects(page) == expected


def test_the_sorted_header_says_so_and_its_link_turns_it_round(client: Client, world) -> None:
    page = signed_in(client, role="viewer").get("/gaps/?sort=lapses&severity=medium&page=1").content.decode()

    header = re.search(r'<th scope="col" aria-sort="ascending"><a href="\?([^"]+)">Lapses or ends', page)
    assert header, "the lapse column is marked as sorted ascending"
    # The link keeps the filters, turns the order round and goes back to the first page.
    assert header.group(1) == "sort=-lapses&amp;severity=medium"
    assert page.count("aria-sort=") == 1
    # Another column starts its own way: severity critical first, subject A to Z.
    assert '<a href="?sort=-severity&amp;severity=medium">Severity' in page
    assert '<a href="?sort=subject&amp;severity=medium">Subject' in page
    assert subjects(page) == ["CAP-B", "CAP-E", "CAP-D"]


def test_filters_take_several_values_and_keep_them_in_the_url(client: Client, world) -> None:
    client = signed_in(client, role="viewer")

    page = client.get("/gaps/?severity=critical&severity=high").content.decode()
    assert subjects(page) == ["CAP-A", "CAP-C"]
    assert re.search(r'value="critical"[^>]*checked', page) and re.search(r'value="high"[^>]*checked', page)
    assert not re.search(r'value="medium"[^>]*checked', page)

    page = client.get("/gaps/?domain=migration&domain=law-enforcement&kind=uncovered").content.decode()
    assert subjects(page) == ["CAP-C", "CAP-E", "CAP-D"]
    assert re.search(r'value="migration"[^>]*checked', page)
    assert re.search(r'value="law-enforcement"[^>]*checked', page)

    page = client.get("/gaps/?domain=migration").content.decode()
    assert subjects(page) == ["CAP-E"]


def test_the_api_takes_several_values_of_a_filter(client: Client, world) -> None:
    client = signed_in(client, role="viewer")

    listed = client.get("/api/v1/gaps/?severity=critical&severity=high&ordering=severity").json()["results"]
    assert sorted(gap["subject_code"] for gap in listed) == ["CAP-A", "CAP-C"]
    listed = client.get("/api/v1/gaps/?domain=migration&domain=law-enforcement").json()["results"]
    assert len(listed) == 5
    unknown = client.get("/api/v1/gaps/?domain=migration&domain=atlantis")
    assert unknown.status_code == 400 and "unknown domain 'atlantis'" in str(unknown.json())


def test_an_export_is_named_for_what_it_holds(client: Client, world) -> None:
    client = signed_in(client, role="analyst")
    today = timezone.localdate()

    export = client.get(
        "/gaps/export.csv?domain=law-enforcement&severity=critical&severity=high&sort=-lapses"
    )

    assert export["Content-Disposition"] == (
        f'attachment; filename="gaps-law-enforcement-critical+high-{today:%Y-%m-%d}.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode("utf-8-sig"))))
    assert [row["subject_code"] for row in rows] == ["CAP-A", "CAP-C"]  # the report's own order
    everything = client.get("/gaps/export.json")
    assert everything["Content-Disposition"] == f'attachment; filename="gaps-{today:%Y-%m-%d}.json"'


@pytest.fixture
def negotiated(world) -> dict[str, object]:
    """SP-1 negotiates CAP-C (lapses in 10 days) since 2020-01-01: CAP-C is at risk (high: urgent)
    and SP-1 stalled (medium: CAP-C's criticality, lowered)."""
    provision = ProvisionFactory(
        reference="SP-1", domain=world["law_enforcement"], status=Status.UNDER_NEGOTIATION
    )
    CoverageFactory(provision=provision, capability=world["CAP-C"])
    gaps_scan(trigger="command")
    return {**world, "SP-1": provision}


def test_the_provision_page_shows_its_gaps_and_those_of_what_it_covers(client: Client, negotiated) -> None:
    page = signed_in(client, role="viewer").get("/provisions/SP-1/").content.decode()

    section = page[page.index('id="gaps-heading"') : page.index('id="text-heading"')]
    assert subjects(section) == ["CAP-C", "SP-1"]
    assert re.findall(r'class="edge-(\w+)"', section) == ["high", "medium"]
    assert "At risk" in section and "Stalled" in section
    # Covering CAP-C resolved its uncovered gap (CAP-C is in negotiation now, and at risk).
    resolved = section[section.index("Resolved (1)") :]
    assert re.search(r"<td>High</td><td>Uncovered</td><td>CAP-C ", resolved)


def test_a_move_says_what_it_changed_in_the_gaps_and_the_page_keeps_the_history(
    client: Client, negotiated, django_capture_on_commit_callbacks
) -> None:
    client = signed_in(client, role="negotiator", domains=[negotiated["law_enforcement"]])
    provision = negotiated["SP-1"]

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/provisions/SP-1/transition/", {"to": "agreed", "version": provision.version})

    page = client.get("/provisions/SP-1/").content.decode()
    assert "SP-1 is now agreed." in page
    assert "Gaps: resolved at risk on CAP-C; resolved stalled on SP-1." in page
    section = page[page.index('id="gaps-heading"') : page.index('id="text-heading"')]
    assert subjects(section) == []
    assert "Resolved (3)" in section
    resolved_on = f"{timezone.localdate():%-d %B %Y}"
    assert section.count(f'<td class="nowrap">{resolved_on}</td>') >= 2  # resolved (and opened) today
    assert (
        not Gap.objects.open().filter(Q(provision__reference="SP-1") | Q(capability__code="CAP-C")).exists()
    )


def test_a_write_that_moves_no_gap_says_so(client: Client, negotiated) -> None:
    client = signed_in(client, role="negotiator", domains=[negotiated["law_enforcement"]])
    provision = negotiated["SP-1"]

    client.post(
        "/provisions/SP-1/discussion/", {"on": "2020-02-01", "note": "Round 1", "version": provision.version}
    )

    page = client.get("/provisions/SP-1/").content.decode()
    assert "Discussion of SP-1 on 1 February 2020 recorded." in page
    assert "Gaps: none opened, resolved or changed in severity." in page


def test_a_discussion_today_resets_the_stall_clock_and_says_so(client: Client, negotiated) -> None:
    client = signed_in(client, role="negotiator", domains=[negotiated["law_enforcement"]])
    provision = negotiated["SP-1"]
    today = f"{timezone.localdate():%Y-%m-%d}"

    client.post(
        "/provisions/SP-1/discussion/", {"on": today, "note": "Round 9", "version": provision.version}
    )

    assert "Gaps: resolved stalled on SP-1." in client.get("/provisions/SP-1/").content.decode()


def test_a_severity_change_is_told_from_before_to_after(client: Client, negotiated) -> None:
    """Covering CAP-A (critical) too raises SP-1's stall from medium (CAP-C high, lowered) to high
    (critical, lowered); CAP-A, now negotiated, stays lapsed and critical."""
    client = signed_in(client, role="negotiator", domains=[negotiated["law_enforcement"]])
    provision = negotiated["SP-1"]

    client.post(
        "/provisions/SP-1/coverage/", {"capability": "CAP-A", "extent": "full", "version": provision.version}
    )

    page = client.get("/provisions/SP-1/").content.decode()
    assert "Coverage of CAP-A updated." in page
    assert "Gaps: stalled on SP-1 medium → high." in page


def test_the_provision_page_as_of_a_day_shows_the_gaps_of_that_day(client: Client, negotiated) -> None:
    page = signed_in(client, role="viewer").get("/provisions/SP-1/?as_of=2020-06-01").content.decode()

    section = page[page.index('id="gaps-heading"') : page.index('id="text-heading"')]
    assert "Gaps on 1 June 2020" in section
    # Stalled since its creation on 1 January 2020 (152 days); CAP-C then lapsed in over six years.
    assert subjects(section) == ["SP-1"]


def test_a_refusal_names_statuses_in_words(client: Client, negotiated) -> None:
    client = signed_in(client, role="negotiator", domains=[negotiated["law_enforcement"]])
    provision = negotiated["SP-1"]

    page = client.post(
        "/provisions/SP-1/transition/", {"to": "scoping", "version": provision.version}
    ).content.decode()

    assert "Not moved: moving back from under negotiation to scoping needs a reason." in page
    assert "under_negotiation" not in page.split("<main", 1)[1].split("</main>", 1)[0].replace(
        'value="under_negotiation"', ""
    )


@pytest.mark.parametrize(
    ("role", "shown"), [("viewer", False), ("analyst", True), ("negotiator", True), ("administrator", True)]
)
def test_the_admin_link_is_for_those_who_can_change_something_there(client: Client, role, shown) -> None:
    page = signed_in(client, role=role, is_staff=True).get("/aims/").content.decode()

    assert ('href="/admin/">Admin</a>' in page) is shown


def test_the_api_docs_page_declares_its_language(client: Client) -> None:
    page = signed_in(client, role="viewer").get("/api/v1/docs/").content.decode()

    assert '<html lang="en-GB">' in page


# --- nothing typed is lost; forms that start from the truth ------------------------------------------------


@pytest.fixture
def debated() -> dict[str, object]:
    """SP-9 under negotiation; the UK proposes it (definitively), the EU opposes it."""
    provision = ProvisionFactory(reference="SP-9", status=Status.UNDER_NEGOTIATION)
    partnership = provision.domain.partnership
    uk, eu = (
        PartyFactory(partnership=partnership, code="UK"),
        PartyFactory(partnership=partnership, code="EU"),
    )
    PositionFactory(
        provision=provision, party=uk, stance=Stance.PROPOSES, firmness=Firmness.DEFINITIVE, note="Our text"
    )
    PositionFactory(
        provision=provision, party=eu, stance=Stance.OPPOSES, firmness=Firmness.PROVISIONAL, note="No"
    )
    return {"provision": provision, "uk": uk, "eu": eu}


def loaded_form(page: str, action: str) -> dict[str, str]:
    """The hidden fields of a form as the page rendered it (its version, and when it was loaded)."""
    form = page[page.index(f'action="/provisions/SP-9/{action}/"') :]
    form = form[: form.index("</form>")]
    return dict(re.findall(r'<input type="hidden" name="(version|loaded_at)" value="([^"]*)">', form))


def test_the_position_form_starts_from_the_chosen_partys_current_position(client: Client, debated) -> None:
    client = signed_in(client, role="negotiator", domains=[debated["provision"].domain])

    uk = client.get("/provisions/SP-9/").content.decode()  # the first party by default
    form = uk[uk.index('id="position-form"') :]
    assert re.search(r'<option value="UK" selected>', form)
    assert re.search(r'<option value="proposes" selected>', form)
    assert re.search(r'<option value="definitive" selected>', form)  # editing the note keeps it definitive
    assert 'name="note" value="Our text"' in form

    eu = client.get("/provisions/SP-9/?party=EU").content.decode()
    form = eu[eu.index('id="position-form"') :]
    assert re.search(r'<option value="EU" selected>', form) and re.search(
        r'<option value="opposes" selected>', form
    )
    assert 'href="?party=EU#position-form"' in eu  # each party's row links to its own form


def test_a_position_is_recorded_although_someone_moved_the_status_meanwhile(client: Client, debated) -> None:
    editor = signed_in(client, role="negotiator", domains=[debated["provision"].domain])
    other = signed_in(Client(), role="negotiator", domains=[debated["provision"].domain])
    page = editor.get("/provisions/SP-9/").content.decode()
    other.post(
        "/provisions/SP-9/transition/",
        loaded_form(other.get("/provisions/SP-9/").content.decode(), "transition")
        | {"to": "agreed_in_principle"},
    )
    assert Provision.objects.get(reference="SP-9").status == Status.AGREED_IN_PRINCIPLE

    response = editor.post(
        "/provisions/SP-9/position/",
        loaded_form(page, "position")
        | {"party": "UK", "stance": "proposes", "firmness": "definitive", "note": "Revised"},
    )

    assert response.status_code == 302  # the two writes touch different things
    assert (
        Position.objects.filter(provision__reference="SP-9", party__code="UK").latest("id").note == "Revised"
    )


def test_a_position_edited_meanwhile_is_refused_with_the_typed_text_kept(client: Client, debated) -> None:
    editor = signed_in(client, role="negotiator", domains=[debated["provision"].domain])
    other = signed_in(Client(), username="jordan", role="negotiator", domains=[debated["provision"].domain])
    page = editor.get("/provisions/SP-9/").content.decode()
    meanwhile = loaded_form(other.get("/provisions/SP-9/").content.decode(), "position")
    other.post(
        "/provisions/SP-9/position/",
        meanwhile | {"party": "UK", "stance": "supports", "firmness": "provisional", "note": "Theirs"},
    )

    response = editor.post(
        "/provisions/SP-9/position/",
        loaded_form(page, "position")
        | {"party": "UK", "stance": "proposes", "firmness": "definitive", "note": "Mine, typed at length"},
    )

    page = response.content.decode()
    assert response.status_code == 200  # the page again, as a form with errors is
    assert "<title>Error: SP-9 · " in page
    assert re.search(r'<div class="error-summary" role="alert"[^>]*tabindex="-1" autofocus>', page)
    # What changed since: the other negotiator's position of the UK (a new dated row), told in words.
    assert "Changed since you loaded the page" in page and "jordan: position of UK created" in page
    assert "Stance: – → Supports; Firmness: – → Provisional; Note: – → Theirs" in page
    form = page[page.index('id="position-form"') :]
    assert 'name="note" value="Mine, typed at length"' in form
    assert re.search(r'<option value="definitive" selected>', form)
    # One press applies it now: the form carries the current version.
    again = editor.post(
        "/provisions/SP-9/position/",
        loaded_form(page, "position")
        | {"party": "UK", "stance": "proposes", "firmness": "definitive", "note": "Mine, typed at length"},
    )
    assert again.status_code == 302


def test_an_invalid_value_is_told_beside_its_field_and_linked_from_the_summary(
    client: Client, debated
) -> None:
    client = signed_in(client, role="negotiator", domains=[debated["provision"].domain])
    page = client.get("/provisions/SP-9/").content.decode()

    response = client.post(
        "/provisions/SP-9/position/",
        loaded_form(page, "position")
        | {"party": "UK", "stance": "proposes", "note": "Kept", "effective_on": "2020-13-45"},
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert '<a href="#position-effective_on">' in page
    assert re.search(r'<p class="field-error" id="position-effective_on-error">.*must be a date', page)
    assert 'id="position-effective_on" name="effective_on" type="date" value="2020-13-45"' in page
    assert 'aria-invalid="true" aria-describedby="position-effective_on-error"' in page
    assert 'name="note" value="Kept"' in page


def test_a_move_to_a_secured_status_while_a_party_opposes_asks_for_confirmation(
    client: Client, debated
) -> None:
    client = signed_in(client, role="negotiator", domains=[debated["provision"].domain])
    page = client.get("/provisions/SP-9/").content.decode()
    assert "European Union opposes it: I confirm it is secured all the same" in page

    refused = client.post(
        "/provisions/SP-9/transition/", loaded_form(page, "transition") | {"to": "agreed", "note": "Round 9"}
    )

    assert refused.status_code == 200 and "<title>Error: " in refused.content.decode()
    assert "European Union opposes it: confirm it is agreed all the same" in refused.content.decode()
    assert Provision.objects.get(reference="SP-9").status == Status.UNDER_NEGOTIATION

    moved = client.post(
        "/provisions/SP-9/transition/",
        loaded_form(refused.content.decode(), "transition")
        | {"to": "agreed", "note": "Round 9", "confirm_opposed": "yes"},
    )

    assert moved.status_code == 302
    change = StatusChange.objects.filter(provision__reference="SP-9").latest("id")
    assert change.to_status == Status.AGREED
    assert change.note == "Round 9 (Moved although European Union opposes it: confirmed.)"


# --- search that finds --------------------------------------------------------------------------------------


@pytest.fixture
def shipped(shipped_partnership_file: str) -> None:
    call_command("import_partnership", shipped_partnership_file, stdout=io.StringIO())


def found(page: str, section: str) -> list[str]:
    """The codes listed in a section of the search page, in order."""
    part = page[page.index(f'id="found-{section}"') :]
    part = part[: part.index("</section>")]
    return re.findall(r'<li><a href="[^"]*">([^<]+)</a>', part)


@pytest.mark.parametrize(
    ("query", "capabilities", "provisions"),
    [
        # Only the EAW's description speaks of extradition: the provision replacing it comes with it.
        ("extradition", ["EAW"], ["SP-CJ-01"]),
        ("Prum", ["PRUM"], None),  # "Prüm" in the record
        ("prüm", ["PRUM"], None),
        ("SIS", ["SIS-II"], None),
        ("arrest warrant", ["EAW"], ["SP-CJ-01"]),
        # In SP-EN-03's title, in SP-EN-02's text: the title first.
        ("adequacy", None, ["SP-EN-03", "SP-EN-02"]),
    ],
)
def test_search_finds_what_a_person_means_first(
    client: Client, shipped, query, capabilities, provisions
) -> None:
    page = signed_in(client, role="viewer", clearance="secret").get("/search/", {"q": query}).content.decode()

    if capabilities is not None:
        assert found(page, "capabilities")[: len(capabilities)] == capabilities
    if provisions is not None:
        assert found(page, "provisions")[: len(provisions)] == provisions


def test_a_short_word_matches_the_beginning_of_words_not_their_middle(client: Client) -> None:
    CapabilityFactory(
        code="MLA", name="Mutual legal assistance", description="Assistance in criminal matters"
    )
    CapabilityFactory(code="SIS-II", name="Schengen Information System II alerts")
    CapabilityFactory(code="BASIS", name="Basis of cooperation", description="A basis for SISTER agencies")
    client = signed_in(client, role="viewer")

    page = client.get("/search/", {"q": "SIS"}).content.decode()

    # SIS-II (a whole word of its code) first, then BASIS ("SISTER" begins with it); never "assistance".
    assert found(page, "capabilities") == ["SIS-II", "BASIS"]


def test_search_shows_no_provision_above_the_readers_clearance(client: Client, shipped) -> None:
    from provisions.models import Marking, Provision

    Provision.objects.filter(reference="SP-CJ-01").update(marking=Marking.SECRET)

    page = (
        signed_in(client, role="viewer", clearance="official")
        .get("/search/", {"q": "arrest warrant"})
        .content.decode()
    )

    assert found(page, "capabilities") == ["EAW"]
    assert "SP-CJ-01" not in page


# --- no code where a person reads ---------------------------------------------------------------------------


class VisibleText(HTMLParser):
    """The text a person reads on a page: no markup, attributes, scripts or styles."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "template"):
            self.hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "template"):
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def visible_text(page: str) -> str:
    parser = VisibleText()
    parser.feed(page)
    return " ".join(parser.parts)


SNAKE_CASE = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")


def test_no_page_shows_a_code_or_a_field_name_where_a_person_reads(
    client: Client, shipped, django_capture_on_commit_callbacks
) -> None:
    """Every code with an underscore (statuses, kinds, coverage states, outcomes, markings...) and
    every field name would show as snake_case: none may reach the visible text of any page, for a
    negotiator of every domain (who also sees the forms), today and as of a past date."""
    from provisions.models import Capability, Domain, Provision

    gaps_scan(trigger="command")
    client = signed_in(client, role="administrator", clearance="secret")
    with django_capture_on_commit_callbacks(execute=True):  # a refused and an accepted write too
        client.post("/provisions/SP-LE-04/transition/", {"to": "scoping", "version": 1})
        provision = Provision.objects.get(reference="SP-CJ-01")
        client.post(
            "/provisions/SP-CJ-01/details/",
            {
                "version": provision.version,
                "title": provision.title,
                "text": "Revised",
                "target_date": "2021-01-01",
                "reason": "Round 9",
            },
        )
    paths = [
        "/",
        "/?as_of=2020-12-20",
        "/gaps/",
        "/gaps/?as_of=2020-12-20",
        "/gaps/?state=resolved",
        "/aims/",
    ]
    paths += ["/aims/?as_of=2020-12-20", "/changes/?from=2020-10-01&to=2021-01-01", "/search/?q=data"]
    paths += [f"/domains/{code}/" for code in Domain.objects.values_list("code", flat=True)]
    paths += [
        f"/domains/{code}/?as_of=2020-12-20" for code in Domain.objects.values_list("code", flat=True)[:3]
    ]
    for reference in Provision.objects.values_list("reference", flat=True):
        paths += [f"/provisions/{reference}/", f"/provisions/{reference}/?as_of=2020-12-20"]
    paths += [f"/capabilities/{code}/" for code in Capability.objects.values_list("code", flat=True)]
    paths += [
        f"/capabilities/{code}/?as_of=2020-12-20"
        for code in Capability.objects.values_list("code", flat=True)[:5]
    ]

    leaks = {}
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        found_codes = SNAKE_CASE.findall(visible_text(response.content.decode()))
        if found_codes:
            leaks[path] = sorted(set(found_codes))
    refused = client.post("/provisions/SP-LE-04/transition/", {"to": "scoping", "version": 1})
    if codes := SNAKE_CASE.findall(visible_text(refused.content.decode())):
        leaks["refused move"] = sorted(set(codes))
    for path in ("/gaps/export.pdf?severity=critical", "/changes/export.pdf?from=2020-12-01&to=2021-01-01"):
        pdf = pypdf.PdfReader(io.BytesIO(b"".join(client.get(path).streaming_content)))
        text = " ".join(page.extract_text() for page in pdf.pages)
        assert "Critical" in text or "What changed" in text, path  # its text was read
        if codes := SNAKE_CASE.findall(text.replace("-\n", "")):
            leaks[path] = sorted(set(codes))
    assert not leaks, json.dumps(leaks, indent=1)


# --- charts that explain themselves, and a glossary -------------------------------------------------------


def test_coverage_over_time_has_round_steps_years_and_numbered_milestones() -> None:
    from types import SimpleNamespace

    from provisions.charts import coverage_over_time

    def snapshot(day: datetime.date, secured: int) -> SimpleNamespace:
        return SimpleNamespace(as_of=day, secured=secured, partial=1, in_negotiation=3, uncovered=2)

    chart = coverage_over_time(
        [snapshot(datetime.date(2020, 6, 1), 7), snapshot(datetime.date(2021, 3, 1), 37)],
        milestones=[(datetime.date(2019, 1, 1), "Before"), (datetime.date(2021, 1, 1), "End of transition")],
        width=600,
        height=180,
    )

    assert chart is not None
    assert [value for _, value in chart["y_ticks"]] == [0, 10, 20, 30, 40]  # 37: steps of 10, up to 40
    assert [label for _, label in chart["years"]] == ["2021"]
    assert [(number, title) for _, number, _, title in chart["milestones"]] == [(1, "End of transition")]
    x, *_ = chart["milestones"][0]
    assert x == pytest.approx(600 * 214 / 273)  # 1 January 2021: 214 of the 273 days


def test_every_word_a_page_links_to_the_glossary_is_defined_there(client: Client, negotiated) -> None:
    client = signed_in(client, role="viewer")
    glossary = client.get("/glossary/").content.decode()
    anchors = set(re.findall(r'<dt id="([a-z_-]+)">', glossary))

    for path in ("/provisions/SP-1/", "/domains/law-enforcement/", "/gaps/", "/"):
        linked = set(re.findall(r'href="/glossary/#([a-z_-]+)"', client.get(path).content.decode()))
        assert linked and linked <= anchors, (path, linked - anchors)
    assert (
        "A party opposes it." in glossary and "Only a narrower replacement covers the capability." in glossary
    )


def test_a_domains_tables_sort_by_their_headers(client: Client, world) -> None:
    client = signed_in(client, role="viewer")

    page = client.get("/domains/law-enforcement/").content.decode()
    table = page[
        page.index('aria-label="Capabilities"') : page.index(
            "</table>", page.index('aria-label="Capabilities"')
        )
    ]
    codes = re.findall(r"<strong>(CAP-[A-Z])</strong>", table)
    assert codes == ["CAP-A", "CAP-B", "CAP-C", "CAP-D"]  # by lapse date at first (none last), then code
    assert re.search(r'aria-sort="ascending"><a href="\?csort=-lapses">Lapses on', table)

    page = client.get("/domains/law-enforcement/?csort=-criticality&cpage=2").content.decode()
    table = page[
        page.index('aria-label="Capabilities"') : page.index(
            "</table>", page.index('aria-label="Capabilities"')
        )
    ]
    assert re.findall(r"<strong>(CAP-[A-Z])</strong>", table) == ["CAP-A", "CAP-C", "CAP-D", "CAP-B"]
    assert re.search(r'aria-sort="descending"><a href="\?csort=criticality">Criticality', table)
