"""Gap scans: reconciliation of the gap table, scan requests (outbox and debounce), acknowledgement."""

from __future__ import annotations

import datetime
import threading
from typing import Any
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from provisions.models import (
    Capability,
    CoverageSnapshot,
    CoverageState,
    Gap,
    GapKind,
    GapScan,
    Level,
    ScanRequest,
    ScanTrigger,
    Status,
)
from provisions.permissions import Reader
from provisions.rules import evaluate_gaps
from provisions.services.scans import gap_acknowledge, gaps_run_requested, gaps_scan
from provisions.services.status import provision_transition
from tests.factories import CapabilityFactory, CoverageFactory, DomainFactory, ProvisionFactory, UserFactory

pytestmark = pytest.mark.django_db


def today() -> datetime.date:
    return timezone.localdate()


def days_from_today(days: int) -> datetime.date:
    return today() + datetime.timedelta(days=days)


def open_gaps() -> set[tuple[str, str, str]]:
    return {
        (gap.kind, gap.capability.code if gap.capability else gap.provision.reference, gap.severity)
        for gap in Gap.objects.open().select_related("capability", "provision")
    }


@pytest.fixture
def capability_at_risk():
    """A high capability lapsing in 100 days, covered only by a provision under negotiation."""
    capability = CapabilityFactory(code="EAW", criticality=Level.HIGH, lapses_on=days_from_today(100))
    provision = ProvisionFactory(reference="SP-CJ-01", status=Status.UNDER_NEGOTIATION, created_on=today())
    CoverageFactory(provision=provision, capability=capability)
    return capability, provision


def test_a_scan_opens_the_gaps_it_finds_and_records_itself(capability_at_risk):
    outcome = gaps_scan(trigger=ScanTrigger.COMMAND)

    assert open_gaps() == {("at_risk", "EAW", "medium")}
    scan = GapScan.objects.get()
    assert (scan.as_of, scan.trigger, scan.full) == (today(), ScanTrigger.COMMAND, True)
    assert (scan.opened, scan.updated, scan.resolved, scan.unchanged) == (1, 0, 0, 0)
    assert scan.duration_ms is not None
    assert [gap.kind for gap in outcome.opened] == ["at_risk"]


def test_scanning_again_without_changes_changes_nothing(capability_at_risk):
    gaps_scan(trigger=ScanTrigger.COMMAND)
    first = list(Gap.objects.values_list("pk", "kind", "severity", "explanation", "opened_at", "resolved_at"))

    second = gaps_scan(trigger=ScanTrigger.COMMAND).scan

    assert (
        list(Gap.objects.values_list("pk", "kind", "severity", "explanation", "opened_at", "resolved_at"))
        == first
    )
    assert (second.opened, second.updated, second.resolved, second.unchanged) == (0, 0, 0, 1)


def test_a_scan_updates_the_severity_of_a_gap_still_found(capability_at_risk):
    capability, _ = capability_at_risk
    gaps_scan(trigger=ScanTrigger.COMMAND)
    gap = Gap.objects.get()

    capability.lapses_on = days_from_today(20)  # now within URGENT_DAYS: severity is the criticality
    capability.save(update_fields=["lapses_on"])
    scan = gaps_scan(trigger=ScanTrigger.COMMAND).scan

    gap.refresh_from_db()
    assert (gap.kind, gap.severity, gap.resolved_at) == ("at_risk", "high", None)
    assert "in 20 days" in gap.explanation
    assert (scan.opened, scan.updated, scan.resolved) == (0, 1, 0)


def test_a_scan_resolves_a_gap_no_longer_found(capability_at_risk):
    _, provision = capability_at_risk
    gaps_scan(trigger=ScanTrigger.COMMAND)

    provision_transition(by=Reader.system(), provision=provision, to=Status.AGREED)
    scan = gaps_scan(trigger=ScanTrigger.COMMAND).scan

    gap = Gap.objects.get()
    assert gap.resolved_at is not None
    assert gap.resolved_by_scan == scan
    assert open_gaps() == set()


