"""The negotiators' and analysts' pages: parse, call a selector or rule, render."""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from provisions import glossary
from provisions.charts import STATE_LABELS, STATES, coverage_bars, coverage_over_time, lapse_timeline
from provisions.filters import GapFilter
from provisions.history import provision_history
from provisions.models import (
    AimVerdict,
    Capability,
    ConsultationOutcome,
    CoverageSnapshot,
    Domain,
    Extent,
    Firmness,
    Gap,
    Marking,
    Milestone,
    Party,
    Position,
    Provision,
    Stance,
    Status,
    fold,
)
from provisions.permissions import (
    Reader,
    can_acknowledge_gaps,
    can_edit_provision,
    can_export,
)
from provisions.redaction import Redaction
from provisions.reports.gaps import GapReportFilters, ReportFilterInvalid, gap_report
from provisions.rules import aims_at, coverage_by_domain, evaluate_gaps, provisions_at
from provisions.search import search as find
from provisions.selectors import (
    aims_as_scanned,
    coverage_by_domain_as_scanned,
    domain_provisions,
    evaluated_gap_rows,
    gaps_by_severity,
    next_lapses,
    next_lapses_as_scanned,
    open_gap_severities,
    persisted_gap_rows,
    recent_movements,
    visible_gaps,
)
from provisions.services.past import kept_for_past_day
from provisions.services.watch import is_following
from provisions.views.common import page_as_of, page_reader
from provisions.views.provision_forms import Refused, form_values, forms_context
from provisions.views.sorting import (
    CAPABILITY_COLUMNS,
    GAP_COLUMNS,
    GAP_REPORT_ORDER,
    PROVISION_COLUMNS,
    Sorting,
    gap_sorting,
    plain_headers,
    sorted_gap_rows,
    sorted_gaps,
)

GAPS_PER_PAGE = 50
ROWS_PER_PAGE = 50
RESOLVED_GAPS_SHOWN = 20  # on a provision's page, the latest resolved


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    reader = page_reader(request)
    as_of, today, travelling = page_as_of(request)
    if travelling:  # kept until a write reaches back to that day (a full evaluation otherwise)
        coverage, severities, gap_total, lapses, lapse_total, aims = kept_for_past_day(
            "overview", as_of, reader.markings, lambda: _overview_then(reader, as_of)
        )
    else:  # today: what the scans recorded, in a fixed number of queries whatever the data
        coverage = coverage_by_domain_as_scanned(reader)
        severities = open_gap_severities(reader)
        gap_total = sum(count for _, count in severities)
        lapses = next_lapses_as_scanned(today=today)
        lapse_total = Capability.objects.filter(lapses_on__gte=today).count()
        aims = aims_as_scanned()
    snapshots = list(CoverageSnapshot.objects.filter(as_of__lte=as_of))
    totals = Counter(
        {state: sum(row["capabilities_by_state"][state] for row in coverage) for state in STATES}
    )
    context = {
        "as_of": as_of,
        "travelling": travelling,
        "coverage": coverage,
        "bars": coverage_bars(coverage),
        "states": [(state, STATE_LABELS[state], totals[state]) for state in STATES],
        "capability_total": sum(totals.values()),
        "severities": severities,
        "gap_total": gap_total,
        "unscanned": sum(row.get("unscanned", 0) for row in coverage),
        "lapses": lapses,
        "timeline": lapse_timeline(lapses, as_of=as_of),
        "movements": recent_movements(reader, as_of=as_of),
        "snapshots": snapshots,
        "over_time": coverage_over_time(
            snapshots, milestones=list(Milestone.objects.order_by("date").values_list("date", "title"))
        ),
        "lapses_more": lapse_total - len(lapses),
        "can_export": can_export(reader),
        "briefing_from": as_of - datetime.timedelta(days=30),
        "aim_verdicts": [
            (verdict, sum(1 for aim in aims if aim.verdict == verdict)) for verdict in AimVerdict
        ],
    }
    return render(request, "provisions/overview.html", context)


def _overview_then(reader: Reader, as_of: datetime.date) -> tuple[Any, ...]:
    """The overview's figures as the record stood on a past day: coverage by domain, gaps by
    severity and their number, the next lapses and their number, the aims."""
    evaluation = evaluate_gaps(as_of=as_of)
    gap_rows = evaluated_gap_rows(reader, evaluation)
    return (
        coverage_by_domain(evaluation=evaluation, reader=reader),
        gaps_by_severity(gap_rows),
        len(gap_rows),
        next_lapses(evaluation, as_of=as_of),
        sum(1 for c in evaluation.capabilities.values() if c.lapses_on and c.lapses_on >= as_of),
        aims_at(evaluation),
    )


