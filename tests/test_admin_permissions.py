"""Who sees and changes what in the admin, through its HTTP views: roles, clearance and marking."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import models
from django.test import Client, RequestFactory
from django.urls import reverse

from provisions.models import (
    Capability,
    Consultation,
    ConsultationOutcome,
    Coverage,
    Discussion,
    Domain,
    Gap,
    GapKind,
    GapScan,
    Level,
    Marking,
    Position,
    Provision,
    ProvisionChange,
    ScanRequest,
    StatusChange,
    Territory,
    TerritoryKind,
    User,
)
from tests.factories import (
    CapabilityFactory,
    CoverageFactory,
    DomainFactory,
    PartyFactory,
    PositionFactory,
    ProvisionFactory,
    UserFactory,
)
from tests.test_admin import change_url, changelist_url, posted_back

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

MARKINGS = [Marking.OFFICIAL, Marking.OFFICIAL_SENSITIVE, Marking.SECRET]
REFERENCES = {
    Marking.OFFICIAL: "REF-OFFICIAL-A",
    Marking.OFFICIAL_SENSITIVE: "REF-SENSITIVE-A",
    Marking.SECRET: "REF-SECRET-A",
}
ACTORS = ["viewer", "analyst", "negotiator of the domain", "negotiator of another domain", "administrator"]
EDITORS = {"negotiator of the domain", "administrator"}
CAPABILITY_CODE = "CAP-EXTRADITION"


@dataclass
class World:
    domain: Domain
    other_domain: Domain
    provisions: dict[Marking, Provision]
    capability: Capability
    capability_gap: Gap


@pytest.fixture
def world() -> World:
    """Three provisions of one domain, one per marking, each with a status change, a consultation,
    coverage of one capability, a position and a gap; and a gap on the capability naming all three."""
    domain = DomainFactory.create(code="law-enforcement", name="Law enforcement")
    other_domain = DomainFactory.create(code="data-exchange", name="Data exchange")
    territory = Territory.objects.create(code="GG", name="Guernsey", kind=TerritoryKind.CROWN_DEPENDENCY)
    capability = CapabilityFactory.create(code=CAPABILITY_CODE, name="Extradition", domain=domain)
    party = PartyFactory.create(code="UK", partnership=domain.partnership)
    provisions = {}
    for marking in MARKINGS:
        provision = ProvisionFactory.create(
            reference=REFERENCES[marking],
            title=f"Cooperation {marking.value}",
            domain=domain,
            marking=marking,
        )
        provision.territories.add(territory)
        CoverageFactory.create(provision=provision, capability=capability)
        PositionFactory.create(provision=provision, party=party)
        Consultation.objects.create(
            provision=provision,
            territory=territory,
            consulted_on=datetime.date(2020, 2, 1),
            outcome=ConsultationOutcome.CONTENT,
        )
        Gap.objects.create(
            kind=GapKind.STALLED,
            severity=Level.MEDIUM,
            provision=provision,
            domain=provision.domain,
            explanation=f"{provision.reference} has been proposed since 2020-01-01.",
        )
        provisions[marking] = provision
    capability_gap = Gap.objects.create(
        kind=GapKind.AT_RISK,
        severity=Level.HIGH,
        capability=capability,
        domain=capability.domain,
        explanation="Extradition (CAP-EXTRADITION) lapses soon; none of its covering provisions is secured: "
        + ", ".join(f"{reference} (proposed)" for reference in REFERENCES.values()),
    )
    return World(domain, other_domain, provisions, capability, capability_gap)


def make_actor(actor: str, clearance: Marking, world: World) -> User:
    username = f"{actor.replace(' ', '-')}-{MARKINGS.index(clearance)}"
    if actor == "negotiator of the domain":
        return UserFactory.create(
            username=username, role="negotiator", clearance=clearance, domains=[world.domain], is_staff=True
        )
    if actor == "negotiator of another domain":
        return UserFactory.create(
            username=username,
            role="negotiator",
            clearance=clearance,
            domains=[world.other_domain],
            is_staff=True,
        )
    return UserFactory.create(username=username, role=actor, clearance=clearance, is_staff=True)


def cleared(clearance: Marking, marking: Marking) -> bool:
    return MARKINGS.index(marking) <= MARKINGS.index(clearance)


def history_url(instance: models.Model) -> str:
    return reverse(f"admin:provisions_{instance._meta.model_name}_history", args=[instance.pk])


def references_in(response: TestResponse) -> set[str]:
    html = response.content.decode()
    return {reference for reference in REFERENCES.values() if reference in html}


def history_table(response: TestResponse) -> str:
    """The change-history table of a History page (the page header names the signed-in user too)."""
    match = re.search(r'<table id="change-history".*?</table>', response.content.decode(), re.DOTALL)
    assert match, "no change history table"
    return match.group(0)


@pytest.mark.parametrize("clearance", MARKINGS, ids=lambda marking: marking.value)
@pytest.mark.parametrize("actor", ACTORS)
def test_what_each_role_and_clearance_sees_and_may_change(
    client: Client, admin_client: Client, world: World, actor: str, clearance: Marking
) -> None:
    user = make_actor(actor, clearance, world)
    client.force_login(user)
    visible = {REFERENCES[marking] for marking in MARKINGS if cleared(clearance, marking)}

    # The changelists list exactly the provisions, status changes, consultations and provision gaps
    # up to the user's clearance; a capability's gaps are listed for everyone.
    for model in (Provision, StatusChange, Consultation, Gap):
        response = client.get(changelist_url(model))
        assert response.status_code == 200, model
        assert references_in(response) == visible, model
    assert CAPABILITY_CODE in client.get(changelist_url(Gap)).content.decode()
    # Counts of provisions and coverage leave out what the user may not see.
    domains = client.get(changelist_url(Domain)).context["cl"].result_list
    assert {domain.code: domain.provision_count for domain in domains} == {
        world.domain.code: len(visible),
        world.other_domain.code: 0,
    }
    [capability] = client.get(changelist_url(Capability)).context["cl"].result_list
    assert capability.coverage_count == len(visible)

    for marking, provision in world.provisions.items():
        reference = provision.reference
        may_edit = cleared(clearance, marking) and actor in EDITORS
        page = client.get(change_url(provision))
        history = client.get(history_url(provision))
        if cleared(clearance, marking):
            assert page.status_code == 200, reference
            assert reference in page.content.decode()
            assert page.context["has_change_permission"] is may_edit
            for inline in page.context["inline_admin_formsets"]:
                part = inline.formset.model in (Position, Coverage, Consultation)
                changes = part and may_edit and inline.formset.model is not Position  # positions: history
                assert inline.has_change_permission is changes, inline.formset.model
                assert inline.has_add_permission is (part and may_edit), inline.formset.model
            assert history.status_code == 200, reference
            assert reference in history.content.decode()
        else:
            for response in (page, history, client.get(change_url(provision), follow=True)):
                assert response.status_code != 200 or response.redirect_chain, reference
                assert reference not in response.content.decode()

        renamed = f"Renamed by {user.username}"
        form = posted_back(admin_client.get(change_url(provision)), title=renamed, change_reason="Round 4")
        response = client.post(change_url(provision), form)

        provision.refresh_from_db()
        if may_edit:
            assert response.status_code == 302, response.context and response.context["errors"]
            assert provision.title == renamed
            history = client.get(history_url(provision))
            latest = history.context["page_obj"][0]
            assert (latest.history_user, latest.history_change_reason) == (user, "Round 4")
            table = history_table(history)
            assert user.username in table
            assert renamed in table
            assert "Round 4" in table
        else:
            # Forbidden; or, above clearance, "doesn't exist" for those who may change some provisions.
            refusals = {403} if cleared(clearance, marking) else {302, 403}
            assert response.status_code in refusals, reference
            assert reference not in response.content.decode()
            assert provision.title == f"Cooperation {marking.value}"


def test_an_anonymous_visitor_is_sent_to_sign_in_and_changes_nothing(
    client: Client, admin_client: Client, world: World
) -> None:
    for model in (Provision, StatusChange, Consultation, Gap):
        response = client.get(changelist_url(model))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    for provision in world.provisions.values():
        for url in (change_url(provision), history_url(provision)):
            response = client.get(url)
            assert response.status_code == 302
            assert provision.reference not in response.content.decode()
        form = posted_back(admin_client.get(change_url(provision)), title="Renamed anonymously")
        response = client.post(change_url(provision), form)
        assert response.status_code == 302
        provision.refresh_from_db()
        assert provision.title != "Renamed anonymously"


def test_a_staff_member_without_a_role_sees_no_provision(client: Client, world: World) -> None:
    client.force_login(UserFactory.create(clearance=Marking.SECRET, is_staff=True))

    assert client.get(changelist_url(Provision)).status_code == 403
    assert client.get(change_url(world.provisions[Marking.OFFICIAL])).status_code != 200


def test_a_superuser_sees_and_changes_everything(admin_client: Client, world: World) -> None:
    for model in (Provision, StatusChange, Consultation, Gap):
        assert references_in(admin_client.get(changelist_url(model))) == set(REFERENCES.values())
    secret = world.provisions[Marking.SECRET]
    response = admin_client.post(
        change_url(secret), posted_back(admin_client.get(change_url(secret)), title="Renamed")
    )
    assert response.status_code == 302
    secret.refresh_from_db()
    assert secret.title == "Renamed"


# --- the History page -------------------------------------------------------------------------------------


def test_the_history_page_shows_each_field_change_with_who_when_and_why(
    client: Client, admin_client: Client, world: World
) -> None:
    provision = world.provisions[Marking.OFFICIAL]
    negotiator = make_actor("negotiator of the domain", Marking.OFFICIAL, world)
    client.force_login(negotiator)
    form = posted_back(
        client.get(change_url(provision)),
        title="Extradition arrangements",
        target_date="2021-06-30",
        change_reason="Agreed wording at round 4",
    )
    assert client.post(change_url(provision), form).status_code == 302

    viewer = make_actor("viewer", Marking.OFFICIAL, world)
    client.force_login(viewer)
    response = client.get(history_url(provision))

    assert response.status_code == 200
    records = list(response.context["page_obj"])
    latest, created = records[0], records[-1]
    assert (latest.history_type, latest.history_user, latest.history_change_reason) == (
        "~",
        negotiator,
        "Agreed wording at round 4",
    )
    assert {change["field"] for change in latest.history_delta_changes} == {"Title", "Target date"}
    table = history_table(response)
    assert negotiator.username in table
    assert "Agreed wording at round 4" in table
    assert "Cooperation official" in table
    assert "Extradition arrangements" in table
    assert created.history_type == "+"
    # View only: no revert offered.
    assert response.context["revert_disabled"] is True
    assert "revert" not in response.content.decode().lower()


def test_past_versions_marked_above_clearance_are_left_out_of_the_history(
    client: Client, admin_client: Client, world: World
) -> None:
    provision = world.provisions[Marking.SECRET]
    form = posted_back(
        admin_client.get(change_url(provision)),
        marking=Marking.OFFICIAL,
        title="Declassified",
        change_reason="Declassified",
    )
    assert admin_client.post(change_url(provision), form).status_code == 302
    client.force_login(make_actor("viewer", Marking.OFFICIAL, world))

    response = client.get(history_url(provision))

    assert response.status_code == 200
    assert [record.marking for record in response.context["page_obj"]] == [Marking.OFFICIAL]
    assert "Cooperation secret" not in history_table(response)
    secret_version = provision.history.filter(marking=Marking.SECRET).latest("history_date")
    version_url = reverse(
        "admin:provisions_provision_simple_history", args=[provision.pk, secret_version.history_id]
    )
    assert client.get(version_url).status_code == 404
    assert len(admin_client.get(history_url(provision)).context["page_obj"]) == provision.history.count() > 1


def test_a_version_of_a_provision_is_viewed_but_never_restored_through_the_history(
    client: Client, admin_client: Client, world: World
) -> None:
    provision = world.provisions[Marking.OFFICIAL]
    first = provision.history.earliest("history_date")
    form = posted_back(admin_client.get(change_url(provision)), title="Renamed")
    assert admin_client.post(change_url(provision), form).status_code == 302
    version_url = reverse("admin:provisions_provision_simple_history", args=[provision.pk, first.history_id])

    for user in (
        make_actor("viewer", Marking.SECRET, world),
        make_actor("negotiator of the domain", Marking.SECRET, world),
        make_actor("administrator", Marking.SECRET, world),
    ):
        client.force_login(user)
        page = client.get(version_url)
        assert page.status_code == 200
        assert ">Revert<" not in page.content.decode() and 'value="Revert"' not in page.content.decode()
        # django-simple-history would save the posted version form, whatever the user may change,
        # past the version check, the status service and the scans.
        form = page.context["adminform"].form
        data = {name: form[name].value() for name in form.fields if form[name].value() not in (None, False)}
        assert client.post(version_url, {**data, "title": "Hijacked"}).status_code == 403
        provision.refresh_from_db()
        assert provision.title == "Renamed"


def test_a_viewer_cannot_change_a_capability_through_its_version_page(client: Client, world: World) -> None:
    capability = world.capability
    version = capability.history.earliest("history_date")
    version_url = reverse(
        "admin:provisions_capability_simple_history", args=[capability.pk, version.history_id]
    )
    client.force_login(make_actor("viewer", Marking.SECRET, world))
    form = client.get(version_url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() not in (None, False)}

    # django-simple-history saves this form for anyone who may view the capability.
    response = client.post(version_url, {**data, "name": "Hijacked", "criticality": Level.LOW})

    assert response.status_code == 403
    capability.refresh_from_db()
    assert (capability.name, capability.criticality) == ("Extradition", Level.HIGH)


def test_the_history_and_versions_of_a_provision_above_clearance_are_not_shown(
    client: Client, world: World
) -> None:
    secret = world.provisions[Marking.SECRET]
    version = secret.history.earliest("history_date")
    client.force_login(make_actor("administrator", Marking.OFFICIAL_SENSITIVE, world))

    for url in (
        history_url(secret),
        reverse("admin:provisions_provision_simple_history", args=[secret.pk, version.history_id]),
    ):
        response = client.get(url)
        assert response.status_code == 404
        assert secret.reference not in response.content.decode()


@pytest.mark.parametrize("model", [Capability, Domain], ids=lambda model: model.__name__)
def test_capabilities_and_domains_have_a_history_page(
    client: Client, admin_client: Client, world: World, model: type[models.Model]
) -> None:
    instance = world.capability if model is Capability else world.domain
    form = posted_back(admin_client.get(change_url(instance)), name="Renamed in the admin")
    assert admin_client.post(change_url(instance), form).status_code == 302
    client.force_login(make_actor("viewer", Marking.OFFICIAL, world))

    response = client.get(history_url(instance))

    assert response.status_code == 200
    assert "Renamed in the admin" in history_table(response)
    assert "admin" in history_table(response)  # the superuser who made the change


# --- adding and editing provisions ------------------------------------------------------------------------


def add_form(client: Client, **changes: object) -> dict[str, object]:
    page = client.get(reverse("admin:provisions_provision_add"))
    assert page.status_code == 200
    return posted_back(page, reference="SP-NEW-1", title="New provision", status="scoping", **changes)


def test_a_negotiator_adds_provisions_only_in_their_domains_and_up_to_their_clearance(
    client: Client, world: World
) -> None:
    negotiator = make_actor("negotiator of the domain", Marking.OFFICIAL_SENSITIVE, world)
    client.force_login(negotiator)
    page = client.get(reverse("admin:provisions_provision_add"))
    fields = page.context["adminform"].form.fields
    assert list(fields["domain"].queryset) == [world.domain]
    assert [value for value, _ in fields["marking"].choices] == ["official", "official_sensitive"]

    refused = client.post(
        reverse("admin:provisions_provision_add"), add_form(client, domain=world.other_domain.pk)
    )
    assert refused.status_code == 200
    assert "domain" in refused.context["adminform"].form.errors
    refused = client.post(
        reverse("admin:provisions_provision_add"), add_form(client, domain=world.domain.pk, marking="secret")
    )
    assert refused.status_code == 200
    assert "marking" in refused.context["adminform"].form.errors
    assert not Provision.objects.filter(reference="SP-NEW-1").exists()

    added = client.post(
        reverse("admin:provisions_provision_add"),
        add_form(client, domain=world.domain.pk, marking="official_sensitive", change_reason="New ask"),
    )
    assert added.status_code == 302, added.context and added.context["adminform"].form.errors
    provision = Provision.objects.get(reference="SP-NEW-1")
    assert (provision.domain, provision.marking) == (world.domain, Marking.OFFICIAL_SENSITIVE)
    created = provision.history.get()
    assert (created.history_user, created.history_change_reason) == (negotiator, "New ask")
    assert StatusChange.objects.get(provision=provision).changed_by == negotiator


def test_the_domain_autocomplete_offers_a_negotiator_only_their_domains(client: Client, world: World) -> None:
    url = reverse("admin:autocomplete")
    params = {"app_label": "provisions", "model_name": "provision", "field_name": "domain", "term": ""}

    client.force_login(make_actor("negotiator of the domain", Marking.SECRET, world))
    offered = {result["text"] for result in client.get(url, params).json()["results"]}
    assert offered == {world.domain.name}

    client.force_login(make_actor("administrator", Marking.OFFICIAL, world))
    offered = {result["text"] for result in client.get(url, params).json()["results"]}
    assert offered == {world.domain.name, world.other_domain.name}


def test_an_administrator_adds_provisions_in_any_domain(client: Client, world: World) -> None:
    client.force_login(make_actor("administrator", Marking.SECRET, world))

    response = client.post(
        reverse("admin:provisions_provision_add"),
        add_form(client, domain=world.other_domain.pk, marking="secret"),
    )

    assert response.status_code == 302
    assert Provision.objects.get(reference="SP-NEW-1").domain == world.other_domain


def test_users_who_may_not_add_provisions_get_no_add_page(client: Client, world: World) -> None:
    for actor in ("viewer", "analyst"):
        client.force_login(make_actor(actor, Marking.SECRET, world))
        assert client.get(reverse("admin:provisions_provision_add")).status_code == 403


def test_a_negotiator_cannot_move_a_provision_out_of_their_domains_nor_mark_it_above_clearance(
    client: Client, world: World
) -> None:
    provision = world.provisions[Marking.OFFICIAL]
    client.force_login(make_actor("negotiator of the domain", Marking.OFFICIAL, world))

    for changes in ({"domain": world.other_domain.pk}, {"marking": Marking.SECRET}):
        response = client.post(
            change_url(provision), posted_back(client.get(change_url(provision)), **changes)
        )
        assert response.status_code == 200
        assert response.context["adminform"].form.errors

    provision.refresh_from_db()
    assert (provision.domain, provision.marking, provision.version) == (world.domain, Marking.OFFICIAL, 1)


def test_inline_rows_of_a_provision_are_changed_only_by_those_who_may_edit_it(
    client: Client, world: World
) -> None:
    provision = world.provisions[Marking.OFFICIAL]
    consultation = provision.consultations.get()
    client.force_login(make_actor("negotiator of another domain", Marking.SECRET, world))

    response = client.post(
        change_url(provision), {"consultations-TOTAL_FORMS": "1", "consultations-0-id": consultation.pk}
    )
    assert response.status_code == 403

    client.force_login(make_actor("negotiator of the domain", Marking.OFFICIAL, world))
    page = client.get(change_url(provision))
    response = client.post(
        change_url(provision),
        posted_back(page, **{"consultations-0-note": "Content with the text", "change_reason": "Letter"}),
    )
    assert response.status_code == 302
    consultation.refresh_from_db()
    assert consultation.note == "Content with the text"
    assert consultation.history.latest("history_date").history_change_reason == "Letter"


@pytest.mark.parametrize("actor", ACTORS)
def test_the_provisions_inlines_follow_its_change_permission(
    rf: RequestFactory, world: World, actor: str
) -> None:
    request = rf.get("/")
    request.user = make_actor(actor, Marking.OFFICIAL, world)
    model_admin = admin.site.get_model_admin(Provision)
    inlines = model_admin.get_inline_instances(request)
    records = {StatusChange, ProvisionChange, Discussion}  # recorded through the services, shown here
    parts = [inline for inline in inlines if inline.model not in records]
    assert {inline.model for inline in parts} == {Position, Coverage, Consultation}
    for inline in inlines:
        if inline.model in records:
            assert not inline.has_add_permission(request, None)
            assert not inline.has_change_permission(request, None)
            assert not inline.has_delete_permission(request, None)

    for marking, provision in world.provisions.items():
        may_edit = marking == Marking.OFFICIAL and actor in EDITORS
        assert model_admin.has_change_permission(request, provision) is may_edit
        for inline in parts:
            assert inline.has_add_permission(request, provision) is may_edit
            # A recorded position is history (rules v2): a new one is added, a mistake removed.
            changes = may_edit and inline.model is not Position
            assert inline.has_change_permission(request, provision) is changes
            assert inline.has_delete_permission(request, provision) is may_edit


# --- consultations, status changes and gaps -----------------------------------------------------------------


def test_consultations_are_changed_only_by_those_who_may_edit_their_provision(
    client: Client, admin_client: Client, world: World
) -> None:
    official = world.provisions[Marking.OFFICIAL]
    consultation = official.consultations.get()
    url = change_url(consultation)
    form = posted_back(admin_client.get(url), note="Rewritten")

    client.force_login(make_actor("negotiator of another domain", Marking.SECRET, world))
    assert client.get(url).context["has_change_permission"] is False
    assert client.post(url, form).status_code == 403

    client.force_login(make_actor("negotiator of the domain", Marking.OFFICIAL, world))
    # Moving it to a provision above clearance, or adding one there, is refused.
    secret = world.provisions[Marking.SECRET]
    response = client.post(url, {**form, "provision": secret.pk})
    assert response.status_code == 200
    assert "provision" in response.context["adminform"].form.errors
    consultation.refresh_from_db()
    assert (consultation.provision, consultation.note) == (official, "")

    response = client.post(url, form)
    assert response.status_code == 302
    consultation.refresh_from_db()
    assert consultation.note == "Rewritten"


def test_a_negotiator_cannot_add_a_consultation_to_another_domains_provision(
    client: Client, world: World
) -> None:
    other = ProvisionFactory.create(domain=world.other_domain)
    territory = Territory.objects.get(code="GG")
    client.force_login(make_actor("negotiator of the domain", Marking.SECRET, world))
    data = {
        "provision": other.pk,
        "territory": territory.pk,
        "consulted_on": "2020-03-01",
        "outcome": ConsultationOutcome.CONCERNS,
    }

    response = client.post(reverse("admin:provisions_consultation_add"), data)

    assert response.status_code == 200
    assert "provision" in response.context["adminform"].form.errors
    assert not other.consultations.exists()
    response = client.post(
        reverse("admin:provisions_consultation_add"),
        {**data, "provision": world.provisions[Marking.SECRET].pk},
    )
    assert response.status_code == 302
    assert world.provisions[Marking.SECRET].consultations.count() == 2
    recorded = world.provisions[Marking.SECRET].consultations.latest("id")
    assert recorded.recorded_by.username == "negotiator-of-the-domain-2"  # the one signed in


def test_a_consultation_in_the_admin_follows_the_services_rules(client: Client, world: World) -> None:
    provision = world.provisions[Marking.OFFICIAL]
    client.force_login(make_actor("negotiator of the domain", Marking.SECRET, world))
    elsewhere = Territory.objects.create(code="IOM", name="Isle of Man", kind="crown_dependency")
    state = Territory.objects.create(code="UKX", name="United Kingdom", kind="state")
    provision.territories.add(state)
    before = provision.consultations.count()
    for territory, error in ((elsewhere, "does not extend to Isle of Man"), (state, "is not consulted")):
        response = client.post(
            reverse("admin:provisions_consultation_add"),
            {
                "provision": provision.pk,
                "territory": territory.pk,
                "consulted_on": "2020-03-01",
                "outcome": "content",
            },
        )
        assert response.status_code == 200
        assert error in " ".join(response.context["adminform"].form.errors["territory"])
    assert provision.consultations.count() == before


@pytest.mark.parametrize("model", [StatusChange, Consultation, Gap], ids=lambda model: model.__name__)
def test_rows_of_a_provision_above_clearance_cannot_be_opened(
    client: Client, world: World, model: type[models.Model]
) -> None:
    secret = world.provisions[Marking.SECRET]
    row = model._default_manager.get(provision=secret)  # type: ignore[attr-defined]
    client.force_login(make_actor("administrator", Marking.OFFICIAL, world))

    response = client.get(change_url(row), follow=True)

    assert response.redirect_chain  # "doesn't exist": back to the admin's index
    assert secret.reference not in response.content.decode()


@pytest.mark.parametrize(
    ("actor", "may_acknowledge"),
    [("viewer", False), ("analyst", True), ("negotiator of another domain", True), ("administrator", True)],
)
def test_gaps_are_acknowledged_only_by_analysts_and_above(
    client: Client, world: World, actor: str, may_acknowledge: bool
) -> None:
    gap = world.capability_gap
    client.force_login(make_actor(actor, Marking.OFFICIAL, world))

    assert client.get(change_url(gap)).context["has_change_permission"] is may_acknowledge
    response = client.post(change_url(gap), {"acknowledgement_note": "Accepted risk."})

    assert response.status_code == (302 if may_acknowledge else 403)
    gap.refresh_from_db()
    assert (gap.acknowledgement_note == "Accepted risk.") is may_acknowledge


def test_a_model_permission_alone_does_not_let_a_viewer_acknowledge_a_gap(
    client: Client, world: World
) -> None:
    gap = world.capability_gap
    viewer = make_actor("viewer", Marking.SECRET, world)
    viewer.user_permissions.add(Permission.objects.get(codename="change_gap"))
    client.force_login(viewer)

    assert client.get(change_url(gap)).context["has_change_permission"] is False
    assert client.post(change_url(gap), {"acknowledgement_note": "Accepted risk."}).status_code == 403
    gap.refresh_from_db()
    assert gap.acknowledged_at is None


@pytest.mark.parametrize("clearance", MARKINGS, ids=lambda marking: marking.value)
def test_a_capability_gaps_explanation_is_withheld_when_it_names_a_provision_above_clearance(
    client: Client, world: World, clearance: Marking
) -> None:
    client.force_login(make_actor("viewer", clearance, world))

    response = client.get(change_url(world.capability_gap))

    assert response.status_code == 200
    html = response.content.decode()
    assert CAPABILITY_CODE in html
    if clearance == Marking.SECRET:
        assert references_in(response) == set(REFERENCES.values())
    else:
        assert references_in(response) == set()
        assert "withheld" in html


@pytest.mark.parametrize("clearance", MARKINGS, ids=lambda marking: marking.value)
def test_searching_gaps_for_a_reference_above_clearance_finds_nothing(
    client: Client, world: World, clearance: Marking
) -> None:
    client.force_login(make_actor("viewer", clearance, world))
    secret = REFERENCES[Marking.SECRET]

    response = client.get(reverse("admin:provisions_gap_changelist"), {"q": secret})

    assert response.status_code == 200
    found = response.context["cl"].result_count
    assert found == (1 if clearance == Marking.SECRET else 0)  # its own stalled gap, when cleared for it


# --- users ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("actor", ACTORS)
def test_only_administrators_administer_users(client: Client, world: World, actor: str) -> None:
    user = make_actor(actor, Marking.SECRET, world)
    client.force_login(user)
    user_url = reverse("admin:provisions_user_change", args=[user.pk])
    administers = actor == "administrator"

    assert client.get(reverse("admin:provisions_user_changelist")).status_code == (
        200 if administers else 403
    )
    assert (client.get(user_url).status_code == 200) is administers
    index = client.get(reverse("admin:index")).content.decode()
    assert (reverse("admin:provisions_user_changelist") in index) is administers


def test_scan_counts_and_the_scan_outbox_are_for_administrators_cleared_to_every_marking(
    client: Client, world: World
) -> None:
    """A scan's counts and the scan requests count and name SECRET provisions too: an administrator
    cleared below SECRET must not learn from them that a SECRET provision moved."""
    scan = GapScan.objects.create(as_of=datetime.date(2026, 1, 1), trigger="command", opened=3)
    secret = world.provisions[Marking.SECRET]
    ScanRequest.objects.create(trigger="edit", full=False, provision_ids=[secret.pk])
    client.force_login(make_actor("administrator", Marking.OFFICIAL_SENSITIVE, world))

    listing = client.get(reverse("admin:provisions_gapscan_changelist"))
    assert listing.status_code == 200
    assert "column-opened" not in listing.content.decode()
    detail = client.get(reverse("admin:provisions_gapscan_change", args=[scan.pk])).content.decode()
    assert "Opened" not in detail and "Evaluated subjects" not in detail
    assert client.get(reverse("admin:provisions_scanrequest_changelist")).status_code == 403

    client.force_login(make_actor("administrator", Marking.SECRET, world))
    assert "column-opened" in client.get(reverse("admin:provisions_gapscan_changelist")).content.decode()
    assert client.get(reverse("admin:provisions_scanrequest_changelist")).status_code == 200


def every_admin_url() -> list[str]:
    """The admin's index, and each registered model's list, add page and, for every row, its change,
    history and delete pages."""
    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        urls += [reverse(f"{prefix}_changelist"), reverse(f"{prefix}_add")]
        for pk in model._default_manager.values_list("pk", flat=True):
            urls += [reverse(f"{prefix}_{view}", args=[pk]) for view in ("change", "history", "delete")]
    return urls


def test_no_admin_page_shows_a_below_secret_administrator_anything_secret(
    client: Client, world: World
) -> None:
    """Every admin URL, for every row of every model, read by an administrator cleared to
    OFFICIAL-SENSITIVE: never a server error, never the SECRET provision's reference or title."""
    secret = world.provisions[Marking.SECRET]
    Discussion.objects.create(provision=secret, on=datetime.date(2020, 3, 1), note="Round 2, no move")
    ProvisionChange.objects.create(provision=secret, at=datetime.date(2020, 4, 1), title="Renamed secretly")
    ScanRequest.objects.create(trigger="edit", full=False, provision_ids=[secret.pk])
    client.force_login(make_actor("administrator", Marking.OFFICIAL_SENSITIVE, world))

    urls = every_admin_url()
    assert len(urls) > 100
    for url in urls:
        response = client.get(url)
        assert response.status_code in {200, 302, 403, 404}, url
        body = response.content.decode()
        for secret_text in (secret.reference, secret.title, "Renamed secretly"):
            assert secret_text not in body, f"{url} shows {secret_text!r}"

    # The same walk by a SECRET-cleared administrator finds them: the check above can fail.
    client.force_login(make_actor("administrator", Marking.SECRET, world))
    shown = [url for url in urls if "Renamed secretly" in client.get(url).content.decode()]
    assert shown, "a SECRET-cleared administrator should see the SECRET provision's dated change"


def test_a_below_secret_administrator_cannot_mark_a_provision_secret_in_the_admin(
    client: Client, world: World
) -> None:
    """The token case's twin on the provision forms: an administrator cleared to OFFICIAL-SENSITIVE
    neither adds a SECRET provision nor raises one to SECRET."""
    client.force_login(make_actor("administrator", Marking.OFFICIAL_SENSITIVE, world))
    page = client.get(reverse("admin:provisions_provision_add"))
    assert "secret" not in [value for value, _ in page.context["adminform"].form.fields["marking"].choices]
    added = client.post(
        reverse("admin:provisions_provision_add"), add_form(client, domain=world.domain.pk, marking="secret")
    )
    assert added.status_code == 200 and "marking" in added.context["adminform"].form.errors
    assert not Provision.objects.filter(reference="SP-NEW-1").exists()

    provision = world.provisions[Marking.OFFICIAL]
    raised = client.post(
        change_url(provision), posted_back(client.get(change_url(provision)), marking=Marking.SECRET)
    )
    assert raised.status_code == 200 and raised.context["adminform"].form.errors
    provision.refresh_from_db()
    assert (provision.marking, provision.version) == (Marking.OFFICIAL, 1)
