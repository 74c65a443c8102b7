"""The watch list: following domains, provisions and capabilities, and telling followers what
happened to them (status moves, positions, gaps opened, escalated or resolved) in notifications
written in the transaction of the change, and once a day by email.

Clearance applies throughout: a follower not cleared for a provision's marking is not told of it,
and a notification on a provision marked higher since is no longer shown (NotificationQuerySet).
Nobody is told of their own change.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from provisions.labels import lower_label
from provisions.models import (
    Capability,
    Coverage,
    Digest,
    Domain,
    Follow,
    Gap,
    Notification,
    Position,
    Provision,
    StatusChange,
    User,
)
from provisions.permissions import clearance_of, markings_up_to
from provisions.services.escalations import Escalation

Subject = Domain | Provision | Capability


def _field(subject: Subject) -> str:
    return {Domain: "domain", Provision: "provision", Capability: "capability"}[type(subject)]


def follow_set(*, user: User, subject: Subject, following: bool) -> None:
    """Follow the subject, or stop following it (either twice is the same as once)."""
    if following:
        try:
            with transaction.atomic():
                target: dict[str, Any] = {_field(subject): subject}
                Follow.objects.get_or_create(user=user, **target)
        except IntegrityError:  # followed by a concurrent request: as wanted
            pass
    else:
        Follow.objects.filter(user=user, **{_field(subject): subject}).delete()


def is_following(user: User, subject: Subject) -> bool:
    return Follow.objects.filter(user=user, **{_field(subject): subject}).exists()


def _followers(condition: Q, *, marking: str | None, actor: User | None) -> list[User]:
    """The users following what the condition names, cleared for the marking, the actor excepted."""
    users = User.objects.filter(pk__in=Follow.objects.filter(condition).values("user_id"), is_active=True)
    if actor is not None:
        users = users.exclude(pk=actor.pk)
    return [user for user in users if marking is None or marking in markings_up_to(clearance_of(user))]


def _provision_followers(provision: Provision, *, actor: User | None) -> list[User]:
    """Followers of the provision, of its domain, or of a capability it covers."""
    covered = Coverage.objects.filter(provision=provision).values("capability_id")
    condition = Q(provision=provision) | Q(domain_id=provision.domain_id) | Q(capability_id__in=covered)
    return _followers(condition, marking=provision.marking, actor=actor)


def _notify(users: Iterable[User], **notification: Any) -> None:
    Notification.objects.bulk_create(Notification(user=user, **notification) for user in users)


def notify_status_change(change: StatusChange) -> None:
    provision = change.provision
    before = lower_label("status", change.from_status) or "recorded"
    moved = f"{before} → {lower_label('status', change.to_status)}"
    text = f"{provision.reference} {provision.title}: {moved}" + (f". {change.note}" if change.note else "")
    users = _provision_followers(provision, actor=change.changed_by)
    _notify(users, kind=Notification.Kind.STATUS_CHANGED, provision=provision, text=text)


def notify_position(position: Position, *, actor: User | None) -> None:
    provision = position.provision
    stance = f"{lower_label('stance', position.stance)} ({lower_label('firmness', position.firmness)})"
    text = f"{provision.reference} {provision.title}: {position.party.name} {stance}"
    text += f". {position.note}" if position.note else ""
    users = _provision_followers(provision, actor=actor)
    _notify(users, kind=Notification.Kind.POSITION, provision=provision, text=text)


def notify_gap_changes(
    *,
    opened: Collection[Gap],
    resolved: Collection[Gap],
    escalated: Sequence[Escalation],
) -> None:
    """What one scan did to the gaps, told to the followers of each gap's subject, of its domain and
    (a provision's gap) of the capabilities it covers. Set-based: a fixed number of queries however
    many gaps a scan opens, one when nobody follows anything."""
    follows = list(Follow.objects.values_list("user_id", "domain_id", "provision_id", "capability_id"))
    if not follows:
        return
    told: list[tuple[Gap, str, str | None]] = [  # (gap, kind, the severity it escalated from)
        *((gap, Notification.Kind.GAP_OPENED, None) for gap in opened),
        *((gap, Notification.Kind.GAP_ESCALATED, previous["severity"]) for gap, previous in escalated),
        *((gap, Notification.Kind.GAP_RESOLVED, None) for gap in resolved),
    ]
    if not told:
        return
    following: dict[tuple[str, int], set[int]] = defaultdict(set)
    for user_id, domain_id, provision_id, capability_id in follows:
        for name, pk in (("domain", domain_id), ("provision", provision_id), ("capability", capability_id)):
            if pk is not None:
                following[(name, pk)].add(user_id)
    users = {
        user.pk: user for user in User.objects.filter(pk__in={row[0] for row in follows}, is_active=True)
    }
    cleared = {pk: set(markings_up_to(clearance_of(user))) for pk, user in users.items()}
    loaded = {
        gap.pk: gap
        for gap in Gap.objects.filter(id__id_in=[gap.pk for gap, _, _ in told]).select_related(
            "capability", "provision"
        )
    }
    covered: dict[int, set[int]] = defaultdict(set)
    for provision_id, capability_id in Coverage.objects.filter(
        provision_id__in={gap.provision_id for gap in loaded.values() if gap.provision_id}
    ).values_list("provision_id", "capability_id"):
        covered[provision_id].add(capability_id)
    notifications = []
    for gap, kind, before in told:
        stored = loaded[gap.pk]
        subject: Provision | Capability | None = stored.capability or stored.provision
        if subject is None:  # the database holds one subject per gap
            continue
        if isinstance(subject, Provision):
            code, marking = subject.reference, subject.marking
            keys = [("provision", subject.pk), *(("capability", pk) for pk in covered[subject.pk])]
        else:
            code, marking = subject.code, None
            keys = [("capability", subject.pk)]
        keys.append(("domain", subject.domain_id))
        followers = set().union(*(following[key] for key in keys))
        text = _gap_text(kind, f"{lower_label('kind', gap.kind)} on {code}", gap, before)
        notifications += [
            Notification(user_id=pk, kind=kind, text=text, **{_field(subject): subject})
            for pk in sorted(followers)
            if pk in users and (marking is None or marking in cleared[pk])
        ]
    Notification.objects.bulk_create(notifications, batch_size=2000)


def _gap_text(kind: str, what: str, gap: Gap, before: str | None) -> str:
    if kind == Notification.Kind.GAP_OPENED:
        return f"Gap opened: {what} ({lower_label('level', gap.severity)})"
    if kind == Notification.Kind.GAP_ESCALATED:
        return f"Gap escalated: {what}, {lower_label('level', before)} → {lower_label('level', gap.severity)}"
    return f"Gap resolved: {what}"


def notifications_for(user: User, reader: Any) -> QuerySet[Notification]:
    return Notification.objects.filter(user=user).visible_to(reader).select_related("provision", "capability")


def notifications_read(user: User) -> int:
    """Mark every unread notification of the user read; how many were."""
    return Notification.objects.filter(user=user, read_at__isnull=True).update(read_at=timezone.now())


def digests_send(*, today: datetime.date | None = None) -> int:
    """Email each user with an address their notifications not emailed yet, at most once a day
    (a second run the same day sends nothing). How many emails were sent."""
    today = today or timezone.localdate()
    sent = 0
    waiting = (
        User.objects.filter(is_active=True, notifications__emailed_at__isnull=True)
        .exclude(email="")
        .distinct()
    )
    for user in waiting:
        with transaction.atomic():
            if Digest.objects.filter(user=user, sent_on=today).exists():
                continue
            cleared = Notification.objects.filter(user=user, emailed_at__isnull=True).visible_to(
                _Cleared.of(user)
            )
            notifications = list(
                cleared.select_related("provision", "capability").order_by("created_at", "id")
            )
            if not notifications:
                continue
            Digest.objects.create(user=user, sent_on=today, notifications=len(notifications))
            Notification.objects.filter(pk__in=[n.pk for n in notifications]).update(
                emailed_at=timezone.now()
            )
            body = render_to_string(
                "provisions/digest.txt", {"user": user, "notifications": notifications, "day": today}
            )
            count = len(notifications)
            send_mail(
                f"Security partnership tracker: {count} update{'s' if count != 1 else ''} on what you follow",
                body,
                settings.DEFAULT_FROM_EMAIL,
                [user.email],
            )
        sent += 1
    return sent


@dataclass(frozen=True)
class _Cleared:
    """What a user's clearance lets them see (a MarkingsReader, without Reader's role queries)."""

    markings: tuple[str, ...]

    @classmethod
    def of(cls, user: User) -> _Cleared:
        return cls(tuple(markings_up_to(clearance_of(user))))