def test_at_risk_turning_lapsed_resolves_one_gap_and_opens_another(capability_at_risk):
    capability, _ = capability_at_risk
    gaps_scan(trigger=ScanTrigger.COMMAND)

    capability.lapses_on = today()
    capability.save(update_fields=["lapses_on"])
    scan = gaps_scan(trigger=ScanTrigger.COMMAND).scan

    history = list(Gap.objects.order_by("pk").values_list("kind", "severity", "resolved_at"))
    assert history[0][:2] == ("at_risk", "medium") and history[0][2] is not None
    assert history[1] == ("lapsed", "critical", None)  # high raised one level, no fallback
    assert (scan.opened, scan.resolved) == (1, 1)


def test_a_scoped_scan_only_touches_gaps_of_its_subjects(capability_at_risk):
    other = CapabilityFactory(code="PNR", criticality=Level.LOW, lapses_on=None)  # uncovered, no date
    gaps_scan(trigger=ScanTrigger.COMMAND)
    assert open_gaps() == {("at_risk", "EAW", "medium"), ("uncovered", "PNR", "low")}

    # PNR gets covered; a scan of EAW alone must leave PNR's gap as it was.
    CoverageFactory(capability=other, provision=ProvisionFactory(status=Status.IN_FORCE, created_on=today()))
    gaps_scan(trigger=ScanTrigger.CHANGE, capability_ids=[capability_at_risk[0].pk], provision_ids=[])
    assert ("uncovered", "PNR", "low") in open_gaps()

    gaps_scan(trigger=ScanTrigger.CHANGE, capability_ids=[other.pk], provision_ids=[])
    assert open_gaps() == {("at_risk", "EAW", "medium")}


def test_a_status_move_requests_a_scan_that_runs_once_committed(
    capability_at_risk, django_capture_on_commit_callbacks
):
    _, provision = capability_at_risk
    gaps_scan(trigger=ScanTrigger.COMMAND)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        provision_transition(by=Reader.system(), provision=provision, to=Status.AGREED)

    assert len(callbacks) == 1
    assert ScanRequest.objects.count() == 0  # handled by the task, run in process
    latest = GapScan.objects.order_by("-pk").first()
    assert latest is not None and latest.trigger == ScanTrigger.CHANGE and not latest.full
    assert open_gaps() == set()


def test_many_writes_in_one_transaction_run_one_scan(django_capture_on_commit_callbacks):
    capabilities = CapabilityFactory.create_batch(5, lapses_on=days_from_today(10))
    provisions = [ProvisionFactory(status=Status.PROPOSED, created_on=today()) for _ in capabilities]
    for capability, provision in zip(capabilities, provisions, strict=True):
        CoverageFactory(capability=capability, provision=provision)

    with django_capture_on_commit_callbacks(execute=True):
        from django.db import transaction

        with transaction.atomic():
            for provision in provisions:
                provision_transition(by=Reader.system(), provision=provision, to=Status.UNDER_NEGOTIATION)

    # Five requests were written; the first task handled all of them in one scan, the rest found none.
    scans = list(GapScan.objects.all())
    assert len(scans) == 1
    assert scans[0].evaluated_subjects == 10
    assert ScanRequest.objects.count() == 0
    assert len(open_gaps()) == 5


def test_an_import_of_many_provisions_writes_one_scan_request(tmp_path):
    from provisions.services.partnership_file import partnership_import

    data = {
        "partnership": {
            "code": "p",
            "title": "P",
            "parties": [{"code": "UK", "name": "UK"}, {"code": "EU", "name": "EU"}],
        },
        "domains": [{"code": "d", "name": "D"}],
        "capabilities": [
            {"code": f"C{i}", "name": f"C{i}", "domain": "d", "criticality": "high"} for i in range(200)
        ],
        "provisions": [
            {
                "reference": f"P{i}",
                "title": f"P{i}",
                "domain": "d",
                "status": "agreed",
                "covers": [{"capability": f"C{i}"}],
                "history": [
                    {"status": "proposed", "at": "2020-01-01"},
                    {"status": "agreed", "at": "2020-02-01"},
                ],
            }
            for i in range(200)
        ],
    }
    partnership_import(data=data)

    request = ScanRequest.objects.get()
    assert len(request.provision_ids) == 200 and len(request.capability_ids) == 200


