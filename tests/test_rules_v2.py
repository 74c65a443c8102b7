"""Rules v2 (DESIGN.md, "The record as it stood at T", the `expiring` kind, `lapsed` only for a real
loss, `at_risk` only before the lapse, activity for `stalled`, "Aims and what changed"), each rule
worked on its boundaries by hand. `T` is the as-of date; offsets are days from T."""

from __future__ import annotations

import pytest

from provisions.models import (
    Aim,
    AimCapability,
    CapabilityChange,
    Discussion,
    Extent,
    ProvisionChange,
    Stance,
)
from provisions.rules import aims_at, evaluate_gaps, events_between, gaps_moved
from tests import rules_oracle
from tests.test_rules import LOWER, day, findings_of, gaps_of, provision, state_of
from tests.test_rules import capability as make_capability

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:ProvisionFactory._after_postgeneration:DeprecationWarning"),
]

T = day(0)


def expiring_capability(expires_in: int, *, criticality: str = "high", extent: str = Extent.FULL):
    """A capability lapsing in a year, secured by an agreed provision that expires in `expires_in` days."""
    covered = make_capability(criticality, lapses_in=365)
    provision("agreed", covers=[covered], extent=extent, expires_on=day(expires_in))
    return covered


# --- expiry ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires_in", "expected"),
    [
        (181, []),  # beyond WARNING_DAYS: no gap
        (180, [("expiring", "medium")]),  # within warning: one level lower
        (31, [("expiring", "medium")]),
        (30, [("expiring", "high")]),  # within URGENT_DAYS: the criticality
        (1, [("expiring", "high")]),
    ],
)
def test_a_secured_capability_warns_before_its_securing_provision_expires(expires_in, expected):
    covered = expiring_capability(expires_in)
    assert state_of(covered) == "secured"
    assert gaps_of(covered) == expected


def test_on_its_expiry_day_a_provision_secures_nothing_and_the_loss_is_a_lapse():
    """Expired: active but not secured. The capability (lapsed a day ago) is back in negotiation."""
    covered = make_capability("high", lapses_in=-1)
    provision("agreed", covers=[covered], expires_on=day(0))
    assert state_of(covered) == "in_negotiation"
    assert gaps_of(covered) == [("lapsed", "critical")]
    [finding] = findings_of(covered)
    assert "the only covering provision" in finding.explanation


def test_the_expiring_gap_reports_the_day_coverage_ends():
    covered = expiring_capability(100, criticality="critical")
    [finding] = findings_of(covered)
    assert (finding.kind, finding.severity, finding.lapses_on, finding.days_to_lapse) == (
        "expiring",
        "high",
        day(100),
        100,
    )
    assert f"its coverage ends on {day(100).isoformat()}, in 100 days, unless renewed" in finding.explanation


def test_a_renewal_dated_on_or_before_t_clears_the_warning():
    covered = make_capability("high", lapses_in=365)
    secured = provision("agreed", covers=[covered], expires_on=day(10), created=-30)
    ProvisionChange.objects.create(
        provision=secured, at=None, title=secured.title, sets_expires_on=True, expires_on=day(10)
    )
    ProvisionChange.objects.create(provision=secured, at=day(-3), sets_expires_on=True, expires_on=day(400))
    assert gaps_of(covered) == []  # renewed 3 days ago: ends in 400 days
    assert gaps_of(covered, as_of=day(-4)) == [("expiring", "high")]  # before the renewal: 14 days left


def test_coverage_ends_on_the_latest_expiry_and_never_if_one_securing_provision_has_none():
    covered = make_capability("high", lapses_in=365)
    provision("agreed", covers=[covered], expires_on=day(20))
    provision("signed", covers=[covered], expires_on=day(90))
    assert gaps_of(covered) == [("expiring", "medium")]  # ends on day 90: beyond urgent
    provision("in_force", covers=[covered])  # secures with no expiry
    assert gaps_of(covered) == []


