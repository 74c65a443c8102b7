"""Exporting a partnership in the file format it is imported from, so export then import is a
round trip."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import yaml
from django.db import models
from django.db.models import F

from provisions.models import (
    AimCapability,
    Capability,
    CapabilityChange,
    Coverage,
    Discussion,
    Partnership,
    Position,
    Precedent,
    Provision,
    ProvisionChange,
    StatusChange,
    Territory,
)


def partnership_export(*, partnership: Partnership) -> dict[str, Any]:
    """The partnership as a file of the contract's format (dates as ISO strings)."""
    domains = list(partnership.domains.select_related("pillar").order_by("id"))
    capabilities = (
        Capability.objects.filter(domain__partnership=partnership)
        .select_related("domain")
        .prefetch_related(
            models.Prefetch(
                "changes", queryset=CapabilityChange.objects.order_by(F("at").asc(nulls_first=True), "id")
            )
        )
        .order_by("id")
    )
    provisions = (
        Provision.objects.filter(domain__partnership=partnership)
        .select_related("domain")
        .prefetch_related(
            models.Prefetch(
                "coverage", queryset=Coverage.objects.select_related("capability").order_by("id")
            ),
            models.Prefetch("positions", queryset=Position.objects.select_related("party").order_by("id")),
            models.Prefetch(
                "changes", queryset=ProvisionChange.objects.order_by(F("at").asc(nulls_first=True), "id")
            ),
            models.Prefetch("discussions", queryset=Discussion.objects.order_by("on", "id")),
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
                for m in partnership.milestones.order_by("id")  # the order of the file it came from
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
        "capabilities": [_capability(c, optional) for c in capabilities],
        "provisions": [
            {
                "reference": p.reference,
                "title": _base(p, "title"),
                "domain": p.domain.code,
                "status": p.status,
                **optional(text=_base(p, "text")),
                "target_date": p.target_date.isoformat() if p.target_date else None,
                "review_date": p.review_date.isoformat() if p.review_date else None,
                "marking": p.marking,
                "covers": [
                    {
                        "capability": link.capability.code,
                        "extent": link.extent,
                        **optional(**{"from": _iso(link.valid_from), "until": _iso(link.valid_until)}),
                    }
                    for link in p.coverage.all()
                ],
                "positions": [
                    {
                        "party": pos.party.code,
                        "stance": pos.stance,
                        "firmness": pos.firmness,
                        **optional(note=pos.note, at=_iso(pos.taken_on)),
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
                **_provision_dated(p),
            }
            for p in provisions
        ],
        "aims": [
            {
                "code": aim.code,
                "title": aim.title,
                **optional(text=aim.text, source=aim.source),
                "capabilities": [link.capability.code for link in aim.links.all()],
            }
            for aim in partnership.aims.order_by("code").prefetch_related(
                models.Prefetch(
                    "links",
                    queryset=AimCapability.objects.select_related("capability").order_by("position", "id"),
                )
            )
        ],
    }


def _iso(day: datetime.date | None) -> str | None:
    return day.isoformat() if day else None


def _base(subject: Any, name: str) -> Any:
    """A dated value's base (the file's top-level value): the base row's once it has dated changes."""
    rows = list(subject.changes.all())
    if rows and rows[0].at is None:
        return rows[0].sets().get(name, getattr(subject, name))
    return getattr(subject, name)


def _changes(subject: Any, names: tuple[str, ...]) -> list[dict[str, Any]]:
    changes = []
    for change in subject.changes.all():
        if change.at is None:
            continue
        values = {
            name: _iso(value) if name.endswith("_on") else value for name, value in change.sets().items()
        }
        changes.append(
            {
                "at": change.at.isoformat(),
                **{name: values[name] for name in names if name in values},
                **({"note": change.note} if change.note else {}),
            }
        )
    return changes


def _capability(capability: Capability, optional: Any) -> dict[str, Any]:
    lapses_on = _base(capability, "lapses_on")
    changes = _changes(capability, ("lapses_on", "criticality", "fallback"))
    return {
        "code": capability.code,
        "name": capability.name,
        "domain": capability.domain.code,
        "criticality": _base(capability, "criticality"),
        "lapses_on": _iso(lapses_on),
        **optional(fallback=_base(capability, "fallback"), description=capability.description),
        **({"changes": changes} if changes else {}),
    }


def _provision_dated(provision: Provision) -> dict[str, Any]:
    dated: dict[str, Any] = {}
    expires_on = _base(provision, "expires_on")
    changes = _changes(provision, ("title", "text", "expires_on"))
    if expires_on or changes:
        dated["expires_on"] = _iso(expires_on)
    if changes:
        dated["changes"] = changes
    discussions = [{"at": d.on.isoformat(), "note": d.note} for d in provision.discussions.all()]
    if discussions:
        dated["discussions"] = discussions
    return dated


def write_partnership_file(data: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
    path.write_text(text, encoding="utf-8")
