"""The Django admin, through the HTTP client as an administrator uses it."""

from __future__ import annotations

import datetime
import itertools
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib import admin
from django.core import checks
from django.db import connection, models
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from provisions.models import (
    Capability,
    Consultation,
    ConsultationOutcome,
    Domain,
    Gap,
    GapKind,
    GapScan,
    Level,
    Milestone,
    Partnership,
    Pillar,
    Precedent,
    Provision,
    ScanRequest,
    ScanTrigger,
    Stance,
    Status,
    StatusChange,
    Territory,
    TerritoryKind,
    User,
)
from provisions.permissions import Reader
from provisions.services.status import provision_transition
from tests.factories import (
    CapabilityFactory,
    CoverageFactory,
    DomainFactory,
    PartyFactory,
    PositionFactory,
    ProvisionFactory,
    UserFactory,
)

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

ADMIN_MODELS: list[type[models.Model]] = [
    Partnership,
    Pillar,
    Domain,
    Territory,
    Precedent,
    Capability,
    Provision,
    StatusChange,
    Consultation,
    Gap,
    GapScan,
    ScanRequest,
]

# Session, user, two filters' choices, two counts, the page of rows, the alignment column's two prefetches,
# and whether the gap rule thresholds' single row exists yet (the sidebar offers "add" only until it does).
PROVISION_CHANGELIST_MAX_QUERIES = 10

_serial = itertools.count(1)


def build_records(count: int, *, user: User) -> list[Provision]:
    """`count` of every kind of record the admin shows, linked as in a real partnership."""
    uk, eu = PartyFactory.create(code="UK"), PartyFactory.create(code="EU")
    provisions = []
    for _ in range(count):
        n = next(_serial)
        pillar = Pillar.objects.create(name=f"Pillar {n}")
        provision = ProvisionFactory.create(domain=DomainFactory.create(pillar=pillar))
        territory = Territory.objects.create(
            code=f"T{n}", name=f"Territory {n}", kind=TerritoryKind.CROWN_DEPENDENCY
        )
        precedent = Precedent.objects.create(code=f"P{n}", title=f"Precedent {n}", url="https://example.org")
        provision.territories.add(territory)
        provision.precedents.add(precedent)
        coverage = CoverageFactory.create(provision=provision, capability__domain=provision.domain)
        PositionFactory.create(provision=provision, party=uk, stance=Stance.PROPOSES)
        PositionFactory.create(provision=provision, party=eu, stance=Stance.OPPOSES)
        Consultation.objects.create(
            provision=provision,
            territory=territory,
            consulted_on=datetime.date(2020, 2, 1),
            outcome=ConsultationOutcome.CONTENT,
        )
        Milestone.objects.create(
            partnership=provision.domain.partnership, code=f"m{n}", title=f"Milestone {n}", date="2020-12-31"
        )
        provision_transition(
            provision=provision, to=Status.UNDER_NEGOTIATION, by=Reader.of(user), on=datetime.date(2020, 3, 1)
        )
        scan = GapScan.objects.create(as_of=datetime.date(2020, 3, 2), trigger=ScanTrigger.COMMAND)
        Gap.objects.create(
            kind=GapKind.AT_RISK,
            severity=Level.HIGH,
            capability=coverage.capability,
            domain=coverage.capability.domain,
            explanation="Lapses soon.",
            opened_by_scan=scan,
        )
        Gap.objects.create(
            kind=GapKind.DIVERGENT,
            severity=Level.HIGH,
            provision=provision,
            domain=provision.domain,
            explanation="The EU opposes.",
            opened_by_scan=scan,
            resolved_at=timezone.now(),
            resolved_by_scan=scan,
            acknowledged_at=timezone.now(),
            acknowledged_by=user,
            acknowledgement_note="Raised at the next round.",
        )
        provisions.append(provision)
    return provisions


def changelist_url(model: type[models.Model]) -> str:
    return reverse(f"admin:provisions_{model._meta.model_name}_changelist")


def change_url(instance: models.Model) -> str:
    return reverse(f"admin:provisions_{instance._meta.model_name}_change", args=[instance.pk])


