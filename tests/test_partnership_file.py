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
    Capability,
    Coverage,
    Domain,
    Gap,
    GapScan,
    Milestone,
    Partnership,
    Position,
    Precedent,
    Provision,
    ScanRequest,
    Status,
    StatusChange,
    Territory,
)
from provisions.permissions import Reader
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

SHIPPED_TOTALS = {"capabilities": 33, "provisions": 25}

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
    return next(item for item in data["provisions"] if item["reference"] == reference)


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
        lapses_on = datetime.date.fromisoformat(item["lapses_on"]) if item["lapses_on"] else None
        assert (capability.name, capability.domain.code, capability.criticality, capability.lapses_on) == (
            item["name"],
            item["domain"],
            item["criticality"],
            lapses_on,
        )
        assert (capability.fallback, capability.description) == (
            item.get("fallback", ""),
            item.get("description", ""),
        )
    assert Provision.objects.count() == len(data["provisions"])


def test_importing_the_shipped_file_gives_each_provision_what_the_file_says(
    shipped_partnership_file: str,
) -> None:
    data = shipped_data(shipped_partnership_file)

    run_import(shipped_partnership_file)

    for item in data["provisions"]:
        provision = Provision.objects.select_related("domain").get(reference=item["reference"])
        assert (
            provision.title,
            provision.text,
            provision.domain.code,
            provision.status,
            provision.marking,
        ) == (
            item["title"],
            item["text"],
            item["domain"],
            item["status"],
            item["marking"],
        )
        assert sorted(provision.coverage.values_list("capability__code", "extent")) == sorted(
            (link["capability"], link["extent"]) for link in item["covers"]
        )
        assert sorted(provision.positions.values_list("party__code", "stance", "firmness", "note")) == sorted(
            (p["party"], p["stance"], p["firmness"], p.get("note", "")) for p in item["positions"]
        )
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
    entries = sum(len(item["history"]) for item in data["provisions"])
    assert lines[-1] == f"status changes: {entries} added"
    assert StatusChange.objects.count() == entries


# --- idempotency and round trips ---------------------------------------------------------------------------


def test_importing_the_shipped_file_twice_changes_nothing_the_second_time(imported: str) -> None:
    before = snapshot()

    stdout, _ = run_import(imported)

    assert snapshot() == before
    lines = report_lines(stdout)
    assert lines[-1] == "status changes: 0 added"
    for line in lines[:-1]:
        assert ": 0 created, 0 updated, " in line, line
    assert "provisions: 0 created, 0 updated, 25 unchanged" in lines


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

    run_import(first)

    assert run_export(second) == first_text
    assert Provision.objects.count() == 25


# --- dry run ----------------------------------------------------------------------------------------------


def test_a_dry_run_reports_what_the_import_would_do_and_writes_nothing(shipped_partnership_file: str) -> None:
    before = row_counts()

    dry_stdout, _ = run_import(shipped_partnership_file, "--dry-run")

    assert row_counts() == before
    assert dry_stdout.splitlines()[0] == "Dry run, nothing written. Would import:"
    real_stdout, _ = run_import(shipped_partnership_file)
    assert report_lines(dry_stdout) == report_lines(real_stdout)
    assert Provision.objects.count() == 25


def test_a_dry_run_of_a_changed_file_reports_the_updates_and_writes_nothing(
    imported: str, tmp_path: Path
) -> None:
    data = shipped_data(imported)
    provision_in(data, "SP-LE-04")["title"] = "Real-time alerts"
    provision_in(data, "SP-LE-04")["status"] = "agreed_in_principle"
    provision_in(data, "SP-LE-04")["history"].append({"status": "agreed_in_principle", "at": "2020-09-01"})
    data["capabilities"][0]["criticality"] = "high"
    path = write_yaml(tmp_path, data)
    counts, rows = row_counts(), snapshot()

    dry_stdout, _ = run_import(path, "--dry-run")

    assert row_counts() == counts
    assert snapshot() == rows
    assert "provisions: 0 created, 1 updated, 24 unchanged" in report_lines(dry_stdout)
    assert "capabilities: 0 created, 1 updated, 32 unchanged" in report_lines(dry_stdout)
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


