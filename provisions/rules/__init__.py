"""The rules of DESIGN.md ("Coverage and gap rules", "Aims and what changed"), at any date: the
record as it stood (record.py), the gap rules over it (gaps.py), aims (aims.py) and what changed
between two dates (changes.py). Plain functions, read-only and set-based, called by every interface."""

from provisions.rules.aims import AimAt, aims_at, aims_from, verdict_of
from provisions.rules.changes import Event, GapMove, events_between, gaps_moved
from provisions.rules.gaps import (
    CoverageAt,
    Evaluation,
    Finding,
    capability_gap,
    coverage_by_domain,
    coverage_state_of,
    evaluate_gaps,
    provision_gaps,
)
from provisions.rules.record import (
    CapabilityAt,
    ProvisionAt,
    Record,
    capabilities_at,
    provisions_at,
    record_at,
)
from provisions.rules.thresholds import (
    EARLIEST_AS_OF,
    LATEST_AS_OF,
    PeriodInvalid,
    Thresholds,
    parse_as_of,
    parse_period,
)
from provisions.rules.timeline import coverage_states

__all__ = [
    "EARLIEST_AS_OF",
    "LATEST_AS_OF",
    "AimAt",
    "CapabilityAt",
    "CoverageAt",
    "Evaluation",
    "Event",
    "Finding",
    "GapMove",
    "PeriodInvalid",
    "ProvisionAt",
    "Record",
    "Thresholds",
    "aims_at",
    "aims_from",
    "capabilities_at",
    "capability_gap",
    "coverage_by_domain",
    "coverage_state_of",
    "coverage_states",
    "evaluate_gaps",
    "events_between",
    "gaps_moved",
    "parse_as_of",
    "parse_period",
    "provision_gaps",
    "provisions_at",
    "record_at",
    "verdict_of",
]
