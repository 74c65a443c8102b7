"""A person's journey through the pages that exist today, in a real browser: sign in to the Django admin
as a staff administrator, the provisions list, one provision, and the API docs (Swagger UI, served
from vendored static files). Each page is checked with axe-core and kept as a screenshot."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from provisions.models import Provision

if TYPE_CHECKING:
    from collections.abc import Callable

    from playwright.sync_api import Page
    from pytest_django.live_server_helper import LiveServer

    from provisions.models import User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Django's admin is not ours: what axe-core 4.14 finds serious or critical in Django 5.2's own markup is
# left out of the admin pages' check (by CSS selector, so the rest of each page is still checked), not
# the bar lowered for the project's own pages:
# - `.breadcrumbs`: link-in-text-block (serious): the crumbs' links differ from their text by colour only.
# - `.select2-container`: the autocomplete widget's select2 markup (autocomplete_fields): label
#   (critical) on its search box and list (serious) on its <ul>.
# - `.tabular`: tabular inlines name their fields in column headings, not labels: label and select-name
#   (critical) on every field of every row.
ADMIN_EXCLUDE = [".breadcrumbs", ".select2-container", ".tabular"]
# The API docs page is drf-spectacular's template around Swagger UI's bundle, neither ours:
# - its <html> has no lang: html-has-lang (serious), on the root element, so the rule is turned off
#   (a project template overriding drf_spectacular/swagger_ui.html would fix it);
# - Swagger UI's info block (version stamps, schema URL), its buttons and each operation's summary
#   row: color-contrast (serious), and nested-interactive (serious) on the summary rows.
API_DOCS_EXCLUDE = [".swagger-ui .info", ".swagger-ui .btn", ".swagger-ui .opblock-summary"]
API_DOCS_RULES_OFF: list[str] = []  # the page declares its language now (it used to be exempted)


def test_an_administrator_reads_the_provisions_and_the_api_docs(
    page: Page,
    live_server: LiveServer,
    administrator: User,
    partnership: None,
    login: Callable[..., None],
    assert_accessible: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
) -> None:
    from playwright.sync_api import expect

    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    login(page, administrator.username)  # UserFactory's password
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.get_by_role("link", name="Provisions", exact=True)).to_be_visible()
    assert_accessible(page, "admin-index", exclude=ADMIN_EXCLUDE)
    screenshot(page, "admin-index")

    page.get_by_role("link", name="Provisions", exact=True).click()
    expect(page).to_have_url(re.compile(r"/admin/provisions/provision/$"))
    first = Provision.objects.order_by("reference").first()
    assert first is not None
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(min(Provision.objects.count(), 100))
    expect(rows.first).to_contain_text(first.title)
    assert_accessible(page, "admin-provision-list", exclude=ADMIN_EXCLUDE)
    screenshot(page, "admin-provision-list")

    rows.first.get_by_role("link", name=first.reference).click()
    expect(page).to_have_url(re.compile(rf"/admin/provisions/provision/{first.pk}/change/$"))
    expect(page.locator("input[name=title]")).to_have_value(first.title)
    assert_accessible(page, "admin-provision-change", exclude=ADMIN_EXCLUDE)
    screenshot(page, "admin-provision-change")

    page.goto("/api/v1/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Security partnership tracker API")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    assert_accessible(page, "api-docs", exclude=API_DOCS_EXCLUDE, disable_rules=API_DOCS_RULES_OFF)
    screenshot(page, "api-docs")

    server = urlsplit(live_server.url).netloc
    elsewhere = [url for url in requested if urlsplit(url).scheme in {"http", "https", "ws", "wss"}]
    elsewhere = [url for url in elsewhere if urlsplit(url).netloc != server]
    assert not elsewhere, f"requests that left the live server ({server}): {elsewhere}"
    assert any("/static/drf_spectacular_sidecar/" in url for url in requested), requested


def test_the_provisions_list_on_a_phone(
    phone_page: Page,
    administrator: User,
    partnership: None,
    login: Callable[..., None],
    assert_accessible: Callable[..., None],
    screenshot: Callable[[Page, str], Any],
) -> None:
    from playwright.sync_api import expect

    login(phone_page, administrator.username)
    phone_page.goto("/admin/provisions/provision/")
    expect(phone_page.locator("#result_list tbody tr")).to_have_count(Provision.objects.count())
    assert_accessible(phone_page, "phone-admin-provision-list", exclude=ADMIN_EXCLUDE)
    screenshot(phone_page, "phone-admin-provision-list")
