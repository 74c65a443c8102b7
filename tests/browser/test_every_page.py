"""Every page, for the roles that use it, at the common laptop (1,366 by 900) and a phone (390 by 844):
no serious or critical axe-core violation, a screenshot of each kept as a CI artifact; and a
negotiator's journey done with the keyboard alone."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.test_dashboards import negotiator, sign_in  # noqa: F401 - a fixture, and the sign-in
from tests.factories import UserFactory

if TYPE_CHECKING:
    from collections.abc import Callable

    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
PAGES = {
    "overview": "/",
    "overview-past": "/?as_of=2020-12-20",
    "domain": "/domains/law-enforcement/",
    "provision": "/provisions/SP-LE-04/",
    "provision-past": "/provisions/SP-LE-01/?as_of=2020-12-15",
    "capability": "/capabilities/SIS-II/",
    "gaps": "/gaps/?severity=critical&severity=high&sort=lapses",
    "aims": "/aims/",
    "changes": "/changes/?from=2020-12-01&to=2021-01-01",
    "search": "/search/?q=Prum",
    "glossary": "/glossary/",
    "notifications": "/notifications/",
}


@pytest.mark.parametrize("size", SIZES)
def test_every_page_is_accessible_at_both_sizes(
    page: Page,
    negotiator: Any,  # noqa: F811
    assert_accessible: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
    size: str,
) -> None:
    page.set_viewport_size(SIZES[size])
    sign_in(page, negotiator.username)
    for name, path in PAGES.items():
        page.goto(path)
        assert page.locator("main h1").count() == 1, path
        assert_accessible(page, f"every-{name}-{size}")
        screenshot(page, f"every-{name}-{size}")


@pytest.mark.parametrize("size", SIZES)
def test_an_analyst_and_a_viewer_see_the_gaps_they_may_act_on(
    page: Page,
    negotiator: Any,  # noqa: F811 - the shipped partnership, scanned
    assert_accessible: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
    size: str,
) -> None:
    from playwright.sync_api import expect

    page.set_viewport_size(SIZES[size])
    UserFactory(username="analyst", role="analyst", clearance="secret")
    sign_in(page, "analyst")
    page.goto("/gaps/")
    expect(page.get_by_role("button", name="Acknowledge").first).to_be_visible()
    expect(page.get_by_role("link", name="CSV")).to_be_visible()
    assert_accessible(page, f"analyst-gaps-{size}")
    screenshot(page, f"analyst-gaps-{size}")
    page.context.clear_cookies()
    UserFactory(username="viewer", role="viewer", clearance="official", is_staff=True)
    sign_in(page, "viewer")
    page.goto("/gaps/")
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)  # nothing to change there
    assert_accessible(page, f"viewer-gaps-{size}")
    screenshot(page, f"viewer-gaps-{size}")


@pytest.mark.parametrize("size", SIZES)
def test_an_analyst_asks_for_a_large_export_and_downloads_it(
    page: Page,
    negotiator: Any,  # noqa: F811 - the shipped partnership, scanned
    assert_accessible: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
    settings: Any,
    size: str,
) -> None:
    """Above the online limit the export link leads to the export's page (tasks run in process
    here: it is ready at once), then to the download; the overview offers the briefing pack."""
    from playwright.sync_api import expect

    settings.EXPORT_ONLINE_MAX_ROWS = 5
    page.set_viewport_size(SIZES[size])
    UserFactory(username="analyst", role="analyst", clearance="secret")
    sign_in(page, "analyst")
    page.goto("/")
    expect(page.get_by_role("button", name="Download the pack")).to_be_visible()
    assert_accessible(page, f"analyst-overview-{size}")
    page.goto("/gaps/")
    page.get_by_role("link", name="CSV").click()
    expect(page.get_by_text("it is being prepared in the background")).to_be_visible()
    link = page.get_by_role("link", name=re.compile(r"Download gaps-\d{4}-\d\d-\d\d\.csv"))
    expect(link).to_be_visible()
    assert_accessible(page, f"export-job-{size}")
    screenshot(page, f"export-job-{size}")
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename.startswith("gaps-")
    page.goto("/exports/")
    assert_accessible(page, f"exports-{size}")
    screenshot(page, f"exports-{size}")


def tab_to(page: Page, target: Locator, *, limit: int = 400) -> None:
    """Press Tab until the target has the focus, as a keyboard user would."""
    for _ in range(limit):
        if target.evaluate("element => element === document.activeElement"):
            return
        page.keyboard.press("Tab")
    pytest.fail(f"{target} never took the focus in {limit} presses of Tab")


@pytest.mark.parametrize("size", SIZES)
def test_a_negotiator_works_with_the_keyboard_alone(
    page: Page,
    negotiator: Any,  # noqa: F811
    size: str,
) -> None:
    from playwright.sync_api import expect

    page.set_viewport_size(SIZES[size])
    sign_in(page, negotiator.username)
    # The skip link first, then to the gaps page, filtered and sorted, by keyboard.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    tab_to(page, page.get_by_role("link", name="Gaps", exact=True))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Gaps", level=1)).to_be_visible()
    tab_to(page, page.get_by_role("group", name="Severity").get_by_label("Critical"))
    page.keyboard.press("Space")
    tab_to(page, page.get_by_role("button", name="Filter"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"severity=critical"))
    subject = page.get_by_role("link", name=re.compile("^Subject"))
    tab_to(page, subject)
    assert subject.is_visible()  # on a phone too, where the table reflows: the sort links stay
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"sort=subject"))
    expect(page.get_by_role("columnheader", name=re.compile("^Subject"))).to_have_attribute(
        "aria-sort", "ascending"
    )

    # A status move refused for want of a reason: the focus lands on the error summary, whose first
    # link is the next stop; the chosen status is kept; the reason typed, the move goes through.
    page.goto("/provisions/SP-LE-04/")
    tab_to(page, page.get_by_label("Move to", exact=True))
    page.keyboard.press("End")  # the last move offered: suspended, which needs a reason
    tab_to(page, page.get_by_role("button", name="Move status"))
    page.keyboard.press("Enter")
    summary = page.get_by_role("alert")
    expect(summary).to_be_focused()
    expect(page).to_have_title(re.compile("^Error: "))
    expect(summary).to_contain_text("moving to suspended needs a reason")
    page.keyboard.press("Tab")
    expect(summary.get_by_role("link").first).to_be_focused()
    expect(page.get_by_label("Move to", exact=True)).to_have_value("suspended")
    tab_to(page, page.get_by_label(re.compile("Reason .needed to go back")))
    page.keyboard.type("Talks paused for the summer")
    tab_to(page, page.get_by_role("button", name="Move status"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").first).to_contain_text("SP-LE-04 is now suspended.")
