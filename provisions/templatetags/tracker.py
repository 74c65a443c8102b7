"""Template filters: the labels people read for the codes the rules and reports use
(provisions.labels is the one place they are decided)."""

from __future__ import annotations

from django import template

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
