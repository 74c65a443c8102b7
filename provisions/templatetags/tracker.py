"""Template filters: the labels people read for the codes the rules and reports use."""

from __future__ import annotations

from django import template

from provisions.models import GapKind, Level

register = template.Library()

_KINDS = dict(GapKind.choices)
_LEVELS = dict(Level.choices)


@register.filter
def kind_label(value: str) -> str:
    """ "at_risk" → "At risk" (an unknown code is shown as it is)."""
    return str(_KINDS.get(value, value))


@register.filter
def level_label(value: str) -> str:
    """ "critical" → "Critical" (an unknown code is shown as it is)."""
    return str(_LEVELS.get(value, value))
