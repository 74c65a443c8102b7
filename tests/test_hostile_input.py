"""Hostile input: every query parameter, path segment and body of the pages and the API answers a
clear 4xx in the right shape (the API's error envelope under /api/, a plain page elsewhere), never a
500; a refused write leaves the database as it was; nothing a caller sent is rendered unescaped. The
importer refuses, with a listed problem, quickly and in bounded memory: files over the size limit,
YAML aliases beyond a small limit (billion laughs), nesting deeper than the schema allows, recursive
aliases, NUL characters.

First a plain test for each case the attacker's report named, then the property tests (hypothesis,
marked slow): random and hostile values (NUL, %, very long strings, bad UTF-8, deep nesting, wrong
types) through every API write and query parameter, the page forms and pages, and the importer.
Generation is deterministic (derandomized, no example database); EXAMPLES says how many each runs.
"""

from __future__ import annotations

import datetime
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import hypothesis
import pytest
import yaml
from django.apps import apps
from django.contrib.messages import constants as message_levels
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.test import Client
from django.utils import timezone
from hypothesis import strategies as st

from provisions.api.conventions import PerCallerThrottle
from provisions.models import (
    ApiToken,
    Extent,
    Firmness,
    Gap,
    Marking,
    Provision,
    ScanTrigger,
    Stance,
    Status,
    Territory,
)
from provisions.permissions import Reader
from provisions.services.scans import gaps_scan
from provisions.services.tokens import api_token_create
from tests.factories import CapabilityFactory, DomainFactory, PartyFactory, ProvisionFactory, UserFactory

pytestmark = pytest.mark.django_db

# Examples per property test: 2,150 in all (the issue asks for at least 2,000 in CI).
EXAMPLES = {
    "api_writes": 700,
    "api_queries": 500,
    "page_forms": 300,
    "page_queries": 250,
    "importer": 400,
}
TIME_BOUND = 5.0  # seconds: the importer refuses each hostile file well within it
HYPOTHESIS = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "suppress_health_check": [
        hypothesis.HealthCheck.function_scoped_fixture,  # the world is shared by a test's examples
        hypothesis.HealthCheck.too_slow,
        hypothesis.HealthCheck.data_too_large,
        hypothesis.HealthCheck.large_base_example,
    ],
}
CURRENT = "<the provision's current version>"  # replaced when the request is sent


# --- The world, the database's state, and what a response must look like -------------------------------


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A domain with a provision at each marking (one extending to a territory), a capability it covers
    and one of another domain, an open gap, and an administrator cleared to secret with a token and a
    signed-in client."""
    domain = DomainFactory(code="law-enforcement")
    PartyFactory(partnership=domain.partnership, code="UK")
    PartyFactory(partnership=domain.partnership, code="EU")
    capability = CapabilityFactory(
        code="SIS-II", domain=domain, lapses_on=timezone.localdate() + datetime.timedelta(days=20)
    )
    other = CapabilityFactory(code="SANCTIONS", domain=DomainFactory(code="foreign-policy"))
    provisions = {
        marking: ProvisionFactory(reference=f"SP-{n}", domain=domain, marking=marking, status=Status.PROPOSED)
        for n, marking in enumerate(Marking.values)
    }
    provisions[Marking.OFFICIAL].coverage.create(capability=capability, extent=Extent.FULL)
    provisions[Marking.OFFICIAL].territories.add(Territory.objects.create(code="GIB", name="Gibraltar"))
    gaps_scan(trigger=ScanTrigger.COMMAND)
    admin = UserFactory(username="hostile-admin", role="administrator", clearance=Marking.SECRET)
    _, key = api_token_create(owner=admin, by=Reader.of(admin), name="hostile")
    api_token_create(owner=admin, by=Reader.of(admin), name="spare")
    # One token sends every example, far past the per-token rate: the throttle is not under test here.
    monkeypatch.setattr(PerCallerThrottle, "THROTTLE_RATES", {"caller": "1000000/minute"})
    client = Client(raise_request_exception=False)
    client.force_login(admin)
    return {
        "client": client,
        "api": Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {key}"),
        "references": [provision.reference for provision in provisions.values()],
        "capabilities": [capability.code, other.code],
        "gap": Gap.objects.order_by("pk").values_list("pk", flat=True).first(),
        "tokens": list(ApiToken.objects.order_by("pk").values_list("pk", flat=True)),
    }


def database_state() -> dict[str, list[dict[str, Any]]]:
    """Every row of the app's tables (and their history), but when a token was last used."""
    state = {}
    for model in apps.get_app_config("provisions").get_models(include_auto_created=True):
        rows = list(model._default_manager.order_by("pk").values())
        if model is ApiToken:
            rows = [{**row, "last_used_at": None} for row in rows]
        state[model._meta.label] = rows
    return state