def test_requests_stay_pending_when_the_broker_is_down_and_the_periodic_job_runs_them(capability_at_risk):
    # Outside the capture fixture on_commit callbacks never run: as if the broker refused the task.
    _, provision = capability_at_risk
    provision_transition(by=Reader.system(), provision=provision, to=Status.AGREED)
    assert ScanRequest.objects.count() == 1

    outcome = gaps_run_requested()

    assert outcome is not None and outcome.scan.trigger == ScanTrigger.CHANGE
    assert ScanRequest.objects.count() == 0
    assert gaps_run_requested() is None  # nothing pending: a no-op


def test_an_acknowledged_gap_stays_open_until_the_rules_clear_it(capability_at_risk):
    _, provision = capability_at_risk
    gaps_scan(trigger=ScanTrigger.COMMAND)
    gap = Gap.objects.get()
    analyst = UserFactory(role="analyst")

    gap_acknowledge(gap=gap, by=Reader.of(analyst), note="Escalated to the negotiating team")
    gaps_scan(trigger=ScanTrigger.COMMAND)

    gap.refresh_from_db()
    assert gap.state == "acknowledged" and gap.resolved_at is None
    assert gap.acknowledged_by == analyst

    provision_transition(by=Reader.system(), provision=provision, to=Status.AGREED)
    gaps_scan(trigger=ScanTrigger.COMMAND)
    gap.refresh_from_db()
    assert gap.state == "resolved"


def test_acknowledging_needs_a_note_and_an_open_gap(capability_at_risk):
    gaps_scan(trigger=ScanTrigger.COMMAND)
    gap = Gap.objects.get()
    with pytest.raises(ValidationError, match="needs a note"):
        gap_acknowledge(gap=gap, by=Reader.of(UserFactory(role="analyst")), note="  ")
    gap.refresh_from_db()
    assert gap.acknowledged_at is None


