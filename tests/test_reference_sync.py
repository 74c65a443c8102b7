"""Keeping a copy of the reference data in sync: `updated_since` on domains, capabilities, territories
and precedents, moved by every write that changes what the API shows of them (the admin's, the
import's, a dated value taking effect), and the feed's `capability.changed`, `capability.deleted`
and `aim.changed` events."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from provisions.models import (
    Aim,
    Capability,
    Domain,
    Event,
    Level,
    Marking,
    Party,
    Pillar,
    Precedent,
    Provision,
    ProvisionChange,
    Territory,
)
from provisions.permissions import Reader
from provisions.services.dated import capability_change_record, dated_values_refresh
from provisions.services.partnership_file import partnership_import
from provisions.services.reference_data import reference_data_delete, reference_data_save
from tests.factories import (
    CapabilityFactory,
    CoverageFactory,
    DomainFactory,
    PartnershipFactory,
    PositionFactory,
    ProvisionFactory,
    UserFactory,
)
from tests.test_api import bearer
from tests.test_events import read_all
from tests.test_partnership_file import capability_index_of, shipped_data

pytestmark = pytest.mark.django_db

LISTS = {
    "domains": Domain,
    "capabilities": Capability,
    "territories": Territory,
    "precedents": Precedent,
}
NOTHING_CHANGED: dict[str, set[str]] = {name: set() for name in LISTS}


def long_ago() -> None:
    """Every reference row last changed two days ago."""
    two_days_ago = timezone.now() - datetime.timedelta(days=2)
    for model in LISTS.values():
        model.objects.update(updated_at=two_days_ago)


def changed_since(client: Client, headers: dict[str, str], since: datetime.datetime) -> dict[str, set[str]]:
    """The codes each reference list gives for `updated_since=since`."""
    changed: dict[str, set[str]] = {}
    for name in LISTS:
        answer = client.get(
            f"/api/v1/{name}/", {"updated_since": since.isoformat(), "page_size": 500}, **headers
        )
        assert answer.status_code == 200, answer.content
        rows = answer.json()["results"]
        assert all(datetime.datetime.fromisoformat(row["updated_at"]) >= since for row in rows)
        changed[name] = {row["code"] for row in rows}
    return changed


def events_since(
    client: Client, headers: dict[str, str], cursor: str | None
) -> tuple[list[tuple[str, str]], Any]:
    events, cursor = read_all(client, headers, after=cursor)
    return [
        (event["event"], event["data"].get("code") or event["data"].get("reference")) for event in events
    ], cursor


def test_an_administrators_edit_moves_what_shows_it_and_tells_of_capabilities(client: Client) -> None:
    admin = Reader.of(UserFactory(role="administrator", clearance=Marking.SECRET))
    headers = bearer(UserFactory(role="viewer"))
    pillar = Pillar.objects.create(name="Law enforcement and judicial cooperation")
    domain = DomainFactory(code="law-enforcement", pillar=pillar)
    other_domain = DomainFactory(code="foreign-policy")
    capability = CapabilityFactory(code="PNR", domain=domain, criticality=Level.HIGH)
    CapabilityFactory(code="SANCTIONS", domain=other_domain)
    territory = Territory.objects.create(code="GI", name="Gibraltar")
    Precedent.objects.create(code="CH", title="Switzerland")
    long_ago()
    _, cursor = read_all(client, headers)
    since = timezone.now()
    assert changed_since(client, headers, since) == NOTHING_CHANGED

    capability.name = "Passenger name records"
    reference_data_save(instance=capability, by=admin)
    territory.name = "Gibraltar (British Overseas Territory)"
    reference_data_save(instance=territory, by=admin)
    assert changed_since(client, headers, since) == {
        "domains": set(),
        "capabilities": {"PNR"},
        "territories": {"GI"},
        "precedents": set(),
    }
    told, cursor = events_since(client, headers, cursor)
    assert told == [("capability.changed", "PNR")]

    # A domain shows its pillar's name; a capability its domain's code.
    since = timezone.now()
    pillar.name = "Law enforcement"
    reference_data_save(instance=pillar, by=admin)
    assert changed_since(client, headers, since)["domains"] == {"law-enforcement"}
    domain.code = "law-enforcement-and-justice"
    reference_data_save(instance=domain, by=admin)
    assert changed_since(client, headers, since)["capabilities"] == {"PNR"}
    told, cursor = events_since(client, headers, cursor)
    assert told == [("capability.changed", "PNR")]

    # A new lapse date is a dated change (effective today); a back-dated one changes the record only.
    since = timezone.now()
    capability.refresh_from_db()
    capability.lapses_on = timezone.localdate() + datetime.timedelta(days=30)
    reference_data_save(instance=capability, by=admin)
    capability_change_record(
        capability=capability,
        by=admin,
        on=timezone.localdate() - datetime.timedelta(days=400),
        note="Corrected from the published text",
        criticality=Level.CRITICAL,
    )
    assert changed_since(client, headers, since)["capabilities"] == {"PNR"}
    told, cursor = events_since(client, headers, cursor)
    assert told == [("capability.changed", "PNR"), ("capability.changed", "PNR")]

    reference_data_delete(instances=Capability.objects.filter(code="SANCTIONS"), by=admin)
    told, _ = events_since(client, headers, cursor)
    assert told == [("capability.deleted", "SANCTIONS")]


def provisions_changed_since(client: Client, headers: dict[str, str], since: datetime.datetime) -> set[str]:
    answer = client.get("/api/v1/provisions/", {"updated_since": since.isoformat()}, **headers)
    assert answer.status_code == 200, answer.content
    return {row["reference"] for row in answer.json()["results"]}


def test_renaming_or_adding_what_a_provision_shows_moves_the_provision(client: Client) -> None:
    """A provision's representation names its domain, its positions' parties, the capabilities it
    covers, its precedents and territories by code, and its alignment is over every party of its
    partnership: an administrator changing one of them moves the provisions showing it (a new
    version and a `provision.changed` event), and no other."""
    admin = Reader.of(UserFactory(role="administrator", clearance=Marking.SECRET))
    headers = bearer(UserFactory(role="viewer"))
    partnership = PartnershipFactory()
    uk = Party.objects.create(partnership=partnership, code="UK", name="United Kingdom")
    eu = Party.objects.create(partnership=partnership, code="EU", name="European Union")
    justice, defence = DomainFactory(partnership=partnership), DomainFactory(partnership=partnership)
    pnr = ProvisionFactory(reference="SP-PNR", domain=justice, marking=Marking.OFFICIAL)
    eaw = ProvisionFactory(reference="SP-EAW", domain=justice, marking=Marking.OFFICIAL)
    csdp = ProvisionFactory(reference="SP-CSDP", domain=defence, marking=Marking.OFFICIAL)
    PositionFactory(provision=pnr, party=uk)
    PositionFactory(provision=pnr, party=eu)
    PositionFactory(provision=eaw, party=uk)
    CoverageFactory(provision=csdp, capability=CapabilityFactory(code="MISSIONS", domain=defence))
    gibraltar = Territory.objects.create(code="GI", name="Gibraltar")
    eaw.territories.add(gibraltar)
    switzerland = Precedent.objects.create(code="CH", title="Switzerland")
    csdp.precedents.add(switzerland)
    Provision.objects.update(updated_at=timezone.now() - datetime.timedelta(days=2))
    _, cursor = read_all(client, headers)

    def renamed(row: Any, code: str) -> tuple[set[str], list[tuple[str, str]]]:
        nonlocal cursor
        since = timezone.now()
        row.code = code
        reference_data_save(instance=row, by=admin)
        told, cursor = events_since(client, headers, cursor)
        return provisions_changed_since(client, headers, since), sorted(
            event for event in told if event[0] == "provision.changed"
        )

    assert renamed(eu, "EU27") == ({"SP-PNR"}, [("provision.changed", "SP-PNR")])
    assert client.get("/api/v1/provisions/SP-PNR/", **headers).json()["positions"][1]["party"] == "EU27"
    assert renamed(uk, "GB")[0] == {"SP-PNR", "SP-EAW"}
    assert renamed(justice, "justice")[0] == {"SP-PNR", "SP-EAW"}
    assert renamed(Capability.objects.get(code="MISSIONS"), "CSDP-MISSIONS")[0] == {"SP-CSDP"}
    assert renamed(gibraltar, "GIB")[0] == {"SP-EAW"}
    assert renamed(switzerland, "CHE")[0] == {"SP-CSDP"}
    assert Provision.objects.get(reference="SP-PNR").version == 4  # the party twice, then the domain

    # A name alone shows nowhere in a provision; a party added or deleted changes every alignment.
    since = timezone.now()
    uk.name = "The United Kingdom"
    reference_data_save(instance=uk, by=admin)
    assert provisions_changed_since(client, headers, since) == set()
    assert client.get("/api/v1/provisions/SP-PNR/", **headers).json()["alignment"] == "aligned"
    observer = reference_data_save(
        instance=Party(partnership=partnership, code="EFTA", name="EFTA States"), by=admin
    )
    assert provisions_changed_since(client, headers, since) == {"SP-PNR", "SP-EAW", "SP-CSDP"}
    assert client.get("/api/v1/provisions/SP-PNR/", **headers).json()["alignment"] == "undetermined"
    since = timezone.now()
    reference_data_delete(instances=[observer], by=admin)
    assert provisions_changed_since(client, headers, since) == {"SP-PNR", "SP-EAW", "SP-CSDP"}
    assert client.get("/api/v1/provisions/SP-PNR/", **headers).json()["alignment"] == "aligned"


def test_updated_since_is_checked_on_every_reference_list(client: Client) -> None:
    headers = bearer(UserFactory(role="viewer"))
    for name in LISTS:
        refused = client.get(f"/api/v1/{name}/", {"updated_since": "last week"}, **headers)
        assert refused.status_code == 400, name
        assert "updated_since" in refused.json()["error"]["field_errors"]


def test_a_re_import_tells_only_of_what_the_file_changed(
    client: Client, shipped_partnership_file: str
) -> None:
    headers = bearer(UserFactory(role="viewer"))
    data = shipped_data(shipped_partnership_file)
    partnership_import(data=data)
    told, cursor = events_since(client, headers, None)
    assert {event for event, _ in told} >= {"capability.changed", "aim.changed", "provision.changed"}
    assert len([code for event, code in told if event == "capability.changed"]) == Capability.objects.count()
    assert len([code for event, code in told if event == "aim.changed"]) == Aim.objects.count()

    long_ago()
    since = timezone.now()
    partnership_import(data=data)  # the same file: nothing moves, nothing is told
    assert changed_since(client, headers, since) == NOTHING_CHANGED
    assert events_since(client, headers, cursor)[0] == []

    capability = data["capabilities"][capability_index_of(data, "DATA-FLOWS")]
    capability["name"] = "Personal data flows (adequacy)"
    data["domains"][0]["description"] = "Reworded."
    data["territories"][0]["name"] += " (renamed)"
    aim = data["aims"][0]
    aim["capabilities"] = aim["capabilities"][::-1] if len(aim["capabilities"]) > 1 else []
    partnership_import(data=data)

    assert changed_since(client, headers, since) == {
        "domains": {data["domains"][0]["code"]},
        "capabilities": {"DATA-FLOWS"},
        "territories": {data["territories"][0]["code"]},
        "precedents": set(),
    }
    told, _ = events_since(client, headers, cursor)
    assert told == [("capability.changed", "DATA-FLOWS"), ("aim.changed", aim["code"])]
    assert Aim.objects.get(code=aim["code"]).updated_at >= since


def test_a_dated_value_taking_effect_on_its_day_is_a_new_version_and_an_event(client: Client) -> None:
    headers = bearer(UserFactory(role="viewer"))
    provision = ProvisionFactory(reference="SP-1", title="PNR", marking=Marking.OFFICIAL)
    tomorrow = timezone.localdate() + datetime.timedelta(days=1)
    ProvisionChange.objects.create(provision=provision, at=None, title="PNR")
    ProvisionChange.objects.create(provision=provision, at=tomorrow, title="PNR transfers")
    capability = CapabilityFactory(code="PNR", criticality=Level.LOW)
    capability.changes.create(at=None, criticality=Level.LOW)
    capability.changes.create(at=tomorrow, criticality=Level.HIGH)
    Provision.objects.filter(pk=provision.pk).update(updated_at=timezone.now() - datetime.timedelta(days=2))
    long_ago()
    _, cursor = read_all(client, headers)
    since = timezone.now()

    assert dated_values_refresh(today=timezone.localdate()) == 0  # nothing takes effect today
    assert events_since(client, headers, cursor)[0] == []

    assert dated_values_refresh(today=tomorrow) == 2
    provision.refresh_from_db()
    assert (provision.title, provision.version) == ("PNR transfers", 2)
    assert provision.updated_at >= since
    assert changed_since(client, headers, since)["capabilities"] == {"PNR"}
    told, _ = events_since(client, headers, cursor)
    assert told == [("capability.changed", "PNR"), ("provision.changed", "SP-1")]
    assert Event.objects.filter(event="provision.changed").latest("id").data["*"]["version"] == 2


def test_gap_scans_updated_since_lists_the_scans_finished_since(client: Client) -> None:
    from provisions.models import GapScan, ScanTrigger
    from provisions.services.scans import gaps_scan

    headers = bearer(UserFactory(role="analyst", clearance=Marking.SECRET))
    gaps_scan(trigger=ScanTrigger.COMMAND)
    GapScan.objects.update(updated_at=timezone.now() - datetime.timedelta(days=1))
    since = timezone.now()
    later = gaps_scan(trigger=ScanTrigger.COMMAND).scan

    answer = client.get("/api/v1/gap-scans/", {"updated_since": since.isoformat()}, **headers)
    assert answer.status_code == 200
    assert [row["id"] for row in answer.json()["results"]] == [later.pk]
    assert datetime.datetime.fromisoformat(answer.json()["results"][0]["updated_at"]) >= since
    assert client.get("/api/v1/gap-scans/", {"updated_since": "soon"}, **headers).status_code == 400


def test_tokens_and_webhook_endpoints_take_updated_since(client: Client) -> None:
    from provisions.models import ApiToken, WebhookEndpoint
    from provisions.services.tokens import api_token_create, api_token_revoke
    from provisions.services.webhooks.endpoints import webhook_endpoint_rotate_secret

    administrator = UserFactory(role="administrator", clearance=Marking.SECRET)
    by = Reader.of(administrator)
    headers = bearer(administrator)
    old_token, _ = api_token_create(owner=administrator, by=by, name="old")
    revoked, _ = api_token_create(owner=administrator, by=by, name="revoked later")
    quiet = WebhookEndpoint.objects.create(
        url="https://a.example/hooks", events=["gap.opened"], secret="whsec_MTIz"
    )
    rotated = WebhookEndpoint.objects.create(
        url="https://b.example/hooks", events=["gap.opened"], secret="whsec_MTIz"
    )
    long_ago = timezone.now() - datetime.timedelta(days=2)
    ApiToken.objects.update(created_at=long_ago, last_used_at=None)
    WebhookEndpoint.objects.update(updated_at=long_ago)
    since = timezone.now()

    api_token_revoke(token=revoked, by=by)
    webhook_endpoint_rotate_secret(endpoint=rotated, by=by)

    tokens = client.get("/api/v1/tokens/", {"updated_since": since.isoformat()}, **headers).json()["results"]
    # The token this request came with was just used; the one revoked since is listed; the other not.
    assert revoked.pk in {row["id"] for row in tokens} and old_token.pk not in {row["id"] for row in tokens}
    endpoints = client.get("/api/v1/webhook-endpoints/", {"updated_since": since.isoformat()}, **headers)
    assert [row["id"] for row in endpoints.json()["results"]] == [rotated.pk]  # not `quiet`
    assert quiet.pk in {
        row["id"] for row in client.get("/api/v1/webhook-endpoints/", **headers).json()["results"]
    }
    for path in ("/api/v1/tokens/", "/api/v1/webhook-endpoints/"):
        assert client.get(path, {"updated_since": "then"}, **headers).status_code == 400