def _append_history(index: int, *moves: str, note: str = "") -> Mutation:
    """Append (status, date) pairs to provisions[index]'s history and make the last its status."""

    def mutate(data: dict[str, Any]) -> None:
        provision = data["provisions"][index]
        for status, at in zip(moves[::2], moves[1::2], strict=True):
            provision["history"].append({"status": status, "at": at, **({"note": note} if note else {})})
        provision["status"] = moves[-2]

    return mutate


# provisions[3] is SP-LE-04 (under_negotiation: proposed 2020-05-19, under_negotiation 2020-06-05);
# provisions[7] is SP-CJ-02 (in force since 2021-01-01); provisions[2] is SP-LE-03 (covers four capabilities).
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
        _set("provisions", 3, "history", 0, "status", value="tabled"),
        "provisions[3].history[0].status",
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
        _set("provisions", 3, "history", 0, "at", value="2020-02-30"),
        "provisions[3].history[0].at",
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
        _set("provisions", 3, "covers", 0, "capability", value="SIS-3"),
        "provisions[3].covers[0].capability: unknown capability 'SIS-3'",
    ),
    "party of a position": (
        _set("provisions", 0, "positions", 1, "party", value="FR"),
        "provisions[0].positions[1].party: unknown party 'FR'",
    ),
    "precedent": (
        _set("provisions", 1, "precedents", 1, value="EU-CA-PNR"),
        "provisions[1].precedents[1]: unknown precedent 'EU-CA-PNR'",
    ),
    "territory": (
        _set("provisions", 0, "territories", 0, value="ATLANTIS"),
        "provisions[0].territories[0]: unknown territory 'ATLANTIS'",
    ),
    "duplicate domain": (
        _append("domains", value={"code": "law-enforcement", "name": "Policing"}),
        "domains[11].code: duplicate code 'law-enforcement' (also domains[0])",
    ),
    "duplicate capability": (
        _append(
            "capabilities",
            value={"code": "SIS-II", "name": "SIS", "domain": "enablers", "criticality": "low"},
        ),
        "capabilities[33].code: duplicate code 'SIS-II' (also capabilities[0])",
    ),
    "duplicate provision reference": (
        _append(
            "provisions",
            value={"reference": "SP-LE-01", "title": "Again", "domain": "enablers", "status": "in_force"},
        ),
        "provisions[25].reference: duplicate reference 'SP-LE-01' (also provisions[0])",
    ),
    "capability covered twice": (
        _append("provisions", 2, "covers", value={"capability": "EUROPOL", "extent": "full"}),
        "provisions[2].covers[4].capability: capability 'EUROPOL' listed twice",
    ),
    "history ends elsewhere": (
        _set("provisions", 3, "status", value="agreed"),
        "provisions[3].history[1].status: the last history entry is 'under_negotiation' "
        "but the provision's status is 'agreed'",
    ),
    "leaving in_force": (
        _append_history(7, "agreed", "2021-02-01", note="Reopened"),
        "provisions[7].history[5].status: in_force → agreed refused: "
        "a provision in force can only be suspended, not moved to agreed",
    ),
    "moving back without a note": (
        _append_history(3, "proposed", "2020-07-01"),
        "provisions[3].history[2].status: under_negotiation → proposed refused: "
        "moving back from under_negotiation to proposed needs a reason",
    ),
    "withdrawing without a note": (
        _append_history(3, "withdrawn", "2020-07-01"),
        "provisions[3].history[2].status: under_negotiation → withdrawn refused: "
        "moving to withdrawn needs a reason",
    ),
    "a no-op move": (
        _append_history(3, "under_negotiation", "2020-07-01", note="Again"),
        "provisions[3].history[2].status: under_negotiation → under_negotiation refused: "
        "the provision is already under_negotiation",
    ),
    "dates out of order": (
        _append_history(3, "agreed_in_principle", "2020-08-01", "agreed", "2020-07-01"),
        "provisions[3].history[3].at: 2020-07-01 is before the previous entry (2020-08-01)",
    ),
}


