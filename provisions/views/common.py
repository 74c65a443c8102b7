"""What every page shares: who is reading, and the date they read the partnership at."""

from __future__ import annotations

import datetime

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils import timezone

from provisions.permissions import Reader, reader_of
from provisions.rules import parse_as_of


def page_reader(request: HttpRequest) -> Reader:
    """Signed in (login_required) and holding a role: otherwise nothing here is theirs to see."""
    reader = reader_of(request)
    if reader.role is None:
        raise PermissionDenied("your account has no role yet: ask an administrator")
    return reader


def page_as_of(request: HttpRequest) -> tuple[datetime.date, datetime.date, bool]:
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
