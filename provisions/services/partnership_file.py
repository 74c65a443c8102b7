"""Partnership files (DESIGN.md, "Contracts"): import as an all-or-nothing upsert, and export.

The JSON schema beside the shipped data is the contract. A bad file gets every problem listed
with its path (`provisions[3].covers[0].capability: unknown capability 'SIS-3'`) and nothing is
written. Export writes the same format, so export then import is a round trip.
"""

from __future__ import annotations

import datetime
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from django.db import models, transaction
from django.utils import timezone

from provisions.models import (
    Capability,
    Coverage,
    Domain,
    Marking,
    Milestone,
    Partnership,
    Party,
    Pillar,
    Position,
    Precedent,
    Provision,
    Status,
    StatusChange,
    Territory,
)
from provisions.services.scans import scan_request, scan_requests_batched
from provisions.services.status import provision_record_first_status, provision_transition

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "data" / "partnership.schema.json"
IMPORT_NOTE = "Set by partnership import"


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class PartnershipFileInvalid(Exception):
    """The file cannot be imported; `problems` lists every reason, each with its path."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


@dataclass
class ImportReport:
    """What an import did (or, in a dry run, would do), per kind of record."""

    dry_run: bool = False
    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    status_changes_added: int = 0

    def count(self, kind: str, outcome: str) -> None:
        self.counts[kind][outcome] += 1

    @property
    def changed(self) -> bool:
        return self.status_changes_added > 0 or any(
            counter["created"] or counter["updated"] for counter in self.counts.values()
        )

    def lines(self) -> list[str]:
        lines = []
        for kind, counter in self.counts.items():
            parts = [f"{counter[outcome]} {outcome}" for outcome in ("created", "updated", "unchanged")]
            lines.append(f"{kind}: {', '.join(parts)}")
        lines.append(f"status changes: {self.status_changes_added} added")
        return lines


# --- reading and checking a file --------------------------------------------------------------------------


@cache
def _schema_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _jsonable(value: Any) -> Any:
    """YAML turns unquoted dates into date objects; the schema (and JSON) speak ISO strings."""
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


def read_partnership_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or JSON partnership file (by extension; YAML otherwise)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PartnershipFileInvalid([Problem(str(path), f"cannot read the file ({error})")]) from error
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            with path.open(encoding="utf-8") as stream:  # so the parser's messages name the file
                data = yaml.safe_load(stream)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise PartnershipFileInvalid(
            [Problem(str(path), f"not valid {_format_name(path)}: {error}")]
        ) from error
    if not isinstance(data, dict):
        raise PartnershipFileInvalid(
            [Problem(str(path), "expected a mapping with 'partnership' and 'domains'")]
        )
    return _jsonable(data)


def _format_name(path: Path) -> str:
    return "JSON" if path.suffix.lower() == ".json" else "YAML"


def _path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(file)"


def _items(data: Mapping[str, Any], key: str) -> list[tuple[int, dict[str, Any]]]:
    """The well-formed (mapping) items of a top-level list, with their index."""
    value = data.get(key)
    if not isinstance(value, list):
        return []
    return [(index, item) for index, item in enumerate(value) if isinstance(item, dict)]


def _codes(
    items: list[tuple[int, dict[str, Any]]], prefix: str, key: str, problems: list[Problem]
) -> set[str]:
    seen: dict[str, int] = {}
    for index, item in items:
        code = item.get(key)
        if not isinstance(code, str):
            continue
        if code in seen:
            problems.append(
                Problem(f"{prefix}[{index}].{key}", f"duplicate {key} {code!r} (also {prefix}[{seen[code]}])")
            )
        else:
            seen[code] = index
    return set(seen)


def _known(model: type[models.Model], field_name: str, in_file: set[str]) -> set[str]:
    return in_file | set(model._default_manager.values_list(field_name, flat=True))


def _document_order(error: jsonschema.ValidationError) -> list[tuple[int, int | str]]:
    return [(0, part) if isinstance(part, int) else (1, str(part)) for part in error.absolute_path]


# Values the schema leaves unbounded but a column limits: (where the list is, key, model, field).
_LENGTH_LIMITS: tuple[tuple[tuple[str, ...], str, type[models.Model], str], ...] = (
    (("partnership", "parties"), "name", Party, "name"),
    (("partnership", "milestones"), "title", Milestone, "title"),
    (("territories",), "name", Territory, "name"),
    (("precedents",), "title", Precedent, "title"),
    (("precedents",), "url", Precedent, "url"),
    (("domains",), "pillar", Pillar, "name"),
)


def _length_problems(data: dict[str, Any]) -> list[Problem]:
    problems = []
    for where, key, model, field_name in _LENGTH_LIMITS:
        items: Any = data
        for step in where:
            items = items.get(step) if isinstance(items, dict) else None
        limit = getattr(model._meta.get_field(field_name), "max_length", None)
        for index, item in enumerate(items if isinstance(items, list) else []):
            value = item.get(key) if isinstance(item, dict) else None
            if isinstance(value, str) and limit is not None and len(value) > limit:
                problems.append(
                    Problem(f"{'.'.join(where)}[{index}].{key}", f"longer than {limit} characters")
                )
    return problems


def check_partnership_file(data: dict[str, Any]) -> list[Problem]:
    """Every problem with the file: schema violations, duplicates, unknown references, bad histories."""
    problems = [
        Problem(_path(error.absolute_path), error.message)
        for error in sorted(_schema_validator().iter_errors(data), key=_document_order)
    ]
    problems.extend(_length_problems(data))
    partnership: dict[str, Any] = data["partnership"] if isinstance(data.get("partnership"), dict) else {}
    parties = [(i, p) for i, p in enumerate(partnership.get("parties") or []) if isinstance(p, dict)]
    milestones = [(i, m) for i, m in enumerate(partnership.get("milestones") or []) if isinstance(m, dict)]
    party_codes = _codes(parties, "partnership.parties", "code", problems)
    _codes(milestones, "partnership.milestones", "code", problems)
    if isinstance(partnership.get("code"), str):
        party_codes |= set(
            Party.objects.filter(partnership__code=partnership["code"]).values_list("code", flat=True)
        )
    domains = _known(Domain, "code", _codes(_items(data, "domains"), "domains", "code", problems))
    territories = _known(
        Territory, "code", _codes(_items(data, "territories"), "territories", "code", problems)
    )
    precedents = _known(Precedent, "code", _codes(_items(data, "precedents"), "precedents", "code", problems))
    capabilities = _known(
        Capability, "code", _codes(_items(data, "capabilities"), "capabilities", "code", problems)
    )
    _codes(_items(data, "provisions"), "provisions", "reference", problems)

    def check_reference(path: str, value: Any, known: set[str], what: str) -> None:
        if isinstance(value, str) and value not in known:
            problems.append(Problem(path, f"unknown {what} {value!r}"))

    for index, capability in _items(data, "capabilities"):
        check_reference(f"capabilities[{index}].domain", capability.get("domain"), domains, "domain")
    for index, provision in _items(data, "provisions"):
        prefix = f"provisions[{index}]"
        check_reference(f"{prefix}.domain", provision.get("domain"), domains, "domain")
        for key, known, what, inner in (
            ("covers", capabilities, "capability", "capability"),
            ("positions", party_codes, "party", "party"),
        ):
            seen: set[str] = set()
            for position, item in enumerate(provision.get(key) or []):
                if not isinstance(item, dict):
                    continue
                value = item.get(inner)
                check_reference(f"{prefix}.{key}[{position}].{inner}", value, known, what)
                if isinstance(value, str) and value in seen:
                    problems.append(
                        Problem(f"{prefix}.{key}[{position}].{inner}", f"{what} {value!r} listed twice")
                    )
                if isinstance(value, str):
                    seen.add(value)
        for key, known, what in (
            ("precedents", precedents, "precedent"),
            ("territories", territories, "territory"),
        ):
            for position, value in enumerate(provision.get(key) or []):
                check_reference(f"{prefix}.{key}[{position}]", value, known, what)
        problems.extend(_history_problems(prefix, provision))
    return problems


HistoryEntry = tuple[int, str, datetime.date, str]  # (index in the file, status, date, note)


def _history_entries(provision: dict[str, Any]) -> list[HistoryEntry] | None:
    """(index, status, date, note) of a well-formed history, or None if any entry is malformed."""
    entries = []
    for index, entry in enumerate(provision.get("history") or []):
        if not isinstance(entry, dict) or entry.get("status") not in Status.values:
            return None
        try:
            on = datetime.date.fromisoformat(str(entry.get("at")))
        except ValueError:
            return None
        entries.append((index, entry["status"], on, str(entry.get("note") or "")))
    return entries


def _unrecorded(
    entries: list[HistoryEntry], recorded: list[tuple[str, datetime.date]]
) -> tuple[list[HistoryEntry], int]:
    """The file's entries not yet recorded (same status, same date, in order), and the position
    in `entries` of the last one that is recorded (-1 if none)."""
    unmatched = Counter(recorded)
    new: list[HistoryEntry] = []
    last_recorded = -1
    for position, entry in enumerate(entries):
        key = (entry[1], entry[2])
        if unmatched[key] > 0:
            unmatched[key] -= 1
            last_recorded = position
        else:
            new.append(entry)
    return new, last_recorded


def _history_problems(prefix: str, provision: dict[str, Any]) -> list[Problem]:
    """A history obeys the lifecycle, is in date order, ends at the provision's status, and
    never rewrites what is recorded: entries not yet recorded come after the latest recorded one."""
    entries = _history_entries(provision)
    status = provision.get("status")
    if entries is None or status not in Status.values:
        return []  # the schema check reports the malformed parts
    problems: list[Problem] = []
    if entries and entries[-1][1] != status:
        problems.append(
            Problem(
                f"{prefix}.history[{entries[-1][0]}].status",
                f"the last history entry is {entries[-1][1]!r} but the provision's status is {status!r}",
            )
        )
    reference = provision.get("reference")
    recorded = (
        list(
            StatusChange.objects.filter(provision__reference=reference)
            .order_by("changed_on", "id")
            .values_list("to_status", "changed_on")
        )
        if isinstance(reference, str)
        else []
    )
    for (_, _, earlier, _), (index, _, on, _) in itertools.pairwise(entries):
        if on < earlier:
            problems.append(
                Problem(f"{prefix}.history[{index}].at", f"{on} is before the previous entry ({earlier})")
            )
    new, last_recorded = _unrecorded(entries, recorded)
    latest_recorded = recorded[-1][1] if recorded else None
    latest_date = latest_recorded
    current: str | None = recorded[-1][0] if recorded else None
    last_recorded_index = entries[last_recorded][0] if last_recorded >= 0 else -1
    for index, entry_status, on, note in new:
        path = f"{prefix}.history[{index}]"
        if index < last_recorded_index:
            problems.append(
                Problem(
                    f"{path}.at",
                    "comes before a change already recorded and recorded history is never rewritten",
                )
            )
        elif latest_recorded is not None and on < latest_recorded:
            problems.append(
                Problem(
                    f"{path}.at",
                    f"{on} is before the latest recorded change ({latest_recorded}) "
                    "and recorded history is never rewritten",
                )
            )
        refusal = Status.move_refusal(current, entry_status, note)
        if refusal is not None:
            problems.append(Problem(f"{path}.status", f"{current} → {entry_status} refused: {refusal}"))
        current, latest_date = entry_status, max(on, latest_date or on)
    ends_elsewhere = bool(entries) and entries[-1][1] != status  # reported above
    if current is not None and current != status and not ends_elsewhere:
        # The import moves it to the file's status today, as provision_transition would.
        refusal = Status.move_refusal(current, status, IMPORT_NOTE)
        today = timezone.localdate()
        if refusal is None and latest_date is not None and today < latest_date:
            refusal = f"it would be dated today ({today}), before the latest change ({latest_date})"
        if refusal is not None:
            problems.append(Problem(f"{prefix}.status", f"{current} → {status} refused: {refusal}"))
    return problems


# --- import -----------------------------------------------------------------------------------------------


def _upsert(
    report: ImportReport, kind: str, model: type[models.Model], lookup: dict[str, Any], values: dict[str, Any]
) -> Any:
    """Create or update one row by its natural key, counting what happened; None if unchanged."""
    instance = model._default_manager.filter(**lookup).first()
    if instance is None:
        report.count(kind, "created")
        return model._default_manager.create(**lookup, **values)
    changed = [name for name, value in values.items() if getattr(instance, name) != value]
    if not changed:
        report.count(kind, "unchanged")
        return None
    for name in changed:
        setattr(instance, name, values[name])
    instance.save(update_fields=changed)
    report.count(kind, "updated")
    return instance


def _date(value: str | None) -> datetime.date | None:
    return datetime.date.fromisoformat(value) if value else None


def partnership_import(*, data: dict[str, Any], dry_run: bool = False) -> ImportReport:
    """Upsert a checked partnership file by code and reference, all or nothing.

    A dry run does the same work in a transaction that is rolled back, so its report is exact.
    Every affected subject is rescanned once the import commits (one scan request).
    """
    problems = check_partnership_file(data)
    if problems:
        raise PartnershipFileInvalid(problems)
    report = ImportReport(dry_run=dry_run)
    with transaction.atomic():
        with scan_requests_batched():
            _import(data, report)
        if dry_run:
            transaction.set_rollback(True)
    return report


def _import(data: dict[str, Any], report: ImportReport) -> None:
    spec = data["partnership"]
    _upsert(
        report,
        "partnerships",
        Partnership,
        {"code": spec["code"]},
        {"title": spec["title"], "description": spec.get("description", "")},
    )
    partnership = Partnership.objects.get(code=spec["code"])
    for item in spec["parties"]:
        _upsert(
            report,
            "parties",
            Party,
            {"partnership": partnership, "code": item["code"]},
            {"name": item["name"]},
        )
    parties = {party.code: party for party in partnership.parties.all()}
    for item in spec.get("milestones", []):
        _upsert(
            report,
            "milestones",
            Milestone,
            {"partnership": partnership, "code": item["code"]},
            {"title": item["title"], "date": _date(item["date"]), "note": item.get("note", "")},
        )
    for item in data.get("territories", []):
        _upsert(
            report,
            "territories",
            Territory,
            {"code": item["code"]},
            {"name": item["name"], "kind": item.get("kind", "other")},
        )
    for item in data.get("precedents", []):
        _upsert(
            report,
            "precedents",
            Precedent,
            {"code": item["code"]},
            {"title": item["title"], "description": item.get("description", ""), "url": item.get("url", "")},
        )
    for item in data["domains"]:
        pillar = Pillar.objects.get_or_create(name=item["pillar"])[0] if item.get("pillar") else None
        _upsert(
            report,
            "domains",
            Domain,
            {"code": item["code"]},
            {
                "partnership": partnership,
                "name": item["name"],
                "pillar": pillar,
                "description": item.get("description", ""),
            },
        )
    domains = {domain.code: domain for domain in Domain.objects.all()}
    touched_capabilities: list[int] = []
    for item in data.get("capabilities", []):
        capability = _upsert(
            report,
            "capabilities",
            Capability,
            {"code": item["code"]},
            {
                "name": item["name"],
                "domain": domains[item["domain"]],
                "criticality": item["criticality"],
                "lapses_on": _date(item.get("lapses_on")),
                "fallback": item.get("fallback", ""),
                "description": item.get("description", ""),
            },
        )
        if capability is not None:
            touched_capabilities.append(capability.pk)
    scan_request(capability_ids=touched_capabilities)
    capabilities = dict(Capability.objects.values_list("code", "pk"))
    territories = dict(Territory.objects.values_list("code", "pk"))
    precedents = dict(Precedent.objects.values_list("code", "pk"))
    for item in data.get("provisions", []):
        _import_provision(item, report, domains, parties, capabilities, territories, precedents)


def _import_provision(
    item: dict[str, Any],
    report: ImportReport,
    domains: dict[str, Domain],
    parties: dict[str, Party],
    capabilities: dict[str, int],
    territories: dict[str, int],
    precedents: dict[str, int],
) -> None:
    # Locked: an edit through the API or a page waits for the import instead of crossing it.
    provision = Provision.objects.select_for_update().filter(reference=item["reference"]).first()
    is_new = provision is None
    fields = {
        "title": item["title"],
        "text": item.get("text", ""),
        "domain": domains[item["domain"]],
        "target_date": _date(item.get("target_date")),
        "review_date": _date(item.get("review_date")),
        # A file that leaves the marking out never lowers it: new provisions are official, recorded
        # ones keep theirs (only a marking written in the file changes it).
        "marking": item.get("marking", Marking.OFFICIAL if provision is None else provision.marking),
    }
    history = _history_entries(item) or []
    if provision is None:
        first_status = history[0][1] if history else item["status"]
        provision = Provision.objects.create(reference=item["reference"], status=first_status, **fields)
    changed = [name for name, value in fields.items() if getattr(provision, name) != value]
    for name in changed:
        setattr(provision, name, fields[name])

    changed += _sync_links(provision, item, parties, capabilities, territories, precedents)
    if changed and not is_new:
        provision.version += 1
        provision.save(update_fields=sorted({*(name for name in changed if name in fields), "version"}))
    report.count("provisions", "created" if is_new else ("updated" if changed else "unchanged"))
    moves = _import_history(provision, item, history, is_new)
    report.status_changes_added += moves
    if is_new or changed or moves:
        scan_request(provision_ids=[provision.pk])


def _sync_links(
    provision: Provision,
    item: dict[str, Any],
    parties: dict[str, Party],
    capabilities: dict[str, int],
    territories: dict[str, int],
    precedents: dict[str, int],
) -> list[str]:
    """Make coverage, positions, precedents and territories what the file says (where it says)."""
    changed: list[str] = []
    if "covers" in item:
        wanted = {capabilities[link["capability"]]: link.get("extent", "full") for link in item["covers"]}
        current = dict(provision.coverage.values_list("capability_id", "extent"))
        if wanted != current:
            removed = set(current) - set(wanted)
            provision.coverage.filter(capability_id__in=removed).delete()
            for capability_id, extent in wanted.items():
                Coverage.objects.update_or_create(
                    provision=provision, capability_id=capability_id, defaults={"extent": extent}
                )
            scan_request(capability_ids=removed)
            changed.append("covers")
    if "positions" in item:
        wanted_positions = {
            parties[entry["party"]].pk: (
                entry["stance"],
                entry.get("firmness", "provisional"),
                entry.get("note", ""),
            )
            for entry in item["positions"]
        }
        current_positions = {
            party_id: (stance, firmness, note)
            for party_id, stance, firmness, note in provision.positions.values_list(
                "party_id", "stance", "firmness", "note"
            )
        }
        if wanted_positions != current_positions:
            provision.positions.exclude(party_id__in=wanted_positions).delete()
            for party_id, (stance, firmness, note) in wanted_positions.items():
                Position.objects.update_or_create(
                    provision=provision,
                    party_id=party_id,
                    defaults={"stance": stance, "firmness": firmness, "note": note},
                )
            changed.append("positions")
    for key, manager, ids in (
        ("precedents", provision.precedents, precedents),
        ("territories", provision.territories, territories),
    ):
        if key in item:
            wanted_ids = {ids[code] for code in item[key]}
            if wanted_ids != set(manager.values_list("pk", flat=True)):
                manager.set(wanted_ids)
                changed.append(key)
    return changed


def _import_history(
    provision: Provision,
    item: dict[str, Any],
    history: list[HistoryEntry],
    is_new: bool,
) -> int:
    """Add the history entries not yet recorded, in order; end at the file's status. Returns how many."""
    added = 0
    if is_new:
        if history:
            _, _, on, note = history[0]
            provision_record_first_status(provision=provision, on=on, note=note, source="import")
            history = history[1:]
        else:
            provision_record_first_status(provision=provision, on=timezone.localdate(), source="import")
        added += 1
        new = history
    else:
        recorded = list(
            provision.status_changes.order_by("changed_on", "id").values_list("to_status", "changed_on")
        )
        new, _ = _unrecorded(history, recorded)
    for _, status, on, note in new:
        provision_transition(provision=provision, to=status, note=note, on=on, source="import")
        added += 1
    if provision.status != item["status"]:
        provision_transition(provision=provision, to=item["status"], note=IMPORT_NOTE, source="import")
        added += 1
    return added


