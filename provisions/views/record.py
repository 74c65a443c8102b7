"""Pages of the record over time: a capability's values, coverage and gap as they stood, the aims
scorecard, and what changed between two dates (the round briefing)."""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from provisions.charts import state_timeline
from provisions.models import Capability, Coverage
from provisions.permissions import can_export
from provisions.redaction import Redaction, finding_rows
from provisions.reports.aims import aims_report
from provisions.reports.changes import changes_report
from provisions.rules import PeriodInvalid, coverage_states, evaluate_gaps, parse_period
from provisions.services.watch import is_following
from provisions.views.common import page_as_of, page_reader

# The timeline evaluates the capability at each day its coverage may have changed: at most this many.
TIMELINE_MAX_DAYS = 40
# The changes page lists at most this many moved gaps and events; the exports hold them all.
CHANGES_PAGE_ROWS = 200


@login_required
def capability_detail(request: HttpRequest, code: str) -> HttpResponse:
    """A capability as it stood at the date: its lapse date, criticality and fallback then, what
    covered it, its gap, its dated changes, and its coverage state over time."""
    reader = page_reader(request)
    as_of, today, travelling = page_as_of(request)
    capability = get_object_or_404(
        Capability.objects.select_related("domain").prefetch_related("changes"), code=code
    )
    evaluation = evaluate_gaps(as_of=as_of, capability_ids=[capability.pk])
    redaction = Redaction.for_reader(reader)
    coverage = evaluation.coverage[capability.pk]
    links = (
        Coverage.objects.filter(capability=capability, provision__marking__in=reader.markings)
        .select_related("provision")
        .order_by("provision__reference", "valid_from", "id")
    )
    context = {
        "capability": capability,
        "at": evaluation.capabilities[capability.pk],
        "as_of": as_of,
        "travelling": travelling,
        "state": coverage.state,
        "covering": [
            (provision.reference, provision.title)  # its title as it stood
            for provision in coverage.covering
            if redaction.shows(provision.reference)
        ],
        "links": [(link, link.counts_on(as_of)) for link in links],
        "gaps": finding_rows(evaluation.findings, redaction),
        "changes": [change for change in capability.changes.all() if change.at is not None],
        "timeline": state_timeline(
            _states_over_time(capability, end=max(as_of, today)), end=max(as_of, today)
        ),
        "following": is_following(request.user, capability),  # type: ignore[arg-type]
        "hidden_links": Coverage.objects.filter(capability=capability)
        .exclude(provision__marking__in=reader.markings)
        .exists(),
    }
    return render(request, "provisions/capability.html", context)


def _states_over_time(capability: Capability, *, end: datetime.date) -> list[tuple[datetime.date, str]]:
    """(day, coverage state from that day) at each day its coverage may have changed, up to `end`:
    at most TIMELINE_MAX_DAYS days, the latest (the rules count every provision, whoever reads)."""
    states: list[tuple[datetime.date, str]] = []
    for day, state in coverage_states(capability.pk, until=end, latest=TIMELINE_MAX_DAYS):
        if not states or states[-1][1] != state.value:
            states.append((day, state.value))
    return states


@login_required
def aims(request: HttpRequest) -> HttpResponse:
    """The aims scorecard: each aim's verdict and its capabilities by coverage state, at any date."""
    reader = page_reader(request)
    as_of, _, travelling = page_as_of(request)
    report = aims_report(as_of=as_of)
    context = {"report": report, "as_of": as_of, "travelling": travelling, "can_export": can_export(reader)}
    return render(request, "provisions/aims.html", context)


@login_required
def changes(request: HttpRequest) -> HttpResponse:
    """What moved between two dates (by default, the last 30 days): the negotiators' round briefing."""
    reader = page_reader(request)
    today = timezone.localdate()
    try:
        start, end = parse_period(request.GET.get("from"), request.GET.get("to"), today=today)
    except PeriodInvalid as invalid:
        messages.error(request, f"Not compared: {invalid.field}: {invalid}. Showing the last 30 days.")
        start, end = parse_period(None, None, today=today)
    report = changes_report(start=start, end=end, reader=reader)
    context: dict[str, Any] = {
        "report": report,
        "rows": report.rows[:CHANGES_PAGE_ROWS],
        "events": report.events[-CHANGES_PAGE_ROWS:],  # the latest
        "page_rows": CHANGES_PAGE_ROWS,
        "start": start,
        "end": end,
        "counts": {
            change: sum(1 for row in report.rows if row["change"] == change)
            for change in ("opened", "escalated", "eased", "resolved")
        },
        "can_export": can_export(reader),
        "query": f"from={start:%Y-%m-%d}&to={end:%Y-%m-%d}",
    }
    return render(request, "provisions/changes.html", context)
