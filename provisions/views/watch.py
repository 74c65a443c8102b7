"""The watch list's pages: follow or stop following a domain, provision or capability, and read
what happened to what one follows."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from provisions.models import Capability, Domain, Follow, Provision
from provisions.services.watch import Subject, follow_set, notifications_for, notifications_read
from provisions.views.common import page_reader

NOTIFICATIONS_PER_PAGE = 50


def _subject(request: HttpRequest) -> tuple[Subject, str]:
    """The subject a follow form names, as the reader may see it (404 otherwise), and its page."""
    reader = page_reader(request)
    kind, code = request.POST.get("type", ""), request.POST.get("code", "")
    subject: Subject | None = None
    if kind == "domain":
        subject = Domain.objects.filter(code=code).first()
        page = "provisions:domain"
    elif kind == "provision":
        subject = Provision.objects.visible_to(reader).filter(reference=code).first()
        page = "provisions:provision"
    elif kind == "capability":
        subject = Capability.objects.filter(code=code).first()
        page = "provisions:capability"
    if subject is None:
        raise Http404("Nothing of that kind and code to follow (or it is above your clearance).")
    return subject, reverse(page, args=[code])


@login_required
@require_POST
def follow(request: HttpRequest) -> HttpResponse:
    subject, page = _subject(request)
    following = request.POST.get("following") == "yes"
    follow_set(user=request.user, subject=subject, following=following)  # type: ignore[arg-type]
    name = getattr(subject, "reference", None) or getattr(subject, "code", "")
    messages.success(
        request,
        f"You follow {name}: what happens to it is listed under Notifications."
        if following
        else f"You no longer follow {name}.",
    )
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = page
    return HttpResponseRedirect(back)


@login_required
def notifications(request: HttpRequest) -> HttpResponse:
    reader = page_reader(request)
    page = Paginator(notifications_for(request.user, reader), NOTIFICATIONS_PER_PAGE).get_page(  # type: ignore[arg-type]
        request.GET.get("page")
    )
    follows = (
        Follow.objects.filter(user=request.user)  # type: ignore[misc]
        .select_related("domain", "provision", "capability")
        .order_by("created_at")
    )
    shown = [f for f in follows if f.provision is None or reader.sees(f.provision.marking)]
    return render(request, "provisions/notifications.html", {"page": page, "follows": shown})


@login_required
@require_POST
def notifications_mark_read(request: HttpRequest) -> HttpResponse:
    page_reader(request)
    count = notifications_read(request.user)  # type: ignore[arg-type]
    messages.success(request, f"{count} notification{'s' if count != 1 else ''} marked read.")
    return redirect("provisions:notifications")
