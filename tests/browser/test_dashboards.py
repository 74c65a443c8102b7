"""A negotiator's journey through the pages in a real Chromium: sign in, read the overview, drill into a
domain and a provision, move its status and see the gap it closes go, filter gaps, travel in time, and be
told when an edit is stale. Every page is checked with axe-core and kept as a screenshot."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from provisions.models import Domain, Gap, Provision, ScanTrigger
from provisions.services.scans import gaps_scan
from tests.factories import UserFactory

if TYPE_CHECKING:
    from collections.abc import Callable

    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"  # UserFactory's


@pytest.fixture
def negotiator(partnership: None) -> Any:
    from tests.browser.conftest import restore_roles

    restore_roles()
    gaps_scan(trigger=ScanTrigger.COMMAND)
    return UserFactory(
        username="negotiator",
        role="negotiator",
        clearance="secret",
        domains=[Domain.objects.get(code="law-enforcement")],
    )


def sign_in(page: Page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/$"))


def test_a_negotiator_reads_moves_filters_and_travels_in_time(
    page: Page,
    negotiator: Any,
    assert_accessible: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
) -> None:
    from playwright.sync_api import expect

    sign_in(page, negotiator.username)
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("Capabilities by coverage state"))).to_be_visible()
    assert_accessible(page, "overview")
    screenshot(page, "overview")

    page.get_by_role("link", name="Law enforcement").first.click()
    expect(page.get_by_role("heading", name="Law enforcement", level=1)).to_be_visible()
    capabilities = page.get_by_role("table", name=re.compile("^Capabilities of"))
    expect(capabilities.get_by_role("row", name=re.compile("SIS-II"))).to_contain_text("Uncovered")
    gaps = page.get_by_role("table", name=re.compile("^Open gaps of this domain"))
    expect(gaps.locator(".gap-row td:first-child").first).to_have_text("Critical")  # the most urgent first
    assert_accessible(page, "domain")
    screenshot(page, "domain")

    # SIS-II lapsed without a secured replacement (SP-LE-04 was withdrawn): an open gap, until a
    # negotiator takes SP-LE-04 up again and it is agreed.
    assert Gap.objects.open().filter(capability__code="SIS-II", kind="lapsed").exists()
    page.get_by_role("link", name="SP-LE-04").first.click()
    expect(page.get_by_role("heading", name=re.compile("Status: Withdrawn"))).to_be_visible()
    assert_accessible(page, "provision")
    screenshot(page, "provision")
    page.get_by_label("Move to", exact=True).select_option("agreed")
    page.get_by_label(re.compile("Reason .needed to go back")).fill("Agreed at the final round")
    page.get_by_role("button", name="Move status").click()
    # The EU opposes it: the move to a secured status asks for confirmation, keeping what was typed.
    expect(page.get_by_role("alert")).to_contain_text(
        "European Union opposes it: confirm it is agreed all the same"
    )
    expect(page.get_by_label(re.compile("Reason .needed to go back"))).to_have_value(
        "Agreed at the final round"
    )
    page.get_by_label(re.compile("I confirm it is secured all the same")).check()
    page.get_by_role("button", name="Move status").click()
    expect(page.get_by_role("status")).to_contain_text("SP-LE-04 is now agreed.")
    expect(page.get_by_role("status")).to_contain_text(re.compile(r"Gaps: .*resolved lapsed on SIS-II"))
    expect(page.get_by_role("heading", name=re.compile("Status: Agreed"))).to_be_visible()

    page.get_by_role("link", name="Gaps", exact=True).click()
    expect(page.get_by_role("heading", name="Gaps", level=1)).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("SIS-II"))).to_have_count(
        0
    )  # closed by the scan the move queued
    assert not Gap.objects.open().filter(capability__code="SIS-II").exists()
    # The most urgent first.
    expect(page.locator(".gap-row td:first-child").first).to_have_text("Critical")

    # Several severities at once, kept in the URL; then sorted by a column header, filters kept.
    severity = page.get_by_role("group", name="Severity")
    severity.get_by_label("Critical").check()
    severity.get_by_label("High").check()
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"severity=critical&severity=high"))
    shown = page.locator(".gap-row td:first-child").all_inner_texts()
    assert shown and set(shown) <= {"Critical", "High"}, shown
    page.get_by_role("link", name="Lapses or ends").click()
    expect(page).to_have_url(re.compile(r"sort=lapses"))
    expect(page).to_have_url(re.compile(r"severity=critical&severity=high"))
    expect(page.get_by_role("columnheader", name=re.compile("Lapses or ends"))).to_have_attribute(
        "aria-sort", "ascending"
    )
    expect(page.get_by_role("group", name="Severity").get_by_label("High")).to_be_checked()
    assert_accessible(page, "gaps")
    screenshot(page, "gaps")

    page.get_by_role("link", name="Overview").click()
    page.get_by_label("As of", exact=True).fill("2020-12-20")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("status").first).to_contain_text("as it stood on 20 December 2020")
    expect(page.get_by_role("link", name="41 gaps")).to_be_visible()
    assert_accessible(page, "overview-2020-12-20")
    screenshot(page, "overview-2020-12-20")


def test_a_stale_edit_is_refused_and_explained(
    page: Page,
    negotiator: Any,
    assert_accessible: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
) -> None:
    from playwright.sync_api import expect

    sign_in(page, negotiator.username)
    page.goto("/provisions/SP-LE-04/")
    other_tab = page.context.new_page()
    other_tab.goto("/provisions/SP-LE-04/")  # both loaded the same version

    # A status move in one tab does not refuse a position in the other: they touch different things.
    page.get_by_label("Move to", exact=True).select_option("agreed_in_principle")
    page.get_by_role("button", name="Move status").click()
    expect(page.get_by_role("status")).to_contain_text("now agreed in principle")
    other_tab.get_by_label("Note", exact=True).fill("Written in the second tab")
    other_tab.get_by_role("button", name="Record position").click()
    expect(other_tab.get_by_role("status")).to_contain_text("Position of UK recorded.")

    # The position form starts from the UK's current position (definitively proposing).
    expect(page.get_by_label("Stance", exact=True)).to_have_value("proposes")
    expect(page.get_by_label("Firmness", exact=True)).to_have_value("definitive")
    # The first tab, still on its old page, edits the UK's position too: refused, nothing typed lost.
    page.get_by_label("Note", exact=True).fill("Typed at length in the first tab")
    page.get_by_role("button", name="Record position").click()
    expect(page).to_have_title(re.compile("^Error: SP-LE-04"))
    summary = page.get_by_role("alert")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Not saved: SP-LE-04 has changed since you loaded it")
    expect(summary).to_contain_text("position of UK created")
    expect(page.get_by_label("Note", exact=True)).to_have_value("Typed at length in the first tab")
    assert_accessible(page, "provision-stale-edit")
    screenshot(page, "provision-stale-edit")

    page.get_by_role("button", name="Record position").click()  # one press re-applies it
    expect(page.get_by_role("status")).to_contain_text("Position of UK recorded.")
    provision = Provision.objects.get(reference="SP-LE-04")
    uk = provision.domain.partnership.parties.get(code="UK")
    assert provision.positions_at()[uk.pk].note == "Typed at length in the first tab"


def test_a_negotiator_edits_details_and_records_a_consultation_in_place(
    page: Page,
    negotiator: Any,
    assert_accessible: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
) -> None:
    from playwright.sync_api import expect

    from provisions.models import Territory

    provision = Provision.objects.get(reference="SP-LE-04")
    provision.territories.add(Territory.objects.get(code="GIB"))
    loaded_version = provision.version
    sign_in(page, negotiator.username)
    page.goto("/provisions/SP-LE-04/")
    expect(page.get_by_text("Not yet consulted: Gibraltar.")).to_be_visible()

    page.get_by_text("Edit title, text, dates and marking").click()
    page.get_by_label("Review date").fill("2027-03-01")
    page.get_by_label("Why (kept in the history)").fill("Review after the summer round")
    assert_accessible(page, "provision-edit")
    screenshot(page, "provision-edit")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("SP-LE-04 saved.")
    expect(page.locator(".facts")).to_contain_text("1 March 2027")

    page.get_by_label("Consulted").select_option("GIB")
    page.get_by_label("On", exact=True).fill("2026-11-20")
    page.get_by_label("Outcome").select_option("concerns")
    page.get_by_label("Note", exact=True).last.fill("Asked about border checks")
    page.get_by_role("button", name="Record consultation").click()
    expect(page.get_by_role("status")).to_contain_text("Consultation of Gibraltar recorded.")
    expect(
        page.get_by_text("Gibraltar, 20 November 2026: Raised concerns. Asked about border checks")
    ).to_be_visible()
    expect(page.get_by_text("Not yet consulted")).to_have_count(0)

    provision.refresh_from_db()
    assert provision.review_date.isoformat() == "2027-03-01"
    assert provision.version == loaded_version + 2  # the details, then the consultation
    assert provision.consultations.get().recorded_by == negotiator


def test_the_overview_on_a_phone(
    phone_page: Page,
    negotiator: Any,
    assert_accessible: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
) -> None:
    from playwright.sync_api import expect

    sign_in(phone_page, negotiator.username)
    expect(phone_page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    width = phone_page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    assert_accessible(phone_page, "phone-overview")
    screenshot(phone_page, "phone-overview")


# The shipped partnership as the record stood on three days of the 2020 negotiations: the EU's
# position on SP-LE-01 (conditional from round 1, supporting from 27 November, agreed text from 24
# December) and the data-flows cliff edge (31 December 2020 until the bridge clause of 24 December
# moved it to 30 June 2021).
AS_OF_DAYS = [
    ("2020-10-01", "Conditional", "31 December 2020"),
    ("2020-12-15", "Supports", "31 December 2020"),
    ("2021-01-01", "Proposes", "30 June 2021"),
]


@pytest.mark.parametrize(
    ("day", "eu_stance", "data_flows_lapse"), AS_OF_DAYS, ids=[day for day, *_ in AS_OF_DAYS]
)
def test_the_pages_show_the_record_as_it_stood(
    page: Page,
    negotiator: Any,
    assert_accessible: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
    day: str,
    eu_stance: str,
    data_flows_lapse: str,
) -> None:
    from playwright.sync_api import expect

    sign_in(page, negotiator.username)
    page.goto(f"/domains/law-enforcement/?as_of={day}")
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=re.compile("^SP-LE-01")))
    expect(row.locator("td").nth(2)).to_contain_text(eu_stance)  # status, UK, EU
    assert_accessible(page, f"domain-{day}")
    screenshot(page, f"domain-law-enforcement-{day}")

    page.get_by_role("link", name="SP-LE-01").first.click()
    expect(page).to_have_url(re.compile(rf"as_of={day}"))
    eu_row = page.get_by_role("row", name=re.compile("European Union"))
    expect(eu_row.locator("td").first).to_have_text(eu_stance)
    assert_accessible(page, f"provision-{day}")
    screenshot(page, f"provision-sp-le-01-{day}")

    page.goto(f"/capabilities/DATA-FLOWS/?as_of={day}")
    expect(page.locator("dl.facts")).to_contain_text(data_flows_lapse)
    expect(page.get_by_role("heading", name="Its gap")).to_be_visible()
    assert_accessible(page, f"capability-{day}")
    screenshot(page, f"capability-data-flows-{day}")


CHART_LABEL_SIZES = """() => [...document.querySelectorAll('svg.chart')].flatMap(svg => {
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    return [...svg.querySelectorAll('text')].map(text => parseFloat(getComputedStyle(text).fontSize) * scale);
})"""


@pytest.mark.parametrize(
    "path", ["/", "/domains/law-enforcement/", "/gaps/", "/provisions/SP-LE-04/", "/capabilities/SIS-II/"]
)
def test_every_page_fits_a_phone_with_a_compact_header_and_readable_charts(
    phone_page: Page,
    negotiator: Any,
    assert_accessible: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
    path: str,
) -> None:
    sign_in(phone_page, negotiator.username)
    name = "phone-" + (path.strip("/").replace("/", "-").lower() or "overview")
    for width in (390, 320):
        phone_page.set_viewport_size({"width": width, "height": 844})
        phone_page.goto(path)
        scrolled = phone_page.evaluate("() => document.documentElement.scrollWidth")
        assert scrolled <= width, f"{path} scrolls sideways at {width}px ({scrolled}px)"
        header = phone_page.locator(".site-header").bounding_box()
        assert header and header["height"] <= 120, f"the header takes {header} at {width}px"
        sizes = phone_page.evaluate(CHART_LABEL_SIZES)
        assert all(size >= 12 for size in sizes), f"chart labels shrink to {min(sizes):.1f}px at {width}px"
        for cell in phone_page.locator("table.reflow td").all()[:5]:  # wide tables become labelled rows
            assert cell.evaluate("cell => getComputedStyle(cell).display") == "block"
        assert_accessible(phone_page, f"{name}-{width}")
        screenshot(phone_page, f"{name}-{width}")


def test_a_negotiator_follows_a_provision_and_reads_what_happened(
    page: Page,
    negotiator: Any,
    assert_accessible: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
) -> None:
    from playwright.sync_api import expect

    from provisions.permissions import Reader
    from provisions.services.status import provision_transition

    sign_in(page, negotiator.username)
    page.goto("/provisions/SP-LE-01/")
    page.get_by_role("button", name="Follow SP-LE-01").click()
    expect(page.get_by_role("status")).to_contain_text("You follow SP-LE-01")
    expect(page.get_by_role("button", name="Stop following SP-LE-01")).to_be_visible()
    provision = Provision.objects.get(reference="SP-LE-01")
    provision_transition(provision=provision, to="suspended", note="Talks paused", by=Reader.system())

    page.reload()
    page.get_by_role("link", name=re.compile(r"^Notifications 1 unread")).click()
    expect(page.get_by_role("heading", name="Notifications", level=1)).to_be_visible()
    expect(page.get_by_role("listitem").filter(has_text="Talks paused")).to_contain_text("→ suspended")
    assert_accessible(page, "notifications")
    screenshot(page, "notifications")
    page.get_by_role("button", name=re.compile("^Mark all 1 read")).click()
    expect(page.get_by_role("link", name="Notifications", exact=True)).to_be_visible()
