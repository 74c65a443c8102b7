"""Browser tests: Playwright for Python driving Debian's Chromium against pytest-django's live server.

Tests here are marked `browser`. Without /usr/bin/chromium (`make system-packages` installs it) or the
`playwright` package (`pip install -e '.[dev]'`) they skip with the reason, unless REQUIRE_SERVICES=1
(as in CI), where they fail instead. The `playwright` wheel carries its driver: never run
`playwright install`, which downloads a browser of its own.

What a test gets:
- `page` (1280x900) and `phone_page` (390x844, touch): a new browser context per test, with the live
  server as base URL (`page.goto("/admin/")`). A script error, a console error (a Content Security
  Policy refusal is one) or a failed or 4xx/5xx response on the page fails the test at teardown.
- `login(page, username, password)`: signs in through LOGIN_URL, the one place that names it.
- `assert_accessible(page, name)`: runs axe-core (tests/browser/vendor/axe.min.js, injected with
  `page.evaluate` so that a strict CSP does not block it) and fails listing every serious or critical
  violation. Every violation found, whatever its impact, is also written to artifacts/axe/NAME.json.
- `screenshot(page, name)`: a full-page PNG under artifacts/screenshots/, which CI keeps.
- `administrator`: a staff administrator cleared to SECRET; `partnership`: the shipped partnership file
  imported.

Playwright's sync API runs an asyncio loop in this thread while the browser is open, so Django would take
every ORM call in the test (factories, the transactional flush) for one made from async code: the
browser fixture sets DJANGO_ALLOW_ASYNC_UNSAFE=true while it lives (the Makefile sets it for every test
anyway), and it is package-scoped so that the loop is gone before the rest of the suite runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command

from tests.factories import UserFactory

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response
    from pytest_django.live_server_helper import LiveServer
    from pytest_django.plugin import DjangoDbBlocker

    from provisions.models import User

CHROMIUM = Path("/usr/bin/chromium")
# Headless, as root in CI (no sandbox), with no GPU, and nothing phoning home: the machine's network is
# closed, and Chromium's background requests would only be refused.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Where `login` signs in. The project's own sign-in page will be /accounts/login/: change it here only.
LOGIN_URL = "/admin/login/"
PASSWORD = "correct horse battery staple"  # UserFactory's
DESKTOP = {"width": 1366, "height": 900}  # the common laptop the issue names
PHONE = {"width": 390, "height": 844}
ARTIFACTS = Path(settings.BASE_DIR) / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
AXE_RESULTS = ARTIFACTS / "axe"
AXE_SOURCE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
BLOCKING_IMPACTS = ("serious", "critical")
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"needs Debian's Chromium at {CHROMIUM}: run `make system-packages`"
    if importlib.util.find_spec("playwright") is None:
        return "needs the playwright package: pip install -e '.[dev]' (never `playwright install`)"
    return None


def _require_browser() -> None:
    reason = missing_browser()
    if reason is None:
        return
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"REQUIRE_SERVICES=1 but this test {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _browser_gate(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("browser") is not None:
        _require_browser()


def restore_roles() -> None:
    """Put back the role groups that the data migration 0003_roles made.

    A `transaction=True` test ends by flushing every table; Django's post_migrate handlers make the
    content types and permissions again, but not the groups. Tests that run later (in this package or
    after it) expect the database as migrations left it."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    roles = importlib.import_module("provisions.migrations.0003_roles")
    state_apps = MigrationLoader(connection).project_state().apps
    roles.create_roles(state_apps, None)


@pytest.fixture(scope="package", autouse=True)
def _roles_after_the_last_flush(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    yield
    with django_db_blocker.unblock():
        restore_roles()


@pytest.fixture(scope="package")
def browser(_roles_after_the_last_flush: None) -> Iterator[Browser]:
    """Debian's Chromium, headless, once for the browser tests."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


@pytest.fixture(scope="session")
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """pytest-django's live server, on 127.0.0.1 (unless --liveserver or DJANGO_LIVE_TEST_SERVER_ADDRESS
    says otherwise); it serves static files from the finders (django.contrib.staticfiles), no
    `collectstatic` needed.

    It is started with STATIC_ROOT as the root conftest sets it for each test: WhiteNoise's middleware,
    loaded as the server starts, warns about a STATIC_ROOT that does not exist, and warnings are errors."""
    from django.test.utils import override_settings
    from pytest_django.live_server_helper import LiveServer

    static_root = tmp_path_factory.getbasetemp() / "static"
    static_root.mkdir(exist_ok=True)
    address = (
        request.config.getvalue("liveserver")
        or os.environ.get("DJANGO_LIVE_TEST_SERVER_ADDRESS")
        or "127.0.0.1"
    )
    with override_settings(STATIC_ROOT=static_root):
        server = LiveServer(address)
    yield server
    server.stop()


class PageProblems:
    """What went wrong on a page, in the browser: collected while the test runs, checked after it."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("console", self._console)
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        # The browser asks for /favicon.ico by itself when a page names no icon (Django's admin).
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            where = message.location.get("url") or (message.page.url if message.page else "")
            self.problems.append(f"console error: {message.text} ({where})")

    def _failed(self, request: Request) -> None:
        # A request the page itself dropped (it navigated away) is no fault; a blocked one (by the CSP,
        # say) or one the server never answered is.
        if request.failure != "net::ERR_ABORTED":
            self.problems.append(f"request failed: {request.method} {request.url} ({request.failure})")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.request.method} {response.url}")


