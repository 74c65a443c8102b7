"""The negotiators' pages. Function-based views: parse, call a selector, rule or service, render."""

from __future__ import annotations

import contextlib
import datetime
import functools
import io
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from provisions.api.filters import GapFilter, search_provisions
from provisions.charts import STATE_LABELS, STATES, coverage_bars, coverage_over_time, lapse_timeline
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
    User,
)
from provisions.permissions import (
    can_acknowledge_gaps,
    can_edit_provision,
    can_export,
    role_of,
    visible_markings,
)
from provisions.reports import coverage
from provisions.reports.gaps import (
    PDF_MAX_ROWS_ONLINE,
    GapReportFilters,
    ReportFilterInvalid,
    gap_report,
    hidden_references,
    render_csv,
    render_json,
    render_pdf,
    render_xlsx,
)
from provisions.rules import coverage_by_domain, evaluate_gaps, parse_as_of, provisions_at
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
from provisions.services.provisions import consultation_record, coverage_set, position_set, provision_update
from provisions.services.scans import gap_acknowledge
from provisions.services.status import StaleVersion, TransitionRefused, provision_transition

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


def _reader(request: HttpRequest) -> User:
    """Signed in (login_required) and holding a role: otherwise nothing here is theirs to see."""
    user = request.user
    if not isinstance(user, User) or role_of(user) is None:
        raise PermissionDenied("your account has no role yet: ask an administrator")
    return user


def _as_of(request: HttpRequest) -> tuple[datetime.date, datetime.date, bool]:
    """(as of, today, whether it is time travel). A bad date is ignored with a message."""
    today = timezone.localdate()
    raw = request.GET.get("as_of", "")
    if not raw:
        return today, today, False
    try:
        as_of = parse_as_of(raw)
    except ValueError as invalid:
        messages.error(request, f"{str(invalid)[0].upper()}{str(invalid)[1:]}: showing today.")
        return today, today, False
    return as_of, today, as_of != today


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    user = _reader(request)
    as_of, today, travelling = _as_of(request)
    if travelling:
        evaluation = evaluate_gaps(as_of=as_of)
        coverage = coverage_by_domain(evaluation=evaluation, visible_markings=visible_markings(user))
        gap_rows = evaluated_gap_rows(user, evaluation)
        severities, gap_total = gaps_by_severity(gap_rows), len(gap_rows)
        lapses = next_lapses(evaluation, as_of=as_of)
    else:  # today: what the scans recorded, in a fixed number of queries whatever the data
        coverage = coverage_by_domain_as_scanned(user)
        severities = open_gap_severities(user)
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
        "movements": recent_movements(user, as_of=as_of),
        "snapshots": snapshots,
        "over_time": coverage_over_time(snapshots),
        "can_export": can_export(user),
    }
    return render(request, "provisions/overview.html", context)


