"""Exporting a partnership in the file format it is imported from, so export then import is a
round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from django.db import models

from provisions.models import (
    Capability,
    Coverage,
    Partnership,
    Position,
    Precedent,
    Provision,
    StatusChange,
    Territory,
)


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