def test_the_database_refuses_two_open_gaps_of_one_kind_for_one_subject(capability_at_risk):
    from django.db import IntegrityError, transaction

    capability, _ = capability_at_risk
    Gap.objects.create(
        kind=GapKind.AT_RISK,
        severity=Level.HIGH,
        capability=capability,
        domain=capability.domain,
        explanation="x",
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Gap.objects.create(
            kind=GapKind.AT_RISK,
            severity=Level.LOW,
            capability=capability,
            domain=capability.domain,
            explanation="y",
        )


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_scans_leave_one_consistent_gap_set():
    capabilities = CapabilityFactory.create_batch(30, lapses_on=days_from_today(5))
    for capability in capabilities[:15]:
        CoverageFactory(
            capability=capability, provision=ProvisionFactory(status=Status.PROPOSED, created_on=today())
        )
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def scan() -> None:
        try:
            barrier.wait()
            gaps_scan(trigger=ScanTrigger.COMMAND)
        except BaseException as error:  # reported to the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=scan) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert Gap.objects.count() == 30  # opened once each, never twice
    assert Gap.objects.open().count() == 30
    scans = list(GapScan.objects.order_by("pk").values_list("opened", "unchanged"))
    assert sorted(scans) == [(0, 30), (0, 30), (0, 30), (30, 0)]


def test_a_scan_records_each_capabilitys_coverage_state_for_the_dashboards(capability_at_risk):
    capability, provision = capability_at_risk
    assert capability.coverage_state == ""  # never scanned

    gaps_scan(trigger=ScanTrigger.COMMAND)
    capability.refresh_from_db()
    assert capability.coverage_state == "in_negotiation"

    provision_transition(by=Reader.system(), provision=provision, to=Status.AGREED)
    gaps_scan(trigger=ScanTrigger.CHANGE, provision_ids=[provision.pk], capability_ids=[])
    capability.refresh_from_db()
    assert capability.coverage_state == "secured"


def test_a_full_scan_records_the_days_coverage_snapshot(capability_at_risk):
    from provisions.models import CoverageSnapshot

    gaps_scan(trigger=ScanTrigger.COMMAND)
    gaps_scan(trigger=ScanTrigger.COMMAND)  # the same day: updated, not duplicated

    snapshot = CoverageSnapshot.objects.get()
    assert (snapshot.as_of, snapshot.in_negotiation, snapshot.secured) == (today(), 1, 0)
    gaps_scan(trigger=ScanTrigger.CHANGE, provision_ids=[capability_at_risk[1].pk], capability_ids=[])
    assert CoverageSnapshot.objects.count() == 1  # a scoped scan does not count everything


# --- a full scan in batches ----------------------------------------------------------------------------


def a_partnership_of_every_kind_of_gap() -> None:
    """Two domains, capabilities at risk, lapsed, uncovered, partial and secured, a provision covering
    capabilities of both domains, a stalled one and one that never existed before today's."""
    justice, police = DomainFactory(), DomainFactory()
    for domain in (justice, police):
        for days, status, extent in (
            (100, Status.UNDER_NEGOTIATION, "full"),  # at risk
            (-5, Status.PROPOSED, "full"),  # lapsed
            (30, None, None),  # uncovered, soon
            (400, Status.AGREED, "partial"),  # partial
            (400, Status.AGREED, "full"),  # secured: no gap
        ):
            capability = CapabilityFactory(domain=domain, lapses_on=days_from_today(days))
            if status is not None:
                provision = ProvisionFactory(domain=domain, status=status, created_on=today())
                CoverageFactory(provision=provision, capability=capability, extent=extent)
    across = ProvisionFactory(domain=justice, status=Status.PROPOSED, created_on=days_from_today(-400))
    for capability in Capability.objects.filter(domain=police)[:2]:
        CoverageFactory(provision=across, capability=capability)  # stalled, and covering the other domain
    ProvisionFactory(domain=police, status=Status.IDENTIFIED, created_on=days_from_today(-200))  # stalled


def found_now() -> set[tuple[str, int | None, str]]:
    return {(f.kind.value, f.subject_id, f.severity.value) for f in evaluate_gaps(as_of=today()).findings}


def open_gap_identities() -> set[tuple[str, int | None, str]]:
    return {
        (kind, capability_id or provision_id, severity)
        for kind, capability_id, provision_id, severity in Gap.objects.open().values_list(
            "kind", "capability_id", "provision_id", "severity"
        )
    }


@override_settings(GAP_SCAN_BATCH_SUBJECTS=3)
def test_a_full_scan_in_batches_finds_what_one_evaluation_finds_and_counts_once():
    a_partnership_of_every_kind_of_gap()
    expected = found_now()
    one_evaluation = evaluate_gaps(as_of=today())
    assert {kind for kind, _, _ in expected} >= {"at_risk", "lapsed", "uncovered", "partial", "stalled"}

    with CaptureQueriesContext(connection) as queries:
        outcome = gaps_scan(trigger=ScanTrigger.COMMAND)

    assert open_gap_identities() == expected
    assert sum(sql["sql"].count("provisions_gapscan") > 0 for sql in queries.captured_queries) > 8  # batched
    scan = GapScan.objects.get()
    assert (scan.full, scan.opened, scan.updated, scan.resolved, scan.unchanged) == (
        True,
        len(expected),
        0,
        0,
        0,
    )
    assert scan.evaluated_subjects == one_evaluation.evaluated_subjects
    assert scan.duration_ms is not None
    assert len(outcome.opened) == len(expected)
    snapshot = CoverageSnapshot.objects.get()
    assert {state: getattr(snapshot, state) for state in CoverageState.values} == {
        state: one_evaluation.states_counted()[state] for state in CoverageState.values
    }
    assert dict(Capability.objects.values_list("pk", "coverage_state")) == {
        pk: at.state.value for pk, at in one_evaluation.coverage.items()
    }

    gaps_scan(trigger=ScanTrigger.COMMAND)  # again: every batch finds its gaps open already
    again = GapScan.objects.latest("pk")
    assert (again.opened, again.updated, again.resolved, again.unchanged) == (0, 0, 0, len(expected))


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@override_settings(GAP_SCAN_BATCH_SUBJECTS=3)
def test_a_full_scan_commits_batch_by_batch_and_one_that_dies_is_redone_from_its_request():
    a_partnership_of_every_kind_of_gap()
    expected = found_now()
    ScanRequest.objects.create(full=True, trigger=ScanTrigger.SCHEDULE)  # its task not yet run
    seen_from_elsewhere: list[tuple[int, int | None]] = []
    batches = 0

    def evaluate_then_die_in_the_fourth_batch(**kwargs: Any) -> Any:
        nonlocal batches
        batches += 1
        other = connection.copy()  # another session sees only what committed
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM provisions_gap WHERE resolved_at IS NULL")
                committed = cursor.fetchone()[0]
                cursor.execute("SELECT duration_ms FROM provisions_gapscan")
                seen_from_elsewhere.append((committed, cursor.fetchone()[0]))
        finally:
            other.close()
        if batches == 4:
            raise RuntimeError("the worker dies")
        return evaluate_gaps(**kwargs)

    with (
        mock.patch("provisions.services.scans.evaluate_gaps", evaluate_then_die_in_the_fourth_batch),
        pytest.raises(RuntimeError),
    ):
        gaps_run_requested()

    committed = [count for count, _ in seen_from_elsewhere]
    assert committed[0] == 0 and committed == sorted(committed) and committed[-1] > 0  # batch by batch
    assert {duration for _, duration in seen_from_elsewhere} == {None}  # the scan shows it runs
    assert 0 < Gap.objects.open().count() < len(expected)
    assert GapScan.objects.get().duration_ms is None  # unfinished, and not the health check's last scan
    assert ScanRequest.objects.filter(full=True).count() == 1  # kept: the scan is asked for again

    gaps_run_requested()  # the task redelivered

    assert open_gap_identities() == expected
    assert not ScanRequest.objects.exists()
    finished = GapScan.objects.exclude(duration_ms=None).get()
    assert finished.opened + finished.unchanged == len(expected)


def test_a_domain_lists_the_gaps_of_its_subjects_and_the_rescan_after_a_move_moves_them(
    client, capability_at_risk
) -> None:
    """Gap.domain, what a domain's gap lists read, is the subject's domain as the scan saw it: set when
    a gap opens, moved by the rescan a move asks for."""
    from provisions.models import Marking
    from provisions.services.reference_data import reference_data_save
    from tests.test_api import bearer

    capability, _ = capability_at_risk
    home = capability.domain
    elsewhere = DomainFactory(code="elsewhere", partnership=home.partnership)
    gaps_scan(trigger=ScanTrigger.COMMAND)
    at_risk = Gap.objects.open().get(capability=capability)
    assert at_risk.domain == home
    headers = bearer(UserFactory(role="viewer", clearance=Marking.SECRET))

    def listed(domain: str) -> set[str]:
        answer = client.get(f"/api/v1/gaps/?domain={domain}&state=open", **headers)
        assert answer.status_code == 200, answer.content
        return {gap["subject_code"] for gap in answer.json()["results"]}

    assert "EAW" in listed(home.code) and "EAW" not in listed("elsewhere")

    capability.domain = elsewhere
    reference_data_save(instance=capability, by=Reader.of(UserFactory(role="administrator")))
    gaps_run_requested()
    at_risk.refresh_from_db()
    assert at_risk.resolved_at is None and at_risk.domain == elsewhere
    assert "EAW" in listed("elsewhere") and "EAW" not in listed(home.code)
