"""The forms posted on a provision's page (and the gaps page's acknowledgement): each calls one
service and lands the editor back on the page, told what happened."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from provisions.history import provision_history
from provisions.labels import lower_label
from provisions.models import (
    Capability,
    Firmness,
    Party,
    Provision,
    Status,
)
from provisions.permissions import Reader, can_edit_provision, ensure
from provisions.rules import Evaluation, GapMove, evaluate_gaps, gaps_moved
from provisions.rules.thresholds import Thresholds
from provisions.selectors import (
    visible_gaps,
)
from provisions.services.dated import discussion_record
from provisions.services.editing import StaleVersion
from provisions.services.provisions import consultation_record, coverage_set, position_set, provision_update
from provisions.services.scans import gap_acknowledge
from provisions.services.status import TransitionRefused, provision_transition
from provisions.views.common import page_reader
from provisions.views.pages import provision_for_page, provision_page
from provisions.views.provision_forms import FORM_BUTTONS, Refused, conflicting_changes


def _version(request: HttpRequest) -> int:
    """The version the form was loaded with: every page write must say it (else it could overwrite
    an edit it never saw)."""
    try:
        return int(request.POST.get("version", ""))
    except ValueError:
        raise ValidationError(
            {"version": "the form did not say which version of the provision it was based on; reload it"}
        ) from None


def _loaded_at(request: HttpRequest) -> datetime.datetime | None:
    """When the page with the form was rendered (None: the form did not say)."""
    try:
        loaded_at = datetime.datetime.fromisoformat(request.POST.get("loaded_at", ""))
    except ValueError:
        return None
    return loaded_at if loaded_at.tzinfo is not None else None


def _refusal(
    request: HttpRequest, form: str, problem: Exception, reader: Reader, provision: Provision
) -> Refused:
    """What to tell beside the fields of a refused form."""
    if isinstance(problem, StaleVersion):
        loaded_at = _loaded_at(request)
        audit = provision_history(provision, reader=reader).audit
        since = [entry for entry in audit if loaded_at is None or entry.at > loaded_at][-10:]
        message = (
            f"Not saved: {problem}. Your edit is kept below: check what changed, then press "
            f"\u201c{FORM_BUTTONS[form]}\u201d again to apply it to the current version."
        )
        return Refused.of(form, request.POST, {"": [message]}, stale=True, since=since[::-1])
    if isinstance(problem, TransitionRefused):
        field = "note" if "needs a reason" in problem.reason else "to"
        return Refused.of(form, request.POST, {field: [f"Not moved: {problem.reason}."]})
    if not isinstance(problem, ValidationError):
        raise problem
    if hasattr(problem, "error_dict"):
        return Refused.of(
            form, request.POST, {name: list(errors) for name, errors in problem.message_dict.items()}
        )
    return Refused.of(form, request.POST, {"": list(problem.messages)})


ProvisionWrite = Callable[[HttpRequest, Reader, Provision, int], str]


def provision_form(form: str) -> Callable[[ProvisionWrite], Callable[[HttpRequest, str], HttpResponse]]:
    """A form posted on a provision's page: `write(request, reader, provision, expected_version)`
    makes the change and returns what to tell the editor, who lands back on the page, told too what
    the write changed in the gaps. The provision is found as its page finds it (404 above the
    reader's clearance); PermissionDenied answers 403. A refusal (stale, lifecycle, invalid) saves
    nothing and answers the page itself, the form holding what was typed and the errors beside the
    fields. A write based on an older version goes through when nothing it touches changed since the
    page was loaded (a position and a status move do not refuse each other)."""

    def decorate(write: ProvisionWrite) -> Callable[[HttpRequest, str], HttpResponse]:
        @login_required
        @require_POST
        @functools.wraps(write)
        def view(request: HttpRequest, reference: str) -> HttpResponse:
            reader = page_reader(request)
            provision = provision_for_page(request, reference)
            # Who may not write is told so (403) before anything about what they sent.
            ensure(can_edit_provision(reader, provision), f"you may not edit {provision.reference}")
            try:
                expected = _version(request)
                if expected != provision.version:
                    # Every change counts here, those above the editor's clearance too (none is shown).
                    everything = provision_history(provision, reader=Reader.system()).audit
                    if not conflicting_changes(form, request.POST, everything, _loaded_at(request)):
                        expected = provision.version  # nothing this form touches moved since: apply it
                watched = _capabilities_around(request, provision)
                before = _gaps_around(provision, watched)
                said = write(request, reader, provision, expected)
            except (StaleVersion, TransitionRefused, ValidationError) as problem:
                fresh = provision_for_page(request, reference)  # as stored: nothing was saved
                # The page again (200, as a form with errors is), saying what was wrong.
                return provision_page(request, fresh, refused=_refusal(request, form, problem, reader, fresh))
            messages.success(request, said)
            messages.info(request, gap_moves_in_words(gaps_moved(before, _gaps_around(provision, watched))))
            return redirect("provisions:provision", reference=provision.reference)

        return view

    return decorate


def _capabilities_around(request: HttpRequest, provision: Provision) -> set[int]:
    """The capabilities a write on the provision may move the gaps of: those it covers, and the one
    a coverage form names (a link it adds)."""
    covered = {link.capability_id for link in provision.coverage.all()}
    code = request.POST.get("capability", "").strip()
    if code:  # only the coverage form names one: the other forms need no query here
        covered |= set(Capability.objects.filter(code=code).values_list("pk", flat=True))
    return covered


def _gaps_around(provision: Provision, capability_ids: set[int]) -> Evaluation:
    """Today's gaps of the provision and of those capabilities, by the rules (read-only)."""
    return evaluate_gaps(
        as_of=timezone.localdate(), provision_ids=[provision.pk], capability_ids=capability_ids
    )


def gap_moves_in_words(moves: list[GapMove]) -> str:
    """ "Gaps: resolved stalled on SP-LE-04; divergent on SP-LE-04 high → medium." """
    if not moves:
        return "Gaps: none opened, resolved or changed in severity."
    said = []
    for move in moves:
        finding = move.finding
        what = f"{lower_label('kind', finding.kind)} on {finding.subject_code}"
        if move.change == "opened":
            said.append(f"opened {what} ({lower_label('level', finding.severity)})")
        elif move.change == "resolved":
            said.append(f"resolved {what}")
        elif move.previous is not None:
            levels = (
                f"{lower_label('level', move.previous.severity)} → {lower_label('level', finding.severity)}"
            )
            said.append(f"{what} {levels}")
    return "Gaps: " + "; ".join(said) + "."


@provision_form("transition")
def provision_transition_view(
    request: HttpRequest, reader: Reader, provision: Provision, expected_version: int
) -> str:
    to, note = request.POST.get("to", ""), request.POST.get("note", "")
    opposing = " and ".join(party.name for party in provision.parties_opposing_at())
    secured_rank = Thresholds.current().secured_rank
    if opposing and to in Status.values and (Status(to).rank or -1) >= secured_rank:
        if request.POST.get("confirm_opposed") != "yes":
            wanted = lower_label("status", to)
            raise ValidationError(
                {"confirm_opposed": f"{opposing} opposes it: confirm it is {wanted} all the same"}
            )
        note = f"{note.strip()} (Moved although {opposing} opposes it: confirmed.)".strip()
    provision_transition(
        provision=provision, to=to, note=note, by=reader, expected_version=expected_version, source="web"
    )
    return f"{provision.reference} is now {Status(provision.status).label.lower()}."


@provision_form("position")
def provision_position_view(
    request: HttpRequest, reader: Reader, provision: Provision, expected_version: int
) -> str:
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
        by=reader,
        expected_version=expected_version,
        reason=request.POST.get("reason", ""),
        effective_on=_posted_date(request, "effective_on", "the day it takes effect"),
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


def _required_date(request: HttpRequest, name: str, label: str) -> datetime.date:
    """A date field the form cannot do without: a clear error when empty or not a date."""
    value = _posted_date(request, name, label)
    if value is None:
        raise ValidationError({name: f"give {label}"})
    return value


@provision_form("details")
def provision_details_view(
    request: HttpRequest, reader: Reader, provision: Provision, expected_version: int
) -> str:
    provision_update(
        provision=provision,
        by=reader,
        expected_version=expected_version,
        reason=request.POST.get("reason", ""),
        title=request.POST.get("title", "").strip(),
        text=request.POST.get("text", "").strip(),
        target_date=_posted_date(request, "target_date", "the target date"),
        review_date=_posted_date(request, "review_date", "the review date"),
        expires_on=_posted_date(request, "expires_on", "the expiry"),
        marking=request.POST.get("marking", provision.marking),
        effective_on=_posted_date(request, "effective_on", "the day it takes effect"),
    )
    return f"{provision.reference} saved."


@provision_form("consultation")
def provision_consultation_view(
    request: HttpRequest, reader: Reader, provision: Provision, expected_version: int
) -> str:
    territory = provision.territories.filter(code=request.POST.get("territory", "")).first()
    if territory is None:
        raise ValidationError({"territory": "choose a territory the provision extends to"})
    consultation_record(
        provision=provision,
        territory=territory,
        consulted_on=_required_date(request, "consulted_on", "the date of the consultation"),
        outcome=request.POST.get("outcome", ""),
        note=request.POST.get("note", ""),
        by=reader,
        expected_version=expected_version,
    )
    return f"Consultation of {territory.name} recorded."


@provision_form("coverage")
def provision_coverage_view(
    request: HttpRequest, reader: Reader, provision: Provision, expected_version: int
) -> str:
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
        by=reader,
        expected_version=expected_version,
        reason=request.POST.get("reason", ""),
        effective_on=_posted_date(request, "effective_on", "the day it takes effect"),
    )
    return f"Coverage of {capability.code} {'updated' if extent else 'removed'}."


@provision_form("discussion")
def provision_discussion_view(
    request: HttpRequest, reader: Reader, provision: Provision, expected_version: int
) -> str:
    on = _required_date(request, "on", "the day it was discussed")
    discussion_record(
        provision=provision,
        by=reader,
        on=on,
        note=request.POST.get("note", ""),
        expected_version=expected_version,
    )
    return f"Discussion of {provision.reference} on {on:%-d %B %Y} recorded."


@login_required
@require_POST
def gap_acknowledge_view(request: HttpRequest, pk: int) -> HttpResponse:
    reader = page_reader(request)
    # A gap on a provision above the reader's clearance does not exist for them (404, not 403).
    gap = get_object_or_404(visible_gaps(reader), pk=pk)
    try:
        gap_acknowledge(gap=gap, by=reader, note=request.POST.get("note", ""))
        messages.success(request, "Gap acknowledged; it stays open until the rules clear it.")
    except ValidationError as refused:
        messages.error(request, f"Not acknowledged: {'; '.join(refused.messages)}.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = reverse("provisions:gaps")  # only back to a page of this site, never elsewhere
    return HttpResponseRedirect(back)  # a URL, never a view name to reverse ("elsewhere")