# --- export -----------------------------------------------------------------------------------------------


def partnership_export(*, partnership: Partnership) -> dict[str, Any]:
    """The partnership as a file of the contract's format (dates as ISO strings)."""
    domains = list(partnership.domains.select_related("pillar").order_by("id"))
    provisions = (
        Provision.objects.filter(domain__partnership=partnership)
        .select_related("domain")
        .prefetch_related(
            models.Prefetch(
                "coverage", queryset=Coverage.objects.select_related("capability").order_by("id")
            ),
            models.Prefetch(
                "positions", queryset=Position.objects.select_related("party").order_by("party_id")
            ),
            models.Prefetch("status_changes", queryset=StatusChange.objects.order_by("changed_on", "id")),
            models.Prefetch("precedents", queryset=Precedent.objects.order_by("id")),
            models.Prefetch("territories", queryset=Territory.objects.order_by("id")),
        )
        .order_by("id")
    )

    def optional(**values: Any) -> dict[str, Any]:
        return {key: value for key, value in values.items() if value not in ("", None)}

    return {
        "partnership": {
            "code": partnership.code,
            "title": partnership.title,
            **optional(description=partnership.description),
            "parties": [
                {"code": party.code, "name": party.name} for party in partnership.parties.order_by("id")
            ],
            "milestones": [
                {"code": m.code, "title": m.title, "date": m.date.isoformat(), **optional(note=m.note)}
                for m in partnership.milestones.order_by("date", "id")
            ],
        },
        "territories": [
            {"code": t.code, "name": t.name, "kind": t.kind} for t in Territory.objects.order_by("id")
        ],
        "precedents": [
            {"code": p.code, "title": p.title, **optional(description=p.description, url=p.url)}
            for p in Precedent.objects.order_by("id")
        ],
        "domains": [
            {
                "code": d.code,
                "name": d.name,
                **optional(pillar=d.pillar.name if d.pillar else None, description=d.description),
            }
            for d in domains
        ],
        "capabilities": [
            {
                "code": c.code,
                "name": c.name,
                "domain": c.domain.code,
                "criticality": c.criticality,
                "lapses_on": c.lapses_on.isoformat() if c.lapses_on else None,
                **optional(fallback=c.fallback, description=c.description),
            }
            for c in Capability.objects.filter(domain__partnership=partnership)
            .select_related("domain")
            .order_by("id")
        ],
        "provisions": [
            {
                "reference": p.reference,
                "title": p.title,
                "domain": p.domain.code,
                "status": p.status,
                **optional(text=p.text),
                "target_date": p.target_date.isoformat() if p.target_date else None,
                "review_date": p.review_date.isoformat() if p.review_date else None,
                "marking": p.marking,
                "covers": [
                    {"capability": link.capability.code, "extent": link.extent} for link in p.coverage.all()
                ],
                "positions": [
                    {
                        "party": pos.party.code,
                        "stance": pos.stance,
                        "firmness": pos.firmness,
                        **optional(note=pos.note),
                    }
                    for pos in p.positions.all()
                ],
                "history": [
                    {
                        "status": change.to_status,
                        "at": change.changed_on.isoformat(),
                        **optional(note=change.note),
                    }
                    for change in p.status_changes.all()
                ],
                "precedents": [precedent.code for precedent in p.precedents.all()],
                "territories": [territory.code for territory in p.territories.all()],
            }
            for p in provisions
        ],
    }


def write_partnership_file(data: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
    path.write_text(text, encoding="utf-8")
