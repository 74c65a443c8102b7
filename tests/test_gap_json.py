"""The API's gap lists write their rows with provisions.api.serializers.gap_json, which must write
exactly what GapSerializer (the shape the schema publishes, and the one gap and webhooks use) would."""

from __future__ import annotations

import datetime

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from provisions.api.serializers import GapSerializer, gap_json
from provisions.models import Gap, Marking, ScanTrigger
from provisions.permissions import Reader
from provisions.redaction import Redaction, finding_rows, gap_rows
from provisions.rules import evaluate_gaps
from provisions.selectors import visible_gaps
from provisions.services.scans import gaps_scan
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def gaps(shipped_partnership_file: str) -> list[Gap]:
    """The shipped partnership's gaps as a scan records them: one acknowledged (by a user, with a note),
    one resolved in summer time and one in winter time, the rest open."""
    call_command("import_partnership", shipped_partnership_file, verbosity=0)
    gaps_scan(trigger=ScanTrigger.COMMAND)
    recorded = list(Gap.objects.order_by("id"))
    assert len(recorded) > 20
    analyst = UserFactory(username="analyst-of-gaps", clearance=Marking.SECRET)
    Gap.objects.filter(pk=recorded[0].pk).update(
        acknowledged_at=timezone.now(), acknowledged_by=analyst, acknowledgement_note="Seen: the EAW talks"
    )
    Gap.objects.filter(pk=recorded[1].pk).update(
        resolved_at=datetime.datetime(2026, 7, 15, 9, 30, 5, 123456, tzinfo=datetime.UTC)
    )
    winter = datetime.datetime(2026, 1, 15, 9, 30, tzinfo=datetime.UTC)
    Gap.objects.filter(pk=recorded[2].pk).update(resolved_at=winter)
    return list(visible_gaps(Reader.system()).order_by("id"))


def written(rows: list[dict]) -> tuple[bytes, bytes]:
    """The JSON each way, as the API renders it."""
    return JSONRenderer().render(gap_json(rows)), JSONRenderer().render(GapSerializer(rows, many=True).data)


@pytest.mark.parametrize("zone", ["Europe/London", "UTC", "Asia/Kolkata"])
@pytest.mark.parametrize("clearance", [Marking.OFFICIAL, Marking.SECRET])
def test_recorded_gaps_are_written_as_the_serializer_writes_them(
    gaps: list[Gap], zone: str, clearance: Marking
) -> None:
    reader = Reader.of(UserFactory(clearance=clearance))
    rows = gap_rows(gaps, Redaction.for_reader(reader), today=timezone.localdate())
    states = {row["state"] for row in rows}
    assert states == {"open", "acknowledged", "resolved"}
    assert any(row["lapses_on"] for row in rows) and any(row["lapses_on"] is None for row in rows)
    with override_settings(TIME_ZONE=zone), timezone.override(zone):
        ours, drfs = written(rows)
    assert ours == drfs
    if zone == "Europe/London":
        assert b'"resolved_at":"2026-07-15T10:30:05.123456+01:00"' in ours  # summer time, as DRF writes it
        assert b'"resolved_at":"2026-01-15T09:30:00Z"' in ours


def test_evaluated_gaps_are_written_as_the_serializer_writes_them(gaps: list[Gap]) -> None:
    reader = Reader.of(UserFactory(clearance=Marking.OFFICIAL_SENSITIVE))
    evaluation = evaluate_gaps(as_of=timezone.localdate() - datetime.timedelta(days=400))
    rows = [
        {**row, "id": None, "resolved_at": None, "acknowledged_by": None, "acknowledgement_note": None}
        for row in finding_rows(evaluation.findings, Redaction.for_reader(reader))
    ]
    assert len(rows) > 20
    ours, drfs = written(rows)
    assert ours == drfs


def test_the_fields_come_in_the_serializers_order() -> None:
    row = dict.fromkeys(GapSerializer().fields)
    assert list(gap_json([row])[0]) == list(GapSerializer(row).data)