def test_coverage_ends_on_the_latest_expiry_whatever_order_the_links_were_made_in():
    """The full evaluation folds the links as they come: the latest expiry (or never) must win
    whether it comes first or last."""
    later_first = make_capability("high", lapses_in=365)
    provision("signed", covers=[later_first], expires_on=day(90))
    provision("agreed", covers=[later_first], expires_on=day(20))
    never_first = make_capability("high", lapses_in=365)
    provision("in_force", covers=[never_first])
    provision("agreed", covers=[never_first], expires_on=day(20))
    assert gaps_of(later_first) == [("expiring", "medium")]  # day 90, not day 20 (urgent: high)
    assert gaps_of(never_first) == []
    coverage = evaluate_gaps(as_of=T).coverage
    assert (coverage[later_first.pk].ends_on, coverage[never_first.pk].ends_on) == (day(90), None)


def test_a_partial_replacement_warns_of_its_expiry_before_its_lapse():
    """The table's order: expiring comes before at_risk and partial."""
    covered = make_capability("high", lapses_in=60)
    provision("agreed", covers=[covered], extent=Extent.PARTIAL, expires_on=day(20))
    assert gaps_of(covered) == [("expiring", "high")]


# --- lapse dates moved by a change, links' days, positions' days -------------------------------------------


def test_a_lapse_date_moved_by_a_dated_change_counts_from_its_day():
    covered = make_capability("critical", lapses_in=5)  # lapses on day 5 ... unless moved
    CapabilityChange.objects.create(
        capability=covered,
        at=None,
        sets_lapses_on=True,
        lapses_on=day(5),
        criticality="critical",
        sets_fallback=True,
    )
    CapabilityChange.objects.create(capability=covered, at=day(1), sets_lapses_on=True, lapses_on=day(200))
    assert gaps_of(covered, as_of=day(0)) == [("uncovered", "critical")]  # lapses in 5 days
    assert gaps_of(covered, as_of=day(1)) == [("uncovered", "high")]  # moved: 199 days away
    assert gaps_of(covered, as_of=day(6)) == [("uncovered", "high")]  # not lapsed: the date moved
    [finding] = findings_of(covered, as_of=day(1))
    assert finding.lapses_on == day(200)


def test_a_change_that_clears_a_lapse_date_clears_it():
    covered = make_capability("critical", lapses_in=5)
    CapabilityChange.objects.create(
        capability=covered,
        at=None,
        sets_lapses_on=True,
        lapses_on=day(5),
        criticality="critical",
        sets_fallback=True,
    )
    CapabilityChange.objects.create(capability=covered, at=day(-1), sets_lapses_on=True, lapses_on=None)
    assert gaps_of(covered) == [("uncovered", "high")]  # no lapse date: one level lower


@pytest.mark.parametrize(
    ("start", "end", "counts"),
    [
        (0, None, True),  # from T: counts on T
        (1, None, False),  # from the day after
        (None, 1, True),  # until the day after: still counts on T
        (None, 0, False),  # until T: stops counting on T
        (-5, 5, True),
    ],
)
def test_a_link_counts_from_its_from_day_until_the_day_before_its_until(start, end, counts):
    covered = make_capability("high", lapses_in=365)
    secured = provision("agreed")
    secured.coverage.create(
        capability=covered,
        extent=Extent.FULL,
        valid_from=None if start is None else day(start),
        valid_until=None if end is None else day(end),
    )
    assert state_of(covered) == ("secured" if counts else "uncovered")


@pytest.mark.parametrize(("taken", "divergent"), [(0, True), (1, False), (-1, True)])
def test_a_position_counts_from_the_day_it_is_taken(taken, divergent):
    covered = make_capability("high", lapses_in=30)
    opposed = provision("proposed", covers=[covered])
    eu = opposed.domain.partnership.parties.get_or_create(code="EU", defaults={"name": "EU"})[0]
    opposed.positions.create(party=eu, stance=Stance.SUPPORTS)  # from the start
    opposed.positions.create(party=eu, stance=Stance.OPPOSES, taken_on=day(taken))
    assert (
        ("divergent", "high") in gaps_of(opposed)
        if divergent
        else ("divergent", "high") not in gaps_of(opposed)
    )


