"""Redaction as a policy over data (provisions.redaction): a reader's explanation is rendered from
the gap's facts with what they may not see left out, whatever the wording."""

from __future__ import annotations

import datetime
import io
import json
import re

import openpyxl
import pypdf
import pytest
from django.test import Client
from django.utils import timezone

from provisions.explanations import WITHHELD, GapFacts, ProvisionFact, explain
from provisions.models import (
    Extent,
    Gap,
    Marking,
    ScanTrigger,
    Stance,
    Status,
    WebhookDelivery,
    WebhookEndpoint,
)
from provisions.permissions import Reader
from provisions.redaction import Redaction
from provisions.services.scans import gaps_scan
from tests.factories import (
    CapabilityFactory,
    CoverageFactory,
    DomainFactory,
    PartyFactory,
    PositionFactory,
    ProvisionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

T = datetime.date(2020, 12, 20)


def pnr_facts(*covering: ProvisionFact, state: str = "in_negotiation") -> GapFacts:
    return GapFacts(
        kind="at_risk",
        as_of=T,
        subject_code="PNR",
        subject_name="PNR data",
        lapses_on=datetime.date(2020, 12, 31),
        coverage_state=state,
        covering=covering if state == "in_negotiation" else (),
        securing=covering if state == "partial" else (),
    )


@pytest.mark.parametrize(
    "facts, shown",
    [
        (
            pnr_facts(ProvisionFact("SP-9", "scoping")),
            "PNR data (PNR) lapses on 2020-12-31, in 11 days; the only covering provision, "
            "[a provision above your clearance], is not secured.",
        ),
        (
            pnr_facts(ProvisionFact("SP-1", "proposed"), ProvisionFact("SP-9", "under_negotiation")),
            "PNR data (PNR) lapses on 2020-12-31, in 11 days; none of its covering provisions is secured: "
            "SP-1 (proposed), [a provision above your clearance].",
        ),
        (
            pnr_facts(ProvisionFact("SP-9", "agreed"), state="partial"),
            "PNR data (PNR) lapses on 2020-12-31, in 11 days; only part of it is secured, by "
            "[a provision above your clearance].",
        ),
    ],
)
def test_a_withheld_provision_takes_its_status_with_it(facts: GapFacts, shown: str) -> None:
    ProvisionFactory(reference="SP-9", marking=Marking.SECRET)
    ProvisionFactory(reference="SP-1", marking=Marking.OFFICIAL)

    official = Redaction.for_reader(Reader.cleared(Marking.OFFICIAL))
    secret = Redaction.for_reader(Reader.cleared(Marking.SECRET))

    assert official.explanation(facts) == shown
    assert secret.explanation(facts) == explain(facts)
    assert "SP-9" in explain(facts) and "SP-9" not in shown


def test_hiding_a_reference_never_hides_another_that_starts_with_it() -> None:
    ProvisionFactory(reference="SP-LE-1", marking=Marking.SECRET)
    ProvisionFactory(reference="SP-LE-10", marking=Marking.OFFICIAL)
    facts = pnr_facts(ProvisionFact("SP-LE-1", "proposed"), ProvisionFact("SP-LE-10", "proposed"))

    shown = Redaction.for_reader(Reader.cleared(Marking.OFFICIAL)).explanation(facts)

    assert shown.endswith(f"{WITHHELD}, SP-LE-10 (proposed).")


def test_facts_survive_being_stored_and_read_back() -> None:
    facts = pnr_facts(ProvisionFact("SP-1", "proposed"), ProvisionFact("SP-9", "under_negotiation"))
    assert GapFacts.from_json(facts.to_json()) == facts


# --- every path, every finding kind, every clearance --------------------------------------------------------

MARKINGS = list(Marking)
# A SECRET reference that is the start of an OFFICIAL one: hiding one must never hide the other.
REFERENCE = {Marking.SECRET: "SP-LE-1", Marking.OFFICIAL_SENSITIVE: "SP-OS-7", Marking.OFFICIAL: "SP-LE-10"}


def named(reference: str, text: str) -> bool:
    """Whether the text names the reference as a whole (not as the start of a longer one)."""
    squeezed = re.sub(r"\s+", "", text)  # a PDF may break a reference across lines
    return re.search(rf"(?<![\w-]){re.escape(reference)}(?![\w-])", squeezed) is not None


@pytest.fixture
def every_kind():
    """A gap of every kind, each naming provisions of every marking where the kind names any."""
    today = timezone.localdate()
    domain = DomainFactory(code="law-enforcement", name="Law enforcement")
    party = PartyFactory(partnership=domain.partnership, code="EU")
    provisions = {
        marking: ProvisionFactory(
            reference=REFERENCE[marking],
            title=f"Cooperation ({marking.label})",
            domain=domain,
            marking=marking,
        )
        for marking in MARKINGS
    }
    lapsed = CapabilityFactory(code="CAP-LAPSED", domain=domain, lapses_on=today - datetime.timedelta(days=9))
    at_risk = CapabilityFactory(code="CAP-RISK", domain=domain, lapses_on=today + datetime.timedelta(days=20))
    partial = CapabilityFactory(code="CAP-PART", domain=domain, lapses_on=None)
    CapabilityFactory(code="CAP-NONE", domain=domain, lapses_on=today + datetime.timedelta(days=20))
    for provision in provisions.values():  # in negotiation: every marking named
        CoverageFactory(provision=provision, capability=lapsed)
    CoverageFactory(provision=provisions[Marking.SECRET], capability=at_risk)  # the only covering one
    secured = ProvisionFactory(
        reference="SP-LE-2", domain=domain, marking=Marking.SECRET, status=Status.AGREED
    )
    CoverageFactory(provision=secured, capability=partial, extent=Extent.PARTIAL)
    PositionFactory(provision=provisions[Marking.SECRET], party=party, stance=Stance.OPPOSES)
    for clearance in MARKINGS:
        WebhookEndpoint.objects.create(
            url="https://receiver.example/hook", events=["gap.opened"], secret="s", clearance=clearance
        )
    gaps_scan(trigger=ScanTrigger.COMMAND)
    kinds = set(Gap.objects.values_list("kind", flat=True))
    assert kinds == {"lapsed", "at_risk", "partial", "uncovered", "stalled", "divergent"}, kinds
    return domain


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(content)).pages)