@pytest.fixture
def rolled_back() -> Callable[[], Any]:
    """Each example in a savepoint rolled back after it, so every example starts from the same world."""

    class Savepoint:
        def __enter__(self) -> None:
            self.atomic = transaction.atomic()
            self.atomic.__enter__()

        def __exit__(self, *exc: object) -> None:
            transaction.set_rollback(True)
            self.atomic.__exit__(None, None, None)

    return Savepoint


MARKUP = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "<b id=hostile>b</b>")
UNESCAPED = ("<script", "<img src=x", "<b id=hostile")


def assert_nothing_unescaped(body: bytes) -> None:
    text = body.decode("utf-8", errors="replace").lower()
    assert not [marker for marker in UNESCAPED if marker in text]


def assert_api_answer(response: Any) -> None:
    """Never a 5xx; JSON; a 4xx in the error envelope, its status the response's."""
    assert response.status_code < 500, response.content[:300]
    if response.status_code == 204:
        return
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    if response.status_code >= 400:
        error = json.loads(response.content)["error"]
        assert error["status"] == response.status_code
        assert isinstance(error["code"], str) and isinstance(error["message"], str)
        assert set(error) <= {"status", "code", "message", "field_errors"}
        for messages in error.get("field_errors", {}).values():
            assert isinstance(messages, list) and all(isinstance(message, str) for message in messages)


def assert_page_answer(response: Any) -> None:
    """Never a 5xx; an HTML page shows nothing it was sent unescaped (an export is data, not a page)."""
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert response.status_code < 500, body[:300]
    if response.get("Content-Type", "").startswith("text/html"):
        assert_nothing_unescaped(body)


def call_import(path: Path) -> tuple[bool, list[str], float]:
    """import_partnership PATH: (imported, the problems it listed, seconds). Anything but success or the
    command's refusal (a traceback) fails the test."""
    stderr = io.StringIO()
    started = time.monotonic()
    try:
        call_command("import_partnership", str(path), stdout=io.StringIO(), stderr=stderr)
    except CommandError as refused:
        assert str(refused).endswith("problem(s), nothing was imported")
        return False, stderr.getvalue().splitlines(), time.monotonic() - started
    return True, [], time.monotonic() - started


def minimal_file() -> dict[str, Any]:
    """A small valid partnership file: two parties, a domain, a capability and a provision with history."""
    return {
        "partnership": {
            "code": "uk-eu-security",
            "title": "UK-EU Security Partnership",
            "parties": [{"code": "UK", "name": "United Kingdom"}, {"code": "EU", "name": "European Union"}],
        },
        "domains": [{"code": "law-enforcement", "name": "Law enforcement"}],
        "capabilities": [
            {
                "code": "SIS-II",
                "name": "Schengen Information System",
                "domain": "law-enforcement",
                "criticality": "high",
                "lapses_on": "2020-12-31",
            }
        ],
        "provisions": [
            {
                "reference": "SP-LE-01",
                "title": "Alerts",
                "text": "The Parties shall exchange alerts.",
                "domain": "law-enforcement",
                "status": "proposed",
                "history": [
                    {"status": "identified", "at": "2020-01-01", "note": "found"},
                    {"status": "proposed", "at": "2020-02-01", "note": "tabled"},
                ],
                "covers": [{"capability": "SIS-II", "extent": "partial"}],
            }
        ],
    }


# --- The cases the attacker's report named ------------------------------------------------------------


def test_a_percent_in_the_gap_filters_domain_is_a_400_naming_it(world: dict[str, Any]) -> None:
    for query in ("domain=%25", "domain=%25s", "domain=%25(code)s", "as_of=2020-01-01&domain=%25"):
        response = world["api"].get(f"/api/v1/gaps/?{query}")
        assert response.status_code == 400, query
        assert_api_answer(response)
        assert "domain" in response.json()["error"]["field_errors"]


def test_a_nul_character_in_an_api_query_parameter_is_a_400_naming_it(world: dict[str, Any]) -> None:
    for path in ("/api/v1/gaps/?domain=a%00b", "/api/v1/provisions/?ordering=%00", "/api/v1/aims/?as_of=%00"):
        response = world["api"].get(path)
        assert response.status_code == 400, path
        assert_api_answer(response)
        assert set(response.json()["error"]["field_errors"]) == {path.split("?")[1].split("=")[0]}


def test_a_nul_character_in_a_path_is_not_found(world: dict[str, Any]) -> None:
    for path in (
        "/provisions/SP%00/",
        "/domains/law%00/",
        "/capabilities/SIS%00/",
        "/provisions/SP-0%00/details/",
    ):
        response = world["client"].get(path)
        assert response.status_code == 404, path
        assert response["Content-Type"].startswith("text/html")
    response = world["api"].get("/api/v1/provisions/SP-0%00/")
    assert response.status_code == 404
    assert_api_answer(response)