@pytest.mark.parametrize(("mutate", "line"), REFERENCE_PROBLEMS.values(), ids=REFERENCE_PROBLEMS.keys())
def test_a_bad_reference_duplicate_or_history_is_listed_with_its_path_and_nothing_is_written(
    shipped_partnership_file: str, tmp_path: Path, mutate: Mutation, line: str
) -> None:
    data = shipped_data(shipped_partnership_file)
    mutate(data)
    file = write_yaml(tmp_path, data)

    message, stderr = run_failing_import(file)

    assert stderr == [line]
    assert message == f"{file}: 1 problem(s), nothing was imported"
    assert not any(row_counts().values())


@pytest.mark.parametrize(("mutate", "line"), REFERENCE_PROBLEMS.values(), ids=REFERENCE_PROBLEMS.keys())
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
    data["provisions"][3]["covers"][0]["capability"] = "SIS-3"

    with pytest.raises(PartnershipFileInvalid) as invalid:
        partnership_import(data=data)

    assert [(problem.path, problem.message) for problem in invalid.value.problems] == [
        ("provisions[3].covers[0].capability", "unknown capability 'SIS-3'")
    ]
    assert str(invalid.value.problems[0]) == "provisions[3].covers[0].capability: unknown capability 'SIS-3'"


TEN_MISTAKES = [
    (
        _append("domains", value={"code": "health-security", "name": "Health"}),
        "domains[11].code: duplicate code 'health-security' (also domains[9])",
    ),
    (_set("capabilities", 0, "criticality", value="severe"), "capabilities[0].criticality: "),
    (_set("capabilities", 1, "lapses_on", value="2020-31-12"), "capabilities[1].lapses_on: "),
    (
        _set("capabilities", 2, "domain", value="policing"),
        "capabilities[2].domain: unknown domain 'policing'",
    ),
    (
        _set("provisions", 3, "covers", 0, "capability", value="SIS-3"),
        "provisions[3].covers[0].capability: unknown capability 'SIS-3'",
    ),
    (
        _set("provisions", 0, "positions", 1, "party", value="FR"),
        "provisions[0].positions[1].party: unknown party 'FR'",
    ),
    (
        _set("provisions", 1, "precedents", 0, value="EU-CA-PNR"),
        "provisions[1].precedents[0]: unknown precedent 'EU-CA-PNR'",
    ),
    (
        _set("provisions", 2, "territories", 0, value="ATLANTIS"),
        "provisions[2].territories[0]: unknown territory 'ATLANTIS'",
    ),
    (
        _set("provisions", 4, "status", value="signed"),
        "provisions[4].history[4].status: the last history entry is 'in_force' "
        "but the provision's status is 'signed'",
    ),
    (
        _append_history(7, "agreed", "2021-02-01", note="Reopened"),
        "provisions[7].history[5].status: in_force → agreed refused: ",
    ),
]


@pytest.mark.parametrize(
    "preloaded", [False, True], ids=["empty database", "database holding the partnership"]
)
def test_a_file_with_ten_mistakes_gets_all_ten_listed_and_nothing_written(
    shipped_partnership_file: str, tmp_path: Path, preloaded: bool
) -> None:
    if preloaded:
        run_import(shipped_partnership_file)
    data = shipped_data(shipped_partnership_file)
    for mutate, _ in TEN_MISTAKES:
        mutate(data)
    file = write_yaml(tmp_path, data)
    counts, rows = row_counts(), snapshot()

    message, stderr = run_failing_import(file)

    assert message == f"{file}: 10 problem(s), nothing was imported"
    assert len(stderr) == 10, stderr
    for _, expected in TEN_MISTAKES:
        assert len([line for line in stderr if line.startswith(expected)]) == 1, (expected, stderr)
    assert row_counts() == counts
    assert snapshot() == rows


