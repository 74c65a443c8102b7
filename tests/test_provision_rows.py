"""provisions.api.provision_rows writes what DRF's fields would (its values are built by hand)."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.fields import DateTimeField

from provisions.api.provision_rows import moment_writer


@pytest.mark.parametrize(
    "moment",
    [
        datetime.datetime(2026, 1, 15, 9, 30, tzinfo=datetime.UTC),  # winter: London is UTC
        datetime.datetime(2026, 7, 15, 9, 30, 5, 123456, tzinfo=datetime.UTC),  # summer: +01:00
        datetime.datetime(2026, 3, 29, 0, 59, 59, tzinfo=datetime.UTC),  # the hour the clocks change
        datetime.datetime(2026, 7, 15, 9, 30, tzinfo=zoneinfo.ZoneInfo("America/New_York")),
    ],
)
@pytest.mark.parametrize("zone", ["Europe/London", "UTC", "Asia/Kolkata"])
def test_a_moment_is_written_as_drfs_datetime_field_writes_it(moment: datetime.datetime, zone: str) -> None:
    with override_settings(TIME_ZONE=zone), timezone.override(zone):
        assert moment_writer()(moment) == DateTimeField().to_representation(moment)
