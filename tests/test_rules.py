"""Coverage and gap rules (DESIGN.md, "Coverage and gap rules"), one test per rule and severity row.

Every expectation is written out from DESIGN.md's tables, never computed by the code under test.
`T` is the as-of date; `lapses_in=n` means `lapses_on - T = n` days.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from provisions.models import (
    Capability,
    Extent,
    Gap,
    GapKind,
    GapScan,
    Level,
    Provision,
    Status,
    StatusChange,
)
from provisions.permissions import Reader
from provisions.rules import Evaluation, Finding, Thresholds, evaluate_gaps
from provisions.rules.gaps import sort_findings
from provisions.services.status import provision_transition
from tests.factories import (
    CapabilityFactory,
    CoverageFactory,
    DomainFactory,
    PartyFactory,
    PositionFactory,
    ProvisionFactory,
)

pytestmark = [
    pytest.mark.django_db,
    # tests/factories.py: ProvisionFactory lacks Meta.skip_postgeneration_save (factory_boy deprecation).
    pytest.mark.filterwarnings("ignore:ProvisionFactory._after_postgeneration:DeprecationWarning"),
]

T = datetime.date(2020, 7, 1)

# DESIGN.md: the defaults of the thresholds.
WARNING_DAYS = 180
URGENT_DAYS = 30
STALL_DAYS = 60

# The ladder of DESIGN.md, written out here rather than read from the code under test.
LADDER = (
    "identified",
    "scoping",
    "proposed",
    "under_negotiation",
    "agreed_in_principle",
    "agreed",
    "signed",
    "in_force",
)
SECURED_BY_DEFAULT = ("agreed", "signed", "in_force")  # rank >= SECURED_STATUS (agreed)
NOT_SECURED_ON_LADDER = ("identified", "scoping", "proposed", "under_negotiation", "agreed_in_principle")

# "one level lower" and "raised one level", by hand; levels never go below low, critical stays critical.
LOWER = {"critical": "high", "high": "medium", "medium": "low", "low": "low"}
RAISED = {"critical": "critical", "high": "critical", "medium": "high", "low": "medium"}


def day(offset: int) -> datetime.date:
    return T + datetime.timedelta(days=offset)


def capability(
    criticality: str = "high", *, lapses_in: int | None = 100, fallback: str = "", **fields: object
) -> Capability:
    return CapabilityFactory(
        criticality=criticality,
        lapses_on=None if lapses_in is None else day(lapses_in),
        fallback=fallback,
        **fields,
    )


def provision(
    status: str = "proposed",
    *,
    created: int = -1,
    then: Iterable[tuple[str, int]] = (),
    covers: Iterable[Capability] = (),
    extent: str = Extent.FULL,
    stances: Iterable[str] = (),
    **fields: object,
) -> Provision:
    """A provision whose first status is `status` on day `created` (relative to T), then each
    (status, day) of `then` in order; it covers `covers` with `extent`; parties take `stances`."""
    created_provision = ProvisionFactory(status=status, created_on=day(created), **fields)
    current = status
    for to_status, offset in then:
        StatusChange.objects.create(
            provision=created_provision,
            from_status=current,
            to_status=to_status,
            changed_on=day(offset),
            note="moved in the test",
        )
        current = to_status
    if current != status:
        Provision.objects.filter(pk=created_provision.pk).update(status=current)
        created_provision.status = current
    for covered in covers:
        CoverageFactory(provision=created_provision, capability=covered, extent=extent)
    for party_code, stance in zip(("UK", "EU"), stances, strict=False):
        PositionFactory(provision=created_provision, party=PartyFactory(code=party_code), stance=stance)
    return created_provision


def evaluate(as_of: datetime.date = T, **kwargs: object) -> Evaluation:
    return evaluate_gaps(as_of=as_of, **kwargs)  # type: ignore[arg-type]


def _subject(subject: Capability | Provision) -> tuple[str, str]:
    if isinstance(subject, Capability):
        return "capability", subject.code
    return "provision", subject.reference


def findings_of(subject: Capability | Provision, as_of: datetime.date = T, **kwargs: object) -> list[Finding]:
    subject_type, code = _subject(subject)
    return [
        finding
        for finding in evaluate(as_of, **kwargs).findings
        if finding.subject_type == subject_type and finding.subject_code == code
    ]


def gaps_of(
    subject: Capability | Provision, as_of: datetime.date = T, **kwargs: object
) -> list[tuple[str, str]]:
    """(kind, severity) of every gap the subject has, sorted by kind."""
    return sorted((str(f.kind), str(f.severity)) for f in findings_of(subject, as_of, **kwargs))


def state_of(covered: Capability, as_of: datetime.date = T) -> str:
    return str(evaluate(as_of).coverage[covered.pk].state)


# --- coverage states ------------------------------------------------------------------------------------


def test_a_secured_provision_covering_fully_makes_it_secured():
    covered = capability()
    provision("agreed", covers=[covered])

    assert state_of(covered) == "secured"


def test_a_secured_provision_covering_partially_makes_it_partial():
    covered = capability()
    provision("agreed", covers=[covered], extent=Extent.PARTIAL)

    assert state_of(covered) == "partial"


def test_partial_when_the_secured_one_is_partial_and_the_full_one_is_not_secured():
    covered = capability()
    provision("agreed", covers=[covered], extent=Extent.PARTIAL)
    provision("under_negotiation", covers=[covered], extent=Extent.FULL)

    assert state_of(covered) == "partial"


def test_one_full_secured_provision_is_enough_whatever_else_covers_it():
    covered = capability()
    provision("agreed", covers=[covered], extent=Extent.PARTIAL)
    provision("proposed", covers=[covered])
    provision("signed", covers=[covered], extent=Extent.FULL)

    assert state_of(covered) == "secured"


@pytest.mark.parametrize("extent", [Extent.FULL, Extent.PARTIAL])
def test_an_active_unsecured_provision_makes_it_in_negotiation(extent):
    covered = capability()
    provision("proposed", covers=[covered], extent=extent)

    assert state_of(covered) == "in_negotiation"


def test_no_provision_means_uncovered():
    covered = capability()

    assert state_of(covered) == "uncovered"


def test_a_withdrawn_provision_does_not_cover():
    covered = capability()
    withdrawn = provision("agreed", created=-100, then=[("withdrawn", -10)], covers=[covered])

    assert state_of(covered) == "uncovered"
    [finding] = findings_of(covered)
    assert (finding.kind, finding.covering_provisions) == ("uncovered", ())
    assert gaps_of(withdrawn) == []  # not active: no provision gap either


def test_a_suspended_provision_covers_but_is_not_secured():
    covered = capability("critical", lapses_in=20)
    suspended = provision(
        "agreed", created=-100, then=[("suspended", -5)], covers=[covered], reference="SP-SUSPENDED"
    )

    assert state_of(covered) == "in_negotiation"
    [finding] = findings_of(covered)
    assert (finding.kind, finding.severity, finding.covering_provisions) == (
        "at_risk",
        "critical",
        ("SP-SUSPENDED",),
    )
    assert suspended.status == "suspended"


def test_a_suspended_provision_covering_partially_does_not_make_it_partial():
    covered = capability()
    provision("in_force", created=-100, then=[("suspended", -5)], covers=[covered], extent=Extent.PARTIAL)

    assert state_of(covered) == "in_negotiation"


@pytest.mark.parametrize("status", LADDER)
def test_secured_status_boundary_on_the_ladder(status):
    """SECURED_STATUS = agreed: agreed_in_principle is not secured; agreed, signed and in_force are."""
    covered = capability()
    provision(status, covers=[covered])

    assert state_of(covered) == ("secured" if status in SECURED_BY_DEFAULT else "in_negotiation")


def test_a_provision_whose_first_change_is_after_t_did_not_exist_at_t():
    covered = capability("high", lapses_in=10)
    later = provision("agreed", created=1, covers=[covered], stances=["proposes", "opposes"])

    assert state_of(covered) == "uncovered"
    assert gaps_of(covered) == [("uncovered", "high")]
    assert findings_of(covered)[0].covering_provisions == ()
    assert gaps_of(later) == []
    assert state_of(covered, day(1)) == "secured"


def test_a_provision_first_recorded_on_t_exists_at_t():
    covered = capability()
    provision("agreed", created=0, covers=[covered])

    assert state_of(covered) == "secured"
    assert state_of(covered, day(-1)) == "uncovered"


def test_covering_provisions_are_the_active_ones_at_t_sorted_by_reference():
    covered = capability("high", lapses_in=10)
    provision("proposed", covers=[covered], reference="SP-Z")
    provision("under_negotiation", covers=[covered], extent=Extent.PARTIAL, reference="SP-A")
    provision("suspended", covers=[covered], reference="SP-M")
    provision("proposed", created=-50, then=[("withdrawn", -2)], covers=[covered], reference="SP-B")
    provision("proposed", created=3, covers=[covered], reference="SP-C")  # not yet at T

    [finding] = findings_of(covered)
    assert finding.covering_provisions == ("SP-A", "SP-M", "SP-Z")


# --- lapsed ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lapses_in", [0, -1, -400], ids=["lapses-on-T", "day-after", "long-ago"])
def test_lapsed_when_lapses_on_is_t_or_before(lapses_in):
    covered = capability("high", lapses_in=lapses_in)

    assert gaps_of(covered) == [("lapsed", "critical")]


def test_not_lapsed_the_day_before_it_lapses():
    covered = capability("high", lapses_in=1)

    assert gaps_of(covered) == [("uncovered", "high")]


@pytest.mark.parametrize(
    ("criticality", "expected"),
    [("critical", "critical"), ("high", "critical"), ("medium", "high"), ("low", "medium")],
)
def test_lapsed_severity_is_criticality_raised_one_level(criticality, expected):
    covered = capability(criticality, lapses_in=0)

    assert gaps_of(covered) == [("lapsed", expected)]
    assert expected == RAISED[criticality]


@pytest.mark.parametrize("criticality", ["critical", "high", "medium", "low"])
def test_lapsed_severity_is_the_criticality_itself_with_a_fallback(criticality):
    covered = capability(
        criticality, lapses_in=-3, fallback="1957 Council of Europe Convention on Extradition"
    )

    assert gaps_of(covered) == [("lapsed", criticality)]


@pytest.mark.parametrize(
    ("status", "extent", "state"),
    [
        ("proposed", Extent.FULL, "in_negotiation"),
        ("suspended", Extent.FULL, "in_negotiation"),
    ],
)
def test_lapsed_wins_over_at_risk(status, extent, state):
    covered = capability("medium", lapses_in=0)
    provision(status, covers=[covered], extent=extent)

    [finding] = findings_of(covered)
    assert (finding.kind, finding.severity, finding.coverage_state) == ("lapsed", "high", state)


@pytest.mark.parametrize("lapses_in", [0, -1, -400])
def test_a_narrower_replacement_after_the_lapse_day_is_partial_not_lapsed(lapses_in):
    """Rules v2: `lapsed` is a real loss only (in negotiation or uncovered); a capability replaced by
    a narrower provision is partial, one level below its criticality, on and after its lapse day."""
    covered = capability("medium", lapses_in=lapses_in)
    provision("agreed", covers=[covered], extent=Extent.PARTIAL)

    [finding] = findings_of(covered)
    assert (finding.kind, finding.severity, finding.coverage_state) == ("partial", "low", "partial")


@pytest.mark.parametrize("lapses_in", [0, -30])
def test_a_secured_capability_past_its_lapse_has_no_gap(lapses_in):
    covered = capability("critical", lapses_in=lapses_in)
    provision("in_force", covers=[covered])

    assert state_of(covered) == "secured"
    assert gaps_of(covered) == []


def test_lapsed_finding_fields_and_days_to_lapse_negative():
    domain = DomainFactory(code="criminal-justice")
    covered = capability("critical", lapses_in=-5, code="EAW", name="European Arrest Warrant", domain=domain)

    [finding] = findings_of(covered)
    assert (
        finding.kind,
        finding.severity,
        finding.subject_type,
        finding.subject_code,
        finding.subject_name,
        finding.domain,
        finding.coverage_state,
        finding.lapses_on,
        finding.days_to_lapse,
        finding.covering_provisions,
    ) == (
        "lapsed",
        "critical",
        "capability",
        "EAW",
        "European Arrest Warrant",
        "criminal-justice",
        "uncovered",
        day(-5),
        -5,
        (),
    )


# --- uncovered ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("criticality", "lapses_in", "expected"),
    [
        ("critical", 1, "critical"),
        ("critical", 180, "critical"),
        ("critical", 181, "high"),
        ("critical", None, "high"),
        ("high", 180, "high"),
        ("high", 181, "medium"),
        ("high", None, "medium"),
        ("medium", 180, "medium"),
        ("medium", 181, "low"),
        ("medium", None, "low"),
        ("low", 180, "low"),
        ("low", 181, "low"),
        ("low", None, "low"),
    ],
)
def test_uncovered_severity(criticality, lapses_in, expected):
    """Criticality if lapses_on - T <= WARNING_DAYS, else one level lower (no lapse date: lower)."""
    covered = capability(criticality, lapses_in=lapses_in)

    [finding] = findings_of(covered)
    assert (finding.kind, finding.severity, finding.coverage_state) == ("uncovered", expected, "uncovered")
    assert finding.days_to_lapse == lapses_in
    assert finding.lapses_on == (None if lapses_in is None else day(lapses_in))


def test_uncovered_is_checked_at_exactly_warning_days():
    assert WARNING_DAYS == 180
    at_warning, beyond = capability("critical", lapses_in=WARNING_DAYS), capability("critical", lapses_in=181)

    assert gaps_of(at_warning) == [("uncovered", "critical")]
    assert gaps_of(beyond) == [("uncovered", "high")]


# --- at_risk ----------------------------------------------------------------------------------------------


def _covered_in_state(state: str, criticality: str, lapses_in: int | None) -> Capability:
    covered = capability(criticality, lapses_in=lapses_in)
    if state == "in_negotiation":
        provision("under_negotiation", covers=[covered])
    elif state == "partial":
        provision("agreed", covers=[covered], extent=Extent.PARTIAL)
    elif state == "secured":
        provision("agreed", covers=[covered])
    else:
        assert state == "uncovered"
    return covered


@pytest.mark.parametrize("state", ["in_negotiation", "partial"])
@pytest.mark.parametrize(
    ("criticality", "lapses_in", "expected"),
    [
        ("critical", 1, "critical"),
        ("critical", 30, "critical"),
        ("critical", 31, "high"),
        ("critical", 180, "high"),
        ("high", 30, "high"),
        ("high", 31, "medium"),
        ("medium", 30, "medium"),
        ("medium", 180, "low"),
        ("low", 30, "low"),
        ("low", 31, "low"),
    ],
)
def test_at_risk_severity(state, criticality, lapses_in, expected):
    """Criticality if lapses_on - T <= URGENT_DAYS (30), else one level lower; within WARNING_DAYS."""
    covered = _covered_in_state(state, criticality, lapses_in)

    [finding] = findings_of(covered)
    assert (finding.kind, finding.severity, finding.coverage_state) == ("at_risk", expected, state)


def test_in_negotiation_beyond_warning_days_has_no_gap():
    covered = _covered_in_state("in_negotiation", "critical", WARNING_DAYS + 1)

    assert gaps_of(covered) == []


def test_partial_beyond_warning_days_is_partial_not_at_risk():
    covered = _covered_in_state("partial", "critical", WARNING_DAYS + 1)

    assert gaps_of(covered) == [("partial", "high")]


def test_secured_within_urgent_days_has_no_gap():
    covered = _covered_in_state("secured", "critical", 1)

    assert gaps_of(covered) == []


# --- partial ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("criticality", "lapses_in", "expected"),
    [
        ("critical", 181, "high"),
        ("critical", None, "high"),
        ("high", 400, "medium"),
        ("medium", None, "low"),
        ("low", 181, "low"),
        ("low", None, "low"),
    ],
)
def test_partial_severity_is_one_level_lower(criticality, lapses_in, expected):
    covered = _covered_in_state("partial", criticality, lapses_in)

    [finding] = findings_of(covered)
    assert (finding.kind, finding.severity, finding.coverage_state) == ("partial", expected, "partial")


def test_first_rule_wins_partial_within_warning_is_at_risk_not_partial():
    covered = _covered_in_state("partial", "high", 100)

    assert gaps_of(covered) == [("at_risk", "medium")]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("uncovered", [("uncovered", "medium")]),
        ("in_negotiation", []),
        ("partial", [("partial", "medium")]),
        ("secured", []),
    ],
)
def test_without_a_lapse_date_only_uncovered_or_partial(state, expected):
    covered = _covered_in_state(state, "high", None)

    assert gaps_of(covered) == expected


def test_at_most_one_capability_gap_per_capability():
    lapsed_and_uncovered = capability("high", lapses_in=-1)
    lapsed_and_partial = _covered_in_state("partial", "high", 0)
    at_risk_and_partial = _covered_in_state("partial", "high", 10)

    for covered in (lapsed_and_uncovered, lapsed_and_partial, at_risk_and_partial):
        assert len(findings_of(covered)) == 1


# --- stalled ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days_since_change", "stalled"), [(STALL_DAYS - 1, False), (STALL_DAYS, True), (STALL_DAYS + 1, True)]
)
def test_stalled_when_the_latest_change_is_at_least_stall_days_before_t(days_since_change, stalled):
    covered = capability("high", lapses_in=400)
    stuck = provision("proposed", created=-days_since_change, covers=[covered])

    assert gaps_of(stuck) == ([("stalled", "medium")] if stalled else [])


@pytest.mark.parametrize(("moved", "stalled"), [(-STALL_DAYS + 1, False), (-STALL_DAYS, True)])
def test_stall_counts_from_the_latest_change_not_the_first(moved, stalled):
    stuck = provision("proposed", created=-300, then=[("under_negotiation", moved)])

    assert gaps_of(stuck) == ([("stalled", "low")] if stalled else [])


def test_a_change_after_t_does_not_unstall_at_t():
    stuck = provision("proposed", created=-100, then=[("under_negotiation", 5)])

    assert gaps_of(stuck) == [("stalled", "low")]
    assert gaps_of(stuck, day(5)) == []


@pytest.mark.parametrize("status", LADDER)
def test_stalled_only_below_secured_status(status):
    stuck = provision(status, created=-200)

    assert gaps_of(stuck) == ([("stalled", "low")] if status in NOT_SECURED_ON_LADDER else [])


def test_a_suspended_provision_is_not_stalled():
    covered = capability("critical", lapses_in=400)
    suspended = provision("proposed", created=-300, then=[("suspended", -200)], covers=[covered])

    assert gaps_of(suspended) == []


def test_a_withdrawn_provision_is_not_stalled():
    withdrawn = provision(
        "proposed", created=-300, then=[("withdrawn", -200)], covers=[capability("critical")]
    )

    assert gaps_of(withdrawn) == []


@pytest.mark.parametrize(
    ("criticalities", "expected"),
    [
        (["critical", "low"], "high"),
        (["low", "high", "medium"], "medium"),
        (["medium"], "low"),
        (["low"], "low"),
        ([], "low"),
    ],
)
def test_stalled_severity_is_one_level_below_the_highest_criticality_covered(criticalities, expected):
    # Lapse dates far beyond WARNING_DAYS or absent: criticality alone decides.
    covered = [
        capability(criticality, lapses_in=None if i % 2 else 999)
        for i, criticality in enumerate(criticalities)
    ]
    stuck = provision("scoping", created=-STALL_DAYS, covers=covered)

    assert gaps_of(stuck) == [("stalled", expected)]


def test_stalled_finding_fields():
    domain = DomainFactory(code="enablers")
    soon, later, undated = (
        capability("high", lapses_in=40),
        capability("low", lapses_in=20),
        capability("critical", lapses_in=None),
    )
    stuck = provision(
        "proposed",
        created=-90,
        covers=[soon, later, undated],
        reference="SP-EN-09",
        title="Data",
        domain=domain,
    )

    [finding] = findings_of(stuck)
    assert (
        finding.kind,
        finding.severity,
        finding.subject_type,
        finding.subject_code,
        finding.subject_name,
        finding.domain,
        finding.coverage_state,
        finding.lapses_on,
        finding.days_to_lapse,
        finding.covering_provisions,
    ) == ("stalled", "high", "provision", "SP-EN-09", "Data", "enablers", None, day(20), 20, ())


def test_a_provision_gap_with_nothing_covered_has_no_lapse_date():
    [finding] = findings_of(provision("identified", created=-100))

    assert (finding.kind, finding.lapses_on, finding.days_to_lapse) == ("stalled", None, None)


# --- divergent ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("criticality", ["critical", "high", "medium", "low"])
def test_divergent_severity_is_the_highest_criticality_covered(criticality):
    covered = capability(criticality, lapses_in=100)
    opposed = provision("proposed", covers=[covered], stances=["proposes", "opposes"])

    assert gaps_of(opposed) == [("divergent", criticality)]


def test_divergent_severity_counts_every_capability_covered_not_only_the_near_one():
    near_low = capability("low", lapses_in=10)
    far_critical = capability("critical", lapses_in=999)
    undated_high = capability("high", lapses_in=None)
    opposed = provision(
        "proposed", covers=[near_low, far_critical, undated_high], stances=["opposes", "supports"]
    )

    assert gaps_of(opposed) == [("divergent", "critical")]


@pytest.mark.parametrize(
    ("lapses_in", "divergent"),
    [(-30, True), (0, True), (1, True), (WARNING_DAYS, True), (WARNING_DAYS + 1, False), (None, False)],
    ids=["lapsed", "lapses-on-T", "tomorrow", "at-warning", "beyond-warning", "no-lapse-date"],
)
def test_divergent_needs_a_capability_within_warning_days(lapses_in, divergent):
    covered = capability("high", lapses_in=lapses_in)
    opposed = provision("under_negotiation", covers=[covered], stances=["proposes", "opposes"])

    assert gaps_of(opposed) == ([("divergent", "high")] if divergent else [])


@pytest.mark.parametrize("status", LADDER)
def test_divergent_only_when_not_secured(status):
    covered = capability("high", lapses_in=10)
    opposed = provision(status, covers=[covered], stances=["opposes", "proposes"])

    assert gaps_of(opposed) == ([] if status in SECURED_BY_DEFAULT else [("divergent", "high")])


def test_a_suspended_opposed_provision_is_divergent():
    """Suspended is active and not secured, so an opposed one is divergent (and never stalled)."""
    covered = capability("critical", lapses_in=10)
    opposed = provision(
        "agreed", created=-300, then=[("suspended", -200)], covers=[covered], stances=["opposes"]
    )

    assert gaps_of(opposed) == [("divergent", "critical")]


def test_a_withdrawn_opposed_provision_is_not_divergent():
    covered = capability("critical", lapses_in=10)
    opposed = provision(
        "proposed", then=[("withdrawn", 0)], covers=[covered], stances=["proposes", "opposes"]
    )

    assert gaps_of(opposed) == []


@pytest.mark.parametrize(
    "stances",
    [[], ["proposes"], ["proposes", "supports"], ["conditional", "reserved"], ["reserved", "proposes"]],
)
def test_no_opposing_party_is_not_divergent(stances):
    covered = capability("critical", lapses_in=10)
    unopposed = provision("proposed", covers=[covered], stances=stances)

    assert gaps_of(unopposed) == []


def test_an_opposed_provision_covering_nothing_is_not_divergent():
    assert gaps_of(provision("proposed", stances=["opposes", "opposes"])) == []


def test_divergent_finding_fields():
    domain = DomainFactory(code="law-enforcement")
    sis = capability("critical", lapses_in=11, code="SIS-II")
    other = capability("medium", lapses_in=5)
    opposed = provision(
        "under_negotiation",
        covers=[sis, other],
        stances=["proposes", "opposes"],
        reference="SP-LE-04",
        title="Real-time alerts",
        domain=domain,
    )

    [finding] = findings_of(opposed)
    assert (
        finding.kind,
        finding.severity,
        finding.subject_type,
        finding.subject_code,
        finding.subject_name,
        finding.domain,
        finding.coverage_state,
        finding.lapses_on,
        finding.days_to_lapse,
        finding.covering_provisions,
    ) == (
        "divergent",
        "critical",
        "provision",
        "SP-LE-04",
        "Real-time alerts",
        "law-enforcement",
        None,
        day(5),
        5,
        (),
    )


def test_both_stalled_and_divergent_on_one_provision():
    covered = capability("high", lapses_in=10)
    opposed = provision("proposed", created=-100, covers=[covered], stances=["proposes", "opposes"])

    assert gaps_of(opposed) == [("divergent", "high"), ("stalled", "medium")]


# --- status at T read from history ------------------------------------------------------------------------


def test_a_provision_proposed_at_t_but_agreed_today_is_judged_as_proposed():
    covered = capability("critical", lapses_in=20)
    moved = provision("proposed", created=-10, covers=[covered], stances=["proposes", "opposes"])
    provision_transition(
        by=Reader.system(), provision=moved, to=Status.AGREED, note="agreed at last", on=timezone.localdate()
    )
    moved.refresh_from_db()
    assert moved.status == "agreed"

    assert state_of(covered) == "in_negotiation"
    assert gaps_of(covered) == [("at_risk", "critical")]
    assert gaps_of(moved) == [("divergent", "critical")]
    today = timezone.localdate()
    assert state_of(covered, today) == "secured"
    assert gaps_of(moved, today) == []


def test_several_changes_on_one_day_the_last_one_counts():
    withdrawn_last, agreed_last = capability(lapses_in=10), capability(lapses_in=10)
    provision("proposed", created=-100, then=[("agreed", -5), ("withdrawn", -5)], covers=[withdrawn_last])
    provision("proposed", created=-100, then=[("withdrawn", -5), ("agreed", -5)], covers=[agreed_last])

    assert state_of(withdrawn_last) == "uncovered"
    assert state_of(agreed_last) == "secured"


def test_several_changes_on_t_itself_the_last_one_counts():
    covered = capability("high", lapses_in=10)
    moved = provision("proposed", created=-100, then=[("agreed", 0), ("suspended", 0)], covers=[covered])

    assert state_of(covered) == "in_negotiation"
    assert gaps_of(moved) == []  # moved on T: suspended, not stalled
    assert state_of(covered, day(-1)) == "in_negotiation"
    assert gaps_of(moved, day(-1)) == [("stalled", "medium")]


def test_a_change_made_on_t_counts_at_t():
    covered = capability("high", lapses_in=10)
    provision("proposed", created=-100, then=[("agreed", 0)], covers=[covered])

    assert state_of(covered) == "secured"
    assert state_of(covered, day(-1)) == "in_negotiation"


def test_coverage_as_it_stood_on_past_dates():
    covered = capability("critical", lapses_in=0)
    provision("proposed", created=-300, then=[("agreed", -100), ("withdrawn", -50)], covers=[covered])

    assert [state_of(covered, day(offset)) for offset in (-301, -300, -101, -100, -51, -50, 0)] == [
        "uncovered",
        "in_negotiation",
        "in_negotiation",
        "secured",
        "secured",
        "uncovered",
        "uncovered",
    ]


# --- thresholds --------------------------------------------------------------------------------------------


def test_warning_days_from_settings(settings):
    settings.WARNING_DAYS = 10
    settings.URGENT_DAYS = 5
    uncovered_at, uncovered_beyond = capability("high", lapses_in=10), capability("high", lapses_in=11)
    at_risk, urgent, beyond = (
        _covered_in_state("in_negotiation", "high", 10),
        _covered_in_state("in_negotiation", "high", 5),
        _covered_in_state("in_negotiation", "high", 11),
    )
    divergent_beyond = provision("proposed", covers=[capability("high", lapses_in=11)], stances=["opposes"])

    assert gaps_of(uncovered_at) == [("uncovered", "high")]
    assert gaps_of(uncovered_beyond) == [("uncovered", "medium")]
    assert gaps_of(at_risk) == [("at_risk", "medium")]
    assert gaps_of(urgent) == [("at_risk", "high")]
    assert gaps_of(beyond) == []
    assert gaps_of(divergent_beyond) == []


def test_urgent_days_from_settings(settings):
    settings.URGENT_DAYS = 60
    at_urgent, beyond = _covered_in_state("partial", "high", 60), _covered_in_state("partial", "high", 61)

    assert gaps_of(at_urgent) == [("at_risk", "high")]
    assert gaps_of(beyond) == [("at_risk", "medium")]


def test_stall_days_from_settings(settings):
    settings.STALL_DAYS = 5
    at_stall, before = provision("proposed", created=-5), provision("proposed", created=-4)

    assert gaps_of(at_stall) == [("stalled", "low")]
    assert gaps_of(before) == []


def test_thresholds_the_administrators_set_win_over_the_settings(settings):
    from provisions.models import GapRuleThresholds

    settings.STALL_DAYS = 60
    stuck = provision("proposed", created=-10)
    assert gaps_of(stuck) == []
    GapRuleThresholds.objects.create(
        pk=1, secured_status="signed", warning_days=90, urgent_days=10, stall_days=10
    )

    assert Thresholds.current() == Thresholds(
        secured_status=Status.SIGNED, warning_days=90, urgent_days=10, stall_days=10
    )
    assert gaps_of(stuck) == [("stalled", "low")]


@pytest.mark.parametrize(
    ("secured_status", "status", "secured"),
    [
        ("signed", "agreed", False),
        ("signed", "signed", True),
        ("agreed_in_principle", "under_negotiation", False),
        ("agreed_in_principle", "agreed_in_principle", True),
        ("in_force", "signed", False),
    ],
)
def test_secured_status_from_settings(settings, secured_status, status, secured):
    settings.SECURED_STATUS = secured_status
    covered = capability("high", lapses_in=10)
    judged = provision(status, created=-100, covers=[covered], stances=["opposes"])

    assert state_of(covered) == ("secured" if secured else "in_negotiation")
    assert gaps_of(judged) == ([] if secured else [("divergent", "high"), ("stalled", "medium")])


def test_thresholds_passed_explicitly():
    thresholds = Thresholds(secured_status=Status.SIGNED, warning_days=10, urgent_days=5, stall_days=5)
    covered = capability("high", lapses_in=10)
    judged = provision("agreed", created=-5, covers=[covered])

    assert gaps_of(covered, thresholds=thresholds) == [("at_risk", "medium")]
    assert gaps_of(judged, thresholds=thresholds) == [("stalled", "medium")]
    assert gaps_of(covered) == []  # defaults: agreed is secured
    assert gaps_of(judged) == []


# --- scoped evaluation ----------------------------------------------------------------------------------


@pytest.fixture
def world():
    """Capabilities and provisions with every kind of gap, some sharing coverage."""
    caps = {
        "A": capability("critical", lapses_in=10, code="CAP-A"),
        "B": capability("high", lapses_in=-5, code="CAP-B"),
        "C": capability("medium", lapses_in=None, code="CAP-C"),
        "D": capability("high", lapses_in=300, code="CAP-D"),
        "E": capability("low", lapses_in=50, code="CAP-E"),
    }
    provisions = {
        "P1": provision(
            "proposed", created=-100, covers=[caps["A"], caps["B"]], stances=["opposes"], reference="P1"
        ),
        "P2": provision("agreed", covers=[caps["D"]], extent=Extent.PARTIAL, reference="P2"),
        "P3": provision("under_negotiation", created=-10, covers=[caps["A"], caps["E"]], reference="P3"),
        "P4": provision("scoping", created=-200, reference="P4"),
        "P5": provision(
            "proposed", created=-200, then=[("withdrawn", -100)], covers=[caps["C"]], reference="P5"
        ),
    }
    return caps, provisions


def test_the_world_has_the_gaps_the_tables_give(world):
    found = [(str(f.kind), str(f.severity), f.subject_code) for f in evaluate().findings]

    assert sorted(found) == sorted(
        [
            ("at_risk", "critical", "CAP-A"),
            ("lapsed", "critical", "CAP-B"),
            ("uncovered", "low", "CAP-C"),
            ("partial", "medium", "CAP-D"),
            ("at_risk", "low", "CAP-E"),
            ("stalled", "high", "P1"),
            ("divergent", "critical", "P1"),
            ("stalled", "low", "P4"),
        ]
    )


@pytest.mark.parametrize(
    ("capability_keys", "provision_keys"),
    [(["A", "C"], None), (None, ["P1", "P4"]), (["B", "D", "E"], ["P3", "P5"]), (["C"], []), ([], ["P2"])],
)
def test_scoped_evaluation_finds_exactly_what_the_full_one_finds_for_those_subjects(
    world, capability_keys, provision_keys
):
    caps, provisions = world
    capability_ids = None if capability_keys is None else [caps[key].pk for key in capability_keys]
    provision_ids = None if provision_keys is None else [provisions[key].pk for key in provision_keys]
    full = evaluate()
    subjects = {("capability", pk) for pk in capability_ids or ()} | {
        ("provision", pk) for pk in provision_ids or ()
    }

    scoped = evaluate(capability_ids=capability_ids, provision_ids=provision_ids)

    assert scoped.findings == [f for f in full.findings if (f.subject_type, f.subject_id) in subjects]
    for pk in capability_ids or ():
        assert scoped.coverage[pk] == full.coverage[pk]


def test_evaluation_is_read_only(world):
    evaluate()
    evaluate(day(-400))

    assert (Gap.objects.count(), GapScan.objects.count()) == (0, 0)


# --- query count ----------------------------------------------------------------------------------------


def _populate(count: int) -> None:
    domain = DomainFactory()
    for i in range(count):
        covered = capability(
            ["critical", "high", "medium", "low"][i % 4], lapses_in=[-5, 10, 100, None][i % 4]
        )
        provision(
            ["proposed", "agreed", "under_negotiation"][i % 3],
            created=-100,
            covers=[covered],
            extent=[Extent.FULL, Extent.PARTIAL][i % 2],
            stances=["proposes", "opposes"],
            domain=domain,
        )
    provision("proposed", created=-200, then=[("withdrawn", -100)], domain=domain)


def _queries_of_a_full_evaluation() -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        findings = evaluate().findings
    return len(queries.captured_queries), len(findings)


def test_a_full_evaluation_runs_a_fixed_number_of_queries():
    _populate(3)
    few, few_findings = _queries_of_a_full_evaluation()
    _populate(27)
    many, many_findings = _queries_of_a_full_evaluation()

    assert Provision.objects.count() == 32  # 3 + 27, and a withdrawn one each time
    assert many_findings > few_findings > 0
    assert many == few
    assert many <= 10


# --- explanations ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "lapses_in", "kind"),
    [("uncovered", -3, "lapsed"), ("uncovered", 50, "uncovered"), ("in_negotiation", 20, "at_risk")],
)
def test_a_capability_gap_explanation_mentions_the_code_and_lapse_date(state, lapses_in, kind):
    covered = _covered_in_state(state, "high", lapses_in)

    [finding] = findings_of(covered)
    assert finding.kind == kind
    assert covered.code in finding.explanation
    assert day(lapses_in).isoformat() in finding.explanation


def test_a_divergent_explanation_mentions_the_reference_and_lapse_date():
    covered = capability("high", lapses_in=-3, code="CAP-DIV")
    opposed = provision("proposed", covers=[covered], stances=["opposes"], reference="SP-DIV")

    [finding] = findings_of(opposed)
    assert "SP-DIV" in finding.explanation
    assert day(-3).isoformat() in finding.explanation


def test_a_stalled_explanation_mentions_the_reference():
    stuck = provision(
        "proposed", created=-70, covers=[capability("high", lapses_in=20)], reference="SP-STUCK"
    )

    [finding] = findings_of(stuck)
    assert "SP-STUCK" in finding.explanation


# --- the report's order ------------------------------------------------------------------------------------


def _plain_order(finding: Finding) -> tuple[int, bool, datetime.date, str, str]:
    """The order DESIGN.md gives, as plainly as it can be written."""
    return (
        -finding.severity.weight,
        finding.lapses_on is None,
        finding.lapses_on or datetime.date.min,
        finding.kind.value,
        finding.subject_code,
    )


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(GapKind)),
            st.sampled_from(list(Level)),
            st.none() | st.dates(min_value=datetime.date.min, max_value=datetime.date.max),
            st.text(alphabet="AB-.1é", max_size=3),
        ),
        max_size=40,
    )
)
def test_findings_sort_as_the_plain_order_says(
    rows: list[tuple[GapKind, Level, datetime.date | None, str]],
) -> None:
    findings = [
        Finding(
            kind=kind,
            severity=severity,
            subject_type="capability",
            subject_id=index,
            subject_code=code,
            subject_name="",
            domain="",
            coverage_state=None,
            lapses_on=lapses_on,
            days_to_lapse=None,
            covering_provisions=(),
            facts=None,  # type: ignore[arg-type]
        )
        for index, (kind, severity, lapses_on, code) in enumerate(rows)
    ]
    ours = list(findings)
    sort_findings(ours)
    assert [finding.subject_id for finding in ours] == [
        finding.subject_id for finding in sorted(findings, key=_plain_order)
    ]
    assert ours == sorted(findings, key=Finding.sort_key)