@login_required
def domain_detail(request: HttpRequest, code: str) -> HttpResponse:
    user = _reader(request)
    as_of, today, travelling = _as_of(request)
    domain = get_object_or_404(Domain.objects.select_related("pillar", "partnership"), code=code)
    capability_page = Paginator(domain.capabilities.order_by("lapses_on", "code"), ROWS_PER_PAGE).get_page(
        request.GET.get("cpage")
    )
    provision_page = Paginator(domain_provisions(domain, user), ROWS_PER_PAGE).get_page(
        request.GET.get("ppage")
    )
    capabilities, provisions = list(capability_page.object_list), list(provision_page.object_list)
    hidden = hidden_references(user)
    parties = list(domain.partnership.parties.all())
    if travelling:  # the whole domain's gaps then; its coverage serves this page's capabilities too
        evaluation = evaluate_gaps(
            as_of=as_of,
            capability_ids=list(domain.capabilities.values_list("pk", flat=True)),
            provision_ids=list(Provision.objects.filter(domain=domain).values_list("pk", flat=True)),
        )
        gap_rows = evaluated_gap_rows(user, evaluation)[:ROWS_PER_PAGE]
    else:
        evaluation = evaluate_gaps(
            as_of=as_of,
            capability_ids=[capability.pk for capability in capabilities],
            provision_ids=[provision.pk for provision in provisions],
        )
        in_domain_gaps = visible_gaps(user).filter(
            Q(capability__domain=domain) | Q(provision__domain=domain), resolved_at__isnull=True
        )
        gap_rows = persisted_gap_rows(
            user, in_domain_gaps.order_by("-opened_at")[:ROWS_PER_PAGE], today=today
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
                "covering": [
                    r for r in evaluation.coverage[capability.pk].covering_references if r not in hidden
                ],
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


def _provision_for(request: HttpRequest, reference: str) -> Provision:
    provision = (
        Provision.objects.visible_to(_reader(request))
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
    user = _reader(request)
    provision = _provision_for(request, reference)
    status = Status(provision.status)
    moves = [
        (target, Status(target).label)
        for target in Status.values
        if Status.move_refusal(provision.status, target, "a reason") is None
    ]
    # The form suggests the next step up the ladder, never a step back.
    rank = status.rank
    forward = [target for target, _ in moves if rank is not None and (Status(target).rank or -1) > rank]
    history = provision_history(provision, visible_markings=visible_markings(user))
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
        "can_edit": can_edit_provision(user, provision),
        "stance_choices": Stance.choices,
        "firmness_choices": Firmness.choices,
        "extent_choices": Extent.choices,
        "capability_choices": capabilities,
        "marking_choices": [
            (value, label) for value, label in Marking.choices if value in visible_markings(user)
        ],
        "outcome_choices": ConsultationOutcome.choices,
        "today": timezone.localdate(),
        "awaiting": provision.territories_awaiting_consultation,
        "history": history.status_changes,
        "audit_trail": history.audit[::-1],  # newest first
    }
    return render(request, "provisions/provision.html", context)


def _version(request: HttpRequest) -> int:
    """The version the form was loaded with: every page write must say it (else it could overwrite
    an edit it never saw)."""
    try:
        return int(request.POST.get("version", ""))
    except ValueError:
        raise ValidationError(
            {"version": "the form did not say which version of the provision it was based on; reload it"}
        ) from None


def _explain_stale(request: HttpRequest, provision: Provision, stale: StaleVersion) -> None:
    latest = provision.status_changes.order_by("-changed_on", "-id").select_related("changed_by").first()
    who = (
        f" Latest status change: {latest.to_status} by {latest.changed_by or 'the system'}." if latest else ""
    )
    messages.error(
        request,
        f"Not saved: {stale}. The page now shows the current version; check it and make your change "
        f"again.{who}",
    )


@contextlib.contextmanager
def _reporting(request: HttpRequest, provision: Provision) -> Iterator[None]:
    """Tell the editor, on the page, why a write was refused (nothing was saved)."""
    try:
        yield
    except StaleVersion as stale:
        _explain_stale(request, provision, stale)
    except TransitionRefused as refused:
        messages.error(request, f"Not moved: {refused.reason}.")
    except ValidationError as invalid:
        messages.error(request, "Not saved: " + "; ".join(invalid.messages))


ProvisionWrite = Callable[[HttpRequest, User, Provision], str]


def provision_form(write: ProvisionWrite) -> Callable[[HttpRequest, str], HttpResponse]:
    """A form posted on a provision's page: `write(request, user, provision)` makes the change and
    returns what to tell the editor. The provision is found as its page finds it (404 above the
    reader's clearance); a refusal (stale, lifecycle, invalid) is told on the page with nothing
    saved, a PermissionDenied answers 403; either way the editor lands back on the page."""

    @login_required
    @require_POST
    @functools.wraps(write)
    def view(request: HttpRequest, reference: str) -> HttpResponse:
        user = _reader(request)
        provision = _provision_for(request, reference)
        with _reporting(request, provision):
            messages.success(request, write(request, user, provision))
        return redirect("provisions:provision", reference=provision.reference)

    return view


@provision_form
def provision_transition_view(request: HttpRequest, user: User, provision: Provision) -> str:
    provision_transition(
        provision=provision,
        to=request.POST.get("to", ""),
        note=request.POST.get("note", ""),
        by=user,
        expected_version=_version(request),
        source="web",
    )
    return f"{provision.reference} is now {Status(provision.status).label.lower()}."


@provision_form
def provision_position_view(request: HttpRequest, user: User, provision: Provision) -> str:
    party = Party.objects.filter(
        partnership_id=provision.domain.partnership_id, code=request.POST.get("party", "")
    ).first()
    if party is None:
        raise ValidationError({"party": "choose a party"})
    position_set(
        provision=provision,
        party=party,
        stance=request.POST.get("stance", ""),
        firmness=request.POST.get("firmness", Firmness.PROVISIONAL),
        note=request.POST.get("note", ""),
        by=user,
        expected_version=_version(request),
        reason=request.POST.get("reason", ""),
    )
    return f"Position of {party.code} recorded."


def _posted_date(request: HttpRequest, name: str, label: str) -> datetime.date | None:
    """A date field of the posted form: None when left empty; a clear error when not a date."""
    raw = request.POST.get(name, "").strip()
    if not raw:
        return None
    try:
        value = parse_date(raw)
    except ValueError:
        value = None
    if value is None:
        raise ValidationError({name: f"{label} must be a date (YYYY-MM-DD), not {raw!r}"})
    return value


@provision_form
def provision_details_view(request: HttpRequest, user: User, provision: Provision) -> str:
    provision_update(
        provision=provision,
        by=user,
        expected_version=_version(request),
        reason=request.POST.get("reason", ""),
        title=request.POST.get("title", "").strip(),
        text=request.POST.get("text", "").strip(),
        target_date=_posted_date(request, "target_date", "the target date"),
        review_date=_posted_date(request, "review_date", "the review date"),
        marking=request.POST.get("marking", provision.marking),
    )
    return f"{provision.reference} saved."


@provision_form
def provision_consultation_view(request: HttpRequest, user: User, provision: Provision) -> str:
    territory = provision.territories.filter(code=request.POST.get("territory", "")).first()
    if territory is None:
        raise ValidationError({"territory": "choose a territory the provision extends to"})
    consulted_on = _posted_date(request, "consulted_on", "the consultation date")
    if consulted_on is None:
        raise ValidationError({"consulted_on": "give the date of the consultation"})
    consultation_record(
        provision=provision,
        territory=territory,
        consulted_on=consulted_on,
        outcome=request.POST.get("outcome", ""),
        note=request.POST.get("note", ""),
        by=user,
        expected_version=_version(request),
    )
    return f"Consultation of {territory.name} recorded."


@provision_form
def provision_coverage_view(request: HttpRequest, user: User, provision: Provision) -> str:
    code = request.POST.get("capability", "").strip()
    capability = Capability.objects.filter(code=code).first()
    if capability is None:
        raise ValidationError(
            {"capability": f"no capability has the code {code!r}" if code else "give a capability's code"}
        )
    extent = request.POST.get("extent") or None
    coverage_set(
        provision=provision,
        capability=capability,
        extent=extent,
        by=user,
        expected_version=_version(request),
        reason=request.POST.get("reason", ""),
    )
    return f"Coverage of {capability.code} {'updated' if extent else 'removed'}."


@login_required
def gaps(request: HttpRequest) -> HttpResponse:
    user = _reader(request)
    as_of, today, travelling = _as_of(request)
    chosen = {name: request.GET.get(name, "") for name in ("kind", "severity", "domain", "state")}
    if travelling:  # the rules at that date: a list, filtered here
        filters = GapFilter(request.GET, queryset=Gap.objects.none())
        rows: list[dict[str, Any]] = evaluated_gap_rows(user, evaluate_gaps(as_of=as_of))
        for name in ("kind", "severity", "domain"):
            if chosen[name]:
                rows = [row for row in rows if row[name] == chosen[name]]
        page = Paginator(rows, GAPS_PER_PAGE).get_page(request.GET.get("page"))
        page_rows = list(page.object_list)
    else:  # what the scans recorded: filtered and paginated in the database
        data = request.GET.copy()
        if not chosen["state"]:
            data["state"] = "open"
        filters = GapFilter(data, queryset=visible_gaps(user).order_by("-opened_at", "-id"))
        page = Paginator(filters.qs, GAPS_PER_PAGE).get_page(request.GET.get("page"))
        page_rows = persisted_gap_rows(user, page.object_list, today=today)
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
        "can_export": can_export(user),
        "can_acknowledge": can_acknowledge_gaps(user) and not travelling,
        "domains": Domain.objects.order_by("name").values_list("code", "name"),
    }
    return render(request, "provisions/gaps.html", context)