@login_required
def domain_detail(request: HttpRequest, code: str) -> HttpResponse:
    reader = page_reader(request)
    as_of, today, travelling = page_as_of(request)
    domain = get_object_or_404(Domain.objects.select_related("pillar", "partnership"), code=code)
    # Both tables sort by their headers: capabilities by lapse date, provisions by reference at first.
    capability_sorting = Sorting(request, CAPABILITY_COLUMNS, default="lapses", param="csort")
    provision_sorting = Sorting(request, PROVISION_COLUMNS, default="reference", param="psort")
    capabilities_sorted = capability_sorting.apply(domain.capabilities.all(), "code", "pk")
    capability_page = Paginator(capabilities_sorted, ROWS_PER_PAGE).get_page(request.GET.get("cpage"))
    provisions_sorted = provision_sorting.apply(domain_provisions(domain, reader), "reference", "pk")
    provision_page = Paginator(provisions_sorted, ROWS_PER_PAGE).get_page(request.GET.get("ppage"))
    capabilities, provisions = list(capability_page.object_list), list(provision_page.object_list)
    redaction = Redaction.for_reader(reader)
    parties = list(domain.partnership.parties.all())
    if travelling:  # the whole domain's gaps then; its coverage serves this page's capabilities too
        evaluation = evaluate_gaps(
            as_of=as_of,
            capability_ids=list(domain.capabilities.values_list("pk", flat=True)),
            provision_ids=list(Provision.objects.filter(domain=domain).values_list("pk", flat=True)),
        )
        gap_rows = evaluated_gap_rows(reader, evaluation)[:ROWS_PER_PAGE]
    else:
        evaluation = evaluate_gaps(
            as_of=as_of,
            capability_ids=[capability.pk for capability in capabilities],
            provision_ids=[provision.pk for provision in provisions],
        )
        in_domain_gaps = visible_gaps(reader).in_domains([domain]).filter(resolved_at__isnull=True)
        gap_rows = persisted_gap_rows(
            reader, in_domain_gaps.order_by(*GAP_REPORT_ORDER)[:ROWS_PER_PAGE], today=today
        )
    then = provisions_at(as_of, provision_ids=[provision.pk for provision in provisions])
    context = {
        "domain": domain,
        "as_of": as_of,
        "travelling": travelling,
        "capabilities": [
            {
                "capability": capability,
                "at": evaluation.capabilities[capability.pk],  # its lapse date, criticality, fallback then
                "state": evaluation.coverage[capability.pk].state,
                "covering": redaction.references(evaluation.coverage[capability.pk].covering_references),
                "days": _days_to(evaluation.capabilities[capability.pk].lapses_on, as_of),
            }
            for capability in capabilities
        ],
        "parties": parties,
        "provisions": [
            {
                "provision": provision,
                "then": then.get(provision.pk),
                "stances": _stances(provision, parties, as_of),
                "alignment": provision.alignment_at(as_of),
            }
            for provision in provisions
        ],
        "gaps": gap_rows,
        "gap_headers": plain_headers(GAP_COLUMNS),
        "capability_page": capability_page,
        "provision_page": provision_page,
        "capability_headers": capability_sorting.headers_by_key("cpage"),
        "provision_headers": provision_sorting.headers_by_key("ppage"),
        "cpage_query": _without_page(request, "cpage"),
        "ppage_query": _without_page(request, "ppage"),
        "following": is_following(request.user, domain),  # type: ignore[arg-type]
    }
    return render(request, "provisions/domain.html", context)


def _stances(provision: Provision, parties: list[Party], day: datetime.date) -> list[tuple[Party, Any]]:
    """Each party and its position on the day (None: none yet)."""
    held = provision.positions_at(day)
    return [(party, held.get(party.pk)) for party in parties]


def _days_to(day: datetime.date | None, as_of: datetime.date) -> int | None:
    return None if day is None else (day - as_of).days