def test_the_latest_position_of_a_party_decides_even_when_it_no_longer_opposes():
    covered = make_capability("high", lapses_in=30)
    talks = provision("proposed", covers=[covered], created=-40)
    eu = talks.domain.partnership.parties.get_or_create(code="EU", defaults={"name": "EU"})[0]
    talks.positions.create(party=eu, stance=Stance.OPPOSES, taken_on=day(-30))
    talks.positions.create(party=eu, stance=Stance.CONDITIONAL, taken_on=day(-2))
    assert [kind for kind, _ in gaps_of(talks)] == []
    assert ("divergent", "high") in gaps_of(talks, as_of=day(-3))


# --- activity: the stall clock ------------------------------------------------------------------------------


@pytest.mark.parametrize(("discussed", "stalled"), [(-59, False), (-60, True), (-61, True)])
def test_a_discussion_resets_the_stall_clock(discussed, stalled):
    talks = provision("under_negotiation", created=-200)
    Discussion.objects.create(provision=talks, on=day(discussed), note="Round 7: no move")
    assert (("stalled", "low") in gaps_of(talks)) is stalled


@pytest.mark.parametrize("kind", ["position", "change"])
def test_a_dated_position_or_change_is_activity_too(kind):
    talks = provision("proposed", created=-200)
    if kind == "position":
        party = talks.domain.partnership.parties.get_or_create(code="UK", defaults={"name": "UK"})[0]
        talks.positions.create(party=party, stance=Stance.PROPOSES, taken_on=day(-10))
    else:
        ProvisionChange.objects.create(provision=talks, at=None, title=talks.title, sets_text=True, text="")
        ProvisionChange.objects.create(provision=talks, at=day(-10), sets_text=True, text="New wording")
    assert gaps_of(talks) == []
    assert gaps_of(talks, as_of=day(-11)) == [("stalled", "low")]


def test_a_discussion_after_t_is_not_activity_at_t():
    talks = provision("proposed", created=-200)
    Discussion.objects.create(provision=talks, on=day(5), note="Later round")
    assert gaps_of(talks) == [("stalled", "low")]


# --- lapsed only for a real loss; at_risk only before the lapse --------------------------------------------


@pytest.mark.parametrize("lapses_in", [1, 0])
def test_a_narrower_replacement_is_at_risk_before_its_lapse_day_and_partial_from_it(lapses_in):
    covered = make_capability("critical", lapses_in=lapses_in)
    provision("in_force", covers=[covered], extent=Extent.PARTIAL)
    expected = ("at_risk", "critical") if lapses_in > 0 else ("partial", LOWER["critical"])
    assert gaps_of(covered) == [expected]


def test_at_risk_is_never_on_or_after_the_lapse_day():
    covered = make_capability("high", lapses_in=0)
    provision("proposed", covers=[covered])
    assert gaps_of(covered) == [("lapsed", "critical")]


# --- aims ---------------------------------------------------------------------------------------------------


def aim(code: str, *capabilities) -> Aim:
    partnership = capabilities[0].domain.partnership if capabilities else provision().domain.partnership
    made = Aim.objects.create(partnership=partnership, code=code, title=code)
    for position, served in enumerate(capabilities):
        AimCapability.objects.create(aim=made, capability=served, position=position)
    return made


def test_aims_are_met_partly_met_or_not_met_from_their_capabilities_states():
    secured = make_capability("high", lapses_in=365)
    provision("agreed", covers=[secured])
    partial = make_capability("high", lapses_in=365)
    provision("agreed", covers=[partial], extent=Extent.PARTIAL)
    talks = make_capability("high", lapses_in=365)
    provision("proposed", covers=[talks])
    nothing = make_capability("high", lapses_in=365)
    aim("AIM-MET", secured)
    aim("AIM-PART", secured, talks)
    aim("AIM-NARROW", partial, nothing)
    aim("AIM-NOT", talks, nothing)
    aim("AIM-EMPTY")

    verdicts = {a.code: (a.verdict.value, a.states) for a in aims_at(evaluate_gaps(as_of=T))}

    assert {code: verdict for code, (verdict, _) in verdicts.items()} == {
        "AIM-EMPTY": "not_met",
        "AIM-MET": "met",
        "AIM-NARROW": "partly_met",
        "AIM-NOT": "not_met",
        "AIM-PART": "partly_met",
    }
    assert verdicts["AIM-PART"][1] == {"secured": 1, "partial": 0, "in_negotiation": 1, "uncovered": 0}
    oracle = rules_oracle.aim_verdicts(T)
    assert {code: verdict for code, (verdict, _) in verdicts.items()} == {
        c: v for c, (v, _) in oracle.items()
    }