def _without_page(request: HttpRequest, name: str = "page") -> str:
    query = request.GET.copy()
    query.pop(name, None)
    return query.urlencode()


@login_required
@require_POST
def gap_acknowledge_view(request: HttpRequest, pk: int) -> HttpResponse:
    user = _reader(request)
    # A gap on a provision above the reader's clearance does not exist for them (404, not 403).
    gap = get_object_or_404(visible_gaps(user), pk=pk)
    try:
        gap_acknowledge(gap=gap, by=user, note=request.POST.get("note", ""))
        messages.success(request, "Gap acknowledged; it stays open until the rules clear it.")
    except ValueError as refused:
        messages.error(request, f"Not acknowledged: {refused}.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = reverse("provisions:gaps")  # only back to a page of this site, never elsewhere
    return redirect(back)


CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
GAP_RENDERERS: dict[str, Callable[..., None]] = {
    "csv": render_csv,
    "json": render_json,
    "xlsx": render_xlsx,
    "pdf": render_pdf,
}
COVERAGE_RENDERERS: dict[str, Callable[..., None]] = {
    "csv": coverage.render_csv,
    "json": coverage.render_json,
    "xlsx": coverage.render_xlsx,
    "pdf": coverage.render_pdf,
}


def _exporter(request: HttpRequest, fmt: str) -> User:
    """The reader, if they may export in that format (analysts and above)."""
    user = _reader(request)
    if not can_export(user):
        raise PermissionDenied("analysts and above export reports")
    if fmt not in CONTENT_TYPES:
        raise Http404("unknown format")
    return user


def _download(fmt: str, filename: str, write: Callable[[Any], None]) -> FileResponse:
    """A report written by `write` into a buffer of the format's kind, as an attachment."""
    binary = fmt in ("xlsx", "pdf")
    buffer: Any = io.BytesIO() if binary else io.StringIO()
    write(buffer)
    data = buffer.getvalue()
    return FileResponse(
        io.BytesIO(data if binary else data.encode("utf-8")),
        as_attachment=True,
        filename=filename,
        content_type=CONTENT_TYPES[fmt],
    )


@login_required
def gaps_export(request: HttpRequest, fmt: str) -> HttpResponseBase:
    """The gap report of exactly what the gaps page shows (its filters and date)."""
    user = _exporter(request, fmt)
    as_of, _, travelling = _as_of(request)
    filters = GapReportFilters(
        domain=request.GET.get("domain") or None,
        severity=request.GET.get("severity") or None,
        kind=request.GET.get("kind") or None,
    )
    try:
        report = gap_report(as_of=as_of if travelling else None, filters=filters, user=user)
    except ReportFilterInvalid as invalid:
        return HttpResponse(str(invalid), status=400, content_type="text/plain")
    if fmt == "pdf" and len(report.rows) > PDF_MAX_ROWS_ONLINE:
        messages.error(
            request,
            f"Not exported: a PDF lists at most {PDF_MAX_ROWS_ONLINE:,} gaps and these are "
            f"{len(report.rows):,}. Narrow the filters, or export CSV or Excel.",
        )
        return redirect(f"{reverse('provisions:gaps')}?{request.GET.urlencode()}")
    options = {"filters": filters} if fmt == "pdf" else {}
    return _download(
        fmt, f"gaps-{report.as_of:%Y-%m-%d}.{fmt}", lambda out: GAP_RENDERERS[fmt](report, out, **options)
    )


@login_required
def coverage_export(request: HttpRequest, fmt: str) -> HttpResponseBase:
    """The coverage report (one row per domain) at the overview's date."""
    user = _exporter(request, fmt)
    as_of, _, _ = _as_of(request)
    report = coverage.coverage_report(user=user, as_of=as_of)
    return _download(
        fmt, f"coverage-{report.as_of:%Y-%m-%d}.{fmt}", lambda out: COVERAGE_RENDERERS[fmt](report, out)
    )


@login_required
def search(request: HttpRequest) -> HttpResponse:
    user = _reader(request)
    text = request.GET.get("q", "").strip()
    provisions = capabilities = None
    if text:
        provisions = search_provisions(
            Provision.objects.visible_to(user).select_related("domain"), text
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
