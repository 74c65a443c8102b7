"""API tokens: created and revoked by administrators (or by users for themselves), stored hashed."""

from __future__ import annotations

import datetime
import hashlib
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from provisions.models import ApiToken, User
from provisions.permissions import (
    Reader,
    can_administer,
    clearance_of,
    ensure,
    lower_clearance,
    markings_up_to,
)

TOKEN_PREFIX = "spt_"  # noqa: S105 (not a secret: every key starts with it, so leaks are easy to scan for)


def token_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def latest_token_expiry() -> datetime.datetime:
    """The furthest a token made now may expire: API_TOKEN_MAX_LIFETIME_DAYS from now."""
    return timezone.now() + datetime.timedelta(days=settings.API_TOKEN_MAX_LIFETIME_DAYS)


def token_expiry_problem(expires_at: datetime.datetime | None) -> str | None:
    """Why a token cannot be made with this expiry (None: it can; no expiry gets the longest)."""
    if expires_at is None:
        return None
    if expires_at <= timezone.now():
        return "a token must expire in the future"
    latest = latest_token_expiry()
    if expires_at > latest:
        return (
            f"a token may last at most {settings.API_TOKEN_MAX_LIFETIME_DAYS} days:"
            f" expire it on {latest:%Y-%m-%d} or sooner"
        )
    return None


def api_token_create(
    *,
    owner: User,
    by: Reader,
    name: str,
    expires_at: datetime.datetime | None = None,
    clearance: str = "",
) -> tuple[ApiToken, str]:
    """A new token for `owner`; returns it and its key, which is shown once and never stored.

    Nobody obtains through a token more than they may see themselves: an administrator makes one
    for a user cleared no higher than they are, and it is cleared at most as high as the lower of
    the two, written on the token (so it does not follow its user if their clearance is raised).
    No token lives longer than API_TOKEN_MAX_LIFETIME_DAYS (one asked longer is refused); one asked
    without an expiry gets API_TOKEN_DEFAULT_LIFETIME_DAYS. A user holds at most API_TOKENS_PER_USER
    usable tokens: revoke one to make another.
    """
    own = by.user == owner
    ensure(own or can_administer(by), "only administrators create tokens for others")
    if own:
        # Blank means "as cleared as its user"; made through a token cleared below its user, that is
        # the token's clearance, or a capped token could mint an uncapped one.
        clearance = clearance or by.token_clearance
    else:
        ensure(
            by.sees(clearance_of(owner)),
            f"{owner.get_username()} is cleared above you: you may not make a token for them",
        )
        ceiling = lower_clearance(clearance_of(owner), by.markings[-1])
        ensure(
            not clearance or clearance in markings_up_to(ceiling),
            "a token cannot be cleared above its user or above you",
        )
        clearance = clearance or ceiling.value
    # Nor may an expiring token mint one that outlives it.
    if own and by.token_expires_at is not None:
        expires_at = min(expires_at or by.token_expires_at, by.token_expires_at)
    if clearance:
        # Yours: as cleared as you are now (a token you came with included); another's: checked above.
        ensure(
            clearance in (by.markings if own else Reader.of(owner).markings),
            "a token cannot be cleared above its user",
        )
    problem = token_expiry_problem(expires_at)
    if problem:
        raise ValidationError({"expires_at": problem})
    held = ApiToken.objects.usable().filter(user=owner).count()
    if held >= settings.API_TOKENS_PER_USER:
        raise ValidationError(
            {
                "name": f"{owner.get_username()} holds {held} usable tokens, the most one may"
                f" (API_TOKENS_PER_USER): revoke one first"
            }
        )
    expires_at = expires_at or min(
        timezone.now() + datetime.timedelta(days=settings.API_TOKEN_DEFAULT_LIFETIME_DAYS),
        latest_token_expiry(),
    )
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=owner,
        name=name,
        prefix=key[:12],
        key_hash=token_hash(key),
        expires_at=expires_at,
        clearance=clearance,
    )
    return token, key


def api_token_revoke(*, token: ApiToken, by: Reader) -> ApiToken:
    ensure(
        (by.user is not None and by.user.pk == token.user_id) or can_administer(by),
        "only administrators revoke others' tokens",
    )
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


LAST_USED_PRECISION = datetime.timedelta(minutes=1)


def api_token_authenticate(key: str) -> ApiToken | None:
    """The usable token with this key, its user loaded and its use recorded; None if there is none
    (unknown, expired or revoked, or its user is deactivated). A token made without an expiry before
    the maximum lifetime existed stops working once it is that old."""
    token = ApiToken.objects.usable().select_related("user").filter(key_hash=token_hash(key)).first()
    if token is None or not token.user.is_active:
        return None
    oldest = timezone.now() - datetime.timedelta(days=settings.API_TOKEN_MAX_LIFETIME_DAYS)
    if token.expires_at is None and token.created_at < oldest:
        return None
    now = timezone.now()
    # To the minute, like a session's renewal: a write (and a commit to flush) on every request of a
    # busy integrator cost more than the rest of a small answer.
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