def provision_for_page(request: HttpRequest, reference: str) -> Provision:
    provision = (
        Provision.objects.visible_to(page_reader(request))
        .with_related()
        .prefetch_related("consultations__territory", "changes", "status_changes", "discussions")
        .filter(reference=reference)
        .first()
    )
    if provision is None:
        raise Http404("No such provision (or it is above your clearance).")
    return provision


@login_required
def provision_detail(request: HttpRequest, reference: str) -> HttpResponse:
    """The provision today, where a negotiator of its domain works on it; or (`as_of`) as it stood
    that day, read-only: its title, text and expiry, status, positions and links then."""
    return provision_page(request, provision_for_page(request, reference))


def provision_page(
    request: HttpRequest, provision: Provision, *, refused: Refused | None = None
) -> HttpResponse:
    """The provision's page; with `refused`, a form sent back with what was typed and what was wrong
    (the page as of today: only today's page has forms)."""
    reader = page_reader(request)
    if refused is None:
        as_of, today, travelling = page_as_of(request)
    else:
        as_of = today = timezone.localdate()
        travelling = False
    history = provision_history(provision, reader=reader)
    shown = history.recorded_visibly  # nothing recorded while it was marked above the reader
    status_then = provision.status_at(as_of) if travelling else provision.status
    today_values = {"title": provision.title, "text": provision.text, "expires_on": provision.expires_on}
    changes = [change for change in provision.changes.all() if shown(change.recorded_at)]
    values = fold(changes, today_values, as_of) if travelling else today_values
    context: dict[str, Any] = {
        "provision": provision,
        "as_of": as_of,
        "today": today,
        "travelling": travelling,
        "existed": status_then is not None,
        "values": values,
        "stances": _stances(provision, list(provision.domain.partnership.parties.all()), as_of),
        "alignment": provision.alignment_at(as_of),
        "positions": [
            p
            for p in sorted(provision.positions.all(), key=Position.order_key)
            if (p.taken_on is None or p.taken_on <= as_of) and shown(p.updated_at)
        ],
        "links": [
            (link, link.counts_on(as_of))
            for link in provision.coverage.all()
            if link.valid_from is None or link.valid_from <= as_of
        ],
        "discussions": [d for d in provision.discussions.all() if d.on <= as_of and shown(d.recorded_at)],
        "can_edit": can_edit_provision(reader, provision) and not travelling,
        "stakeholders": [territory for territory in provision.territories.all() if territory.is_stakeholder],
        "awaiting": provision.territories_awaiting_consultation,
        "history": [change for change in history.status_changes if change.changed_on <= as_of],
        "audit_trail": history.audit[::-1],  # newest first
        "gap_headers": plain_headers(GAP_COLUMNS),
        "following": is_following(request.user, provision),  # type: ignore[arg-type]
        **_provision_gaps(provision, reader, as_of=as_of, today=today, travelling=travelling),
    }
    if status_then is not None:
        context |= _status_context(Status(status_then))
    if context["can_edit"]:
        context |= _form_choices(provision, reader)
        starting = form_values(
            provision,
            today=today,
            party_code=request.GET.get("party", ""),
            suggested_move=context.get("suggested_move"),
            first_stakeholder=context["awaiting"][0].code if context["awaiting"] else "",
        )
        context |= forms_context(starting, refused)
        context["loaded_at"] = timezone.now().isoformat()  # what changed since then may conflict
        context["opposing"] = [party.name for party in provision.parties_opposing_at(today)]
    return render(request, "provisions/provision.html", context)


def _provision_gaps(
    provision: Provision, reader: Reader, *, as_of: datetime.date, today: datetime.date, travelling: bool
) -> dict[str, Any]:
    """The gaps of the provision and of the capabilities it covers: open ones in the report order,
    then (today) the resolved ones, latest first; as of a day, what the rules found then."""
    covered = {
        link.capability_id for link in provision.coverage.all() if link.counts_on(as_of) or not travelling
    }
    if travelling:
        evaluation = evaluate_gaps(as_of=as_of, provision_ids=[provision.pk], capability_ids=covered)
        return {"open_gaps": evaluated_gap_rows(reader, evaluation), "resolved_gaps": []}
    around = visible_gaps(reader).filter(Q(provision=provision) | Q(capability_id__in=covered))
    resolved = around.filter(resolved_at__isnull=False).order_by("-resolved_at", "-id")[:RESOLVED_GAPS_SHOWN]
    return {
        "open_gaps": persisted_gap_rows(
            reader, around.filter(resolved_at__isnull=True).order_by(*GAP_REPORT_ORDER), today=today
        ),
        "resolved_gaps": persisted_gap_rows(reader, resolved, today=today),
        "resolved_limit": RESOLVED_GAPS_SHOWN,
    }


