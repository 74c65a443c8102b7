"""Aims at T (DESIGN.md, "Aims and what changed"): each aim counts its capabilities in each coverage
state and is met when all are secured, partly met when at least one is secured or partial."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from provisions.models import Aim, AimCapability, AimVerdict, CoverageState
from provisions.rules.gaps import Evaluation


@dataclass(frozen=True)
class AimAt:
    code: str
    title: str
    verdict: AimVerdict
    states: dict[str, int]  # capabilities by coverage state at T
    capabilities: list[tuple[str, str, CoverageState]]  # (code, name, state), in the aim's order

    @property
    def capability_count(self) -> int:
        return len(self.capabilities)


def verdict_of(states: list[CoverageState]) -> AimVerdict:
    if states and all(state == CoverageState.SECURED for state in states):
        return AimVerdict.MET
    if any(state in (CoverageState.SECURED, CoverageState.PARTIAL) for state in states):
        return AimVerdict.PARTLY_MET
    return AimVerdict.NOT_MET


def aims_at(evaluation: Evaluation) -> list[AimAt]:
    """Every aim's verdict at the evaluation's date, sorted by code (two queries). The evaluation
    must cover the aims' capabilities (a full one does)."""
    return aims_from({pk: coverage.state for pk, coverage in evaluation.coverage.items()})


def aims_from(states: dict[int, CoverageState]) -> list[AimAt]:
    """Every aim's verdict from its capabilities' coverage states (by capability id; one missing is
    uncovered), sorted by code (two queries)."""
    served: dict[int, list[tuple[str, str, CoverageState]]] = {}
    links = AimCapability.objects.order_by("aim_id", "position", "id")
    for aim_id, capability_id, code, name in links.values_list(
        "aim_id", "capability_id", "capability__code", "capability__name"
    ):
        state = states.get(capability_id, CoverageState.UNCOVERED)
        served.setdefault(aim_id, []).append((code, name, state))
    aims = []
    for aim_id, code, title in Aim.objects.order_by("code").values_list("id", "code", "title"):
        capabilities = served.get(aim_id, [])
        counts = Counter(state.value for _, _, state in capabilities)
        aims.append(
            AimAt(
                code=code,
                title=title,
                verdict=verdict_of([state for _, _, state in capabilities]),
                states={state: counts[state] for state in CoverageState.values},
                capabilities=capabilities,
            )
        )
    return aims
