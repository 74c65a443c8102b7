"""Reading and checking a partnership file: every problem listed with its path, nothing written."""

from __future__ import annotations

import datetime
import itertools
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from django.db import models
from django.utils import timezone

from provisions.models import (
    Capability,
    Domain,
    Milestone,
    Party,
    Pillar,
    Precedent,
    Status,
    StatusChange,
    Territory,
)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "data" / "partnership.schema.json"
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
        for position, item in enumerate(provision.get("positions") or []):
            if isinstance(item, dict):  # a party's positions are a dated history: it may have several
                check_reference(
                    f"{prefix}.positions[{position}].party", item.get("party"), party_codes, "party"
                )
        for position, item in enumerate(provision.get("covers") or []):
            if isinstance(item, dict):
                value = item.get("capability")
                check_reference(f"{prefix}.covers[{position}].capability", value, capabilities, "capability")
        problems.extend(link_problems(prefix, provision))
        problems.extend(provision_dated_problems(prefix, provision))
        for key, known, what in (
            ("precedents", precedents, "precedent"),
            ("territories", territories, "territory"),
        ):
            for position, value in enumerate(provision.get(key) or []):
                check_reference(f"{prefix}.{key}[{position}]", value, known, what)
        problems.extend(_history_problems(prefix, provision))
    for index, capability in _items(data, "capabilities"):
        problems.extend(changes_order_problems(f"capabilities[{index}]", capability.get("changes")))
    problems.extend(aim_problems(data, capabilities))
    return problems


def _day(value: Any) -> datetime.date | None:
    """A well-formed date of the file (the schema reports the others)."""
    try:
        return datetime.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def changes_order_problems(prefix: str, changes: Any, key: str = "changes") -> list[Problem]:
    """Dated changes (and discussions) are listed oldest first."""
    problems = []
    previous: datetime.date | None = None
    what = "change" if key == "changes" else "discussion"
    for index, change in enumerate(changes if isinstance(changes, list) else []):
        at = _day(change.get("at")) if isinstance(change, dict) else None
        if at is not None and previous is not None and at < previous:
            problems.append(
                Problem(f"{prefix}.{key}[{index}].at", f"{at} is before the previous {what} ({previous})")
            )
        previous = at or previous
    return problems


def provision_dated_problems(prefix: str, provision: dict[str, Any]) -> list[Problem]:
    """A provision's dated changes in order, and none of them, nor a discussion, dated before it
    existed (its first history entry; the day of the import for one imported without history)."""
    problems = changes_order_problems(prefix, provision.get("changes"))
    problems += changes_order_problems(prefix, provision.get("discussions"), key="discussions")
    entries = history_entries(provision)
    if entries is None:  # a malformed history: the schema check reports it; when it began is unknown
        return problems
    reference = provision.get("reference")
    recorded = (
        StatusChange.objects.filter(provision__reference=reference)
        .order_by("changed_on", "id")
        .values_list("changed_on", flat=True)
        .first()
        if isinstance(reference, str)
        else None
    )
    firsts = [day for day in (recorded, entries[0][2] if entries else None) if day is not None]
    exists_from = min(firsts) if firsts else timezone.localdate()
    for key in ("changes", "discussions"):
        for index, entry in enumerate(provision.get(key) or []):
            at = _day(entry.get("at")) if isinstance(entry, dict) else None
            if at is not None and at < exists_from:
                problems.append(
                    Problem(
                        f"{prefix}.{key}[{index}].at",
                        f"{at} is before the provision existed (from {exists_from})",
                    )
                )
    return problems


def link_problems(prefix: str, provision: dict[str, Any]) -> list[Problem]:
    """A link's `from` is before its `until`; a capability is listed again only for other days."""
    problems = []
    spans: dict[str, list[tuple[datetime.date, datetime.date]]] = {}
    for index, link in enumerate(provision.get("covers") or []):
        if not isinstance(link, dict):
            continue
        start, end = _day(link.get("from")), _day(link.get("until"))
        if start is not None and end is not None and start >= end:
            problems.append(
                Problem(f"{prefix}.covers[{index}].until", f"{end} is not after its from ({start})")
            )
            continue
        span = (start or datetime.date.min, end or datetime.date.max)
        capability = link.get("capability")
        if not isinstance(capability, str):
            continue
        if any(span[0] < other[1] and other[0] < span[1] for other in spans.get(capability, [])):
            problems.append(
                Problem(
                    f"{prefix}.covers[{index}].capability",
                    f"capability {capability!r} listed twice for the same days",
                )
            )
        spans.setdefault(capability, []).append(span)
    return problems


def aim_problems(data: dict[str, Any], capabilities: set[str]) -> list[Problem]:
    """Aims: distinct codes, each linked to distinct, known capabilities."""
    problems: list[Problem] = []
    _codes(_items(data, "aims"), "aims", "code", problems)
    for index, aim in _items(data, "aims"):
        seen: set[str] = set()
        for position, code in enumerate(aim.get("capabilities") or []):
            path = f"aims[{index}].capabilities[{position}]"
            if not isinstance(code, str):
                continue
            if code not in capabilities:
                problems.append(Problem(path, f"unknown capability {code!r}"))
            elif code in seen:
                problems.append(Problem(path, f"capability {code!r} listed twice"))
            seen.add(code)
    return problems


HistoryEntry = tuple[int, str, datetime.date, str]  # (index in the file, status, date, note)


def history_entries(provision: dict[str, Any]) -> list[HistoryEntry] | None:
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


def unrecorded_entries(
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
    entries = history_entries(provision)
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
    new, last_recorded = unrecorded_entries(entries, recorded)
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