def _status_context(status: Status) -> dict[str, Any]:
    moves = [
        (target, Status(target).label)
        for target in Status.values
        if Status.move_refusal(status.value, target, "a reason") is None
    ]
    # The form suggests the next step up the ladder, never a step back.
    rank = status.rank
    forward = [target for target, _ in moves if rank is not None and (Status(target).rank or -1) > rank]
    return {
        "status": status,
        "meaning": glossary.STATUS[status],
        "moves": moves,
        "suggested_move": forward[0] if forward else None,
    }


def _form_choices(provision: Provision, reader: Reader) -> dict[str, Any]:
    # Suggestions for the coverage form: the provision's own domain (any code may be typed).
    capabilities = (
        Capability.objects.filter(domain_id=provision.domain_id).order_by("code").values_list("code", "name")
    )
    return {
        "stance_choices": Stance.choices,
        "firmness_choices": Firmness.choices,
        "extent_choices": Extent.choices,
        "capability_choices": capabilities,
        "marking_choices": [(value, label) for value, label in Marking.choices if reader.sees(value)],
        "outcome_choices": ConsultationOutcome.choices,
    }


@login_required
def gaps(request: HttpRequest) -> HttpResponse:
    reader = page_reader(request)
    as_of, today, travelling = page_as_of(request)
    sorting = gap_sorting(request)
    domain_names = dict(Domain.objects.order_by("name").values_list("code", "name"))
    if travelling:  # the rules at that date, filtered as the API and the exports filter them
        filters = GapFilter(request.GET, queryset=Gap.objects.none())
        rows: list[dict[str, Any]] = []
        try:
            rows = gap_report(
                reader=reader, as_of=as_of, filters=GapReportFilters.from_query(request.GET)
            ).rows
        except ReportFilterInvalid as invalid:
            messages.error(request, f"Not filtered: {invalid}.")
        _name_domains(rows, domain_names)
        page = Paginator(sorted_gap_rows(sorting, rows), GAPS_PER_PAGE).get_page(request.GET.get("page"))
        page_rows = list(page.object_list)
    else:  # what the scans recorded: filtered, sorted and paginated in the database
        data = request.GET.copy()
        if not data.get("state"):
            data["state"] = "open"
        filters = GapFilter(data, queryset=sorted_gaps(sorting, visible_gaps(reader)))
        page = Paginator(filters.qs, GAPS_PER_PAGE).get_page(request.GET.get("page"))
        page_rows = persisted_gap_rows(reader, page.object_list, today=today)
        _name_domains(page_rows, domain_names)
    query = request.GET.copy()
    for name in ("state", "page", "sort"):
        query.pop(name, None)
    context = {
        "rows": page_rows,
        "page": page,
        "page_query": _without_page(request),
        "as_of": as_of,
        "travelling": travelling,
        "form": filters.form,
        "export_query": query.urlencode(),
        "can_export": can_export(reader),
        "online_max_pdf_rows": settings.EXPORT_ONLINE_MAX_PDF_ROWS,
        "can_acknowledge": can_acknowledge_gaps(reader) and not travelling,
        "domains": domain_names.items(),
        "chosen_domains": request.GET.getlist("domain"),
        "gap_headers": sorting.headers(),
        "sortable": True,
    }
    return render(request, "provisions/gaps.html", context)


def _name_domains(rows: list[dict[str, Any]], names: dict[str, str]) -> None:
    """Give report rows their domain's name (the column shows, and sorts by, names, not codes)."""
    for row in rows:
        row["domain_name"] = names.get(row["domain"], row["domain"])


def _without_page(request: HttpRequest, name: str = "page") -> str:
    query = request.GET.copy()
    query.pop(name, None)
    return query.urlencode()


@login_required
def search(request: HttpRequest) -> HttpResponse:
    reader = page_reader(request)
    text = request.GET.get("q", "").strip()
    results = find(text, reader=reader) if text else None
    return render(request, "provisions/search.html", {"q": text, "results": results})


@login_required
def glossary_page(request: HttpRequest) -> HttpResponse:
    page_reader(request)
    return render(request, "provisions/glossary.html", {"sections": glossary.glossary()})
