"""The vocabulary of DESIGN.md as enums (levels, statuses, stances, markings, coverage states, gap
kinds...), the lifecycle written down once, and the pattern of codes and references."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q


def choice_check(field: str, choices: type[models.TextChoices], name: str) -> models.CheckConstraint:
    return models.CheckConstraint(condition=Q(**{f"{field}__in": choices.values}), name=name)


# Codes and references, as the partnership file's schema has them ($defs.code): they name things in
# URLs and in the ";"-joined lists of reports, so nothing else is allowed in them.
CODE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
code_validator = RegexValidator(
    rf"^{CODE_PATTERN}\Z",
    "Letters, digits, '.', '_' and '-' only, starting with a letter or digit (at most 64).",
)


class Level(models.TextChoices):
    """Criticality of a capability and severity of a gap: one scale, highest first."""

    CRITICAL = "critical", "Critical"
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"

    @property
    def weight(self) -> int:
        """Higher is more serious: critical 3 ... low 0."""
        return _LEVEL_WEIGHTS[self.value]

    def raised(self) -> Level:
        """One level up; critical stays critical."""
        return _LEVELS_BY_WEIGHT[min(self.weight + 1, 3)]

    def lowered(self) -> Level:
        """One level down; levels never go below low."""
        return _LEVELS_BY_WEIGHT[max(self.weight - 1, 0)]


_LEVEL_WEIGHTS = {"critical": 3, "high": 2, "medium": 1, "low": 0}
_LEVELS_BY_WEIGHT = {weight: Level(value) for value, weight in _LEVEL_WEIGHTS.items()}


class MoveRefusal(str):
    """Why a status move is refused, in words, with `code` saying which rule refused it:
    `already_in_status` (a repeated move: safe to have retried), `in_force_only_suspends`,
    `reason_required`, `unknown_status`."""

    code: str
    # The codes a status move (not an import's history) is refused with: the API's `refusal`.
    MOVE_CODES = (
        "already_in_status",
        "in_force_only_suspends",
        "reason_required",
        "unknown_status",
        "dated_before_history",
    )

    def __new__(cls, text: str, code: str) -> MoveRefusal:
        refusal = super().__new__(cls, text)
        refusal.code = code
        return refusal


class Status(models.TextChoices):
    """The negotiation lifecycle. Ladder statuses have a rank; suspended and withdrawn are off it."""

    IDENTIFIED = "identified", "Identified"
    SCOPING = "scoping", "Scoping"
    PROPOSED = "proposed", "Proposed"
    UNDER_NEGOTIATION = "under_negotiation", "Under negotiation"
    AGREED_IN_PRINCIPLE = "agreed_in_principle", "Agreed in principle"
    AGREED = "agreed", "Agreed"
    SIGNED = "signed", "Signed"
    IN_FORCE = "in_force", "In force"
    SUSPENDED = "suspended", "Suspended"
    WITHDRAWN = "withdrawn", "Withdrawn"

    @property
    def rank(self) -> int | None:
        """Position on the ladder (identified 0 ... in_force 7); None off the ladder."""
        return _RANKS.get(self.value)

    @classmethod
    def move_refusal(cls, current: str | None, target: str, note: str) -> MoveRefusal | None:
        """Why the move from `current` to `target` is refused, or None when it is allowed.

        The lifecycle of DESIGN.md, written down once: any move except a no-op and leaving
        in_force for anything but suspended; backwards, suspending and withdrawing need a reason.
        `current` is None for a provision's first status.
        """
        if target not in cls.values:
            return MoveRefusal(f"unknown status {target!r}", "unknown_status")
        if current is None:
            return None
        source, destination = cls(current), cls(target)
        was, to = source.label.lower(), destination.label.lower()  # people read these: words, not codes
        if source == destination:
            return MoveRefusal(f"the provision is already {was}", "already_in_status")
        if source == cls.IN_FORCE and destination != cls.SUSPENDED:
            return MoveRefusal(
                f"a provision in force can only be suspended, not moved to {to}", "in_force_only_suspends"
            )
        if not note.strip():
            if destination in (cls.SUSPENDED, cls.WITHDRAWN):
                return MoveRefusal(f"moving to {to} needs a reason", "reason_required")
            if source.rank is not None and destination.rank is not None and destination.rank < source.rank:
                return MoveRefusal(f"moving back from {was} to {to} needs a reason", "reason_required")
        return None


# The ladder, in rank order (DESIGN.md's table); suspended and withdrawn are off it.
LADDER = (
    Status.IDENTIFIED,
    Status.SCOPING,
    Status.PROPOSED,
    Status.UNDER_NEGOTIATION,
    Status.AGREED_IN_PRINCIPLE,
    Status.AGREED,
    Status.SIGNED,
    Status.IN_FORCE,
)
_RANKS = {status.value: rank for rank, status in enumerate(LADDER)}


class Extent(models.TextChoices):
    FULL = "full", "Full"
    PARTIAL = "partial", "Partial"


class Stance(models.TextChoices):
    PROPOSES = "proposes", "Proposes"
    SUPPORTS = "supports", "Supports"
    CONDITIONAL = "conditional", "Conditional"
    RESERVED = "reserved", "Reserved"
    OPPOSES = "opposes", "Opposes"


class Firmness(models.TextChoices):
    PROVISIONAL = "provisional", "Provisional"
    DEFINITIVE = "definitive", "Definitive"


class Alignment(models.TextChoices):
    CONFLICT = "conflict", "Conflict"
    ALIGNED = "aligned", "Aligned"
    UNDETERMINED = "undetermined", "Undetermined"
    ASYMMETRIC = "asymmetric", "Asymmetric"

    @classmethod
    def of(cls, stances: Iterable[str | None]) -> Alignment:
        """Alignment from each party's stance (None: the party has no position)."""
        stances = list(stances)
        if not stances:  # no parties: nobody has taken a position yet
            return cls.UNDETERMINED
        if Stance.OPPOSES in stances:
            return cls.CONFLICT
        if None in stances:
            return cls.UNDETERMINED
        if all(stance in (Stance.PROPOSES, Stance.SUPPORTS) for stance in stances):
            return cls.ALIGNED
        return cls.ASYMMETRIC


