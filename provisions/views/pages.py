"""The negotiators' and analysts' pages: parse, call a selector or rule, render."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from provisions.charts import STATE_LABELS, STATES, coverage_bars, coverage_over_time, lapse_timeline
from provisions.filters import GapFilter, search_provisions
from provisions.history import provision_history
from provisions.models import (
    Capability,
    ConsultationOutcome,
    CoverageSnapshot,
    Domain,
    Extent,
    Firmness,
    Gap,
    Marking,
    Party,
    Provision,
    Stance,
    Status,
)
from provisions.permissions import (
    can_acknowledge_gaps,
    can_edit_provision,
    can_export,
)
from provisions.redaction import Redaction
from provisions.reports.gaps import PDF_MAX_ROWS_ONLINE, GapReportFilters, ReportFilterInvalid, gap_report
from provisions.rules import coverage_by_domain, evaluate_gaps, provisions_at
from provisions.selectors import (
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
from provisions.views.common import page_as_of, page_reader

GAPS_PER_PAGE = 50
ROWS_PER_PAGE = 50

STATUS_MEANINGS = {
    Status.IDENTIFIED: "Need identified, no text yet.",
    Status.SCOPING: "Exploratory talks.",
    Status.PROPOSED: "Text tabled by a party (white text).",
    Status.UNDER_NEGOTIATION: "Both sides working on text.",
    Status.AGREED_IN_PRINCIPLE: "Policy agreed, drafting pending (yellow text).",
    Status.AGREED: "Text agreed at negotiator level (green text).",
    Status.SIGNED: "Signed.",
    Status.IN_FORCE: "Applied, provisionally or in full.",
    Status.SUSPENDED: "Paused; may resume.",
    Status.WITHDRAWN: "Dropped.",
}


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    reader = page_reader(request)
    as_of, today, travelling = page_as_of(request)
    if travelling:
        evaluation = evaluate_gaps(as_of=as_of)
        coverage = coverage_by_domain(evaluation=evaluation, reader=reader)
        gap_rows = evaluated_gap_rows(reader, evaluation)
        severities, gap_total = gaps_by_severity(gap_rows), len(gap_rows)
        lapses = next_lapses(evaluation, as_of=as_of)
    else:  # today: what the scans recorded, in a fixed number of queries whatever the data
        coverage = coverage_by_domain_as_scanned(reader)
        severities = open_gap_severities(reader)
        gap_total = sum(count for _, count in severities)
        lapses = next_lapses_as_scanned(today=today)
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
        "over_time": coverage_over_time(snapshots),
        "can_export": can_export(reader),
    }
    return render(request, "provisions/overview.html", context)


@login_required
def domain_detail(request: HttpRequest, code: str) -> HttpResponse:
    reader = page_reader(request)
    as_of, today, travelling = page_as_of(request)
    domain = get_object_or_404(Domain.objects.select_related("pillar", "partnership"), code=code)
    capability_page = Paginator(domain.capabilities.order_by("lapses_on", "code"), ROWS_PER_PAGE).get_page(
        request.GET.get("cpage")
    )
    provision_page = Paginator(domain_provisions(domain, reader), ROWS_PER_PAGE).get_page(
        request.GET.get("ppage")
    )
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
        in_domain_gaps = visible_gaps(reader).filter(
            Q(capability__domain=domain) | Q(provision__domain=domain), resolved_at__isnull=True
        )
        gap_rows = persisted_gap_rows(
            reader, in_domain_gaps.order_by("-opened_at")[:ROWS_PER_PAGE], today=today
        )
    then = provisions_at(as_of, provision_ids=[provision.pk for provision in provisions])
    context = {
        "domain": domain,
        "as_of": as_of,
        "travelling": travelling,
        "capabilities": [
            {
                "capability": capability,
                "state": evaluation.coverage[capability.pk].state,
                "covering": redaction.references(evaluation.coverage[capability.pk].covering_references),
                "days": capability.days_to_lapse(as_of),
            }
            for capability in capabilities
        ],
        "parties": parties,
        "provisions": [
            {
                "provision": provision,
                "then": then.get(provision.pk),
                "stances": _stances(provision, parties),
            }
            for provision in provisions
        ],
        "gaps": gap_rows,
        "capability_page": capability_page,
        "provision_page": provision_page,
        "cpage_query": _without_page(request, "cpage"),
        "ppage_query": _without_page(request, "ppage"),
    }
    return render(request, "provisions/domain.html", context)


def _stances(provision: Provision, parties: list[Party]) -> list[tuple[Party, Any]]:
    by_party = {position.party_id: position for position in provision.positions.all()}
    return [(party, by_party.get(party.pk)) for party in parties]


def provision_for_page(request: HttpRequest, reference: str) -> Provision:
    provision = (
        Provision.objects.visible_to(page_reader(request))
        .with_related()
        .prefetch_related("consultations__territory")
        .filter(reference=reference)
        .first()
    )
    if provision is None:
        raise Http404("No such provision (or it is above your clearance).")
    return provision


@login_required
def provision_detail(request: HttpRequest, reference: str) -> HttpResponse:
    reader = page_reader(request)
    provision = provision_for_page(request, reference)
    status = Status(provision.status)
    moves = [
        (target, Status(target).label)
        for target in Status.values
        if Status.move_refusal(provision.status, target, "a reason") is None
    ]
    # The form suggests the next step up the ladder, never a step back.
    rank = status.rank
    forward = [target for target, _ in moves if rank is not None and (Status(target).rank or -1) > rank]
    history = provision_history(provision, reader=reader)
    # Suggestions for the coverage form: the provision's own domain (any code may be typed).
    capabilities = (
        Capability.objects.filter(domain_id=provision.domain_id).order_by("code").values_list("code", "name")
    )
    context = {
        "provision": provision,
        "status": status,
        "meaning": STATUS_MEANINGS[status],
        "moves": moves,
        "suggested_move": forward[0] if forward else None,
        "stakeholders": [territory for territory in provision.territories.all() if territory.is_stakeholder],
        "stances": _stances(provision, list(provision.domain.partnership.parties.all())),
        "can_edit": can_edit_provision(reader, provision),
        "stance_choices": Stance.choices,
        "firmness_choices": Firmness.choices,
        "extent_choices": Extent.choices,
        "capability_choices": capabilities,
        "marking_choices": [(value, label) for value, label in Marking.choices if reader.sees(value)],
        "outcome_choices": ConsultationOutcome.choices,
        "today": timezone.localdate(),
        "awaiting": provision.territories_awaiting_consultation,
        "history": history.status_changes,
        "audit_trail": history.audit[::-1],  # newest first
    }
    return render(request, "provisions/provision.html", context)


@login_required
def gaps(request: HttpRequest) -> HttpResponse:
    reader = page_reader(request)
    as_of, today, travelling = page_as_of(request)
    chosen = {name: request.GET.get(name, "") for name in ("kind", "severity", "domain", "state")}
    if travelling:  # the rules at that date, filtered as the API and the exports filter them
        filters = GapFilter(request.GET, queryset=Gap.objects.none())
        wanted = GapReportFilters(**{name: chosen[name] or None for name in ("kind", "severity", "domain")})
        rows: list[dict[str, Any]] = []
        try:
            rows = gap_report(reader=reader, as_of=as_of, filters=wanted).rows
        except ReportFilterInvalid as invalid:
            messages.error(request, f"Not filtered: {invalid}.")
        page = Paginator(rows, GAPS_PER_PAGE).get_page(request.GET.get("page"))
        page_rows = list(page.object_list)
    else:  # what the scans recorded: filtered and paginated in the database
        data = request.GET.copy()
        if not chosen["state"]:
            data["state"] = "open"
        filters = GapFilter(data, queryset=visible_gaps(reader).order_by("-opened_at", "-id"))
        page = Paginator(filters.qs, GAPS_PER_PAGE).get_page(request.GET.get("page"))
        page_rows = persisted_gap_rows(reader, page.object_list, today=today)
    query = request.GET.copy()
    query.pop("state", None)
    query.pop("page", None)
    context = {
        "rows": page_rows,
        "page": page,
        "page_query": _without_page(request),
        "as_of": as_of,
        "travelling": travelling,
        "form": filters.form,
        "export_query": query.urlencode(),
        "pdf_max_rows": PDF_MAX_ROWS_ONLINE,
        "can_export": can_export(reader),
        "can_acknowledge": can_acknowledge_gaps(reader) and not travelling,
        "domains": Domain.objects.order_by("name").values_list("code", "name"),
    }
    return render(request, "provisions/gaps.html", context)


def _without_page(request: HttpRequest, name: str = "page") -> str:
    query = request.GET.copy()
    query.pop(name, None)
    return query.urlencode()


@login_required
def search(request: HttpRequest) -> HttpResponse:
    reader = page_reader(request)
    text = request.GET.get("q", "").strip()
    provisions = capabilities = None
    if text:
        provisions = search_provisions(
            Provision.objects.visible_to(reader).select_related("domain"), text
        ).order_by("reference")[:50]
        capabilities = (
            Capability.objects.filter(
                Q(code__icontains=text) | Q(name__icontains=text) | Q(description__icontains=text)
            )
            .select_related("domain")
            .order_by("code")[:50]
        )
    return render(
        request, "provisions/search.html", {"q": text, "provisions": provisions, "capabilities": capabilities}
    )