def _open_page(browser: Browser, live_server: LiveServer, **options: Any) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url, **options)
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems = PageProblems(page)
    yield page
    context.close()
    if problems.problems:
        pytest.fail("The browser reported problems:\n" + "\n".join(f"- {p}" for p in problems.problems))


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """A desktop page (1280x900) in a context of its own, based at the live server."""
    yield from _open_page(browser, live_server, viewport=DESKTOP)


@pytest.fixture
def phone_page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """A phone-sized page (390x844, touch) in a context of its own, based at the live server."""
    yield from _open_page(browser, live_server, viewport=PHONE, is_mobile=True, has_touch=True)


def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    """Sign in through LOGIN_URL's form (Django's AuthenticationForm: fields username and password)."""
    page.goto(LOGIN_URL)
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    with page.expect_navigation():
        page.locator("input[name=password]").press("Enter")
    if urlsplit(page.url).path == LOGIN_URL:
        error = page.locator(".errornote, .errorlist").all_inner_texts()
        pytest.fail(f"Signing in as {username!r} failed: {' '.join(error) or 'still on the sign-in page'}")


def check_accessible(
    page: Page, name: str, *, exclude: list[str] | None = None, disable_rules: list[str] | None = None
) -> None:
    """Run axe-core on the page as it is now; fail listing every serious or critical violation.

    `exclude`: CSS selectors whose elements axe leaves out; `disable_rules`: axe rule ids not run. Use
    them only for markup that is not ours (say which and why where you call it)."""
    _check_name(name)
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SOURCE.read_text(encoding="utf-8"))  # not add_script_tag: a strict CSP blocks it
    context = {"exclude": [[selector] for selector in exclude]} if exclude else None
    options = {"rules": {rule: {"enabled": False} for rule in disable_rules or []}}
    violations: list[dict[str, Any]] = page.evaluate(
        """async ([context, options]) => {
            const results = await axe.run(context || document, options);
            return results.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                targets: v.nodes.map((node) => node.target.join(" ")),
            }));
        }""",
        [context, options],
    )
    AXE_RESULTS.mkdir(parents=True, exist_ok=True)
    (AXE_RESULTS / f"{name}.json").write_text(
        json.dumps({"url": page.url, "violations": violations}, indent=2), encoding="utf-8"
    )
    blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
    if blocking:
        lines = [f"axe-core: {len(blocking)} serious or critical violation(s) on {name!r} ({page.url}):"]
        for v in blocking:
            lines.append(f"- {v['id']} ({v['impact']}): {v['help']} [{v['helpUrl']}]")
            lines.extend(f"    {target}" for target in v["targets"])
        pytest.fail("\n".join(lines))


def take_screenshot(page: Page, name: str) -> Path:
    """A full-page PNG of the page as it is now, as artifacts/screenshots/NAME.png."""
    _check_name(name)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r}: use lower-case letters, digits, '.', '-' and '_' (a file name)")


@pytest.fixture
def login() -> Callable[..., None]:
    return sign_in


@pytest.fixture
def assert_accessible() -> Callable[..., None]:
    return check_accessible


@pytest.fixture
def screenshot() -> Callable[[Page, str], Path]:
    return take_screenshot


@pytest.fixture
def administrator(transactional_db: None) -> User:
    """A staff administrator cleared to SECRET (password: PASSWORD)."""
    restore_roles()  # an earlier transaction=True test may have flushed them
    user: User = UserFactory(
        username="administrator", role="administrator", clearance="secret", is_staff=True
    )
    return user


@pytest.fixture
def partnership(transactional_db: None, shipped_partnership_file: str) -> None:
    """The shipped partnership file (provisions/data), imported."""
    call_command("import_partnership", shipped_partnership_file, stdout=io.StringIO())