# --- recorded history is never deleted --------------------------------------------------------------------


def test_reimport_keeps_a_move_recorded_since_and_ends_at_the_files_status(imported: str) -> None:
    provision = Provision.objects.get(reference="SP-LE-04")
    provision_transition(
        by=Reader.system(), provision=provision, to="agreed_in_principle", note="Breakthrough in round nine"
    )
    recorded = list(StatusChange.objects.order_by("id").values())

    stdout, _ = run_import(imported)

    assert (
        list(StatusChange.objects.filter(id__in=[row["id"] for row in recorded]).order_by("id").values())
        == recorded
    )
    provision.refresh_from_db()
    assert provision.status == "under_negotiation"
    assert history_of("SP-LE-04")[-1] == (
        "agreed_in_principle",
        "under_negotiation",
        timezone.localdate(),
        IMPORT_NOTE,
    )
    assert_history_obeys_lifecycle("SP-LE-04")
    assert report_lines(stdout)[-1] == "status changes: 1 added"
    assert StatusChange.objects.count() == len(recorded) + 1


def test_reimport_refuses_a_status_the_lifecycle_cannot_reach_and_writes_nothing(imported: str) -> None:
    provision = Provision.objects.get(reference="SP-LE-04")
    provision_transition(by=Reader.system(), provision=provision, to="in_force")
    counts, rows = row_counts(), snapshot()

    message, stderr = run_failing_import(imported)

    assert stderr == [
        "provisions[3].status: in_force → under_negotiation refused: "
        "a provision in force can only be suspended, not moved to under_negotiation"
    ]
    assert "1 problem(s), nothing was imported" in message
    assert row_counts() == counts
    assert snapshot() == rows
    assert Provision.objects.get(reference="SP-LE-04").status == "in_force"


def test_a_file_entry_dated_before_a_recorded_move_is_refused_as_a_rewrite(
    imported: str, tmp_path: Path
) -> None:
    provision_transition(
        by=Reader.system(),
        provision=Provision.objects.get(reference="SP-LE-04"),
        to="agreed_in_principle",
        on=datetime.date(2020, 9, 1),
    )
    data = shipped_data(imported)
    provision_in(data, "SP-LE-04")["history"].append({"status": "agreed", "at": "2020-08-01"})
    provision_in(data, "SP-LE-04")["status"] = "agreed"
    rows = snapshot()

    _, stderr = run_failing_import(write_yaml(tmp_path, data))

    assert stderr == [
        "provisions[3].history[2].at: 2020-08-01 is before the latest recorded change (2020-09-01) "
        "and recorded history is never rewritten"
    ]
    assert snapshot() == rows


def test_reimport_adds_new_history_entries_after_the_recorded_ones(imported: str, tmp_path: Path) -> None:
    data = shipped_data(imported)
    provision_in(data, "SP-LE-04")["history"] += [
        {"status": "agreed_in_principle", "at": "2020-10-01"},
        {"status": "under_negotiation", "at": "2020-11-01", "note": "Reopened"},
    ]
    earlier = list(StatusChange.objects.order_by("id").values())

    stdout, _ = run_import(write_yaml(tmp_path, data))

    assert (
        list(StatusChange.objects.filter(id__in=[row["id"] for row in earlier]).order_by("id").values())
        == earlier
    )
    assert [(to, on, note) for _, to, on, note in history_of("SP-LE-04")] == [
        ("proposed", datetime.date(2020, 5, 19), "UK draft text published"),
        ("under_negotiation", datetime.date(2020, 6, 5), "Discussed in the fourth round"),
        ("agreed_in_principle", datetime.date(2020, 10, 1), ""),
        ("under_negotiation", datetime.date(2020, 11, 1), "Reopened"),
    ]
    assert report_lines(stdout)[-1] == "status changes: 2 added"
    assert_history_obeys_lifecycle("SP-LE-04")


