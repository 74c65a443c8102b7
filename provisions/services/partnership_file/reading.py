"""Reading and checking a partnership file: every problem listed with its path, nothing written."""

from __future__ import annotations

import datetime
import io
import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from django.conf import settings
from django.db import models
from django.utils import timezone

from provisions.models import (
    Capability,
    Domain,
    Milestone,
    MoveRefusal,
    Party,
    Pillar,
    Precedent,
    Status,
    StatusChange,
    Territory,
)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "data" / "partnership.schema.json"
IMPORT_NOTE = "Set by partnership import"

# Limits that keep reading a hostile file bounded in time and memory (each refusal is a Problem).
DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # settings.PARTNERSHIP_FILE_MAX_BYTES, when not set
# The schema's deepest value is 5 levels in (provisions[].history[].note); anything far deeper is
# not a partnership, and the parsers, the schema check and the import all recurse once per level.
MAX_NESTING = 16
# YAML aliases: the shipped file uses 23. A billion-laughs file needs only ~100 aliases of aliases,
# so what they expand to is bounded too (nodes added by aliases, over the whole file).
MAX_ALIASES = 100
MAX_ALIAS_EXPANSION = 100_000


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


class _Refused(Exception):
    """The file is refused before it is expanded: too deep, too many aliases, a recursive alias."""

    def __init__(self, message: str, mark: yaml.Mark | None = None) -> None:
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        super().__init__(f"{message}{where}")


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting while it composes: how deep the nodes nest (aliases included)
    and how many nodes aliases add, so a billion-laughs file, a recursive alias or a 100,000-deep
    file is refused before it is built, and nothing later recurses more than MAX_NESTING deep."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._expansion = 0
        self._sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, height), once composed

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)  # the anchored node (or "undefined alias")
            size = self._sizes.get(id(node))
            if size is None:  # still being composed: the alias is inside its own anchor
                raise _Refused("a recursive alias (an alias inside the node it names)", mark)
            self._aliases += 1
            self._expansion += size[0]
            if self._aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} YAML aliases", mark)
            if self._expansion > MAX_ALIAS_EXPANSION:
                raise _Refused(f"aliases that expand to more than {MAX_ALIAS_EXPANSION:,} values", mark)
            if self._depth + size[1] > MAX_NESTING:
                raise _Refused(f"nested more than {MAX_NESTING} levels deep (through an alias)", mark)
            return node
        if self._depth >= MAX_NESTING:
            raise _Refused(f"nested more than {MAX_NESTING} levels deep", self.peek_event().start_mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        sizes = [self._sizes[id(child)] for child in children]
        self._sizes[id(node)] = (
            1 + sum(nodes for nodes, _ in sizes),
            1 + max((height for _, height in sizes), default=0),
        )
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as error:  # 2021-02-30, an integer of 5,000 digits
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value ({error})", node.start_mark
            ) from error


_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]++")


def json_nesting_exceeds(text: str, limit: int) -> bool:
    """Whether JSON text nests arrays and objects more than `limit` deep, found without parsing it
    (Python's parser recurses once per level: a 100,000-deep text would be a RecursionError)."""
    depth = 0
    for bracket in _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _unstorable_problems(data: Any) -> tuple[list[Problem], bool]:
    """NUL characters and lone surrogates in any key or value, which no database stores (PostgreSQL
    refuses both); and whether the data nests more than MAX_NESTING deep (then that is the one
    problem: the other checks recurse once per level). Walked without recursion."""
    problems: list[Problem] = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), data)]
    while stack:
        where, value = stack.pop()
        if len(where) > MAX_NESTING:
            return [Problem(_path(where[:MAX_NESTING]), f"nested more than {MAX_NESTING} levels deep")], True
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and _UNSTORABLE.search(key):
                    problems.append(Problem(_path((*where, key)), f"its name {_unstorable(key)}"))
                stack.append(((*where, str(key)), item))
        elif isinstance(value, list):
            stack.extend(((*where, index), item) for index, item in enumerate(value))
        elif isinstance(value, str) and _UNSTORABLE.search(value):
            problems.append(Problem(_path(where), _unstorable(value)))
    return sorted(problems, key=lambda problem: problem.path), False


def _unstorable(text: str) -> str:
    if "\x00" in text:
        return "holds a NUL character, which cannot be stored"
    return "holds a lone surrogate (not valid Unicode), which cannot be stored"


def _file_text(path: Path) -> str:
    """The file's text, read no further than the size limit."""
    limit = int(getattr(settings, "PARTNERSHIP_FILE_MAX_BYTES", DEFAULT_MAX_BYTES))
    try:
        with path.open("rb") as stream:
            raw = stream.read(limit + 1)  # never more: a 60 MB file costs what 10 MB do, once
        if len(raw) > limit:
            raise PartnershipFileInvalid(
                [Problem(str(path), f"larger than {limit:,} bytes (PARTNERSHIP_FILE_MAX_BYTES): not read")]
            )
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PartnershipFileInvalid([Problem(str(path), f"cannot read the file ({error})")]) from error


def read_partnership_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or JSON partnership file (by extension; YAML otherwise), refusing what cannot be
    read in bounded time and memory: over the size limit, nested too deep, too many aliases."""
    path = Path(path)
    text = _file_text(path)
    try:
        if path.suffix.lower() == ".json":
            if json_nesting_exceeds(text, MAX_NESTING):
                raise _Refused(f"nested more than {MAX_NESTING} levels deep")
            data = json.loads(text)
        else:
            stream = io.StringIO(text)
            stream.name = str(path)  # so the parser's messages name the file
            loader = _BoundedLoader(stream)
            try:
                data = loader.get_single_data()
            finally:
                loader.dispose()
    except _Refused as refused:
        raise PartnershipFileInvalid([Problem(str(path), f"refused: {refused}")]) from refused
    except (yaml.YAMLError, ValueError) as error:  # json's errors, and an integer too long to read
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
    unstorable, too_deep = _unstorable_problems(data)
    if too_deep:
        return unstorable
    problems = [
        Problem(_path(error.absolute_path), error.message)
        for error in sorted(_schema_validator().iter_errors(data), key=_document_order)
    ]
    problems.extend(_length_problems(data))
    if unstorable:  # the checks below compare the file's text with the database's, which cannot hold it
        return problems + unstorable
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
            refusal = MoveRefusal(
                f"it would be dated today ({today}), before the latest change ({latest_date})",
                "dated_before_history",
            )
        if refusal is not None:
            problems.append(Problem(f"{prefix}.status", f"{current} → {status} refused: {refusal}"))
    return problems
