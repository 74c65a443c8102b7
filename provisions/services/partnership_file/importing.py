"""Importing a checked partnership file: an all-or-nothing, idempotent upsert by code and reference
(DESIGN.md, "Contracts"); recorded history is never rewritten."""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from provisions.models import (
    Capability,
    Domain,
    Marking,
    Milestone,
    Partnership,
    Party,
    Pillar,
    Precedent,
    Provision,
    Territory,
)
from provisions.permissions import Reader
from provisions.services.changed import aims_changed, capabilities_changed
from provisions.services.partnership_file.reading import (
    IMPORT_NOTE,
    HistoryEntry,
    PartnershipFileInvalid,
    check_partnership_file,
    history_entries,
    unrecorded_entries,
)
from provisions.services.partnership_file.valid_time import (
    plan_dated_values,
    sync_aims,
    sync_discussions,
    sync_links,
    sync_positions,
    write_dated_values,
)
from provisions.services.scans import scan_request, scan_requests_batched
from provisions.services.status import provision_record_first_status, provision_transition
from provisions.services.webhooks import events_record_provision_changed

# An import is the tracker itself writing what the file says (the operator running it is not a user).
_IMPORTER = Reader.system()


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


def _upsert(model: type[models.Model], lookup: dict[str, Any], values: dict[str, Any]) -> tuple[Any, str]:
    """Create or update one row by its natural key: the row and what happened to it."""
    instance = model._default_manager.filter(**lookup).first()
    if instance is None:
        return model._default_manager.create(**lookup, **values), "created"
    changed = [name for name, value in values.items() if getattr(instance, name) != value]
    if not changed:
        return instance, "unchanged"
    for name in changed:
        setattr(instance, name, values[name])
    if any(field.name == "updated_at" for field in model._meta.concrete_fields):
        instance.updated_at = timezone.now()  # type: ignore[attr-defined]
        changed.append("updated_at")
    instance.save(update_fields=changed)
    return instance, "updated"


def _upsert_counted(
    report: ImportReport, kind: str, model: type[models.Model], lookup: dict[str, Any], values: dict[str, Any]
) -> Any:
    instance, outcome = _upsert(model, lookup, values)
    report.count(kind, outcome)
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
    _upsert_counted(
        report,
        "partnerships",
        Partnership,
        {"code": spec["code"]},
        {"title": spec["title"], "description": spec.get("description", "")},
    )
    partnership = Partnership.objects.get(code=spec["code"])
    for item in spec["parties"]:
        _upsert_counted(
            report,
            "parties",
            Party,
            {"partnership": partnership, "code": item["code"]},
            {"name": item["name"]},
        )
    parties = {party.code: party for party in partnership.parties.all()}
    for item in spec.get("milestones", []):
        _upsert_counted(
            report,
            "milestones",
            Milestone,
            {"partnership": partnership, "code": item["code"]},
            {"title": item["title"], "date": _date(item["date"]), "note": item.get("note", "")},
        )
    for item in data.get("territories", []):
        _upsert_counted(
            report,
            "territories",
            Territory,
            {"code": item["code"]},
            {"name": item["name"], "kind": item.get("kind", "other")},
        )
    for item in data.get("precedents", []):
        _upsert_counted(
            report,
            "precedents",
            Precedent,
            {"code": item["code"]},
            {"title": item["title"], "description": item.get("description", ""), "url": item.get("url", "")},
        )
    for item in data["domains"]:
        pillar = Pillar.objects.get_or_create(name=item["pillar"])[0] if item.get("pillar") else None
        _upsert_counted(
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
        base = {
            "lapses_on": _date(item.get("lapses_on")),
            "criticality": item["criticality"],
            "fallback": item.get("fallback", ""),
        }
        recorded = Capability.objects.filter(code=item["code"]).first()
        plan = plan_dated_values(recorded, item, base, capability=True)
        values = {
            "name": item["name"],
            "domain": domains[item["domain"]],
            "description": item.get("description", ""),
            **plan.today,  # the columns hold today's values
        }
        capability, outcome = _upsert(Capability, {"code": item["code"]}, values)
        if write_dated_values(capability, plan) and outcome == "unchanged":
            outcome = "updated"
        report.count("capabilities", outcome)
        if outcome != "unchanged":
            touched_capabilities.append(capability.pk)
    capabilities_changed(touched_capabilities)
    scan_request(capability_ids=touched_capabilities)
    capabilities = dict(Capability.objects.values_list("code", "pk"))
    aims = sync_aims(partnership, data, capabilities)
    for outcome, changed_aims in aims.items():
        if changed_aims:
            report.counts["aims"][outcome] += len(changed_aims)
    aims_changed([*aims["created"], *aims["updated"]])
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
    marked_before = provision.marking if provision is not None else None
    base = {
        "title": item["title"],
        "text": item.get("text", ""),
        "expires_on": _date(item.get("expires_on")),
    }
    plan = plan_dated_values(provision, item, base, capability=False)
    fields = {
        **plan.today,  # the columns hold today's values
        "domain": domains[item["domain"]],
        "target_date": _date(item.get("target_date")),
        "review_date": _date(item.get("review_date")),
        # A file that leaves the marking out never lowers it: new provisions are official, recorded
        # ones keep theirs (only a marking written in the file changes it).
        "marking": item.get("marking", Marking.OFFICIAL if provision is None else provision.marking),
    }
    history = history_entries(item) or []
    if provision is None:
        first_status = history[0][1] if history else item["status"]
        provision = Provision.objects.create(reference=item["reference"], status=first_status, **fields)
    changed = [name for name, value in fields.items() if getattr(provision, name) != value]
    for name in changed:
        setattr(provision, name, fields[name])

    changed += _sync_links(provision, item, parties, capabilities, territories, precedents)
    if write_dated_values(provision, plan):
        changed.append("changes")
    if sync_discussions(provision, item):
        changed.append("discussions")
    if changed and not is_new:
        provision.version += 1
        provision.save(
            update_fields=sorted({*(name for name in changed if name in fields), "version", "updated_at"})
        )
    report.count("provisions", "created" if is_new else ("updated" if changed else "unchanged"))
    moves = _import_history(provision, item, history, is_new)
    report.status_changes_added += moves
    if is_new or changed or moves:
        before = {provision.pk: marked_before} if marked_before else None
        events_record_provision_changed(provisions=[provision], marked_before=before)
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
    relinked = sync_links(provision, item, capabilities)
    if relinked is not None:
        scan_request(capability_ids=relinked)
        changed.append("covers")
    if sync_positions(provision, item, parties):
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
            provision_record_first_status(
                provision=provision, on=on, note=note, by=_IMPORTER, source="import"
            )
            history = history[1:]
        else:
            provision_record_first_status(
                provision=provision, on=timezone.localdate(), by=_IMPORTER, source="import"
            )
        added += 1
        new = history
    else:
        recorded = list(
            provision.status_changes.order_by("changed_on", "id").values_list("to_status", "changed_on")
        )
        new, _ = unrecorded_entries(history, recorded)
    for _, status, on, note in new:
        provision_transition(provision=provision, to=status, note=note, on=on, by=_IMPORTER, source="import")
        added += 1
    if provision.status != item["status"]:
        provision_transition(
            provision=provision, to=item["status"], note=IMPORT_NOTE, by=_IMPORTER, source="import"
        )
        added += 1
    return added