def posted_back(response: TestResponse, **changes: Any) -> dict[str, Any]:
    """What a browser posts back for the admin page as rendered, with `changes` applied."""
    context = response.context
    forms = [context["adminform"].form]
    for inline in context["inline_admin_formsets"]:
        forms.append(inline.formset.management_form)
        forms.extend(inline.formset.forms)
    data: dict[str, Any] = {}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is not None and value is not False:
                data[form.add_prefix(name)] = value
    data.update(changes)
    return data


@pytest.mark.parametrize("model", ADMIN_MODELS, ids=lambda model: model.__name__)
def test_every_changelist_and_change_page_renders(
    admin_client: Client, admin_user: User, model: type[models.Model]
) -> None:
    build_records(2, user=admin_user)  # status moves leave scan requests too

    assert admin_client.get(changelist_url(model)).status_code == 200
    for instance in model._default_manager.all()[:2]:  # both gaps of a kind: open and resolved
        assert admin_client.get(change_url(instance)).status_code == 200


@pytest.mark.parametrize("model", [Partnership, Pillar, Domain, Territory, Precedent, Capability, Provision])
def test_reference_data_can_be_added(admin_client: Client, model: type[models.Model]) -> None:
    response = admin_client.get(reverse(f"admin:provisions_{model._meta.model_name}_add"))

    assert response.status_code == 200


@pytest.mark.parametrize("model", ADMIN_MODELS, ids=lambda model: model.__name__)
def test_changelist_queries_do_not_grow_with_rows(
    admin_client: Client, admin_user: User, model: type[models.Model]
) -> None:
    build_records(2, user=admin_user)
    admin_client.get(changelist_url(model))  # the session and content types are cached after this
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(changelist_url(model)).status_code == 200

    build_records(5, user=admin_user)
    with CaptureQueriesContext(connection) as more:
        assert admin_client.get(changelist_url(model)).status_code == 200

    assert len(more) == len(few), [query["sql"] for query in more.captured_queries]


@pytest.mark.parametrize("count", [3, 30])
def test_provision_changelist_does_a_fixed_number_of_queries(
    admin_client: Client,
    admin_user: User,
    django_assert_max_num_queries: DjangoAssertNumQueries,
    count: int,
) -> None:
    build_records(count, user=admin_user)
    admin_client.get(reverse("admin:index"))  # the session's first request stamps it (one write a minute)

    with django_assert_max_num_queries(PROVISION_CHANGELIST_MAX_QUERIES):
        response = admin_client.get(changelist_url(Provision))

    assert response.status_code == 200
    assert response.context["cl"].result_count == count
    assert b"Conflict" in response.content  # the alignment column: the EU opposes


