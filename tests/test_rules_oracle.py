"""The engine against a second, deliberately simple implementation of the rules (tests/rules_oracle.py):
on the shipped partnership at the dates that matter, and on partnerships generated on the rules'
boundaries (hypothesis), through the evaluation and through the export commands."""

from __future__ import annotations

import csv
import datetime
import io
import json
from pathlib import Path

import hypothesis
import pytest
from django.core.management import call_command
from django.db import transaction
from hypothesis import strategies as st

from provisions.models import (
    Aim,
    AimCapability,
    Capability,
    CapabilityChange,
    Coverage,
    Discussion,
    Domain,
    Partnership,
    Party,
    Position,
    Provision,
    ProvisionChange,
    StatusChange,
)
from provisions.rules import aims_at, evaluate_gaps
from tests import rules_oracle

pytestmark = pytest.mark.django_db

T0 = datetime.date(2021, 1, 1)
SHIPPED_DATES = [
    "2019-10-17",
    "2020-01-31",
    "2020-10-01",
    "2020-12-15",
    "2020-12-20",
    "2020-12-24",
    "2020-12-31",
    "2021-01-01",
    "2021-01-05",
    "2021-06-29",
    "2021-06-30",
    "2021-07-01",
    "2021-09-30",
    "2021-10-01",
    "2022-06-30",
    "2022-07-01",
    "2025-06-01",
]


def engine_findings(as_of: datetime.date) -> set[tuple]:
    return {
        (f.kind.value, f.severity.value, f.subject_code, f.lapses_on, f.covering_provisions)
        for f in evaluate_gaps(as_of=as_of).findings
    }


@pytest.fixture
def shipped(shipped_partnership_file: str) -> None:
    call_command("import_partnership", shipped_partnership_file, stdout=io.StringIO())


@pytest.mark.parametrize("as_of", SHIPPED_DATES)
def test_the_engine_agrees_with_the_simple_rules_on_the_shipped_partnership(shipped, as_of: str) -> None:
    day = datetime.date.fromisoformat(as_of)
    assert engine_findings(day) == rules_oracle.findings(day)


@pytest.mark.parametrize("as_of", ["2020-12-20", "2021-01-05", "2021-07-01"])
def test_the_exports_agree_with_the_simple_rules(shipped, tmp_path: Path, as_of: str) -> None:
    day = datetime.date.fromisoformat(as_of)
    gaps, aims = tmp_path / "gaps.csv", tmp_path / "aims.json"
    call_command(
        "export_gaps", "--format", "csv", "--output", str(gaps), "--as-of", as_of, stdout=io.StringIO()
    )
    call_command(
        "export_aims", "--format", "json", "--output", str(aims), "--as-of", as_of, stdout=io.StringIO()
    )

    with gaps.open(encoding="utf-8-sig", newline="") as text:
        rows = list(csv.DictReader(text))
    exported = {
        (
            row["kind"],
            row["severity"],
            row["subject_code"],
            datetime.date.fromisoformat(row["lapses_on"]) if row["lapses_on"] else None,
            tuple(row["covering_provisions"].split(";")) if row["covering_provisions"] else (),
        )
        for row in rows
    }
    assert exported == rules_oracle.findings(day)
    verdicts = {row["aim_code"]: row["verdict"] for row in json.loads(aims.read_text(encoding="utf-8"))}
    assert verdicts == {code: verdict for code, (verdict, _) in rules_oracle.aim_verdicts(day).items()}


# --- generated partnerships, on the boundaries -----------------------------------------------------------

LEVELS = ["critical", "high", "medium", "low"]
STATUSES = [*rules_oracle.LADDER, "suspended", "withdrawn"]
# Offsets chosen to sit on and around the thresholds (warning 180, urgent 30, stall 60).
OFFSETS = st.sampled_from([-200, -61, -60, -59, -31, -30, -1, 0, 1, 29, 30, 31, 179, 180, 181, 400])


