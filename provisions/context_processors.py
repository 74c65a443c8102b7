"""What the site header needs on every page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from provisions.permissions import Role, reader_of


def site_header(request: HttpRequest) -> dict[str, Any]:
    """The Admin link only for those who can change something there (analysts acknowledge gaps,
    negotiators edit provisions, administrators manage): a viewer's admin would repeat the pages,
    read-only. The reader is the one the page made (no query on a page)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return {"show_admin_link": False}
    return {"show_admin_link": reader_of(request).has_role(Role.ANALYST)}