def test_a_nul_character_in_a_page_query_or_form_is_a_plain_400(world: dict[str, Any]) -> None:
    assert world["client"].get("/search/?q=%00").status_code == 400
    response = world["client"].post(
        "/provisions/SP-0/transition/",
        "to=scoping&note=a%00b",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert b"NUL" in response.content


def test_a_query_string_that_is_not_utf8_is_a_400(world: dict[str, Any]) -> None:
    for query in ("search=%FF%FE", "%C3=1", "search=%ED%A0%80"):  # the last: an encoded surrogate
        response = world["api"].get(f"/api/v1/provisions/?{query}")
        assert response.status_code == 400, query
        assert_api_answer(response)
        page = world["client"].get(f"/search/?q=x&{query}")
        assert page.status_code == 400
        assert page["Content-Type"].startswith("text/plain")


def test_a_100000_deep_json_body_on_an_api_write_is_a_400(world: dict[str, Any]) -> None:
    before = database_state()
    for body in ("[" * 100_000 + "]" * 100_000, '{"title": ' * 100_000 + '"x"' + "}" * 100_000):
        response = world["api"].patch(
            "/api/v1/provisions/SP-0/", body, content_type="application/json", HTTP_IF_MATCH='"1"'
        )
        assert response.status_code == 400
        assert_api_answer(response)
        assert "nested more than" in response.json()["error"]["message"]
    assert database_state() == before


def test_an_api_body_over_the_upload_limit_is_a_413_in_the_error_shape(
    world: dict[str, Any], settings: Any
) -> None:
    before = database_state()
    body = json.dumps({"title": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    response = world["api"].patch(
        "/api/v1/provisions/SP-0/", body, content_type="application/json", HTTP_IF_MATCH='"1"'
    )
    assert response.status_code == 413
    assert_api_answer(response)
    assert database_state() == before


def test_too_many_api_query_parameters_is_a_400_and_a_form_body_a_415_in_the_error_shape(
    world: dict[str, Any],
) -> None:
    many = "&".join(f"field{n}=1" for n in range(1_500))
    assert_api_answer(response := world["api"].get(f"/api/v1/provisions/?{many}"))
    assert response.status_code == 400
    # The API reads JSON bodies only: a form (of any size) is refused unread, saying so.
    for content_type in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        response = world["api"].post("/api/v1/provisions/SP-0/transition/", many, content_type=content_type)
        assert response.status_code == 415, content_type
        assert_api_answer(response)
        assert "Unsupported media type" in response.json()["error"]["message"]


def test_a_body_in_a_charset_that_is_not_text_is_a_400(world: dict[str, Any]) -> None:
    for charset in ("bz2_codec", "rot13", "utf-16"):
        response = world["api"].generic(
            "POST",
            "/api/v1/provisions/SP-0/transition/",
            b'{"to": "scoping"}',
            content_type=f"application/json; charset={charset}",
        )
        assert response.status_code == 400, charset
        assert_api_answer(response)


def test_a_version_of_thousands_of_digits_is_refused_not_a_500(world: dict[str, Any]) -> None:
    response = world["api"].post(
        "/api/v1/provisions/SP-0/transition/",
        {"to": "scoping", "note": "x"},
        content_type="application/json",
        HTTP_IF_MATCH='"' + "9" * 5_000 + '"',
    )
    assert 400 <= response.status_code < 500
    assert_api_answer(response)


BILLION_LAUGHS = "\n".join(
    [
        'partnership: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
        *(f"l{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 10)),
        "domains: *a9",
    ]
)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("laughs.yaml", BILLION_LAUGHS, "aliases that expand to more than"),
        ("aliases.yaml", "a: &a x\nb: [" + ", ".join(["*a"] * 101) + "]\n", "more than 100 YAML aliases"),
        ("recursive.yaml", "partnership: &p [*p]\ndomains: []\n", "a recursive alias"),
        ("recursive-map.yaml", "partnership: &p {self: *p}\ndomains: []\n", "a recursive alias"),
        ("deep.yaml", "partnership: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested more than 16 levels"),
        (
            "deep-block.yaml",
            "".join(f"{'  ' * n}k{n}:\n" for n in range(2_000)),
            "nested more than 16 levels",
        ),
        ("deep.json", '{"partnership": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested more than 16 levels"),
        (
            "deep-alias.yaml",
            "a: &a " + "[" * 12 + "]" * 12 + "\nb: &b [[[[[[*a]]]]]]\n",
            "(through an alias)",
        ),
        ("nul.yaml", 'partnership: {code: "uk\\0eu"}\ndomains: []\n', "holds a NUL character"),
        ("nul.json", '{"partnership": {"code": "uk\\u0000eu"}, "domains": []}', "holds a NUL character"),
        ("nul-key.json", '{"partnership": {"co\\u0000de": "x"}, "domains": []}', "its name holds a NUL"),
        ("raw-nul.yaml", "partnership: {code: uk\x00eu}\n", "unacceptable character #x0000"),
        ("surrogate.json", '{"partnership": {"code": "\\ud800"}, "domains": []}', "lone surrogate"),
        ("bad-date.yaml", "partnership: {code: x}\ndomains: []\nx: 2021-02-30\n", "day is out of range"),
        ("long-int.yaml", "partnership: {code: x}\ndomains: []\nx: " + "7" * 5_000 + "\n", "cannot read"),
        ("long-int.json", '{"partnership": 1' + "0" * 5_000 + "}", "Exceeds the limit"),
        ("python-tag.yaml", "partnership: !!python/object/apply:os.system [ls]\n", "could not determine"),
    ],
    ids=lambda value: value if isinstance(value, str) and value.endswith((".yaml", ".json")) else "",
)
def test_the_importer_refuses_a_hostile_file_with_a_listed_problem_in_bounded_time(
    tmp_path: Path, name: str, content: str, problem: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8", errors="surrogatepass")
    before = database_state()

    imported, problems, seconds = call_import(path)

    assert not imported
    assert any(problem in line for line in problems), problems
    assert seconds < TIME_BOUND
    assert database_state() == before


def test_the_importer_refuses_a_60_mb_file_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w", encoding="utf-8") as stream:
        stream.write("partnership: {code: x}\ndomains: []\nfiller: |\n")
        line = "  " + "x" * 98 + "\n"
        for _ in range(600_000):
            stream.write(line)
    assert path.stat().st_size > 60_000_000

    imported, problems, seconds = call_import(path)

    assert not imported
    assert problems == [f"{path}: larger than 10,485,760 bytes (PARTNERSHIP_FILE_MAX_BYTES): not read"]
    assert seconds < TIME_BOUND


def test_the_file_size_limit_is_a_setting(tmp_path: Path, settings: Any) -> None:
    path = tmp_path / "partnership.json"
    path.write_text(json.dumps(minimal_file()), encoding="utf-8")
    settings.PARTNERSHIP_FILE_MAX_BYTES = path.stat().st_size - 1
    assert "PARTNERSHIP_FILE_MAX_BYTES" in call_import(path)[1][0]

    settings.PARTNERSHIP_FILE_MAX_BYTES = path.stat().st_size
    assert call_import(path)[0]


def test_a_file_using_a_few_aliases_still_imports(tmp_path: Path) -> None:
    data = minimal_file()
    data["provisions"].append({**data["provisions"][0], "reference": "SP-LE-02"})  # the same history list
    path = tmp_path / "partnership.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert "*id001" in path.read_text(encoding="utf-8")

    assert call_import(path)[0]
    assert Provision.objects.filter(reference="SP-LE-02", status=Status.PROPOSED).exists()


# --- Hostile values ----------------------------------------------------------------------------------------

NASTY = (
    *MARKUP,
    "%",
    "%s",
    "%(code)s",
    "%%d",
    "%25",
    "%00",
    "\x00",
    "a\x00b",
    "\\x00",
    "' OR 1=1 --",
    "{{ request }}",
    "{% debug %}",
    "../../../etc/passwd",
    "\u202eevil",
    "\ufeff",
    "\U0001f4a5",
    "ＳＰ－０",
    "\r\nSet-Cookie: x=1",
    "null",
    "None",
    "-1",
    "0",
    "1e999",
    "NaN",
    "9" * 30,
    "9" * 5_000,
    " ",
    "",
    "٣",
    "2020-02-30",
    "0001-01-01",
    "9999-12-31",
    "SP-0",
    "law-enforcement",
)


def hostile_text(*, surrogates: bool = False) -> st.SearchStrategy[str]:
    """NUL, %, markup, very long strings, odd Unicode (and lone surrogates where the transport allows)."""
    options = [
        st.sampled_from(NASTY),
        st.text(max_size=30),
        st.tuples(st.text(max_size=4), st.sampled_from(NASTY), st.text(max_size=4)).map("".join),
        st.integers(min_value=200, max_value=120_000).map(lambda n: ("é<%\x00" * n)[:n]),
    ]
    if surrogates:
        options.append(st.sampled_from(["\ud800", "a\udfffb"]))
    return st.one_of(*options)


def json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Any JSON value, of the wrong type as often as not."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=10**18, max_value=10**60),
        st.floats(),
        text,
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
        max_leaves=6,
    )


def percent_encoded(value: str | bytes) -> str:
    """As a URL would carry it: UTF-8 (a lone surrogate as its invalid bytes), or raw bytes."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", errors="surrogatepass")
    return quote(raw, safe="")


def url_values() -> st.SearchStrategy[str | bytes]:
    return st.one_of(hostile_text(surrogates=True), st.binary(max_size=12))


DATES = st.sampled_from(
    ["2020-01-01", "2020-02-30", "0001-01-01", "9999-12-31", "1899-12-31", "2999-12-31", ""]
)
DATETIMES = st.sampled_from(
    ["2030-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00", "x"]
)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "to": st.sampled_from(Status.values),
    "marking": st.sampled_from(Marking.values),
    "party": st.sampled_from(["UK", "EU"]),
    "stance": st.sampled_from(Stance.values),
    "firmness": st.sampled_from(Firmness.values),
    "extent": st.sampled_from([*Extent.values, None]),
    "capability": st.sampled_from(["SIS-II", "SANCTIONS"]),
    "territory": st.just("GIB"),
    "version": st.just(CURRENT),
    "clearance": st.sampled_from(["", *Marking.values]),
    "expires_at": DATETIMES,
    # A few kinds of place (a bare word is test_a_bare_word_as_next_is_not_a_500's).
    "next": st.sampled_from(
        [
            "/gaps/?kind=lapse",
            "/gaps/%00",
            "https://evil.example/",
            "//evil.example/",
            "javascript:alert(1)",
            "",
        ]
    ),
    **{
        name: DATES
        for name in ("target_date", "review_date", "expires_on", "effective_on", "on", "consulted_on")
    },
}


def field_values(name: str, wrong: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    plausible = PLAUSIBLE.get(name, hostile_text())
    return plausible if name == "next" else st.one_of(plausible, plausible, wrong)


def bodies(fields: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    wrong = json_values(hostile_text(surrogates=True))
    return st.fixed_dictionaries({}, optional={name: field_values(name, wrong) for name in fields})


# --- The API: every write, every query parameter -----------------------------------------------------------

PROVISION_WRITE = (
    "title",
    "text",
    "target_date",
    "review_date",
    "expires_on",
    "marking",
    "version",
    "reason",
)
API_WRITES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # name: (method, path with {reference}, {gap} or {token}, body fields)
    "update": ("PATCH", "/api/v1/provisions/{reference}/", (*PROVISION_WRITE, "effective_on")),
    "transition": ("POST", "/api/v1/provisions/{reference}/transition/", ("to", "note", "version")),
    "positions": (
        "POST",
        "/api/v1/provisions/{reference}/positions/",
        ("party", "stance", "firmness", "note", "version", "reason", "effective_on"),
    ),
    "coverage": (
        "POST",
        "/api/v1/provisions/{reference}/coverage/",
        ("capability", "extent", "version", "reason", "effective_on"),
    ),
    "discussions": ("POST", "/api/v1/provisions/{reference}/discussions/", ("on", "note", "version")),
    "acknowledge": ("POST", "/api/v1/gaps/{gap}/acknowledge/", ("note",)),
    "token": ("POST", "/api/v1/tokens/", ("name", "expires_at", "clearance")),
    "revoke": ("DELETE", "/api/v1/tokens/{token}/", ()),
    "scan": ("POST", "/api/v1/gap-scans/", ()),
    "not allowed": ("PUT", "/api/v1/provisions/{reference}/", PROVISION_WRITE),
}
ENCODINGS = st.sampled_from(["json", "json", "form", "raw", "deep"])
RAW_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-16",
        "application/json; charset=bz2_codec",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "multipart/form-data",
        "text/plain",
        "application/xml",
        "",
    ]
)


def form_encoded(body: dict[str, Any]) -> str:
    return "&".join(
        f"{quote_plus(str(name).encode('utf-8', 'surrogatepass'))}="
        f"{quote_plus(str(value).encode('utf-8', 'surrogatepass'))}"
        for name, value in body.items()
    )


@st.composite
def api_writes(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(API_WRITES)))
    method, path, fields = API_WRITES[name]
    encoding = draw(ENCODINGS)
    request: dict[str, Any] = {"method": method, "path": path, "encoding": encoding}
    request["reference"] = draw(st.one_of(st.sampled_from(["SP-0", "SP-1", "SP-2"]), url_values()))
    request["gap"] = draw(st.one_of(st.just(None), url_values(), st.integers(-1, 10**30).map(str)))
    request["token"] = draw(st.one_of(st.just(None), url_values(), st.integers(-1, 10**30).map(str)))
    if encoding == "raw":
        request["body"] = draw(st.one_of(st.binary(max_size=60), hostile_text().map(str.encode)))
        request["content_type"] = draw(RAW_TYPES)
    elif encoding == "deep":
        depth = draw(st.integers(min_value=20, max_value=100_000))
        opening, closing = draw(st.sampled_from([("[", "]"), ('{"note": ', "}"), ('{"a": [', "]}")]))
        request["body"] = (opening * depth + "1" + closing * depth).encode()
        request["content_type"] = "application/json"
    else:
        request["body"] = draw(bodies(fields))
    request["if_match"] = draw(
        st.one_of(
            st.none(),
            st.just(f'"{CURRENT}"'),
            st.sampled_from(
                ['"abc"', "*", 'W/"1"', '"-1"', '"٣"', '"' + "9" * 5_000 + '"', '"' + "9" * 40 + '"']
            ),
            hostile_text(),
        )
    )
    return request


def version_of(reference: Any) -> int | None:
    """The provision's current version, if the reference names one (the test asks the database only
    about references it knows: a hostile one is the application's to refuse, not the test's)."""
    if reference not in ("SP-0", "SP-1", "SP-2"):
        return None
    return Provision.objects.get(reference=reference).version


def send_api_write(world: dict[str, Any], request: dict[str, Any]) -> Any:
    current = version_of(request["reference"])
    gap = request["gap"] if request["gap"] is not None else world["gap"]
    token = request["token"] if request["token"] is not None else world["tokens"][-1]
    path = request["path"].format(
        reference=percent_encoded(request["reference"]),
        gap=percent_encoded(str(gap)) if not isinstance(gap, bytes) else percent_encoded(gap),
        token=percent_encoded(str(token)) if not isinstance(token, bytes) else percent_encoded(token),
    )
    headers = {}
    if request["if_match"] is not None:
        headers["HTTP_IF_MATCH"] = request["if_match"].replace(CURRENT, str(current or 1))
    body, content_type = request["body"], request.get("content_type", "")
    if isinstance(body, dict):
        body = {name: current or 1 if value == CURRENT else value for name, value in body.items()}
        if request["encoding"] == "json":
            body, content_type = json.dumps(body).encode(), "application/json"
        else:
            body, content_type = form_encoded(body).encode(), "application/x-www-form-urlencoded"
    return world["api"].generic(request["method"], path, body, content_type=content_type, **headers)


@pytest.mark.slow
def test_no_api_write_answers_a_500_or_half_writes(world: dict[str, Any], rolled_back: Any) -> None:
    answered: dict[int, int] = {}

    @hypothesis.given(request=api_writes())
    @hypothesis.settings(max_examples=EXAMPLES["api_writes"], **HYPOTHESIS)
    def send(request: dict[str, Any]) -> None:
        with rolled_back():
            before = database_state()
            response = send_api_write(world, request)
            assert_api_answer(response)
            if response.status_code >= 400:
                assert database_state() == before, "a refused write changed the database"
        answered[response.status_code] = answered.get(response.status_code, 0) + 1

    send()
    assert sum(answered.values()) >= EXAMPLES["api_writes"]
    assert any(200 <= status < 300 for status in answered), answered  # the writes were reachable


API_QUERIES: dict[str, tuple[str, ...]] = {
    "/api/v1/provisions/": ("domain", "status", "marking", "covers", "search", "as_of"),
    "/api/v1/provisions/{reference}/": ("as_of",),
    "/api/v1/provisions/{reference}/history/": (),
    "/api/v1/capabilities/": ("domain", "criticality", "lapses_before", "lapses_after", "as_of"),
    "/api/v1/capabilities/{code}/": ("as_of",),
    "/api/v1/gaps/": ("kind", "severity", "domain", "state", "as_of"),
    "/api/v1/coverage/": ("as_of",),
    "/api/v1/aims/": ("as_of",),
    "/api/v1/changes/": ("from", "to"),
    "/api/v1/domains/": (),
    "/api/v1/domains/{code}/": (),
    "/api/v1/gap-scans/": (),
    "/api/v1/gap-scans/{code}/": (),
    "/api/v1/territories/": (),
    "/api/v1/precedents/": (),
    "/api/v1/tokens/": (),
}
COMMON_PARAMETERS = ("ordering", "page", "page_size", "format", "search")
PLAUSIBLE_QUERY = {
    "as_of": DATES,
    "from": DATES,
    "to": DATES,
    "lapses_before": DATES,
    "lapses_after": DATES,
    "domain": st.sampled_from(["law-enforcement", "foreign-policy"]),
    "ordering": st.sampled_from(["-severity", "status", "criticality", "-id", "reference,-status"]),
    "page": st.sampled_from(["1", "2", "0", "-1", "last"]),
    "page_size": st.sampled_from(["1", "500", "501", "0"]),
}


@st.composite
def queries(draw: st.DrawFn, endpoints: dict[str, tuple[str, ...]]) -> tuple[str, list[tuple[Any, Any]]]:
    """A path of `endpoints` (its segment an existing code or a hostile one) and up to three
    parameters: known names or hostile ones, plausible values or hostile ones."""
    template = draw(st.sampled_from(sorted(endpoints)))
    segment = draw(
        st.one_of(st.sampled_from(["SP-0", "SP-2", "law-enforcement", "SIS-II", "1"]), url_values())
    )
    path = template.replace("{reference}", percent_encoded(segment)).replace(
        "{code}", percent_encoded(segment)
    )
    names = st.sampled_from([*endpoints[template], *COMMON_PARAMETERS])
    parameters = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.one_of(names, names, url_values()))
        plausible = PLAUSIBLE_QUERY.get(name) if isinstance(name, str) else None
        parameters.append(
            (name, draw(plausible if plausible is not None and draw(st.booleans()) else url_values()))
        )
    return path, parameters


def with_query(path: str, parameters: list[tuple[Any, Any]]) -> str:
    query = "&".join(f"{percent_encoded(name)}={percent_encoded(value)}" for name, value in parameters)
    return f"{path}?{query}" if query else path


@pytest.mark.slow
def test_no_api_query_parameter_or_path_segment_answers_a_500(world: dict[str, Any]) -> None:
    sent = 0

    @hypothesis.given(query=queries(API_QUERIES))
    @hypothesis.settings(max_examples=EXAMPLES["api_queries"], **HYPOTHESIS)
    def send(query: tuple[str, list[tuple[Any, Any]]]) -> None:
        nonlocal sent
        assert_api_answer(world["api"].get(with_query(*query)))
        sent += 1

    send()
    assert sent >= EXAMPLES["api_queries"]


# --- The pages: every form, every query parameter ----------------------------------------------------------

PAGE_FORMS: dict[str, tuple[str, ...]] = {
    "/provisions/{reference}/transition/": ("to", "note", "version"),
    "/provisions/{reference}/position/": (
        "party",
        "stance",
        "firmness",
        "note",
        "version",
        "reason",
        "effective_on",
    ),
    "/provisions/{reference}/coverage/": ("capability", "extent", "version", "reason", "effective_on"),
    "/provisions/{reference}/details/": (*PROVISION_WRITE, "effective_on"),
    "/provisions/{reference}/consultation/": ("territory", "consulted_on", "outcome", "note", "version"),
    "/provisions/{reference}/discussion/": ("on", "note", "version"),
    "/gaps/{gap}/acknowledge/": ("note", "next"),
}


@st.composite
def page_forms(draw: st.DrawFn) -> dict[str, Any]:
    path = draw(st.sampled_from(sorted(PAGE_FORMS)))
    fields = PAGE_FORMS[path]
    return {
        "path": path,
        "reference": draw(st.one_of(st.sampled_from(["SP-0", "SP-1", "SP-2"]), hostile_text())),
        "gap": draw(st.one_of(st.none(), st.integers(-1, 10**30).map(str))),
        "body": draw(
            st.fixed_dictionaries({}, optional={name: field_values(name, hostile_text()) for name in fields})
        ),
    }


def sent_messages(response: Any) -> list[int]:
    """The levels of the messages the view left for the next page."""
    return [message.level for message in getattr(response.wsgi_request, "_messages", [])]


@pytest.mark.slow
def test_no_page_form_answers_a_500_half_writes_or_renders_what_was_sent_unescaped(
    world: dict[str, Any], rolled_back: Any
) -> None:
    client = world["client"]
    outcomes: dict[str, int] = {}

    @hypothesis.given(form=page_forms())
    @hypothesis.settings(max_examples=EXAMPLES["page_forms"], **HYPOTHESIS)
    def send(form: dict[str, Any]) -> None:
        with rolled_back():
            current = version_of(form["reference"])
            body = {name: current or 1 if value == CURRENT else value for name, value in form["body"].items()}
            path = form["path"].format(
                reference=percent_encoded(form["reference"]), gap=form["gap"] or world["gap"]
            )
            before = database_state()
            response = client.post(path, form_encoded(body), content_type="application/x-www-form-urlencoded")
            assert_page_answer(response)
            levels = sent_messages(response)
            succeeded = response.status_code == 302 and message_levels.SUCCESS in levels
            if not succeeded:
                assert database_state() == before, "a refused form changed the database"
            if response.status_code == 302 and response["Location"].startswith("/"):
                assert_page_answer(client.get(response["Location"]))  # the page that tells what happened
            outcome = "saved" if succeeded else str(response.status_code)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    send()
    assert sum(outcomes.values()) >= EXAMPLES["page_forms"]
    assert outcomes.get("saved"), outcomes  # the forms were reachable


PAGE_QUERIES: dict[str, tuple[str, ...]] = {
    "/": ("as_of",),
    "/domains/{code}/": ("as_of", "cpage", "ppage"),
    "/provisions/{reference}/": ("as_of",),
    "/capabilities/{code}/": ("as_of",),
    "/aims/": ("as_of",),
    "/changes/": ("from", "to"),
    "/gaps/": ("kind", "severity", "domain", "state", "as_of", "page"),
    "/search/": ("q",),
    "/gaps/export.csv": ("kind", "severity", "domain", "state", "as_of"),
    "/gaps/export.json": ("kind", "severity", "domain", "as_of"),
    "/coverage/export.json": ("as_of",),
    "/changes/export.csv": ("from", "to"),
    "/aims/export.{code}": ("as_of",),
}


@pytest.mark.slow
def test_no_page_query_parameter_or_path_segment_answers_a_500_or_renders_it_unescaped(
    world: dict[str, Any],
) -> None:
    sent = 0

    @hypothesis.given(query=queries(PAGE_QUERIES))
    @hypothesis.settings(max_examples=EXAMPLES["page_queries"], **HYPOTHESIS)
    def send(query: tuple[str, list[tuple[Any, Any]]]) -> None:
        nonlocal sent
        assert_page_answer(world["client"].get(with_query(*query)))
        sent += 1

    send()
    assert sent >= EXAMPLES["page_queries"]


# --- The importer ------------------------------------------------------------------------------------------

CONTAINERS = (
    (),
    ("partnership",),
    ("partnership", "parties", 0),
    ("domains", 0),
    ("capabilities", 0),
    ("provisions", 0),
    ("provisions", 0, "history", 1),
    ("provisions", 0, "covers", 0),
)
KEYS = st.one_of(
    st.sampled_from(
        [
            "code",
            "title",
            "name",
            "reference",
            "status",
            "at",
            "note",
            "domain",
            "lapses_on",
            "capability",
            "extent",
        ]
    ),
    hostile_text(),
)
HOSTILE_YAML = st.one_of(
    st.builds(
        lambda fan, levels: "\n".join(
            [
                "partnership: &a0 [" + ", ".join(["x"] * fan) + "]",
                *(f"l{n}: &a{n} [{', '.join([f'*a{n - 1}'] * fan)}]" for n in range(1, levels)),
                f"domains: *a{levels - 1}",
            ]
        ),
        st.integers(2, 12),
        st.integers(2, 12),
    ),
    st.integers(10, 50_000).map(lambda n: "partnership: " + "[" * n + "]" * n),
    st.integers(10, 600).map(lambda n: "".join(f"{'  ' * i}k{i}:\n" for i in range(n))),
    st.sampled_from(
        [
            "partnership: &p [*p]",
            "partnership: &p {a: *p}",
            "partnership: *undefined",
            "partnership: &p x\ndomains: &p y",
            "<<: {partnership: {code: x}}",
            "partnership: !!binary 'not base64!'",
            "partnership: !!set {a, b}",
            "partnership: !!timestamp 2020-13-45",
            "partnership: !!python/name:os.system",
            "partnership: {code: x}\n---\nsecond: document",
            "? [a, b]\n: c",
            "partnership: 2020-02-30",
            "partnership: 1" + "0" * 5_000,
            "\ufeffpartnership: {code: x}",
            "partnership: \x85",
        ]
    ),
)


@st.composite
def hostile_files(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["mutated", "mutated", "yaml", "text"]))
    if kind == "yaml":
        return "partnership.yaml", draw(HOSTILE_YAML).encode("utf-8")
    if kind == "text":
        name = draw(
            st.sampled_from(["partnership.yaml", "partnership.json", "partnership.yml", "partnership"])
        )
        return name, draw(st.one_of(st.binary(max_size=200), hostile_text().map(str.encode)))
    data = minimal_file()
    for _ in range(draw(st.integers(1, 3))):
        where: Any = data
        for step in draw(st.sampled_from(CONTAINERS)):
            where = where[step]
        where[draw(KEYS)] = draw(json_values(hostile_text(surrogates=True)))
    if draw(st.booleans()):
        return "partnership.json", json.dumps(data).encode()
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=draw(st.booleans()))
    return "partnership.yaml", text.encode("utf-8", errors="surrogatepass")


@pytest.mark.slow
def test_the_importer_imports_or_lists_its_problems_for_any_file(tmp_path: Path, rolled_back: Any) -> None:
    outcomes = {"imported": 0, "refused": 0}

    @hypothesis.given(file=hostile_files())
    @hypothesis.settings(max_examples=EXAMPLES["importer"], **HYPOTHESIS)
    def load(file: tuple[str, bytes]) -> None:
        name, content = file
        path = tmp_path / name
        path.write_bytes(content)
        with rolled_back():
            before = database_state()
            imported, problems, seconds = call_import(path)
            assert seconds < TIME_BOUND
            if not imported:
                assert problems, "refused without saying why"
                assert database_state() == before, "a refused file changed the database"
        outcomes["imported" if imported else "refused"] += 1

    load()
    assert sum(outcomes.values()) >= EXAMPLES["importer"]
    assert outcomes["imported"] and outcomes["refused"], outcomes


def test_a_bare_word_as_next_is_not_a_500(world: dict[str, Any]) -> None:
    response = world["client"].post(
        f"/gaps/{world['gap']}/acknowledge/", {"note": "seen", "next": "elsewhere"}
    )
    assert response.status_code == 302


def test_the_property_tests_run_at_least_2000_examples() -> None:
    assert sum(EXAMPLES.values()) >= 2_000