def test_reimport_of_a_file_without_history_moves_the_provision_to_the_files_status(
    imported: str, tmp_path: Path
) -> None:
    data = shipped_data(imported)
    del provision_in(data, "SP-LE-04")["history"]
    provision_in(data, "SP-LE-04")["status"] = "agreed"
    earlier = history_of("SP-LE-04")

    run_import(write_yaml(tmp_path, data))

    assert history_of("SP-LE-04") == [
        *earlier,
        ("under_negotiation", "agreed", timezone.localdate(), IMPORT_NOTE),
    ]
    assert Provision.objects.get(reference="SP-LE-04").status == "agreed"


def test_reimport_of_a_file_without_markings_never_lowers_one(imported: str, tmp_path: Path) -> None:
    data = shipped_data(imported)
    assert provision_in(data, "SP-LE-04")["marking"] == "official_sensitive"
    for provision in data["provisions"]:
        provision.pop("marking", None)
    provision_in(data, "SP-LE-05")["marking"] = "secret"  # a marking the file does give is applied

    run_import(write_yaml(tmp_path, data))

    assert Provision.objects.get(reference="SP-LE-04").marking == "official_sensitive"
    assert Provision.objects.get(reference="SP-LE-05").marking == "secret"


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
    # SP-EN-03: proposed 2021-02-19, agreed 2021-06-28, in_force 2021-06-28.
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
    next(p for p in provision_in(data, "SP-LE-04")["positions"] if p["party"] == "EU")["stance"] = (
        "conditional"
    )


def _change_extent(data: dict[str, Any]) -> None:
    next(c for c in provision_in(data, "SP-LE-03")["covers"] if c["capability"] == "EC3")["extent"] = "full"


def _remove_coverage(data: dict[str, Any]) -> None:
    covers = provision_in(data, "SP-LE-03")["covers"]
    covers[:] = [link for link in covers if link["capability"] != "CT-COOP"]


def _title_of_sp_le_04() -> Any:
    return Provision.objects.get(reference="SP-LE-04").title


def _sis_lapse_date() -> Any:
    return Capability.objects.get(code="SIS-II").lapses_on


def _eu_stance_on_sp_le_04() -> Any:
    return Position.objects.get(provision__reference="SP-LE-04", party__code="EU").stance


def _ec3_extent() -> Any:
    return Coverage.objects.get(provision__reference="SP-LE-03", capability__code="EC3").extent


def _sp_le_03_covers() -> Any:
    return sorted(
        Coverage.objects.filter(provision__reference="SP-LE-03").values_list("capability__code", flat=True)
    )


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
    "a party's stance": (_change_stance, "provisions", "SP-LE-04", _eu_stance_on_sp_le_04, "conditional"),
    "coverage extent": (_change_extent, "provisions", "SP-LE-03", _ec3_extent, "full"),
    "removed coverage link": (
        _remove_coverage,
        "provisions",
        "SP-LE-03",
        _sp_le_03_covers,
        ["EC3", "EUROPOL", "SIENA"],
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
    assert f"{kind}: 0 created, 1 updated, {SHIPPED_TOTALS[kind] - 1} unchanged" in lines
    assert f"{other}: 0 created, 0 updated, {SHIPPED_TOTALS[other]} unchanged" in lines
    assert lines[-1] == "status changes: 0 added"
    expected_versions = {ref: version + (ref == reference) for ref, version in versions.items()}
    assert dict(Provision.objects.values_list("reference", "version")) == expected_versions
    assert list(StatusChange.objects.order_by("id").values()) == history


def test_a_reapplied_change_is_unchanged_the_next_time(imported: str, tmp_path: Path) -> None:
    data = shipped_data(imported)
    _change_stance(data)
    _remove_coverage(data)
    path = write_yaml(tmp_path, data)
    run_import(path)
    rows = snapshot()

    stdout, _ = run_import(path)

    assert snapshot() == rows
    assert "provisions: 0 created, 0 updated, 25 unchanged" in report_lines(stdout)


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
    data["provisions"][3]["covers"][0]["capability"] = "SIS-3"

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