def test_adding_a_provision_records_its_first_status_once(admin_client: Client, admin_user: User) -> None:
    domain = DomainFactory.create()
    add_url = reverse("admin:provisions_provision_add")
    form = admin_client.get(add_url)

    response = admin_client.post(
        add_url,
        posted_back(
            form,
            reference="SP-LE-99",
            title="Extradition",
            domain=domain.pk,
            status=Status.SCOPING,
            marking="official",
        ),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    provision = Provision.objects.get(reference="SP-LE-99")
    change = StatusChange.objects.get(provision=provision)
    assert (change.from_status, change.to_status) == ("", Status.SCOPING)
    assert (change.changed_by, change.source, change.changed_on) == (
        admin_user,
        "admin",
        timezone.localdate(),
    )
    assert (provision.status, provision.version) == (Status.SCOPING, 1)
    assert ScanRequest.objects.filter(provision_ids=[provision.pk]).count() == 1


def test_status_is_not_editable_on_the_change_form(admin_client: Client) -> None:
    provision = ProvisionFactory.create(status=Status.PROPOSED)
    form = admin_client.get(change_url(provision))
    assert "status" not in form.context["adminform"].form.fields

    response = admin_client.post(
        change_url(provision), posted_back(form, title="Renamed", status=Status.IN_FORCE)
    )

    assert response.status_code == 302
    provision.refresh_from_db()
    assert (provision.title, provision.status) == ("Renamed", Status.PROPOSED)
    assert StatusChange.objects.filter(provision=provision).count() == 1


def test_editing_a_provision_bumps_its_version_and_asks_for_a_scan(admin_client: Client) -> None:
    provision = ProvisionFactory.create()
    form = admin_client.get(change_url(provision))

    admin_client.post(change_url(provision), posted_back(form, title="Renamed"))

    provision.refresh_from_db()
    assert provision.version == 2
    assert list(ScanRequest.objects.values_list("provision_ids", flat=True)) == [[provision.pk]]


def test_saving_an_unchanged_provision_changes_nothing(admin_client: Client) -> None:
    provision = ProvisionFactory.create()
    form = admin_client.get(change_url(provision))

    admin_client.post(change_url(provision), posted_back(form))

    provision.refresh_from_db()
    assert provision.version == 1
    assert not ScanRequest.objects.exists()


def test_a_provision_changed_since_the_page_was_opened_is_not_overwritten(admin_client: Client) -> None:
    provision = ProvisionFactory.create(status=Status.PROPOSED)
    form = admin_client.get(change_url(provision))
    provision_transition(by=Reader.system(), provision=provision, to=Status.UNDER_NEGOTIATION)

    response = admin_client.post(change_url(provision), posted_back(form, title="Renamed"))

    assert response.status_code == 200
    assert "changed since you opened this page" in response.content.decode()
    provision.refresh_from_db()
    assert provision.title != "Renamed"
    assert provision.version == 2  # the move's bump only


def test_coverage_changes_bump_the_version_and_scan_capabilities_gained_and_lost(
    admin_client: Client,
) -> None:
    provision = ProvisionFactory.create()
    lost = CoverageFactory.create(provision=provision).capability
    gained = CapabilityFactory.create()
    form = admin_client.get(change_url(provision))

    response = admin_client.post(
        change_url(provision),
        posted_back(form, **{"coverage-0-capability": gained.pk, "coverage-0-extent": "partial"}),
    )

    assert response.status_code == 302
    provision.refresh_from_db()
    assert provision.version == 2
    today = timezone.localdate()
    # Rules v2: the lost link ends today (it counted until now), the gained one counts from today.
    assert [(link.capability_id, link.extent) for link in provision.links_at(today)] == [
        (gained.pk, "partial")
    ]
    assert provision.coverage.get(capability=lost).valid_until == today
    request = ScanRequest.objects.get()
    assert (request.provision_ids, sorted(request.capability_ids)) == (
        [provision.pk],
        sorted([lost.pk, gained.pk]),
    )


def test_positions_are_offered_only_for_the_provisions_parties(admin_client: Client) -> None:
    provision = ProvisionFactory.create()
    party = PartyFactory.create(code="UK", partnership=provision.domain.partnership)
    other = PartyFactory.create(code="UK", partnership__code="uk-japan")
    response = admin_client.get(change_url(provision))

    formset = next(
        inline.formset
        for inline in response.context["inline_admin_formsets"]
        if inline.formset.model.__name__ == "Position"
    )
    choices = set(formset.form.base_fields["party"].queryset)
    assert party in choices
    assert other not in choices


def test_editing_a_capability_asks_for_a_scan_of_it_and_its_provisions(admin_client: Client) -> None:
    coverage = CoverageFactory.create()
    capability = coverage.capability
    form = admin_client.get(change_url(capability))

    response = admin_client.post(change_url(capability), posted_back(form, lapses_on="2021-06-30"))

    assert response.status_code == 302
    request = ScanRequest.objects.get()
    assert (request.capability_ids, request.provision_ids) == ([capability.pk], [coverage.provision_id])


def test_a_new_lapse_date_in_the_admin_takes_effect_today_and_the_past_keeps_the_old_one(
    admin_client: Client,
) -> None:
    capability = CapabilityFactory.create(lapses_on=datetime.date(2020, 12, 31))
    today = timezone.localdate()
    form = admin_client.get(change_url(capability))

    response = admin_client.post(change_url(capability), posted_back(form, lapses_on="2030-06-30"))

    assert response.status_code == 302
    capability.refresh_from_db()
    assert capability.lapses_on == datetime.date(2030, 6, 30)
    yesterday = today - datetime.timedelta(days=1)
    assert capability.values_at(yesterday)["lapses_on"] == datetime.date(2020, 12, 31)
    assert list(capability.changes.values_list("at", "lapses_on")) == [
        (None, datetime.date(2020, 12, 31)),
        (today, datetime.date(2030, 6, 30)),
    ]


def test_status_changes_cannot_be_added_changed_or_deleted(
    admin_client: Client, admin_user: User, rf: RequestFactory
) -> None:
    provision = ProvisionFactory.create()
    change = StatusChange.objects.get(provision=provision)
    model_admin = admin.site.get_model_admin(StatusChange)
    request = rf.get("/")
    request.user = admin_user

    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, change)
    assert not model_admin.has_delete_permission(request, change)
    assert "delete_selected" not in model_admin.get_actions(request)
    assert admin_client.get(reverse("admin:provisions_statuschange_add")).status_code == 403
    delete_url = reverse("admin:provisions_statuschange_delete", args=[change.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert StatusChange.objects.filter(pk=change.pk).exists()


def test_provision_history_inline_is_read_only(admin_client: Client) -> None:
    provision = ProvisionFactory.create()
    response = admin_client.get(change_url(provision))

    history = next(
        inline for inline in response.context["inline_admin_formsets"] if inline.formset.model is StatusChange
    )
    assert not (history.has_add_permission or history.has_change_permission or history.has_delete_permission)


def test_an_open_gap_is_acknowledged_with_a_note(admin_client: Client, admin_user: User) -> None:
    capability = CapabilityFactory.create()
    gap = Gap.objects.create(
        kind=GapKind.UNCOVERED,
        severity=Level.HIGH,
        capability=capability,
        domain=capability.domain,
        explanation="Uncovered.",
    )
    form = admin_client.get(change_url(gap))

    response = admin_client.post(
        change_url(gap), posted_back(form, acknowledgement_note=" Accepted risk. ", severity="low")
    )

    assert response.status_code == 302
    gap.refresh_from_db()
    assert (gap.acknowledgement_note, gap.acknowledged_by, gap.severity) == (
        "Accepted risk.",
        admin_user,
        "high",
    )
    assert gap.acknowledged_at is not None


def test_a_resolved_gap_cannot_be_acknowledged(admin_client: Client) -> None:
    capability = CapabilityFactory.create()
    gap = Gap.objects.create(
        kind=GapKind.UNCOVERED,
        severity=Level.HIGH,
        capability=capability,
        domain=capability.domain,
        explanation="Uncovered.",
        resolved_at=timezone.now(),
    )

    response = admin_client.post(change_url(gap), {"acknowledgement_note": "Too late."})

    assert response.status_code == 403
    gap.refresh_from_db()
    assert gap.acknowledged_at is None


@pytest.mark.parametrize("model", [Gap, GapScan, ScanRequest], ids=lambda model: model.__name__)
def test_engine_records_cannot_be_added_or_deleted(admin_client: Client, model: type[models.Model]) -> None:
    assert admin_client.get(reverse(f"admin:provisions_{model._meta.model_name}_add")).status_code == 403


def test_gaps_are_filtered_by_state_and_by_their_subjects_domain(
    admin_client: Client, admin_user: User
) -> None:
    first, _ = build_records(2, user=admin_user)

    def listed(**filters: str) -> set[int]:
        response = admin_client.get(changelist_url(Gap), filters)
        return {gap.pk for gap in response.context["cl"].result_list}

    open_gaps = set(Gap.objects.filter(resolved_at__isnull=True).values_list("pk", flat=True))
    assert listed(state="open") == open_gaps
    assert listed(state="resolved") == set(Gap.objects.exclude(pk__in=open_gaps).values_list("pk", flat=True))
    in_first_domain = Gap.objects.filter(capability__domain=first.domain) | Gap.objects.filter(
        provision=first
    )
    assert listed(domain=first.domain.code) == set(in_first_domain.values_list("pk", flat=True))


@pytest.mark.django_db
def test_a_view_only_staff_member_sees_a_provision_without_a_form(client: Client) -> None:
    provision = ProvisionFactory.create()
    viewer = UserFactory.create(role="viewer", is_staff=True)
    client.force_login(viewer)

    response = client.get(change_url(provision))

    assert response.status_code == 200
    assert "Loaded version" not in response.content.decode()
    assert client.post(change_url(provision), {"title": "Renamed"}).status_code == 403


def test_the_admin_configuration_passes_djangos_checks() -> None:
    assert checks.run_checks(tags=[checks.Tags.admin]) == []