class Marking(models.TextChoices):
    OFFICIAL = "official", "OFFICIAL"
    OFFICIAL_SENSITIVE = "official_sensitive", "OFFICIAL-SENSITIVE"
    SECRET = "secret", "SECRET"


class TerritoryKind(models.TextChoices):
    STATE = "state", "State"
    DEVOLVED_ADMINISTRATION = "devolved_administration", "Devolved Administration"
    CROWN_DEPENDENCY = "crown_dependency", "Crown Dependency"
    OVERSEAS_TERRITORY = "overseas_territory", "Overseas Territory"
    OTHER = "other", "Other"


class ConsultationOutcome(models.TextChoices):
    CONTENT = "content", "Content"
    CONCERNS = "concerns", "Raised concerns"
    OBJECTS = "objects", "Objects"
    NO_RESPONSE = "no_response", "No response"


class AimVerdict(models.TextChoices):
    MET = "met", "Met"
    PARTLY_MET = "partly_met", "Partly met"
    NOT_MET = "not_met", "Not met"


class CoverageState(models.TextChoices):
    SECURED = "secured", "Secured"
    PARTIAL = "partial", "Partial"
    IN_NEGOTIATION = "in_negotiation", "In negotiation"
    UNCOVERED = "uncovered", "Uncovered"


class GapKind(models.TextChoices):
    LAPSED = "lapsed", "Lapsed"
    UNCOVERED = "uncovered", "Uncovered"
    EXPIRING = "expiring", "Expiring"
    AT_RISK = "at_risk", "At risk"
    PARTIAL = "partial", "Partial"
    STALLED = "stalled", "Stalled"
    DIVERGENT = "divergent", "Divergent"


class ScanTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Nightly schedule"
    CHANGE = "change", "A change to the partnership"
    COMMAND = "command", "Command"
    API = "api", "API"
    WEB = "web", "Web"


# Which subject each kind of gap is about (the gap table's check constraint holds them to it).
CAPABILITY_GAP_KINDS = (GapKind.LAPSED, GapKind.UNCOVERED, GapKind.EXPIRING, GapKind.AT_RISK, GapKind.PARTIAL)
PROVISION_GAP_KINDS = (GapKind.STALLED, GapKind.DIVERGENT)


class GapState(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class WebhookEvent(models.TextChoices):
    """What the events feed lists and webhook endpoints subscribe to."""

    PROVISION_CHANGED = "provision.changed", "A provision was created or changed"
    PROVISION_STATUS_CHANGED = "provision.status_changed", "A provision's status changed"
    PROVISION_WITHDRAWN = "provision.withdrawn", "A provision was marked above the receiver's clearance"
    GAP_OPENED = "gap.opened", "A gap opened"
    GAP_UPDATED = "gap.updated", "A gap changed (eased, acknowledged, re-explained)"
    GAP_ESCALATED = "gap.escalated", "A gap escalated"
    GAP_RESOLVED = "gap.resolved", "A gap was resolved"
    CAPABILITY_CHANGED = "capability.changed", "A capability was created or changed"
    CAPABILITY_DELETED = "capability.deleted", "A capability was deleted"
    AIM_CHANGED = "aim.changed", "An aim was created or changed (text or capabilities)"


LADDER_STATUSES = [(status.value, status.label) for status in Status if status.rank is not None]


def rank_of(field: str, ranks: dict[str, int]) -> models.Case:
    """An enum field's rank, for ordering by what its values mean rather than by their text."""
    return models.Case(
        *(models.When(**{field: value}, then=models.Value(rank)) for value, rank in ranks.items()),
        output_field=models.IntegerField(),
    )


# A gap's severity as a number (critical 3 ... low 0): `?ordering=-severity`, and its index.
SEVERITY_RANK = rank_of("severity", {level.value: level.weight for level in Level})
