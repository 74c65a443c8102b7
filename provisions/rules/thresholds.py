"""The thresholds the rules use (the administrators' or the settings'), and the dates they are asked
about."""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass

from django.conf import settings

from provisions.models import GapRuleThresholds, Status

# The dates the rules are evaluated at: a partnership's lifetime, with room either side (beyond them,
# date arithmetic of the charts and reports would overflow).
EARLIEST_AS_OF = datetime.date(1900, 1, 1)
LATEST_AS_OF = datetime.date(2999, 12, 31)


def parse_as_of(text: str) -> datetime.date:
    """An `as_of` date from a page or API parameter; ValueError says what is wrong with it."""
    try:
        as_of = datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    if not EARLIEST_AS_OF <= as_of <= LATEST_AS_OF:
        raise ValueError(f"{text} is outside {EARLIEST_AS_OF} to {LATEST_AS_OF}")
    return as_of


class PeriodInvalid(ValueError):
    """`from` or `to` of a comparison is wrong; `field` says which."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def parse_period(
    start: str | None, end: str | None, *, today: datetime.date, days: int = 30
) -> tuple[datetime.date, datetime.date]:
    """The two dates of a comparison (`from`, `to`) from a page or API parameter; by default the
    `days` up to today. PeriodInvalid says which is wrong and why."""
    dates = {}
    for field, raw, default in (("from", start, today - datetime.timedelta(days=days)), ("to", end, today)):
        try:
            dates[field] = parse_as_of(raw) if raw else default
        except ValueError as invalid:
            raise PeriodInvalid(field, str(invalid)) from None
    if dates["from"] >= dates["to"]:
        raise PeriodInvalid("from", f"{dates['from']} must be before to ({dates['to']})")
    return dates["from"], dates["to"]


@dataclass(frozen=True)
class Thresholds:
    secured_status: Status
    warning_days: int
    urgent_days: int
    stall_days: int

    @classmethod
    def from_settings(cls) -> Thresholds:
        return cls(
            secured_status=Status(settings.SECURED_STATUS),
            warning_days=settings.WARNING_DAYS,
            urgent_days=settings.URGENT_DAYS,
            stall_days=settings.STALL_DAYS,
        )

    @classmethod
    def current(cls) -> Thresholds:
        """The thresholds the administrators set (one query), or the settings' until they do."""
        row = GapRuleThresholds.objects.filter(pk=1).first()
        if row is None:
            return cls.from_settings()
        return cls(
            secured_status=Status(row.secured_status),
            warning_days=row.warning_days,
            urgent_days=row.urgent_days,
            stall_days=row.stall_days,
        )

    @functools.cached_property
    def secured_rank(self) -> int:
        return self.secured_status.rank or 0  # settings only accept ladder statuses
