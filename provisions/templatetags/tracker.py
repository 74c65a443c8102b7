"""Template filters: the labels people read for the codes the rules and reports use
(provisions.labels is the one place they are decided), and `{% href %}` for links in table rows."""

from __future__ import annotations

import functools
from urllib.parse import quote

from django import template
from django.urls import URLResolver, get_resolver, get_script_prefix, get_urlconf, reverse
from django.utils.http import RFC3986_SUBDELIMS

from provisions.labels import days_words, label, lower_label

register = template.Library()


@register.filter(name="label")
def label_filter(value: str | None, vocabulary: str) -> str:
    """{{ provision.status|label:"status" }} → "Under negotiation"."""
    return label(vocabulary, value)


@register.filter(name="lower_label")
def lower_label_filter(value: str | None, vocabulary: str) -> str:
    """{{ status|lower_label:"status" }} → "under negotiation", for the middle of a sentence."""
    return lower_label(vocabulary, value)


@register.filter
def days_from(days: int | None) -> str:
    """11 → "in 11 days"; -1 → "1 day ago"; 0 → "today"."""
    return "" if days is None else days_words(days)


@register.filter(name="references")
def references_filter(value: str | None) -> str:
    """ "PR-1;PR-2" (the report's joined references) → "PR-1; PR-2", which wraps."""
    return "; ".join(value.split(";")) if value else ""


@register.filter(name="domain_name")
def domain_name_filter(code: str | None, names: dict[str, str]) -> str:
    """{{ row.domain|domain_name:domain_names }} → "Law enforcement" (the code if unknown)."""
    return names.get(code or "", code or "")


# {% href %}: a table of 50 rows links each row to its subject, the glossary and more, hundreds of
# {% url %} a page at some 75 µs each (a third of a domain page's rendering). The URL of a name is
# worked out once (for its URLconf and script prefix) with a marker for each argument (digits, which
# a code's and an id's converters both take); each row then only quotes its own. The same URL as
# {% url %} (tests/test_templatetags.py).
_MARKER = "9071113{}3111709"


@functools.lru_cache(maxsize=256)
def _url_parts(resolver: URLResolver, prefix: str, name: str, arguments: int) -> tuple[str, ...]:
    """The URL of `name` cut around its arguments: `arguments` + 1 parts."""
    url = reverse(name, args=[_MARKER.format(index) for index in range(arguments)])
    parts = []
    for index in range(arguments):
        before, url = url.split(_MARKER.format(index), 1)
        parts.append(before)
    return (*parts, url)


@register.simple_tag
def href(name: str, *arguments: object) -> str:
    """{% href 'provisions:provision' row.reference %} → "/provisions/PR-1/", as {% url %} gives it,
    for names whose arguments are codes or ids (a code never holds "/": a URL argument that does is
    reversed, and refused, as {% url %} would)."""
    texts = [str(argument) for argument in arguments]
    if any("/" in text or not text for text in texts):
        return reverse(name, args=texts)
    parts = _url_parts(get_resolver(get_urlconf()), get_script_prefix(), name, len(texts))
    url = parts[0]
    for text, after in zip(texts, parts[1:], strict=True):
        url += quote(text, safe=RFC3986_SUBDELIMS + "~:@") + after
    return url
