"""Partnership files (DESIGN.md, "Contracts" → "Partnership file"): import as an idempotent, all-or-nothing
upsert by code and reference; `--dry-run`; every problem of a bad file listed with its path; recorded history
never deleted; export then import is a round trip."""

from __future__ import annotations

import datetime
import io
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import models, transaction
from django.utils import timezone

from provisions.models import (
    Aim,
    Capability,
    CapabilityChange,
    Coverage,
    Discussion,
    Domain,
    Gap,
    GapScan,
    Milestone,
    Partnership,
    Position,
    Precedent,
    Provision,
    ProvisionChange,
    ScanRequest,
    Status,
    StatusChange,
    Territory,
)
from provisions.permissions import Reader
from provisions.rules import record_at
from provisions.services.partnership_file import (
    IMPORT_NOTE,
    SCHEMA_PATH,
    PartnershipFileInvalid,
    check_partnership_file,
    partnership_import,
    read_partnership_file,
)
from provisions.services.status import provision_transition

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

SEED_DOMAINS = {
    "law-enforcement": "Law enforcement",
    "criminal-justice": "Criminal justice",
    "foreign-policy": "Foreign policy",
    "security-defence": "Security and defence",
    "development": "Development",
    "asylum-migration": "Asylum and illegal migration",
    "cyber-security": "Cyber security",
    "counter-terrorism": "Counter-terrorism",
    "civil-protection": "Civil protection",
    "health-security": "Health security",
}

# Rows a scan writes or consumes: derived from the partnership, not part of it.
SCAN_MODELS = (ScanRequest, GapScan, Gap)


# --- helpers ----------------------------------------------------------------------------------------------


def shipped_data(path: str) -> dict[str, Any]:
    """The shipped file as plain data; the JSON round trip unshares the YAML anchors' lists."""
    return json.loads(json.dumps(yaml.safe_load(Path(path).read_text(encoding="utf-8"))))