# --- what changed between two dates -------------------------------------------------------------------------


def test_what_changed_between_two_dates_sorts_opened_escalated_eased_resolved():
    """D1 = T-10, D2 = T; every row worked out by hand from the tables."""
    # Stalls between the two dates: 55 days without activity at D1, 65 at D2; covers nothing: low.
    stalling = provision("proposed", created=-65)
    # At risk, high: 35 days from its lapse at D1 (beyond urgent: medium), 25 at D2 (urgent: high).
    escalating = make_capability("high", lapses_in=25)
    provision("proposed", covers=[escalating], created=-20)
    # Uncovered and 15, then 5 days from its lapse: critical; downgraded to low on T-1.
    easing = make_capability("critical", lapses_in=5)
    CapabilityChange.objects.create(
        capability=easing,
        at=None,
        sets_lapses_on=True,
        lapses_on=day(5),
        criticality="critical",
        sets_fallback=True,
    )
    CapabilityChange.objects.create(capability=easing, at=day(-1), criticality="low")
    # At risk at D1 (110 days from its lapse: one level below medium, low); agreed on T-1: secured.
    resolved = make_capability("medium", lapses_in=100)
    provision("proposed", covers=[resolved], created=-20, then=[("agreed", -1)])

    moves = gaps_moved(evaluate_gaps(as_of=day(-10)), evaluate_gaps(as_of=day(0)))
    summary = [
        (move.change, move.finding.kind.value, move.finding.subject_code, move.finding.severity.value,
         move.previous.severity.value if move.previous else None)
        for move in moves
    ]  # fmt: skip

    assert summary == [
        ("opened", "stalled", stalling.reference, "low", None),
        ("escalated", "at_risk", escalating.code, "high", "medium"),
        ("eased", "uncovered", easing.code, "low", "critical"),
        ("resolved", "at_risk", resolved.code, "low", "low"),
    ]


def test_events_between_two_dates_are_the_records_in_the_half_open_interval():
    talks = provision("proposed", created=-30, then=[("under_negotiation", -5)])  # created: before D1
    Discussion.objects.create(provision=talks, on=day(-10), note="Round 6")
    Discussion.objects.create(provision=talks, on=day(0), note="Round 7")
    party = talks.domain.partnership.parties.get_or_create(code="EU", defaults={"name": "EU"})[0]
    talks.positions.create(party=party, stance=Stance.OPPOSES, taken_on=day(-10))

    events = events_between(day(-10), day(0))

    assert [(event.on, event.kind) for event in events] == [
        (day(-5), "status_change"),
        (day(0), "discussion"),
    ]


# --- today's columns follow the dated values ---------------------------------------------------------------


def test_the_nightly_job_brings_a_value_dated_today_into_the_columns(monkeypatch):
    from provisions import tasks
    from provisions.services import dated

    covered = make_capability("high", lapses_in=30)
    CapabilityChange.objects.create(
        capability=covered,
        at=None,
        sets_lapses_on=True,
        lapses_on=day(30),
        criticality="high",
        sets_fallback=True,
    )
    CapabilityChange.objects.create(capability=covered, at=day(1), sets_lapses_on=True, lapses_on=day(300))
    monkeypatch.setattr(dated.timezone, "localdate", lambda: day(1))  # the day the change takes effect

    tasks.scan_all_gaps()

    covered.refresh_from_db()
    assert covered.lapses_on == day(300)
