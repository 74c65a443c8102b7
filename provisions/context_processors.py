"""What the site header needs on every page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from provisions.models import Notification
from provisions.permissions import Role, reader_of


def site_header(request: HttpRequest) -> dict[str, Any]:
    """The Admin link only for those who can change something there (analysts acknowledge gaps,
    negotiators edit provisions, administrators manage): a viewer's admin would repeat the pages,
    read-only. The reader is the one the page made. And how many notifications are unread."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"show_admin_link": False}
    reader = reader_of(request)
    if reader.role is None:
        return {"show_admin_link": False}
    return {
        "show_admin_link": user.is_staff and reader.has_role(Role.ANALYST),
        # What the header says is waiting under Notifications: one query, when a page shows it.
        "unread_notifications": SimpleLazyObject(
            lambda: Notification.objects.filter(user=user).unread().visible_to(reader).count()
        ),
    }