def when(offset: int) -> datetime.date:
    return T0 + datetime.timedelta(days=offset)


capability_spec = st.fixed_dictionaries(
    {
        "criticality": st.sampled_from(LEVELS),
        "lapses": st.one_of(st.none(), OFFSETS),
        "fallback": st.booleans(),
        "changes": st.lists(
            st.tuples(OFFSETS, st.one_of(st.none(), OFFSETS), st.sampled_from(["", *LEVELS])), max_size=2
        ),
    }
)
provision_spec = st.fixed_dictionaries(
    {
        "history": st.lists(st.tuples(st.sampled_from(STATUSES), OFFSETS), min_size=1, max_size=3),
        "expires": st.one_of(st.none(), OFFSETS),
        "renewal": st.one_of(st.none(), st.tuples(OFFSETS, st.one_of(st.none(), OFFSETS))),
        "links": st.lists(
            st.tuples(
                st.integers(0, 3),
                st.sampled_from(["full", "partial"]),
                st.one_of(st.none(), OFFSETS),
                st.one_of(st.none(), OFFSETS),
            ),
            max_size=3,
        ),
        "positions": st.lists(
            st.tuples(
                st.sampled_from(["UK", "EU"]),
                st.sampled_from(["supports", "opposes"]),
                st.one_of(st.none(), OFFSETS),
            ),
            max_size=3,
        ),
        "discussions": st.lists(OFFSETS, max_size=2),
    }
)


def build(capabilities: list[dict], provisions: list[dict]) -> None:
    partnership = Partnership.objects.create(code="generated", title="Generated")
    parties = {
        code: Party.objects.create(partnership=partnership, code=code, name=code) for code in ("UK", "EU")
    }
    domain = Domain.objects.create(partnership=partnership, code="d", name="D")
    made = []
    for index, spec in enumerate(capabilities):
        capability = Capability.objects.create(
            code=f"CAP-{index}",
            name=f"Capability {index}",
            domain=domain,
            criticality=spec["criticality"],
            lapses_on=None if spec["lapses"] is None else when(spec["lapses"]),
            fallback="Fallback" if spec["fallback"] else "",
        )
        if spec["changes"]:
            CapabilityChange.objects.create(
                capability=capability,
                sets_lapses_on=True,
                lapses_on=capability.lapses_on,
                criticality=capability.criticality,
                sets_fallback=True,
                fallback=capability.fallback,
            )
            for at, lapses, level in sorted(spec["changes"], key=lambda change: change[0]):
                CapabilityChange.objects.create(
                    capability=capability,
                    at=when(at),
                    sets_lapses_on=True,
                    lapses_on=None if lapses is None else when(lapses),
                    criticality=level,
                )
        made.append(capability)
    for index, spec in enumerate(provisions):
        history = sorted(spec["history"], key=lambda entry: entry[1])
        provision = Provision.objects.create(
            reference=f"SP-{index}",
            title=f"Provision {index}",
            domain=domain,
            status=history[-1][0],
            expires_on=None if spec["expires"] is None else when(spec["expires"]),
        )
        previous = ""
        for status, offset in history:
            if status != previous:
                StatusChange.objects.create(
                    provision=provision, from_status=previous, to_status=status, changed_on=when(offset)
                )
                previous = status
        if spec["renewal"] is not None:
            at, expires = spec["renewal"]
            ProvisionChange.objects.create(
                provision=provision,
                title=provision.title,
                sets_expires_on=True,
                expires_on=provision.expires_on,
            )
            ProvisionChange.objects.create(
                provision=provision,
                at=when(at),
                sets_expires_on=True,
                expires_on=None if expires is None else when(expires),
            )
        spans: dict[int, list[tuple[int, int]]] = {}
        for target, extent, start, end in spec["links"]:
            span = (-10_000 if start is None else start, 10_000 if end is None else end)
            overlaps = any(span[0] < other[1] and other[0] < span[1] for other in spans.get(target, []))
            if target >= len(made) or span[0] >= span[1] or overlaps:
                continue  # the file contract: a capability twice only for other days
            spans.setdefault(target, []).append(span)
            Coverage.objects.create(
                provision=provision,
                capability=made[target],
                extent=extent,
                valid_from=None if start is None else when(start),
                valid_until=None if end is None else when(end),
            )
        for party, stance, taken in spec["positions"]:
            Position.objects.create(
                provision=provision,
                party=parties[party],
                stance=stance,
                taken_on=None if taken is None else when(taken),
            )
        for on in spec["discussions"]:
            Discussion.objects.create(provision=provision, on=when(on), note="Discussed")
    aim = Aim.objects.create(partnership=partnership, code="AIM", title="Aim")
    for position, capability in enumerate(made[:2]):
        AimCapability.objects.create(aim=aim, capability=capability, position=position)