def xlsx_text(content: bytes) -> str:
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    return "\n".join(
        str(cell.value) for sheet in workbook.worksheets for row in sheet.iter_rows() for cell in row
    )


def renderings(client: Client, domain_code: str) -> dict[str, str]:
    """Everything a reader can have a gap rendered through, as text."""
    yesterday = (timezone.localdate() - datetime.timedelta(days=1)).isoformat()
    texts: dict[str, str] = {}
    for label, query in (("today", ""), ("as of", f"as_of={yesterday}")):
        texts[f"gaps page, {label}"] = client.get(f"/gaps/?{query}").content.decode()
        texts[f"domain page, {label}"] = client.get(f"/domains/{domain_code}/?{query}").content.decode()
        texts[f"API, {label}"] = client.get(f"/api/v1/gaps/?{query}").content.decode()
        for fmt in ("csv", "json", "xlsx", "pdf"):
            body = b"".join(client.get(f"/gaps/export.{fmt}?{query}").streaming_content)
            text = {"xlsx": xlsx_text, "pdf": pdf_text}.get(fmt, lambda data: data.decode("utf-8-sig"))(body)
            texts[f"{fmt.upper()} export, {label}"] = text
    for gap in Gap.objects.all():
        texts[f"admin, gap {gap.pk}"] = client.get(f"/admin/provisions/gap/{gap.pk}/change/").content.decode()
    return texts


@pytest.mark.parametrize("clearance", MARKINGS, ids=str)
def test_no_rendering_path_shows_a_withheld_reference(client: Client, every_kind, clearance: Marking) -> None:
    client.force_login(UserFactory(role="analyst", clearance=clearance, is_staff=True))
    texts = renderings(client, every_kind.code)
    texts |= {
        f"webhook payload {delivery.pk}": json.dumps(delivery.payload)
        for delivery in WebhookDelivery.objects.filter(endpoint__clearance=clearance)
    }
    hidden = [
        ref for marking, ref in REFERENCE.items() if MARKINGS.index(marking) > MARKINGS.index(clearance)
    ]
    hidden += [] if clearance == Marking.SECRET else ["SP-LE-2"]
    shown = [
        ref for marking, ref in REFERENCE.items() if MARKINGS.index(marking) <= MARKINGS.index(clearance)
    ]

    leaks = [
        (path, reference) for path, text in texts.items() for reference in hidden if named(reference, text)
    ]
    assert leaks == []
    # And the test can fail: what the reader may see is there, in every kind of rendering.
    for path in (
        "gaps page, today",
        "API, as of",
        "CSV export, today",
        "PDF export, as of",
        "XLSX export, today",
    ):
        assert all(named(reference, texts[path]) for reference in shown), path
    assert any(path.startswith("webhook payload") for path in texts)


@pytest.mark.parametrize("clearance", MARKINGS, ids=str)
def test_gap_events_redact_what_their_gaps_name_as_the_whole_redaction_would(every_kind, clearance) -> None:
    """A scan's events look up only the references their gaps name (not every provision's) and
    whether anything else is hidden: each row is the one the reader's whole redaction gives, a gap
    recorded without facts (its explanation withheld wherever anything is hidden) included."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from provisions.redaction import GapRowsForReaders, gap_row

    reader = Reader.of(UserFactory(role="analyst", clearance=clearance))
    # A provision no gap names, above every clearance but secret: only "anything hidden" knows of it.
    ProvisionFactory(reference="SP-UNNAMED", domain=every_kind, marking=Marking.SECRET)
    Gap.objects.filter(capability__code="CAP-NONE").update(detail={})  # no facts; it names no provision
    gaps = list(Gap.objects.select_related("capability__domain", "provision__domain", "acknowledged_by"))
    today = timezone.localdate()
    rows = GapRowsForReaders(gaps, today=today)
    [unnamed] = [gap for gap in gaps if gap.capability and gap.capability.code == "CAP-NONE"]
    alone = GapRowsForReaders([unnamed], today=today)
    assert alone.references == frozenset()
    assert alone.row(unnamed.pk, alone.redaction_for(reader)) == gap_row(
        unnamed, Redaction.for_reader(reader), today=today
    )
    with CaptureQueriesContext(connection) as looked_up:
        narrow = rows.redaction_for(reader)
    whole = Redaction.for_reader(reader)
    assert narrow.hidden <= rows.references and narrow.hidden == whole.hidden & rows.references
    assert narrow.hides_anything == whole.hides_anything == (clearance != Marking.SECRET)
    assert "SP-UNNAMED" in whole.hidden or clearance == Marking.SECRET
    assert all(" IN (" in query["sql"] or "LIMIT 1" in query["sql"] for query in looked_up.captured_queries)
    for gap in gaps:
        assert rows.row(gap.pk, narrow) == gap_row(gap, whole, today=today)
