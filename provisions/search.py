"""Search as a person means it, on PostgreSQL and SQLite alike.

Every word typed must begin a word of the record, accents and case aside: "Prum" finds "Prüm",
"SIS" finds "SIS II" but not "assistance", "extradit" finds "extradition", "arrest warrant" needs
both words. A match in a code, name or title ranks above one in a description, text or fallback;
a whole word above a word's beginning. Provisions that cover a capability found are found too,
after those that match themselves.

The database narrows the rows to those holding every word somewhere (accent-folded, lower case:
`UNACCENT`, PostgreSQL's extension or a function registered on each SQLite connection); Python
keeps those where every word begins a word, and ranks them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import CharField, F, Func, QuerySet, TextField, Value
from django.db.models.functions import Coalesce, Concat, Lower

from provisions.models import Aim, Capability, Provision
from provisions.permissions import Reader

# At most this many rows of each kind are read and ranked; at most RESULTS are shown.
CANDIDATES = 500
RESULTS = 50
_WORD = re.compile(r"[^\W_]+")


def strip_accents(text: str) -> str:
    """ "Prüm" → "Prum" (what PostgreSQL's unaccent does; registered on SQLite connections)."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _sqlite_unaccent(text: str | None) -> str | None:
    return None if text is None else strip_accents(text)


def words(text: str) -> list[str]:
    return _WORD.findall(strip_accents(text).lower())


class Unaccent(Func):
    function = "UNACCENT"
    output_field = TextField()


def register_on_sqlite(sender: Any, connection: Any, **kwargs: Any) -> None:
    """`connection_created`: give SQLite the UNACCENT function PostgreSQL's extension provides."""
    if connection.vendor == "sqlite":
        connection.connection.create_function("UNACCENT", 1, _sqlite_unaccent, deterministic=True)


@dataclass(frozen=True)
class Found:
    item: Any
    score: int
    via: str = ""  # for a provision found through a capability it covers: that capability's code


@dataclass
class SearchResults:
    capabilities: list[Found] = field(default_factory=list)
    provisions: list[Found] = field(default_factory=list)
    aims: list[Found] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.capabilities or self.provisions or self.aims)


def _narrowed(queryset: QuerySet[Any], fields: Sequence[str], terms: list[str]) -> QuerySet[Any]:
    """The rows holding every term somewhere in the fields (accent-folded, lower case)."""
    parts: list[Any] = []
    for name in fields:
        parts += [Coalesce(F(name), Value(""), output_field=TextField()), Value(" ")]
    haystack = Lower(Unaccent(Concat(*parts, output_field=TextField())), output_field=CharField())
    narrowed = queryset.annotate(search_haystack=haystack)
    for term in terms:
        narrowed = narrowed.filter(search_haystack__contains=term)
    return narrowed[:CANDIDATES]


def _score(item: Any, heading: Sequence[str], body: Sequence[str], terms: list[str]) -> int | None:
    """How well the item matches: None unless every term begins a word of it."""
    head = words(" ".join(str(getattr(item, name) or "") for name in heading))
    rest = words(" ".join(str(getattr(item, name) or "") for name in body))
    score = 0
    for term in terms:
        if term in head:
            score += 4
        elif any(word.startswith(term) for word in head):
            score += 3
        elif term in rest:
            score += 2
        elif any(word.startswith(term) for word in rest):
            score += 1
        else:
            return None
    return score


def _ranked(
    queryset: QuerySet[Any], heading: Sequence[str], body: Sequence[str], terms: list[str], key: str
) -> list[Found]:
    found = []
    for item in _narrowed(queryset, [*heading, *body], terms):
        score = _score(item, heading, body, terms)
        if score is not None:
            found.append(Found(item, score))
    return sorted(found, key=lambda hit: (-hit.score, getattr(hit.item, key)))[:RESULTS]


def search(text: str, *, reader: Reader) -> SearchResults:
    """Capabilities, provisions (those the reader may see) and aims that match every word typed."""
    terms = list(dict.fromkeys(words(text)))
    if not terms:
        return SearchResults()
    capabilities = _ranked(
        Capability.objects.select_related("domain"),
        ("code", "name"),
        ("description", "fallback"),
        terms,
        "code",
    )
    visible = Provision.objects.visible_to(reader).select_related("domain")
    provisions = _ranked(visible, ("reference", "title"), ("text",), terms, "reference")
    found_capabilities = [hit.item for hit in capabilities]
    provisions += _through(visible, "coverage__capability", found_capabilities, provisions, "reference")
    aims = _ranked(Aim.objects.all(), ("code", "title"), ("text",), terms, "code")
    aims += _through(Aim.objects.all(), "capabilities", found_capabilities, aims, "code")
    return SearchResults(capabilities, provisions[:RESULTS], aims[:RESULTS])


def _through(
    queryset: QuerySet[Any], capability: str, capabilities: list[Capability], found: list[Found], key: str
) -> list[Found]:
    """The rows linked to a capability found (provisions covering it, aims naming it), after those
    found themselves, each once, with the capability that brought it."""
    seen = {hit.item.pk for hit in found}
    linked = (
        queryset.filter(**{f"{capability}__in": capabilities})
        .exclude(pk__in=seen)
        .annotate(via=F(f"{capability}__code"))
        .order_by(key, f"{capability}__code")[:RESULTS]
    )
    more = []
    for item in linked:
        if item.pk not in seen:  # linked to two capabilities found: listed once, by the first
            seen.add(item.pk)
            more.append(Found(item, 0, via=item.via))
    return more