def write_yaml(directory: Path, data: Any, name: str = "partnership.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def provision_in(data: dict[str, Any], reference: str) -> dict[str, Any]:
    return data["provisions"][index_of(data, reference)]


def capability_in(data: dict[str, Any], code: str) -> dict[str, Any]:
    return data["capabilities"][capability_index_of(data, code)]


def index_of(data: dict[str, Any], reference: str) -> int:
    """Where the provision `reference` is in the file's list (the paths of problems give it)."""
    return next(index for index, item in enumerate(data["provisions"]) if item["reference"] == reference)


def capability_index_of(data: dict[str, Any], code: str) -> int:
    return next(index for index, item in enumerate(data["capabilities"]) if item["code"] == code)


def run_import(path: Path | str, *args: str) -> tuple[str, str]:
    """`import_partnership`; returns (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    call_command("import_partnership", str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_failing_import(path: Path | str, *args: str) -> tuple[str, list[str]]:
    """`import_partnership` of a bad file: returns (the CommandError's message, stderr lines)."""
    err = io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("import_partnership", str(path), *args, stdout=io.StringIO(), stderr=err)
    return str(refused.value), err.getvalue().splitlines()


def run_export(path: Path) -> str:
    call_command("export_partnership", str(path), stdout=io.StringIO())
    return path.read_text(encoding="utf-8")


def report_lines(stdout: str) -> list[str]:
    """The report's lines, without the heading (which differs between a dry run and a real import)."""
    return [line.strip() for line in stdout.splitlines()[1:]]


def all_tables() -> list[type[models.Model]]:
    """Every model of the app, with the auto-created many-to-many tables."""
    tables: list[type[models.Model]] = []
    for model in apps.get_app_config("provisions").get_models():
        tables.append(model)
        tables.extend(
            field.remote_field.through
            for field in model._meta.local_many_to_many
            if field.remote_field.through._meta.auto_created
        )
    return tables


def row_counts() -> dict[str, int]:
    return {model._meta.label: model._default_manager.count() for model in all_tables()}


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row of the partnership (all columns, ids included), scan bookkeeping aside."""
    return {
        model._meta.label: list(model._default_manager.order_by("pk").values())
        for model in all_tables()
        if model not in SCAN_MODELS
    }


def history_of(reference: str) -> list[tuple[str, str, datetime.date, str]]:
    return list(
        StatusChange.objects.filter(provision__reference=reference)
        .order_by("changed_on", "id")
        .values_list("from_status", "to_status", "changed_on", "note")
    )


def assert_history_obeys_lifecycle(reference: str) -> None:
    changes = history_of(reference)
    assert changes[0][0] == ""
    for (_, before, before_on, _), (from_status, to_status, on, note) in itertools.pairwise(changes):
        assert from_status == before
        assert on >= before_on
        assert Status.move_refusal(before, to_status, note) is None, (before, to_status, note)
    assert Provision.objects.get(reference=reference).status == changes[-1][1]


def minimal_file(provisions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "partnership": {
            "code": "uk-eu-security",
            "title": "UK-EU Security Partnership",
            "parties": [{"code": "UK", "name": "United Kingdom"}, {"code": "EU", "name": "European Union"}],
        },
        "domains": [{"code": "law-enforcement", "name": "Law enforcement"}],
        "provisions": provisions,
    }


# The shipped file (the `shipped_partnership_file` fixture's), read once to place the tables of mistakes
# below: their paths are computed from references and codes, so they follow the file when it is updated.
SHIPPED = shipped_data(
    str(Path(__file__).resolve().parents[1] / "provisions/data/uk-eu-security-partnership.yaml")
)
# Provisions the tables below rely on, and what they rely on them for:
LE_01 = index_of(SHIPPED, "SP-LE-01")  # several positions; dated changes of its expiry
LE_02 = index_of(SHIPPED, "SP-LE-02")  # two precedents
LE_03 = index_of(SHIPPED, "SP-LE-03")  # covers EUROPOL, SIENA, EC3 and CT-COOP
LE_04 = index_of(SHIPPED, "SP-LE-04")  # covers SIS-II; the EU opposed it from 2020-03-18
LE_05 = index_of(SHIPPED, "SP-LE-05")  # in force
CJ_02 = index_of(SHIPPED, "SP-CJ-02")  # in force since 2021-01-01
SD_04 = index_of(SHIPPED, "SP-SD-04")  # agreed on 2022-11-15, its only history entry: it can still move
# DATA-FLOWS lapses on 2020-12-31, moved to 2021-06-30 by its one dated change (2020-12-24).
DATA_FLOWS = capability_index_of(SHIPPED, "DATA-FLOWS")


def test_the_tables_of_mistakes_read_the_shipped_file_and_their_premises_hold(
    shipped_partnership_file: str,
) -> None:
    assert shipped_data(shipped_partnership_file) == SHIPPED
    assert (
        provision_in(SHIPPED, "SP-LE-01")["changes"]
        and len(provision_in(SHIPPED, "SP-LE-01")["positions"]) > 1
    )
    assert len(provision_in(SHIPPED, "SP-LE-02")["precedents"]) == 2
    assert provision_in(SHIPPED, "SP-LE-03")["covers"][0]["capability"] == "EUROPOL"
    assert len(provision_in(SHIPPED, "SP-LE-03")["covers"]) > 1
    assert provision_in(SHIPPED, "SP-LE-04")["covers"][0]["capability"] == "SIS-II"
    assert (
        provision_in(SHIPPED, "SP-LE-05")["status"]
        == provision_in(SHIPPED, "SP-CJ-02")["status"]
        == "in_force"
    )
    assert provision_in(SHIPPED, "SP-SD-04")["status"] == "agreed"
    assert [entry["at"] for entry in provision_in(SHIPPED, "SP-SD-04")["history"]] == ["2022-11-15"]
    assert "changes" not in provision_in(SHIPPED, "SP-SD-04")
    assert "discussions" not in provision_in(SHIPPED, "SP-SD-04")
    assert [change["at"] for change in capability_in(SHIPPED, "DATA-FLOWS")["changes"]] == ["2020-12-24"]


def next_history_index(reference: str) -> int:
    """The index an entry appended to the shipped provision's history gets."""
    return len(provision_in(SHIPPED, reference)["history"])


@pytest.fixture
def imported(shipped_partnership_file: str) -> str:
    """The shipped partnership, already imported; gives the file's path."""
    run_import(shipped_partnership_file)
    return shipped_partnership_file


# --- importing the shipped file ---------------------------------------------------------------------------


def test_importing_the_shipped_file_creates_every_domain_of_the_seed_text(
    shipped_partnership_file: str,
) -> None:
    run_import(shipped_partnership_file)

    names = dict(Domain.objects.values_list("code", "name"))
    assert {code: names.get(code) for code in SEED_DOMAINS} == SEED_DOMAINS
    for code in SEED_DOMAINS:
        assert Capability.objects.filter(domain__code=code).exists(), code
        assert Provision.objects.filter(domain__code=code).exists(), code


def day(value: str | None) -> datetime.date | None:
    return datetime.date.fromisoformat(value) if value else None


def today_value(item: dict[str, Any], name: str) -> Any:
    """A dated value today, by DESIGN's rule: the base overridden by the changes dated up to today."""
    value = item.get(name)
    for change in item.get("changes", []):
        if name in change and datetime.date.fromisoformat(change["at"]) <= timezone.localdate():
            value = change[name]
    return value


def test_importing_the_shipped_file_creates_everything_it_describes(shipped_partnership_file: str) -> None:
    data = shipped_data(shipped_partnership_file)

    run_import(shipped_partnership_file)

    partnership = Partnership.objects.get(code=data["partnership"]["code"])
    assert partnership.title == data["partnership"]["title"]
    assert sorted(partnership.parties.values_list("code", "name")) == sorted(
        (party["code"], party["name"]) for party in data["partnership"]["parties"]
    )
    assert sorted(Milestone.objects.values_list("code", "date")) == sorted(
        (m["code"], datetime.date.fromisoformat(m["date"])) for m in data["partnership"]["milestones"]
    )
    assert sorted(Territory.objects.values_list("code", "name", "kind")) == sorted(
        (t["code"], t["name"], t["kind"]) for t in data["territories"]
    )
    assert sorted(Precedent.objects.values_list("code", "title")) == sorted(
        (p["code"], p["title"]) for p in data["precedents"]
    )
    for item in data["domains"]:
        domain = Domain.objects.select_related("pillar", "partnership").get(code=item["code"])
        assert (domain.name, domain.pillar.name, domain.description, domain.partnership) == (
            item["name"],
            item["pillar"],
            item["description"],
            partnership,
        )
    assert Capability.objects.count() == len(data["capabilities"])
    for item in data["capabilities"]:
        capability = Capability.objects.select_related("domain").get(code=item["code"])
        lapses_on = today_value(item, "lapses_on")  # the columns hold today's values (rules v2)
        assert (capability.name, capability.domain.code, capability.criticality, capability.lapses_on) == (
            item["name"],
            item["domain"],
            today_value(item, "criticality"),
            datetime.date.fromisoformat(lapses_on) if lapses_on else None,
        )
        assert (capability.fallback, capability.description) == (
            today_value(item, "fallback") or "",
            item.get("description", ""),
        )
        dated = [(change.at, change.sets(), change.note) for change in capability.changes.exclude(at=None)]
        assert dated == [
            (day(change["at"]), values_set_by(change), change.get("note", ""))
            for change in item.get("changes", [])
        ], item["code"]
    assert Provision.objects.count() == len(data["provisions"])


def test_importing_the_shipped_file_gives_each_provision_what_the_file_says(
    shipped_partnership_file: str,
) -> None:
    data = shipped_data(shipped_partnership_file)

    run_import(shipped_partnership_file)

    for item in data["provisions"]:
        provision = Provision.objects.select_related("domain").get(reference=item["reference"])
        expires_on = today_value(item, "expires_on")  # the columns hold today's values (rules v2)
        assert (
            provision.title,
            provision.text,
            provision.expires_on,
            provision.domain.code,
            provision.status,
            provision.marking,
        ) == (
            today_value(item, "title"),
            today_value(item, "text"),
            datetime.date.fromisoformat(expires_on) if expires_on else None,
            item["domain"],
            item["status"],
            item["marking"],
        ), item["reference"]
        assert list(
            provision.coverage.order_by("id").values_list(
                "capability__code", "extent", "valid_from", "valid_until"
            )
        ) == [
            (link["capability"], link["extent"], day(link.get("from")), day(link.get("until")))
            for link in item["covers"]
        ], item["reference"]
        # A party's positions are a dated history: all of them, in the file's order, with their days.
        assert list(
            provision.positions.order_by("id").values_list(
                "party__code", "stance", "firmness", "note", "taken_on"
            )
        ) == [
            (p["party"], p["stance"], p["firmness"], p.get("note", ""), day(p.get("at")))
            for p in item["positions"]
        ], item["reference"]
        assert sorted(provision.precedents.values_list("code", flat=True)) == sorted(item["precedents"])
        assert sorted(provision.territories.values_list("code", flat=True)) == sorted(item["territories"])


def test_importing_the_shipped_file_records_each_history_in_order(shipped_partnership_file: str) -> None:
    data = shipped_data(shipped_partnership_file)

    run_import(shipped_partnership_file)

    for item in data["provisions"]:
        changes = history_of(item["reference"])
        assert [(to_status, on, note) for _, to_status, on, note in changes] == [
            (entry["status"], datetime.date.fromisoformat(entry["at"]), entry.get("note", ""))
            for entry in item["history"]
        ], item["reference"]
        assert changes[-1][1] == item["status"] == Provision.objects.get(reference=item["reference"]).status
        assert [from_status for from_status, *_ in changes] == ["", *[to for _, to, _, _ in changes[:-1]]]


def test_importing_the_shipped_file_reports_what_it_created(shipped_partnership_file: str) -> None:
    data = shipped_data(shipped_partnership_file)

    stdout, stderr = run_import(shipped_partnership_file)

    assert stderr == ""
    assert stdout.splitlines()[0] == "Imported:"
    lines = report_lines(stdout)
    assert f"domains: {len(data['domains'])} created, 0 updated, 0 unchanged" in lines
    assert f"capabilities: {len(data['capabilities'])} created, 0 updated, 0 unchanged" in lines
    assert f"provisions: {len(data['provisions'])} created, 0 updated, 0 unchanged" in lines
    assert f"aims: {len(data['aims'])} created, 0 updated, 0 unchanged" in lines
    entries = sum(len(item["history"]) for item in data["provisions"])
    assert lines[-1] == f"status changes: {entries} added"
    assert StatusChange.objects.count() == entries


# --- idempotency and round trips ---------------------------------------------------------------------------


def test_importing_the_shipped_file_twice_changes_nothing_the_second_time(imported: str) -> None:
    data = shipped_data(imported)
    before = snapshot()

    stdout, _ = run_import(imported)

    assert snapshot() == before
    lines = report_lines(stdout)
    assert lines[-1] == "status changes: 0 added"
    for line in lines[:-1]:
        assert ": 0 created, 0 updated, " in line, line
    assert f"provisions: 0 created, 0 updated, {len(data['provisions'])} unchanged" in lines
    assert f"capabilities: 0 created, 0 updated, {len(data['capabilities'])} unchanged" in lines
    assert f"aims: 0 created, 0 updated, {len(data['aims'])} unchanged" in lines


def test_the_service_reports_no_change_on_a_second_import(imported: str) -> None:
    report = partnership_import(data=read_partnership_file(imported))

    assert not report.changed
    assert report.status_changes_added == 0
    assert all(counter["created"] == counter["updated"] == 0 for counter in report.counts.values())


@pytest.mark.parametrize("name", ["exported.yaml", "exported.json"])
def test_importing_an_export_of_the_imported_file_changes_nothing(
    imported: str, tmp_path: Path, name: str
) -> None:
    exported = tmp_path / name
    run_export(exported)
    before = snapshot()

    stdout, _ = run_import(exported)

    assert snapshot() == before
    assert report_lines(stdout)[-1] == "status changes: 0 added"
    assert all(": 0 created, 0 updated, " in line for line in report_lines(stdout)[:-1])


def test_an_export_parses_as_the_format_its_name_says(imported: str, tmp_path: Path) -> None:
    as_json = json.loads(run_export(tmp_path / "exported.json"))
    as_yaml = yaml.safe_load(run_export(tmp_path / "exported.yaml"))

    assert as_json == as_yaml
    assert check_partnership_file(as_json) == []


@pytest.mark.parametrize("name", ["exported.yaml", "exported.json"])
def test_export_then_import_into_an_empty_database_then_export_gives_the_same_file(
    shipped_partnership_file: str, tmp_path: Path, name: str
) -> None:
    first, second = tmp_path / f"first-{name}", tmp_path / f"second-{name}"
    with transaction.atomic():
        run_import(shipped_partnership_file)
        first_text = run_export(first)
        transaction.set_rollback(True)
    assert not any(row_counts().values()), "the database should be empty again"

    exported = yaml.safe_load(first_text)  # the dated parts and the aims make the trip too
    assert capability_in(exported, "DATA-FLOWS")["changes"] == capability_in(SHIPPED, "DATA-FLOWS")["changes"]
    assert {"changes", "discussions", "expires_on"} <= provision_in(exported, "SP-LE-01").keys()
    assert any(position.get("at") for position in provision_in(exported, "SP-LE-01")["positions"])
    assert exported["aims"] == SHIPPED["aims"]

    run_import(first)

    assert run_export(second) == first_text
    assert Provision.objects.count() == len(SHIPPED["provisions"])
    assert CapabilityChange.objects.exclude(at=None).count() == sum(
        len(item.get("changes", [])) for item in SHIPPED["capabilities"]
    )
    assert ProvisionChange.objects.exclude(at=None).count() == sum(
        len(item.get("changes", [])) for item in SHIPPED["provisions"]
    )
    assert Discussion.objects.count() == sum(
        len(item.get("discussions", [])) for item in SHIPPED["provisions"]
    )


# --- the dated parts and the aims (rules v2) ---------------------------------------------------------------


def test_importing_the_shipped_file_records_a_capabilitys_base_values_and_its_dated_change(
    imported: str,
) -> None:
    item = capability_in(SHIPPED, "DATA-FLOWS")
    capability = Capability.objects.get(code="DATA-FLOWS")

    assert [(change.at, change.sets(), change.note) for change in capability.changes.all()] == [
        (
            None,
            {
                "lapses_on": datetime.date(2020, 12, 31),
                "criticality": "critical",
                "fallback": item["fallback"],
            },
            "",
        ),
        (datetime.date(2020, 12, 24), {"lapses_on": datetime.date(2021, 6, 30)}, item["changes"][0]["note"]),
    ]
    assert capability.lapses_on == datetime.date(2021, 6, 30)  # today's value
    # What the rules read on each side of the change.
    before, on = datetime.date(2020, 12, 23), datetime.date(2020, 12, 24)
    assert record_at(before, capability_ids=[capability.pk]).capabilities[capability.pk].lapses_on == (
        datetime.date(2020, 12, 31)
    )
    assert record_at(on, capability_ids=[capability.pk]).capabilities[capability.pk].lapses_on == (
        datetime.date(2021, 6, 30)
    )


def test_importing_the_shipped_file_records_a_provisions_expiry_history(imported: str) -> None:
    item = provision_in(SHIPPED, "SP-LE-01")
    provision = Provision.objects.get(reference="SP-LE-01")

    assert [(change.at, change.sets(), change.note) for change in provision.changes.all()] == [
        (None, {"title": item["title"], "text": item["text"], "expires_on": datetime.date(2021, 10, 1)}, ""),
        (datetime.date(2021, 9, 24), {"expires_on": datetime.date(2022, 7, 1)}, item["changes"][0]["note"]),
        (datetime.date(2022, 6, 17), {"expires_on": None}, item["changes"][1]["note"]),  # cleared
    ]
    assert provision.expires_on is None  # today's value
    for as_of, expires_on in [
        (datetime.date(2021, 9, 23), datetime.date(2021, 10, 1)),
        (datetime.date(2021, 9, 24), datetime.date(2022, 7, 1)),
        (datetime.date(2022, 6, 17), None),
    ]:
        record = record_at(as_of, provision_ids=[provision.pk])
        assert record.provisions[provision.pk].expires_on == expires_on, as_of


def values_set_by(change: dict[str, Any]) -> dict[str, Any]:
    """What a file's dated change sets, as the model holds it (dates as dates; null clears)."""
    return {
        name: day(value) if name.endswith("_on") else value
        for name, value in change.items()
        if name not in ("at", "note")
    }


def test_importing_the_shipped_file_records_every_dated_change_of_every_provision(imported: str) -> None:
    for item in SHIPPED["provisions"]:
        changes = ProvisionChange.objects.filter(provision__reference=item["reference"]).exclude(at=None)
        assert [(change.at, change.sets(), change.note) for change in changes] == [
            (day(change["at"]), values_set_by(change), change.get("note", ""))
            for change in item.get("changes", [])
        ], item["reference"]
        has_base = ProvisionChange.objects.filter(provision__reference=item["reference"], at=None).exists()
        assert has_base == bool(item.get("changes")), item["reference"]  # a base once there are changes


def test_importing_the_shipped_file_records_each_provisions_discussions_in_order(imported: str) -> None:
    for item in SHIPPED["provisions"]:
        discussions = Discussion.objects.filter(provision__reference=item["reference"]).order_by("on", "id")
        assert list(discussions.values_list("on", "note")) == [
            (day(entry["at"]), entry["note"]) for entry in item.get("discussions", [])
        ], item["reference"]
    assert Discussion.objects.filter(provision__reference="SP-LE-01").count() == len(
        provision_in(SHIPPED, "SP-LE-01")["discussions"]
    )


def test_importing_the_shipped_file_records_its_aims_with_their_capabilities_in_order(imported: str) -> None:
    assert list(Aim.objects.order_by("code").values_list("code", flat=True)) == sorted(
        aim["code"] for aim in SHIPPED["aims"]
    )
    for item in SHIPPED["aims"]:
        aim = Aim.objects.select_related("partnership").get(code=item["code"])
        assert (aim.title, aim.text, aim.source, aim.partnership.code) == (
            item["title"],
            item.get("text", ""),
            item.get("source", ""),
            SHIPPED["partnership"]["code"],
        )
        linked = aim.links.order_by("position", "id").values_list("capability__code", flat=True)
        assert list(linked) == item["capabilities"], item["code"]


def test_an_export_writes_the_dated_parts_and_the_aims_as_the_imported_file_gave_them(
    imported: str, tmp_path: Path
) -> None:
    exported = yaml.safe_load(run_export(tmp_path / "exported.yaml"))

    for item in SHIPPED["capabilities"]:
        out = capability_in(exported, item["code"])
        assert (
            out.get("lapses_on"),
            out["criticality"],
            out.get("fallback", ""),
            out.get("changes", []),
        ) == (
            item.get("lapses_on"),
            item["criticality"],
            item.get("fallback", ""),
            item.get("changes", []),
        ), item["code"]
    for item in SHIPPED["provisions"]:
        out = provision_in(exported, item["reference"])
        assert (out["title"], out.get("text", ""), out.get("expires_on"), out.get("changes", [])) == (
            item["title"],
            item.get("text", ""),
            item.get("expires_on"),
            item.get("changes", []),
        ), item["reference"]
        assert out.get("discussions", []) == item.get("discussions", []), item["reference"]
        assert out["positions"] == [{"firmness": "provisional", **p} for p in item["positions"]]
        assert out["covers"] == [{"extent": "full", **link} for link in item["covers"]]
    assert exported["aims"] == sorted(SHIPPED["aims"], key=lambda aim: aim["code"])


def test_reimporting_a_file_that_leaves_the_dated_parts_out_keeps_them(imported: str, tmp_path: Path) -> None:
    data = shipped_data(imported)
    del data["aims"]
    for item in [*data["capabilities"], *data["provisions"]]:
        item.pop("changes", None)
        item.pop("discussions", None)
    rows = snapshot()

    stdout, _ = run_import(write_yaml(tmp_path, data))

    assert snapshot() == rows
    lines = report_lines(stdout)
    assert f"capabilities: 0 created, 0 updated, {len(data['capabilities'])} unchanged" in lines
    assert f"provisions: 0 created, 0 updated, {len(data['provisions'])} unchanged" in lines


def test_discussions_out_of_date_order_are_refused_as_history_is(imported: str, tmp_path: Path) -> None:
    """Listed oldest first, as history entries and changes are (a re-import then changes nothing)."""
    data = shipped_data(imported)
    discussions = provision_in(data, "SP-LE-01")["discussions"]
    discussions[0], discussions[1] = discussions[1], discussions[0]
    rows = snapshot()

    _, stderr = run_failing_import(write_yaml(tmp_path, data))

    assert stderr == [
        f"provisions[{LE_01}].discussions[1].at: {discussions[1]['at']} is before the previous discussion "
        f"({discussions[0]['at']})"
    ]
    assert snapshot() == rows


def test_a_capability_may_be_listed_twice_for_days_that_do_not_overlap(imported: str, tmp_path: Path) -> None:
    data = shipped_data(imported)
    covers = provision_in(data, "SP-LE-03")["covers"]
    europol = next(link for link in covers if link["capability"] == "EUROPOL")
    europol["until"] = "2022-01-01"  # partial until then, full from then on
    covers.append({"capability": "EUROPOL", "extent": "full", "from": "2022-01-01"})
    path = write_yaml(tmp_path, data)

    stdout, _ = run_import(path)

    assert f"provisions: 0 created, 1 updated, {len(data['provisions']) - 1} unchanged" in report_lines(
        stdout
    )
    links = Coverage.objects.filter(provision__reference="SP-LE-03", capability__code="EUROPOL").order_by(
        "id"
    )
    assert list(links.values_list("extent", "valid_from", "valid_until")) == [
        ("partial", None, datetime.date(2022, 1, 1)),
        ("full", datetime.date(2022, 1, 1), None),
    ]
    provision = Provision.objects.get(reference="SP-LE-03").pk
    capability = Capability.objects.get(code="EUROPOL").pk

    def counting(as_of: datetime.date) -> list[tuple[int, int, str]]:
        record = record_at(as_of, capability_ids=[capability])
        return [link for link in record.links if link[:2] == (provision, capability)]

    assert counting(datetime.date(2021, 12, 31)) == [(provision, capability, "partial")]
    assert counting(datetime.date(2022, 1, 1)) == [(provision, capability, "full")]
    exported = yaml.safe_load(run_export(tmp_path / "exported.yaml"))
    assert [
        link for link in provision_in(exported, "SP-LE-03")["covers"] if link["capability"] == "EUROPOL"
    ] == [
        {"capability": "EUROPOL", "extent": "partial", "until": "2022-01-01"},
        {"capability": "EUROPOL", "extent": "full", "from": "2022-01-01"},
    ]
    rows = snapshot()
    run_import(path)
    assert snapshot() == rows


def v1_file(data: dict[str, Any]) -> dict[str, Any]:
    """The file as written before its dated parts existed: no values' `changes`, no `expires_on`, no
    `discussions`, no `aims`, no link days, and one undated position per party (its latest)."""
    data = json.loads(json.dumps(data))
    del data["aims"]
    for capability in data["capabilities"]:
        capability.pop("changes", None)
    for provision in data["provisions"]:
        for key in ("changes", "discussions", "expires_on"):
            provision.pop(key, None)
        for link in provision["covers"]:
            link.pop("from", None)
            link.pop("until", None)
        latest: dict[str, dict[str, Any]] = {}
        for position in provision["positions"]:
            position.pop("at", None)
            latest[position["party"]] = position
        provision["positions"] = list(latest.values())
    return data


def test_a_file_without_dated_parts_imports_with_the_meaning_it_had_before_them(tmp_path: Path) -> None:
    data = v1_file(SHIPPED)
    path = write_yaml(tmp_path, data, "v1.yaml")

    stdout, _ = run_import(path)

    assert f"provisions: {len(data['provisions'])} created, 0 updated, 0 unchanged" in report_lines(stdout)
    assert not (
        CapabilityChange.objects.exists()
        or ProvisionChange.objects.exists()
        or Discussion.objects.exists()
        or Aim.objects.exists()
    )
    # Values are the top-level ones, today and on any day.
    for item in data["capabilities"]:
        capability = Capability.objects.get(code=item["code"])
        assert (capability.lapses_on, capability.criticality, capability.fallback) == (
            day(item.get("lapses_on")),
            item["criticality"],
            item.get("fallback", ""),
        )
    assert Capability.objects.get(code="DATA-FLOWS").lapses_on == datetime.date(2020, 12, 31)
    data_flows = Capability.objects.get(code="DATA-FLOWS").pk
    later = record_at(datetime.date(2021, 1, 1), capability_ids=[data_flows])
    assert later.capabilities[data_flows].lapses_on == datetime.date(2020, 12, 31)
    for item in data["provisions"]:
        provision = Provision.objects.get(reference=item["reference"])
        assert (provision.title, provision.text, provision.expires_on) == (item["title"], item["text"], None)
    # Positions are undated, one per party; links have no days.
    assert not Position.objects.exclude(taken_on=None).exists()
    assert Position.objects.count() == sum(len(item["positions"]) for item in data["provisions"])
    assert not Coverage.objects.exclude(valid_from=None, valid_until=None).exists()
    # So links always count, and an undated position holds from the start.
    every_link = sorted(Coverage.objects.values_list("provision_id", "capability_id", "extent"))
    for as_of in (datetime.date(2019, 1, 1), datetime.date(2021, 1, 1), datetime.date(2099, 1, 1)):
        assert sorted(record_at(as_of).links) == every_link, as_of
    sp_le_04 = Provision.objects.get(reference="SP-LE-04").pk
    assert record_at(datetime.date(2019, 10, 17), provision_ids=[sp_le_04]).opposing.get(sp_le_04) == ["EU"]
    # And it means the same the next time, and exports without dated parts.
    rows = snapshot()
    run_import(path)
    assert snapshot() == rows
    exported = yaml.safe_load(run_export(tmp_path / "exported.yaml"))
    assert exported["aims"] == []
    for item in [*exported["capabilities"], *exported["provisions"]]:
        assert not {"changes", "discussions", "expires_on"} & item.keys(), item
    for item in exported["provisions"]:
        assert all("at" not in position for position in item["positions"]), item["reference"]
        assert all(not {"from", "until"} & link.keys() for link in item["covers"]), item["reference"]


def test_the_shipped_files_dated_positions_hold_from_their_day(imported: str) -> None:
    # SP-LE-04: the EU reserved its position on 2019-10-17 and opposed the provision from 2020-03-18
    # (the v1 reading of the same positions, undated, has the EU opposing it from the start).
    sp_le_04 = Provision.objects.get(reference="SP-LE-04").pk

    def opposing(as_of: datetime.date) -> list[str]:
        return record_at(as_of, provision_ids=[sp_le_04]).opposing.get(sp_le_04, [])

    assert opposing(datetime.date(2019, 10, 17)) == []
    assert opposing(datetime.date(2020, 3, 17)) == []
    assert opposing(datetime.date(2020, 3, 18)) == ["EU"]


# --- dry run ----------------------------------------------------------------------------------------------


def test_a_dry_run_reports_what_the_import_would_do_and_writes_nothing(shipped_partnership_file: str) -> None:
    before = row_counts()

    dry_stdout, _ = run_import(shipped_partnership_file, "--dry-run")

    assert row_counts() == before
    assert dry_stdout.splitlines()[0] == "Dry run, nothing written. Would import:"
    real_stdout, _ = run_import(shipped_partnership_file)
    assert report_lines(dry_stdout) == report_lines(real_stdout)
    assert Provision.objects.count() == len(shipped_data(shipped_partnership_file)["provisions"])


def test_a_dry_run_of_a_changed_file_reports_the_updates_and_writes_nothing(
    imported: str, tmp_path: Path
) -> None:
    data = shipped_data(imported)
    provision_in(data, "SP-SD-04")["title"] = "PESCO: Military Mobility"
    provision_in(data, "SP-SD-04")["status"] = "signed"
    provision_in(data, "SP-SD-04")["history"].append({"status": "signed", "at": "2023-01-10"})
    assert "changes" not in data["capabilities"][0]  # its criticality is its only value
    data["capabilities"][0]["criticality"] = "high"
    path = write_yaml(tmp_path, data)
    counts, rows = row_counts(), snapshot()

    dry_stdout, _ = run_import(path, "--dry-run")

    assert row_counts() == counts
    assert snapshot() == rows
    provisions, capabilities = len(data["provisions"]), len(data["capabilities"])
    assert f"provisions: 0 created, 1 updated, {provisions - 1} unchanged" in report_lines(dry_stdout)
    assert f"capabilities: 0 created, 1 updated, {capabilities - 1} unchanged" in report_lines(dry_stdout)
    assert report_lines(dry_stdout)[-1] == "status changes: 1 added"
    real_stdout, _ = run_import(path)
    assert report_lines(dry_stdout) == report_lines(real_stdout)


def test_a_dry_run_asks_for_no_gap_scan(
    shipped_partnership_file: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        run_import(shipped_partnership_file, "--dry-run")

    assert callbacks == []
    assert ScanRequest.objects.count() == 0


# --- bad files: reading -----------------------------------------------------------------------------------


def test_invalid_yaml_is_one_problem_about_the_file_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "partnership:\n  code: uk-eu-security\n  title: [unclosed\ndomains: []\n", encoding="utf-8"
    )

    message, stderr = run_failing_import(path)

    assert message == f"{path}: 1 problem(s), nothing was imported"
    assert stderr[0].startswith(f"{path}: not valid YAML: ")
    assert "line 3, column 10" in "\n".join(stderr)  # where the parser gave up
    assert not any(row_counts().values())


def test_the_invalid_yaml_problem_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("partnership: [unclosed\n", encoding="utf-8")

    with pytest.raises(PartnershipFileInvalid) as invalid:
        read_partnership_file(path)

    assert len(invalid.value.problems) == 1
    assert str(path) in str(invalid.value.problems[0])
    assert "<unicode string>" not in str(invalid.value.problems[0])


def test_invalid_json_is_one_problem_about_the_file_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"partnership": {"code": "uk-eu-security",}, "domains": []}', encoding="utf-8")

    message, stderr = run_failing_import(path)

    assert message == f"{path}: 1 problem(s), nothing was imported"
    assert len(stderr) == 1
    assert stderr[0].startswith(f"{path}: not valid JSON: Expecting property name")
    assert "line 1 column 43" in stderr[0]
    assert not any(row_counts().values())


def test_a_json_file_is_read_as_json_even_if_it_would_be_valid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "partnership.json"
    path.write_text("partnership:\n  code: x\n", encoding="utf-8")

    with pytest.raises(PartnershipFileInvalid) as invalid:
        read_partnership_file(path)

    assert [problem.path for problem in invalid.value.problems] == [str(path)]
    assert invalid.value.problems[0].message.startswith("not valid JSON")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("list.yaml", "- partnership\n- domains\n"),
        ("scalar.yaml", "just some text\n"),
        ("empty.yaml", ""),
        ("list.json", '[{"partnership": {}}]'),
        ("string.json", '"partnership"'),
    ],
)
def test_a_file_whose_top_level_is_not_a_mapping_is_refused(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")

    message, stderr = run_failing_import(path)

    assert stderr == [f"{path}: expected a mapping with 'partnership' and 'domains'"]
    assert str(path) in message
    assert not any(row_counts().values())


def test_a_missing_file_is_one_problem_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"

    _, stderr = run_failing_import(path)

    assert len(stderr) == 1
    assert stderr[0].startswith(f"{path}: cannot read the file")


# --- bad files: one mistake each --------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(*keys: str | int, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return mutate


def _delete(*keys: str | int) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return mutate


def _append(*keys: str | int, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target = data
        for key in keys:
            target = target[key]
        target.append(value)

    return mutate


def _append_history(reference: str, *moves: str, note: str = "") -> Mutation:
    """Append (status, date) pairs to the provision's history and make the last its status."""

    def mutate(data: dict[str, Any]) -> None:
        provision = provision_in(data, reference)
        for status, at in zip(moves[::2], moves[1::2], strict=True):
            provision["history"].append({"status": status, "at": at, **({"note": note} if note else {})})
        provision["status"] = moves[-2]

    return mutate


def _update(*keys: str | int, **values: Any) -> Mutation:
    """Set several keys of one mapping (`from_` for `from`, a Python keyword)."""

    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for key in keys:
            target = target[key]
        target.update({key.rstrip("_"): value for key, value in values.items()})

    return mutate


def _all(*mutations: Mutation) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(data)

    return mutate


def _last_history(reference: str) -> tuple[int, str]:
    """The index and status of the shipped provision's last history entry."""
    history = provision_in(SHIPPED, reference)["history"]
    return len(history) - 1, history[-1]["status"]


SD_04_FROM = provision_in(SHIPPED, "SP-SD-04")["history"][0]["at"]  # the day SP-SD-04 exists from
LE_04_LAST, LE_04_STATUS = _last_history("SP-LE-04")
LE_05_LAST, LE_05_STATUS = _last_history("SP-LE-05")

SCHEMA_VIOLATIONS = {
    "missing required key": (
        _delete("provisions", 1, "title"),
        "provisions[1]",
        "'title' is a required property",
    ),
    "unknown status": (
        _set("provisions", 0, "status", value="done"),
        "provisions[0].status",
        "'done' is not one of",
    ),
    "unknown history status": (
        _set("provisions", LE_04, "history", 0, "status", value="tabled"),
        f"provisions[{LE_04}].history[0].status",
        "'tabled' is not one of",
    ),
    "unknown criticality": (
        _set("capabilities", 0, "criticality", value="severe"),
        "capabilities[0].criticality",
        "'severe' is not one of",
    ),
    "unknown stance": (
        _set("provisions", 0, "positions", 0, "stance", value="likes"),
        "provisions[0].positions[0].stance",
        "'likes' is not one of",
    ),
    "unknown extent": (
        _set("provisions", 0, "covers", 0, "extent", value="most"),
        "provisions[0].covers[0].extent",
        "'most' is not one of",
    ),
    "bad lapse date": (
        _set("capabilities", 0, "lapses_on", value="31/12/2020"),
        "capabilities[0].lapses_on",
        "is not a 'date'",
    ),
    "impossible history date": (
        _set("provisions", LE_04, "history", 0, "at", value="2020-02-30"),
        f"provisions[{LE_04}].history[0].at",
        "is not a 'date'",
    ),
    "bad milestone date": (
        _set("partnership", "milestones", 0, "date", value="2019-10-17T10:00"),
        "partnership.milestones[0].date",
        "is not a 'date'",
    ),
    "bad code pattern": (
        _set("partnership", "milestones", 0, "code", value="political declaration"),
        "partnership.milestones[0].code",
        "does not match",
    ),
    "additional property": (
        _set("provisions", 0, "owner", value="Home Office"),
        "provisions[0]",
        "Additional properties are not allowed ('owner' was unexpected)",
    ),
    "wrong type": (
        _set("provisions", 0, "covers", value="PRUM"),
        "provisions[0].covers",
        "is not of type 'array'",
    ),
    # The dated parts (rules v2).
    "bad date of a capability's change": (
        _set("capabilities", DATA_FLOWS, "changes", 0, "at", value="2020-12-32"),
        f"capabilities[{DATA_FLOWS}].changes[0].at",
        "is not a 'date'",
    ),
    "a change of a value that is not dated": (
        _set("capabilities", DATA_FLOWS, "changes", 0, "name", value="Data transfers"),
        f"capabilities[{DATA_FLOWS}].changes[0]",
        "Additional properties are not allowed ('name' was unexpected)",
    ),
    "bad date of a provision's change": (
        _set("provisions", LE_01, "changes", 0, "expires_on", value="next year"),
        f"provisions[{LE_01}].changes[0].expires_on",
        "is not a 'date'",
    ),
    "a discussion without a note": (
        _delete("provisions", LE_01, "discussions", 0, "note"),
        f"provisions[{LE_01}].discussions[0]",
        "'note' is a required property",
    ),
    "bad day of a position": (
        _set("provisions", LE_01, "positions", 0, "at", value="2019-10-32"),
        f"provisions[{LE_01}].positions[0].at",
        "is not a 'date'",
    ),
    "bad first day of a link": (
        _set("provisions", LE_03, "covers", 0, "from", value="soon"),
        f"provisions[{LE_03}].covers[0].from",
        "is not a 'date'",
    ),
    "an aim without a title": (
        _delete("aims", 0, "title"),
        "aims[0]",
        "'title' is a required property",
    ),
}


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"), SCHEMA_VIOLATIONS.values(), ids=SCHEMA_VIOLATIONS.keys()
)
def test_a_schema_violation_is_listed_with_its_path_and_nothing_is_written(
    shipped_partnership_file: str, tmp_path: Path, mutate: Mutation, path: str, fragment: str
) -> None:
    data = shipped_data(shipped_partnership_file)
    mutate(data)
    file = write_yaml(tmp_path, data)

    message, stderr = run_failing_import(file)

    assert len(stderr) == 1, stderr
    assert stderr[0].startswith(f"{path}: ")
    assert fragment in stderr[0]
    assert "1 problem(s), nothing was imported" in message
    assert not any(row_counts().values())


def test_a_malformed_history_entry_of_a_provision_with_dated_parts_is_one_problem(
    shipped_partnership_file: str,
) -> None:
    data = shipped_data(shipped_partnership_file)
    provision = provision_in(data, "SP-LE-01")
    assert provision["changes"] and provision["discussions"]
    provision["history"][0]["at"] = "2019-10-32"

    problems = check_partnership_file(data)

    assert [problem.path for problem in problems] == [f"provisions[{LE_01}].history[0].at"], problems


def test_a_file_without_domains_is_refused_at_the_top_level(tmp_path: Path) -> None:
    data = minimal_file([])
    del data["domains"]

    message, stderr = run_failing_import(write_yaml(tmp_path, data))

    assert stderr == ["(file): 'domains' is a required property"]
    assert message.endswith("1 problem(s), nothing was imported")
    assert not any(row_counts().values())


REFERENCE_PROBLEMS = {
    "capability's domain": (
        _set("capabilities", 2, "domain", value="policing"),
        "capabilities[2].domain: unknown domain 'policing'",
    ),
    "provision's domain": (
        _set("provisions", 0, "domain", value="policing"),
        "provisions[0].domain: unknown domain 'policing'",
    ),
    "covered capability": (
        _set("provisions", LE_04, "covers", 0, "capability", value="SIS-3"),
        f"provisions[{LE_04}].covers[0].capability: unknown capability 'SIS-3'",
    ),
    "party of a position": (
        _set("provisions", LE_01, "positions", 1, "party", value="FR"),
        f"provisions[{LE_01}].positions[1].party: unknown party 'FR'",
    ),
    "precedent": (
        _set("provisions", LE_02, "precedents", 1, value="EU-CA-PNR"),
        f"provisions[{LE_02}].precedents[1]: unknown precedent 'EU-CA-PNR'",
    ),
    "territory": (
        _set("provisions", LE_01, "territories", 0, value="ATLANTIS"),
        f"provisions[{LE_01}].territories[0]: unknown territory 'ATLANTIS'",
    ),
    "duplicate domain": (
        _append("domains", value={"code": "law-enforcement", "name": "Policing"}),
        f"domains[{len(SHIPPED['domains'])}].code: duplicate code 'law-enforcement' (also domains[0])",
    ),
    "duplicate capability": (
        _append(
            "capabilities",
            value={"code": "SIS-II", "name": "SIS", "domain": "enablers", "criticality": "low"},
        ),
        f"capabilities[{len(SHIPPED['capabilities'])}].code: duplicate code 'SIS-II' "
        f"(also capabilities[{capability_index_of(SHIPPED, 'SIS-II')}])",
    ),
    "duplicate provision reference": (
        _append(
            "provisions",
            value={"reference": "SP-LE-01", "title": "Again", "domain": "enablers", "status": "in_force"},
        ),
        f"provisions[{len(SHIPPED['provisions'])}].reference: duplicate reference 'SP-LE-01' "
        f"(also provisions[{LE_01}])",
    ),
    "capability covered twice": (
        _append("provisions", LE_03, "covers", value={"capability": "EUROPOL", "extent": "full"}),
        f"provisions[{LE_03}].covers[{len(SHIPPED['provisions'][LE_03]['covers'])}].capability: "
        "capability 'EUROPOL' listed twice for the same days",
    ),
    "history ends elsewhere": (
        _set("provisions", LE_04, "status", value="agreed"),
        f"provisions[{LE_04}].history[{LE_04_LAST}].status: the last history entry is {LE_04_STATUS!r} "
        "but the provision's status is 'agreed'",
    ),
    "leaving in_force": (
        _append_history("SP-CJ-02", "agreed", "2021-02-01", note="Reopened"),
        f"provisions[{CJ_02}].history[{next_history_index('SP-CJ-02')}].status: in_force → agreed refused: "
        "a provision in force can only be suspended, not moved to agreed",
    ),
    "moving back without a note": (
        _append_history("SP-SD-04", "under_negotiation", "2023-01-10"),
        f"provisions[{SD_04}].history[1].status: agreed → under_negotiation refused: "
        "moving back from agreed to under negotiation needs a reason",
    ),
    "withdrawing without a note": (
        _append_history("SP-SD-04", "withdrawn", "2023-01-10"),
        f"provisions[{SD_04}].history[1].status: agreed → withdrawn refused: "
        "moving to withdrawn needs a reason",
    ),
    "a no-op move": (
        _append_history("SP-SD-04", "agreed", "2023-01-10", note="Again"),
        f"provisions[{SD_04}].history[1].status: agreed → agreed refused: the provision is already agreed",
    ),
    "dates out of order": (
        _append_history("SP-SD-04", "signed", "2023-02-01", "in_force", "2023-01-01"),
        f"provisions[{SD_04}].history[2].at: 2023-01-01 is before the previous entry (2023-02-01)",
    ),
}

# The dated parts (DESIGN.md, rules v2): a value's changes, a link's days, discussions and aims.
DATA_FLOWS_CHANGED = SHIPPED["capabilities"][DATA_FLOWS]["changes"][-1]["at"]
LE_01_CHANGES = SHIPPED["provisions"][LE_01]["changes"]
DATED_PROBLEMS = {
    "a provision's change before it existed": (
        _set("provisions", SD_04, "changes", value=[{"at": "2022-11-01", "title": "PESCO participation"}]),
        f"provisions[{SD_04}].changes[0].at: 2022-11-01 is before the provision existed (from {SD_04_FROM})",
    ),
    "a discussion before the provision existed": (
        _set("provisions", SD_04, "discussions", value=[{"at": "2022-06-01", "note": "Exploratory talks"}]),
        f"provisions[{SD_04}].discussions[0].at: 2022-06-01 is before the provision existed "
        f"(from {SD_04_FROM})",
    ),
    "a provision's changes out of date order": (
        _append("provisions", LE_01, "changes", value={"at": "2022-01-01", "expires_on": "2022-12-31"}),
        f"provisions[{LE_01}].changes[{len(LE_01_CHANGES)}].at: 2022-01-01 is before the previous change "
        f"({LE_01_CHANGES[-1]['at']})",
    ),
    "a capability's changes out of date order": (
        _append("capabilities", DATA_FLOWS, "changes", value={"at": "2020-06-01", "lapses_on": "2020-09-30"}),
        f"capabilities[{DATA_FLOWS}].changes[1].at: 2020-06-01 is before the previous change "
        f"({DATA_FLOWS_CHANGED})",
    ),
    "a link ending on the day it starts": (
        _update("provisions", LE_03, "covers", 1, from_="2021-01-01", until="2021-01-01"),
        f"provisions[{LE_03}].covers[1].until: 2021-01-01 is not after its from (2021-01-01)",
    ),
    "a link ending before it starts": (
        _update("provisions", LE_03, "covers", 1, from_="2022-01-01", until="2021-01-01"),
        f"provisions[{LE_03}].covers[1].until: 2021-01-01 is not after its from (2022-01-01)",
    ),
    "a capability covered twice on overlapping days": (
        _all(
            _update("provisions", LE_03, "covers", 0, until="2022-06-01"),
            _append(
                "provisions",
                LE_03,
                "covers",
                value={"capability": "EUROPOL", "extent": "full", "from": "2022-01-01"},
            ),
        ),
        f"provisions[{LE_03}].covers[{len(SHIPPED['provisions'][LE_03]['covers'])}].capability: "
        "capability 'EUROPOL' listed twice for the same days",
    ),
    "an aim's unknown capability": (
        _set("aims", 0, "capabilities", 1, value="SIS-3"),
        "aims[0].capabilities[1]: unknown capability 'SIS-3'",
    ),
    "a capability listed twice in one aim": (
        _append("aims", 0, "capabilities", value=SHIPPED["aims"][0]["capabilities"][0]),
        f"aims[0].capabilities[{len(SHIPPED['aims'][0]['capabilities'])}]: "
        f"capability {SHIPPED['aims'][0]['capabilities'][0]!r} listed twice",
    ),
    "duplicate aim": (
        _append("aims", value={"code": SHIPPED["aims"][0]["code"], "title": "Again", "capabilities": []}),
        f"aims[{len(SHIPPED['aims'])}].code: duplicate code {SHIPPED['aims'][0]['code']!r} (also aims[0])",
    ),
}
FILE_PROBLEMS = {**REFERENCE_PROBLEMS, **DATED_PROBLEMS}


@pytest.mark.parametrize(("mutate", "line"), FILE_PROBLEMS.values(), ids=FILE_PROBLEMS.keys())
def test_a_bad_reference_duplicate_history_or_dated_part_is_listed_with_its_path_and_nothing_is_written(
    shipped_partnership_file: str, tmp_path: Path, mutate: Mutation, line: str
) -> None:
    data = shipped_data(shipped_partnership_file)
    mutate(data)
    file = write_yaml(tmp_path, data)

    message, stderr = run_failing_import(file)

    assert stderr == [line]
    assert message == f"{file}: 1 problem(s), nothing was imported"
    assert not any(row_counts().values())


@pytest.mark.parametrize(("mutate", "line"), FILE_PROBLEMS.values(), ids=FILE_PROBLEMS.keys())
def test_a_bad_file_changes_nothing_in_a_database_holding_the_partnership(
    imported: str, tmp_path: Path, mutate: Mutation, line: str
) -> None:
    data = shipped_data(imported)
    data["provisions"][0]["title"] = "A change that must not be written"
    mutate(data)
    file = write_yaml(tmp_path, data)
    counts, rows = row_counts(), snapshot()

    _, stderr = run_failing_import(file)

    assert stderr == [line]
    assert row_counts() == counts
    assert snapshot() == rows


def test_the_service_lists_problems_as_path_and_message(shipped_partnership_file: str) -> None:
    data = shipped_data(shipped_partnership_file)
    provision_in(data, "SP-LE-04")["covers"][0]["capability"] = "SIS-3"
    path = f"provisions[{index_of(data, 'SP-LE-04')}].covers[0].capability"

    with pytest.raises(PartnershipFileInvalid) as invalid:
        partnership_import(data=data)

    assert [(problem.path, problem.message) for problem in invalid.value.problems] == [
        (path, "unknown capability 'SIS-3'")
    ]
    assert str(invalid.value.problems[0]) == f"{path}: unknown capability 'SIS-3'"


MISTAKES = [
    (
        _append("domains", value={"code": "health-security", "name": "Health"}),
        f"domains[{len(SHIPPED['domains'])}].code: duplicate code 'health-security' "
        f"(also domains[{[domain['code'] for domain in SHIPPED['domains']].index('health-security')}])",
    ),
    (_set("capabilities", 0, "criticality", value="severe"), "capabilities[0].criticality: "),
    (_set("capabilities", 1, "lapses_on", value="2020-31-12"), "capabilities[1].lapses_on: "),
    (
        _set("capabilities", 2, "domain", value="policing"),
        "capabilities[2].domain: unknown domain 'policing'",
    ),
    (
        _set("provisions", LE_04, "covers", 0, "capability", value="SIS-3"),
        f"provisions[{LE_04}].covers[0].capability: unknown capability 'SIS-3'",
    ),
    (
        _set("provisions", LE_01, "positions", 1, "party", value="FR"),
        f"provisions[{LE_01}].positions[1].party: unknown party 'FR'",
    ),
    (
        _set("provisions", LE_02, "precedents", 0, value="EU-CA-PNR"),
        f"provisions[{LE_02}].precedents[0]: unknown precedent 'EU-CA-PNR'",
    ),
    (
        _set("provisions", LE_03, "territories", 0, value="ATLANTIS"),
        f"provisions[{LE_03}].territories[0]: unknown territory 'ATLANTIS'",
    ),
    (
        _set("provisions", LE_05, "status", value="signed"),
        f"provisions[{LE_05}].history[{LE_05_LAST}].status: the last history entry is {LE_05_STATUS!r} "
        "but the provision's status is 'signed'",
    ),
    (
        _append_history("SP-CJ-02", "agreed", "2021-02-01", note="Reopened"),
        f"provisions[{CJ_02}].history[{next_history_index('SP-CJ-02')}].status: in_force → agreed refused: ",
    ),
    # The dated parts are checked in the same pass.
    (
        _set("provisions", SD_04, "discussions", value=[{"at": "2022-06-01", "note": "Exploratory talks"}]),
        f"provisions[{SD_04}].discussions[0].at: 2022-06-01 is before the provision existed",
    ),
    (
        _update("provisions", LE_03, "covers", 1, from_="2022-01-01", until="2021-01-01"),
        f"provisions[{LE_03}].covers[1].until: 2021-01-01 is not after its from (2022-01-01)",
    ),
    (
        _append("capabilities", DATA_FLOWS, "changes", value={"at": "2020-06-01", "lapses_on": "2020-09-30"}),
        f"capabilities[{DATA_FLOWS}].changes[1].at: 2020-06-01 is before the previous change",
    ),
    (
        _set("aims", 0, "capabilities", 1, value="SIS-3"),
        "aims[0].capabilities[1]: unknown capability 'SIS-3'",
    ),
]


@pytest.mark.parametrize(
    "preloaded", [False, True], ids=["empty database", "database holding the partnership"]
)
def test_a_file_with_many_mistakes_gets_every_one_listed_and_nothing_written(
    shipped_partnership_file: str, tmp_path: Path, preloaded: bool
) -> None:
    if preloaded:
        run_import(shipped_partnership_file)
    data = shipped_data(shipped_partnership_file)
    for mutate, _ in MISTAKES:
        mutate(data)
    file = write_yaml(tmp_path, data)
    counts, rows = row_counts(), snapshot()

    message, stderr = run_failing_import(file)

    assert message == f"{file}: {len(MISTAKES)} problem(s), nothing was imported"
    assert len(stderr) == len(MISTAKES), stderr
    for _, expected in MISTAKES:
        assert len([line for line in stderr if line.startswith(expected)]) == 1, (expected, stderr)
    assert row_counts() == counts
    assert snapshot() == rows


# --- recorded history is never deleted --------------------------------------------------------------------


def test_reimport_keeps_a_move_recorded_since_and_ends_at_the_files_status(imported: str) -> None:
    # SP-SD-04 is agreed in the file; it is signed in the app since.
    provision = Provision.objects.get(reference="SP-SD-04")
    provision_transition(by=Reader.system(), provision=provision, to="signed", note="Signed at the summit")
    recorded = list(StatusChange.objects.order_by("id").values())

    stdout, _ = run_import(imported)

    assert (
        list(StatusChange.objects.filter(id__in=[row["id"] for row in recorded]).order_by("id").values())
        == recorded
    )
    provision.refresh_from_db()
    assert provision.status == "agreed"
    assert history_of("SP-SD-04")[-2:] == [
        ("agreed", "signed", timezone.localdate(), "Signed at the summit"),
        ("signed", "agreed", timezone.localdate(), IMPORT_NOTE),
    ]
    assert_history_obeys_lifecycle("SP-SD-04")
    assert report_lines(stdout)[-1] == "status changes: 1 added"
    assert StatusChange.objects.count() == len(recorded) + 1


def test_reimport_refuses_a_status_the_lifecycle_cannot_reach_and_writes_nothing(imported: str) -> None:
    provision = Provision.objects.get(reference="SP-SD-04")
    provision_transition(by=Reader.system(), provision=provision, to="in_force")
    counts, rows = row_counts(), snapshot()

    message, stderr = run_failing_import(imported)

    assert stderr == [
        f"provisions[{index_of(shipped_data(imported), 'SP-SD-04')}].status: in_force → agreed refused: "
        "a provision in force can only be suspended, not moved to agreed"
    ]
    assert "1 problem(s), nothing was imported" in message
    assert row_counts() == counts
    assert snapshot() == rows
    assert Provision.objects.get(reference="SP-SD-04").status == "in_force"


def test_a_file_entry_dated_before_a_recorded_move_is_refused_as_a_rewrite(
    imported: str, tmp_path: Path
) -> None:
    provision_transition(
        by=Reader.system(),
        provision=Provision.objects.get(reference="SP-SD-04"),
        to="signed",
        on=datetime.date(2023, 3, 1),
    )
    data = shipped_data(imported)
    provision_in(data, "SP-SD-04")["history"].append({"status": "in_force", "at": "2023-02-01"})
    provision_in(data, "SP-SD-04")["status"] = "in_force"
    rows = snapshot()

    _, stderr = run_failing_import(write_yaml(tmp_path, data))

    assert stderr == [
        f"provisions[{index_of(data, 'SP-SD-04')}].history[1].at: 2023-02-01 is before the latest recorded "
        "change (2023-03-01) and recorded history is never rewritten"
    ]
    assert snapshot() == rows


def test_reimport_adds_new_history_entries_after_the_recorded_ones(imported: str, tmp_path: Path) -> None:
    data = shipped_data(imported)
    shipped_history = list(provision_in(data, "SP-SD-04")["history"])
    provision_in(data, "SP-SD-04")["history"] += [
        {"status": "under_negotiation", "at": "2023-01-10", "note": "Reopened"},
        {"status": "agreed", "at": "2023-03-01"},
    ]
    earlier = list(StatusChange.objects.order_by("id").values())

    stdout, _ = run_import(write_yaml(tmp_path, data))

    assert (
        list(StatusChange.objects.filter(id__in=[row["id"] for row in earlier]).order_by("id").values())
        == earlier
    )
    assert [(to, on, note) for _, to, on, note in history_of("SP-SD-04")] == [
        *[(entry["status"], day(entry["at"]), entry.get("note", "")) for entry in shipped_history],
        ("under_negotiation", datetime.date(2023, 1, 10), "Reopened"),
        ("agreed", datetime.date(2023, 3, 1), ""),
    ]
    assert report_lines(stdout)[-1] == "status changes: 2 added"
    assert_history_obeys_lifecycle("SP-SD-04")


def test_reimport_of_a_file_without_history_moves_the_provision_to_the_files_status(
    imported: str, tmp_path: Path
) -> None:
    data = shipped_data(imported)
    del provision_in(data, "SP-SD-04")["history"]
    provision_in(data, "SP-SD-04")["status"] = "signed"
    earlier = history_of("SP-SD-04")

    run_import(write_yaml(tmp_path, data))

    assert history_of("SP-SD-04") == [
        *earlier,
        ("agreed", "signed", timezone.localdate(), IMPORT_NOTE),
    ]
    assert Provision.objects.get(reference="SP-SD-04").status == "signed"


def test_reimport_of_a_file_without_markings_never_lowers_one(imported: str, tmp_path: Path) -> None:
    data = shipped_data(imported)
    provision_in(data, "SP-LE-04")["marking"] = "official_sensitive"
    run_import(write_yaml(tmp_path, data, "marked.yaml"))
    assert Provision.objects.get(reference="SP-LE-04").marking == "official_sensitive"
    for provision in data["provisions"]:
        provision.pop("marking", None)
    provision_in(data, "SP-LE-05")["marking"] = "secret"  # a marking the file does give is applied

    run_import(write_yaml(tmp_path, data, "unmarked.yaml"))

    assert Provision.objects.get(reference="SP-LE-04").marking == "official_sensitive"
    assert Provision.objects.get(reference="SP-LE-05").marking == "secret"
    assert set(
        Provision.objects.exclude(reference__in=["SP-LE-04", "SP-LE-05"]).values_list("marking", flat=True)
    ) == {"official"}


# --- dates of history entries -----------------------------------------------------------------------------


def test_a_provision_imported_without_history_gets_one_status_change_dated_the_day_of_the_import(
    tmp_path: Path,
) -> None:
    path = write_yaml(
        tmp_path,
        minimal_file(
            [
                {"reference": "SP-NEW-01", "title": "New", "domain": "law-enforcement", "status": "scoping"},
            ]
        ),
    )

    stdout, _ = run_import(path)

    changes = list(
        StatusChange.objects.filter(provision__reference="SP-NEW-01").values(
            "from_status",
            "to_status",
            "changed_on",
            "source",
        )
    )
    assert changes == [
        {"from_status": "", "to_status": "scoping", "changed_on": timezone.localdate(), "source": "import"}
    ]
    assert Provision.objects.get(reference="SP-NEW-01").status == "scoping"
    assert report_lines(stdout)[-1] == "status changes: 1 added"


def test_reimporting_a_provision_without_history_adds_no_second_status_change(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        minimal_file(
            [
                {"reference": "SP-NEW-01", "title": "New", "domain": "law-enforcement", "status": "scoping"},
            ]
        ),
    )
    run_import(path)
    rows = snapshot()

    stdout, _ = run_import(path)

    assert snapshot() == rows
    assert report_lines(stdout)[-1] == "status changes: 0 added"


def test_several_history_entries_on_one_day_keep_their_order_and_the_last_is_the_status_that_day(
    tmp_path: Path,
) -> None:
    day, later = datetime.date(2020, 12, 24), datetime.date(2020, 12, 30)
    history = [
        {"status": "proposed", "at": "2020-12-24"},
        {"status": "under_negotiation", "at": "2020-12-24"},
        {"status": "agreed_in_principle", "at": "2020-12-24"},
        {"status": "agreed", "at": "2020-12-24", "note": "Concluded"},
        {"status": "signed", "at": "2020-12-30"},
    ]
    path = write_yaml(
        tmp_path,
        minimal_file(
            [
                {
                    "reference": "SP-DAY-01",
                    "title": "One day",
                    "domain": "law-enforcement",
                    "status": "signed",
                    "history": history,
                },
            ]
        ),
    )

    run_import(path)

    assert [(to, on, note) for _, to, on, note in history_of("SP-DAY-01")] == [
        ("proposed", day, ""),
        ("under_negotiation", day, ""),
        ("agreed_in_principle", day, ""),
        ("agreed", day, "Concluded"),
        ("signed", later, ""),
    ]
    at_end_of_day = StatusChange.objects.latest_per_provision(on_or_before=day).get(
        provision__reference="SP-DAY-01"
    )
    assert at_end_of_day.to_status == "agreed"
    assert_history_obeys_lifecycle("SP-DAY-01")
    rows = snapshot()
    run_import(path)
    assert snapshot() == rows


def test_the_shipped_same_day_moves_leave_the_later_status_at_the_end_of_that_day(imported: str) -> None:
    # SP-EN-03: ..., proposed 2021-02-19, agreed 2021-06-28, in_force 2021-06-28.
    day = datetime.date(2021, 6, 28)

    latest = StatusChange.objects.latest_per_provision(on_or_before=day).get(provision__reference="SP-EN-03")

    assert latest.to_status == "in_force"
    assert latest.from_status == "agreed"


def test_a_history_that_returns_to_its_first_status_on_the_same_day_is_recorded_as_written(
    tmp_path: Path,
) -> None:
    day = datetime.date(2020, 5, 1)
    path = write_yaml(
        tmp_path,
        minimal_file(
            [
                {
                    "reference": "SP-DAY-02",
                    "title": "Back and forth",
                    "domain": "law-enforcement",
                    "status": "under_negotiation",
                    "history": [
                        {"status": "under_negotiation", "at": "2020-05-01"},
                        {"status": "agreed_in_principle", "at": "2020-05-01"},
                        {
                            "status": "under_negotiation",
                            "at": "2020-05-01",
                            "note": "Reopened the same afternoon",
                        },
                    ],
                },
            ]
        ),
    )

    run_import(path)

    assert [(to, on, note) for _, to, on, note in history_of("SP-DAY-02")] == [
        ("under_negotiation", day, ""),
        ("agreed_in_principle", day, ""),
        ("under_negotiation", day, "Reopened the same afternoon"),
    ]
    run_import(path)  # and the same file imports again, changing nothing


def test_a_file_entry_inserted_before_a_recorded_change_of_the_same_day_is_refused(tmp_path: Path) -> None:
    provision = {
        "reference": "SP-DAY-03",
        "title": "Inserted",
        "domain": "law-enforcement",
        "status": "scoping",
        "history": [{"status": "identified", "at": "2020-05-01"}, {"status": "scoping", "at": "2020-05-02"}],
    }
    run_import(write_yaml(tmp_path, minimal_file([provision]), "first.yaml"))
    provision["history"] = [
        {"status": "identified", "at": "2020-05-01"},
        {"status": "proposed", "at": "2020-05-02"},
        {"status": "scoping", "at": "2020-05-02", "note": "Back to scoping"},
    ]
    rows = snapshot()

    _, stderr = run_failing_import(write_yaml(tmp_path, minimal_file([provision]), "second.yaml"))

    assert [line.split(":")[0] for line in stderr] == ["provisions[0].history[1].at"]
    assert snapshot() == rows


def test_a_status_the_import_cannot_date_after_the_recorded_history_is_a_listed_problem(
    tmp_path: Path,
) -> None:
    provision = {
        "reference": "SP-FUT-01",
        "title": "Planned",
        "domain": "law-enforcement",
        "status": "in_force",
        "history": [{"status": "signed", "at": "2020-12-30"}, {"status": "in_force", "at": "2099-01-01"}],
    }
    run_import(write_yaml(tmp_path, minimal_file([provision]), "first.yaml"))
    del provision["history"]
    provision["status"] = "suspended"
    rows = snapshot()

    _, stderr = run_failing_import(write_yaml(tmp_path, minimal_file([provision]), "second.yaml"))

    assert [line.split(":")[0] for line in stderr] == ["provisions[0].status"]
    assert snapshot() == rows


# --- changes in the file are applied on re-import ---------------------------------------------------------


def _change_title(data: dict[str, Any]) -> None:
    provision_in(data, "SP-LE-04")["title"] = "Real-time alerts on persons and objects"


def _change_lapse_date(data: dict[str, Any]) -> None:
    next(c for c in data["capabilities"] if c["code"] == "SIS-II")["lapses_on"] = "2021-06-30"


def _change_stance(data: dict[str, Any]) -> None:
    """The EU's latest position on SP-LE-04 (it opposed it from 2020-03-18) becomes conditional."""
    eu = [p for p in provision_in(data, "SP-LE-04")["positions"] if p["party"] == "EU"]
    assert [(p["stance"], p["at"]) for p in eu] == [("reserved", "2019-10-17"), ("opposes", "2020-03-18")]
    eu[-1]["stance"] = "conditional"


def _add_position(data: dict[str, Any]) -> None:
    provision_in(data, "SP-LE-04")["positions"].append(
        {"party": "EU", "stance": "reserved", "firmness": "provisional", "at": "2020-10-02"}
    )


def _change_extent(data: dict[str, Any]) -> None:
    next(c for c in provision_in(data, "SP-LE-03")["covers"] if c["capability"] == "EC3")["extent"] = "full"


def _remove_coverage(data: dict[str, Any]) -> None:
    covers = provision_in(data, "SP-LE-03")["covers"]
    covers[:] = [link for link in covers if link["capability"] != "CT-COOP"]


def _end_coverage(data: dict[str, Any]) -> None:
    next(c for c in provision_in(data, "SP-LE-03")["covers"] if c["capability"] == "SIENA")["until"] = (
        "2024-01-01"
    )


def _change_dated_lapse_date(data: dict[str, Any]) -> None:
    capability_in(data, "DATA-FLOWS")["changes"][0]["lapses_on"] = "2021-09-30"


def _change_dated_expiry(data: dict[str, Any]) -> None:
    provision_in(data, "SP-EN-02")["changes"][0]["expires_on"] = "2021-06-30"


def _add_discussion(data: dict[str, Any]) -> None:
    provision_in(data, "SP-LE-04")["discussions"] = [{"at": "2020-10-02", "note": "Round 9: no movement"}]


def _title_of_sp_le_04() -> Any:
    return Provision.objects.get(reference="SP-LE-04").title


def _sis_lapse_date() -> Any:
    return Capability.objects.get(code="SIS-II").lapses_on


def _eu_positions_on_sp_le_04() -> Any:
    return list(
        Position.objects.filter(provision__reference="SP-LE-04", party__code="EU")
        .order_by("id")
        .values_list("stance", "taken_on")
    )


def _ec3_extent() -> Any:
    return Coverage.objects.get(provision__reference="SP-LE-03", capability__code="EC3").extent


def _sp_le_03_covers() -> Any:
    return sorted(
        Coverage.objects.filter(provision__reference="SP-LE-03").values_list("capability__code", flat=True)
    )


def _siena_link_on_sp_le_03() -> Any:
    return Coverage.objects.filter(provision__reference="SP-LE-03", capability__code="SIENA").values_list(
        "extent", "valid_from", "valid_until"
    )[::1]


def _data_flows_lapse_dates() -> Any:
    """Today's value (the column), then the base and the change (the rows)."""
    capability = Capability.objects.get(code="DATA-FLOWS")
    return capability.lapses_on, [(change.at, change.lapses_on) for change in capability.changes.all()]


def _sp_en_02_expiry_dates() -> Any:
    provision = Provision.objects.get(reference="SP-EN-02")
    return provision.expires_on, [(change.at, change.expires_on) for change in provision.changes.all()]


def _sp_le_04_discussions() -> Any:
    return list(Discussion.objects.filter(provision__reference="SP-LE-04").values_list("on", "note"))


CHANGES = {
    "provision title": (
        _change_title,
        "provisions",
        "SP-LE-04",
        _title_of_sp_le_04,
        "Real-time alerts on persons and objects",
    ),
    "capability lapse date": (
        _change_lapse_date,
        "capabilities",
        None,
        _sis_lapse_date,
        datetime.date(2021, 6, 30),
    ),
    "a party's stance": (
        _change_stance,
        "provisions",
        "SP-LE-04",
        _eu_positions_on_sp_le_04,
        [("reserved", datetime.date(2019, 10, 17)), ("conditional", datetime.date(2020, 3, 18))],
    ),
    "a party's new dated position": (
        _add_position,
        "provisions",
        "SP-LE-04",
        _eu_positions_on_sp_le_04,
        [
            ("reserved", datetime.date(2019, 10, 17)),
            ("opposes", datetime.date(2020, 3, 18)),
            ("reserved", datetime.date(2020, 10, 2)),
        ],
    ),
    "coverage extent": (_change_extent, "provisions", "SP-LE-03", _ec3_extent, "full"),
    "removed coverage link": (
        _remove_coverage,
        "provisions",
        "SP-LE-03",
        _sp_le_03_covers,
        ["EC3", "EUROPOL", "SIENA"],
    ),
    "the last day of a coverage link": (
        _end_coverage,
        "provisions",
        "SP-LE-03",
        _siena_link_on_sp_le_03,
        [("full", None, datetime.date(2024, 1, 1))],
    ),
    "a capability's dated change": (
        _change_dated_lapse_date,
        "capabilities",
        None,
        _data_flows_lapse_dates,
        (
            datetime.date(2021, 9, 30),
            [(None, datetime.date(2020, 12, 31)), (datetime.date(2020, 12, 24), datetime.date(2021, 9, 30))],
        ),
    ),
    "a provision's dated change": (
        _change_dated_expiry,
        "provisions",
        "SP-EN-02",
        _sp_en_02_expiry_dates,
        (
            datetime.date(2021, 6, 30),
            [(None, datetime.date(2021, 7, 1)), (datetime.date(2021, 6, 28), datetime.date(2021, 6, 30))],
        ),
    ),
    "a discussion": (
        _add_discussion,
        "provisions",
        "SP-LE-04",
        _sp_le_04_discussions,
        [(datetime.date(2020, 10, 2), "Round 9: no movement")],
    ),
}


@pytest.mark.parametrize(
    ("change", "kind", "reference", "read", "expected"), CHANGES.values(), ids=CHANGES.keys()
)
def test_a_changed_file_is_applied_on_reimport_and_reported_as_updated(
    imported: str,
    tmp_path: Path,
    change: Mutation,
    kind: str,
    reference: str | None,
    read: Callable[[], Any],
    expected: Any,
) -> None:
    data = shipped_data(imported)
    change(data)
    versions = dict(Provision.objects.values_list("reference", "version"))
    history = list(StatusChange.objects.order_by("id").values())

    stdout, _ = run_import(write_yaml(tmp_path, data))

    assert read() == expected
    lines = report_lines(stdout)
    other = "capabilities" if kind == "provisions" else "provisions"
    assert f"{kind}: 0 created, 1 updated, {len(data[kind]) - 1} unchanged" in lines
    assert f"{other}: 0 created, 0 updated, {len(data[other])} unchanged" in lines
    assert lines[-1] == "status changes: 0 added"
    expected_versions = {ref: version + (ref == reference) for ref, version in versions.items()}
    assert dict(Provision.objects.values_list("reference", "version")) == expected_versions
    assert list(StatusChange.objects.order_by("id").values()) == history


def test_a_reapplied_change_is_unchanged_the_next_time(imported: str, tmp_path: Path) -> None:
    data = shipped_data(imported)
    _change_stance(data)
    _remove_coverage(data)
    _end_coverage(data)
    _change_dated_lapse_date(data)
    _change_dated_expiry(data)
    _add_discussion(data)
    path = write_yaml(tmp_path, data)
    run_import(path)
    rows = snapshot()

    stdout, _ = run_import(path)

    assert snapshot() == rows
    assert f"provisions: 0 created, 0 updated, {len(data['provisions'])} unchanged" in report_lines(stdout)
    assert f"capabilities: 0 created, 0 updated, {len(data['capabilities'])} unchanged" in report_lines(
        stdout
    )


# --- gap scans --------------------------------------------------------------------------------------------


def test_an_import_requests_exactly_one_gap_scan(shipped_partnership_file: str) -> None:
    partnership_import(data=read_partnership_file(shipped_partnership_file))

    request = ScanRequest.objects.get()
    assert sorted(request.provision_ids) == sorted(Provision.objects.values_list("pk", flat=True))
    assert sorted(request.capability_ids) == sorted(Capability.objects.values_list("pk", flat=True))


def test_an_import_runs_the_gap_scan_once_when_it_commits(
    shipped_partnership_file: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run_import(shipped_partnership_file)

    assert len(callbacks) == 1
    assert GapScan.objects.count() == 1
    assert ScanRequest.objects.count() == 0


def test_a_refused_import_requests_no_gap_scan(
    shipped_partnership_file: str, tmp_path: Path, django_capture_on_commit_callbacks
) -> None:
    data = shipped_data(shipped_partnership_file)
    provision_in(data, "SP-LE-04")["covers"][0]["capability"] = "SIS-3"

    with django_capture_on_commit_callbacks() as callbacks:
        run_failing_import(write_yaml(tmp_path, data))

    assert callbacks == []
    assert ScanRequest.objects.count() == 0


# --- the schema and the database agree ---------------------------------------------------------------------

TOO_LONG = {
    "party name": (_set("partnership", "parties", 0, "name", value="P" * 201), "partnership.parties[0].name"),
    "milestone title": (
        _set("partnership", "milestones", 0, "title", value="M" * 201),
        "partnership.milestones[0].title",
    ),
    "territory name": (_set("territories", 0, "name", value="T" * 201), "territories[0].name"),
    "precedent title": (_set("precedents", 0, "title", value="P" * 301), "precedents[0].title"),
    "precedent url": (
        _set("precedents", 0, "url", value="https://example.org/" + "u" * 500),
        "precedents[0].url",
    ),
    "pillar": (_set("domains", 0, "pillar", value="L" * 201), "domains[0].pillar"),
}


@pytest.mark.parametrize(("mutate", "path"), TOO_LONG.values(), ids=TOO_LONG.keys())
def test_a_value_longer_than_its_column_is_a_listed_problem(
    shipped_partnership_file: str, mutate: Mutation, path: str
) -> None:
    data = shipped_data(shipped_partnership_file)
    mutate(data)

    with pytest.raises(PartnershipFileInvalid) as invalid:
        partnership_import(data=data)

    assert [problem.path for problem in invalid.value.problems] == [path]


def test_the_schemas_length_limits_are_the_columns_lengths() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    properties = schema["properties"]

    def max_length(*keys: str) -> int:
        node = properties
        for key in keys:
            node = node[key]
        return node["maxLength"]

    assert max_length("partnership", "properties", "title") == Partnership._meta.get_field("title").max_length
    assert max_length("domains", "items", "properties", "name") == Domain._meta.get_field("name").max_length
    assert (
        max_length("capabilities", "items", "properties", "name")
        == Capability._meta.get_field("name").max_length
    )
    assert (
        max_length("provisions", "items", "properties", "title")
        == Provision._meta.get_field("title").max_length
    )
    code_pattern = schema["$defs"]["code"]["pattern"]
    assert code_pattern.endswith("{0,63}$")  # at most 64 characters: the code and reference columns' length
    assert (
        Provision._meta.get_field("reference").max_length
        == Capability._meta.get_field("code").max_length
        == 64
    )