@hypothesis.settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
@hypothesis.given(
    capabilities=st.lists(capability_spec, min_size=1, max_size=4),
    provisions=st.lists(provision_spec, min_size=1, max_size=4),
    offset=OFFSETS,
)
def test_the_engine_agrees_with_the_simple_rules_on_generated_partnerships(
    capabilities, provisions, offset
) -> None:
    with transaction.atomic():
        build(capabilities, provisions)
        day = when(offset)
        evaluation = evaluate_gaps(as_of=day)
        engine = {
            (f.kind.value, f.severity.value, f.subject_code, f.lapses_on, f.covering_provisions)
            for f in evaluation.findings
        }
        assert engine == rules_oracle.findings(day)
        verdicts = {aim.code: (aim.verdict.value, aim.states) for aim in aims_at(evaluation)}
        assert verdicts == rules_oracle.aim_verdicts(day)
        transaction.set_rollback(True)


def test_a_capabilitys_timeline_gives_the_engines_state_on_every_day(shipped) -> None:
    """The capability page's timeline reads its inputs once for all days; on each day it must give
    the state a whole evaluation as of that day gives."""
    from provisions.models import Capability
    from provisions.rules import coverage_states, evaluate_gaps

    days = [datetime.date.fromisoformat(day) for day in SHIPPED_DATES]
    evaluations = {day: evaluate_gaps(as_of=day) for day in days}
    checked = 0
    for capability in Capability.objects.all():
        for day, state in coverage_states(capability.pk, days):
            assert state == evaluations[day].coverage[capability.pk].state, (capability.code, day)
            checked += 1
    assert checked == Capability.objects.count() * len(days) > 100


@pytest.mark.parametrize("as_of", ["2021-01-05", "2021-07-01", "2022-07-01", "2025-06-01"])
def test_the_bulk_pass_gives_each_capability_what_its_own_links_give(shipped, as_of: str) -> None:
    """A full evaluation works out every capability's state and coverage end over arrays of all the
    links at once; evaluating one capability applies coverage_state_of to its own links. They agree
    on every capability, and the full evaluation lists the provisions behind a coverage only where it
    found a gap (a scoped one lists them for each capability it evaluated)."""
    day = datetime.date.fromisoformat(as_of)
    full = evaluate_gaps(as_of=day)
    with_gaps = {f.subject_id for f in full.findings if f.subject_type == "capability"}
    assert 0 < len(with_gaps) < len(full.coverage)  # both kinds are here
    for capability_id, coverage in full.coverage.items():
        alone = evaluate_gaps(as_of=day, capability_ids=[capability_id]).coverage[capability_id]
        assert (coverage.state, coverage.ends_on) == (alone.state, alone.ends_on)
        if capability_id in with_gaps:
            assert coverage.covering == alone.covering and coverage.securing == alone.securing
        else:
            with pytest.raises(LookupError, match="evaluate the capability by id"):
                coverage.covering  # noqa: B018 (the property is the test)
