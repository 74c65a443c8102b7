"""{% href %}: the URL {% url %} gives, worked out once per name."""

from __future__ import annotations

import pytest
from django.template import engines
from django.urls import NoReverseMatch, clear_script_prefix, reverse, set_script_prefix

from provisions.templatetags.tracker import href

# Codes as the code validator takes them, and what quoting must leave alone or escape.
CODES = ["PR-1", "le.data_2", "a", "9071113", "ünïcödé", "x y", "a?b#c", "50%", "a+b&c=d", "HrefArgument0"]
NAMES = ["provisions:provision", "provisions:capability", "provisions:domain", "provisions:transition"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("code", CODES)
def test_href_is_the_url_reverse_gives(name: str, code: str) -> None:
    assert href(name, code) == reverse(name, args=[code])


def test_href_without_arguments_and_with_an_id() -> None:
    assert href("provisions:glossary") == reverse("provisions:glossary") == "/glossary/"
    assert href("provisions:acknowledge", 42) == reverse("provisions:acknowledge", args=[42])
    assert href("provisions:acknowledge", 42) == "/gaps/42/acknowledge/"


def test_href_follows_the_script_prefix() -> None:
    try:
        set_script_prefix("/tracker/")
        assert href("provisions:provision", "PR-1") == "/tracker/provisions/PR-1/"
        assert href("provisions:provision", "PR-1") == reverse("provisions:provision", args=["PR-1"])
    finally:
        clear_script_prefix()
    assert href("provisions:provision", "PR-1") == "/provisions/PR-1/"


@pytest.mark.parametrize("code", ["a/b", ""])
def test_href_refuses_what_reverse_refuses(code: str) -> None:
    with pytest.raises(NoReverseMatch):
        href("provisions:provision", code)


def test_href_in_a_template_is_escaped_as_url_is() -> None:
    template = engines["django"].from_string(
        "{% load tracker %}{% href 'provisions:capability' code %}|{% url 'provisions:capability' code %}"
    )
    ours, theirs = template.render({"code": "a'b\"<c>"}).split("|")
    assert ours == theirs
    assert "<" not in ours
