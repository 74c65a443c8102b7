"""Shapes of the API's resources. Serializers describe shape; rules live in services and rules."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from rest_framework import serializers

from provisions.api.provision_rows import moment_writer, provision_rows
from provisions.models import (
    AimVerdict,
    Alignment,
    ApiToken,
    Capability,
    CoverageState,
    Domain,
    Extent,
    Firmness,
    GapKind,
    GapScan,
    Level,
    Marking,
    MoveRefusal,
    Position,
    Precedent,
    Provision,
    Stance,
    Status,
    StatusChange,
    Territory,
)


class DomainSerializer(serializers.ModelSerializer[Domain]):
    pillar = serializers.CharField(source="pillar.name", allow_null=True, read_only=True)
    partnership = serializers.CharField(source="partnership.code", read_only=True)

    class Meta:
        model = Domain
        fields = ["code", "name", "pillar", "description", "partnership", "updated_at"]


class CapabilitySerializer(serializers.ModelSerializer[Capability]):
    domain = serializers.CharField(source="domain.code", read_only=True)

    class Meta:
        model = Capability
        fields = [
            "code",
            "name",
            "domain",
            "criticality",
            "lapses_on",
            "fallback",
            "description",
            "updated_at",
        ]

    def to_representation(self, instance: Capability) -> dict[str, Any]:
        """Today's values, or (`as_of` in the context) its lapse date, criticality and fallback then."""
        data: dict[str, Any] = super().to_representation(instance)
        as_of: datetime.date | None = self.context.get("as_of")
        if as_of is not None:
            values = instance.values_at(as_of)
            data["criticality"], data["fallback"] = values["criticality"], values["fallback"]
            data["lapses_on"] = values["lapses_on"].isoformat() if values["lapses_on"] else None
        return data


class TerritorySerializer(serializers.ModelSerializer[Territory]):
    class Meta:
        model = Territory
        fields = ["code", "name", "kind", "updated_at"]


class PrecedentSerializer(serializers.ModelSerializer[Precedent]):
    class Meta:
        model = Precedent
        fields = ["code", "title", "description", "url", "updated_at"]


class PositionSerializer(serializers.ModelSerializer[Position]):
    party = serializers.CharField(source="party.code", read_only=True)
    at = serializers.DateField(source="taken_on", read_only=True, allow_null=True)

    class Meta:
        model = Position
        fields = ["party", "stance", "firmness", "note", "at", "updated_at"]


class CoverageLinkSerializer(serializers.Serializer[Any]):
    """A link: the capability, how far, and the days it counts (the file's `from` and `until`)."""

    capability = serializers.CharField(source="capability.code", read_only=True)
    extent = serializers.ChoiceField(choices=Extent.choices, read_only=True)


# `from` is a Python keyword: the field is declared after the class, as DRF's metaclass would.
CoverageLinkSerializer._declared_fields["from"] = serializers.DateField(
    source="valid_from", read_only=True, allow_null=True, help_text="Counts from this day (null: always)."
)
CoverageLinkSerializer._declared_fields["until"] = serializers.DateField(
    source="valid_until", read_only=True, allow_null=True, help_text="Stops counting on this day."
)


class ProvisionSerializer(serializers.ModelSerializer[Provision]):
    domain = serializers.CharField(source="domain.code", read_only=True)
    status = serializers.ChoiceField(choices=Status.choices, read_only=True)
    alignment = serializers.ChoiceField(choices=Alignment.choices, read_only=True)
    positions = PositionSerializer(many=True, read_only=True)
    covers = CoverageLinkSerializer(source="coverage", many=True, read_only=True)
    precedents = serializers.SlugRelatedField[Precedent](slug_field="code", many=True, read_only=True)
    territories = serializers.SlugRelatedField[Territory](slug_field="code", many=True, read_only=True)

    class Meta:
        model = Provision
        fields = [
            "reference",
            "title",
            "text",
            "domain",
            "status",
            "marking",
            "target_date",
            "review_date",
            "expires_on",
            "alignment",
            "positions",
            "covers",
            "precedents",
            "territories",
            "version",
            "updated_at",
        ]
        read_only_fields = ["reference", "version", "updated_at"]

    def to_representation(self, instance: Provision) -> dict[str, Any]:
        """As it stands today, or as it stood on the `as_of` day of the context. The fields above are
        the shape (and the schema's); the values come from provisions.api.provision_rows, the one
        representation the list, a provision and every write's answer share."""
        return provision_rows([instance.pk], as_of=self.context.get("as_of"))[0]


def _effective_on() -> serializers.DateField:
    return serializers.DateField(
        required=False,
        allow_null=True,
        help_text="The day it takes effect (default today); an earlier day needs a reason, never later.",
    )


class ProvisionUpdateSerializer(serializers.Serializer[Any]):
    """A partial update: send only what changes, with the version it is based on."""

    title = serializers.CharField(max_length=300, required=False)
    text = serializers.CharField(required=False, allow_blank=True)
    target_date = serializers.DateField(required=False, allow_null=True)
    review_date = serializers.DateField(required=False, allow_null=True)
    expires_on = serializers.DateField(
        required=False, allow_null=True, help_text="From this day it secures nothing unless renewed."
    )
    marking = serializers.ChoiceField(choices=Marking.choices, required=False)
    version = serializers.IntegerField(min_value=1, required=False, help_text="Or send If-Match.")
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    effective_on = _effective_on()


class TransitionSerializer(serializers.Serializer[Any]):
    to = serializers.ChoiceField(choices=Status.choices)
    note = serializers.CharField(required=False, allow_blank=True, default="")
    version = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="Optional (or If-Match): the move is refused if the provision changed.",
    )


class PositionInputSerializer(serializers.Serializer[Any]):
    party = serializers.CharField(max_length=64)
    stance = serializers.ChoiceField(choices=Stance.choices)
    firmness = serializers.ChoiceField(choices=Firmness.choices, default=Firmness.PROVISIONAL)
    note = serializers.CharField(required=False, allow_blank=True, default="")
    version = serializers.IntegerField(min_value=1, required=False, help_text="Or send If-Match.")
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    effective_on = _effective_on()


class CoverageInputSerializer(serializers.Serializer[Any]):
    capability = serializers.CharField(max_length=64)
    extent = serializers.ChoiceField(
        choices=Extent.choices, allow_null=True, help_text="null: no longer covers"
    )
    version = serializers.IntegerField(min_value=1, required=False, help_text="Or send If-Match.")
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    effective_on = _effective_on()


class DiscussionInputSerializer(serializers.Serializer[Any]):
    """A round in which the provision was negotiated without moving (activity for the stall rule)."""

    on = serializers.DateField(help_text="The day it was discussed: today or earlier.")
    note = serializers.CharField(help_text="What was discussed, e.g. 'Round 7: no move on data retention'.")
    version = serializers.IntegerField(min_value=1, required=False, help_text="Or send If-Match.")


class StatusChangeSerializer(serializers.ModelSerializer[StatusChange]):
    changed_by = serializers.CharField(source="changed_by.username", allow_null=True, read_only=True)
    from_status = serializers.ChoiceField(
        choices=[("", "None: the first status"), *Status.choices],
        read_only=True,
        help_text="Empty for the provision's first status.",
    )

    class Meta:
        model = StatusChange
        fields = ["from_status", "to_status", "changed_on", "recorded_at", "changed_by", "note", "source"]


class FieldChangeSerializer(serializers.Serializer[Any]):
    field = serializers.CharField()
    old = serializers.CharField(allow_null=True)
    new = serializers.CharField(allow_null=True)


class AuditEntrySerializer(serializers.Serializer[Any]):
    at = serializers.DateTimeField()
    by = serializers.CharField(allow_null=True)
    reason = serializers.CharField(allow_null=True)
    action = serializers.ChoiceField(choices=["created", "changed", "deleted"])
    record = serializers.CharField(help_text="provision, or position/coverage with its party/capability")
    changes = FieldChangeSerializer(many=True)


class ProvisionHistorySerializer(serializers.Serializer[Any]):
    status_changes = StatusChangeSerializer(many=True)
    audit = AuditEntrySerializer(many=True)


class GapSerializer(serializers.Serializer[Any]):
    """A gap in the report's columns. With `as_of`, a read-only evaluation: no id, opened_at or state."""

    id = serializers.IntegerField(allow_null=True)
    kind = serializers.ChoiceField(choices=GapKind.choices)
    severity = serializers.ChoiceField(choices=Level.choices)
    subject_type = serializers.ChoiceField(choices=["capability", "provision"])
    subject_code = serializers.CharField()
    subject_name = serializers.CharField()
    domain = serializers.CharField()
    coverage_state = serializers.ChoiceField(choices=CoverageState.choices, allow_null=True)
    lapses_on = serializers.DateField(allow_null=True)
    days_to_lapse = serializers.IntegerField(allow_null=True)
    covering_provisions = serializers.CharField(allow_null=True)
    explanation = serializers.CharField()
    opened_at = serializers.DateTimeField(allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)
    state = serializers.ChoiceField(choices=["open", "acknowledged", "resolved"], allow_null=True)
    acknowledged_by = serializers.CharField(allow_null=True)
    acknowledgement_note = serializers.CharField(allow_null=True)


GAP_FIELDS = tuple(GapSerializer().fields)  # in the order GapSerializer writes them


def gap_json(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """What GapSerializer(rows, many=True) writes for report rows (provisions.redaction's gap_row and
    finding_row), without DRF's machinery per field and row (about 2 ms of a 50-row gap list's 15-18):
    the rows hold JSON's own types already, but for the day a gap lapses and its two moments.
    tests/test_gap_json.py holds the two equal."""
    moment = moment_writer()
    written = []
    for row in rows:
        lapses_on, opened_at, resolved_at = row["lapses_on"], row["opened_at"], row["resolved_at"]
        written.append(
            {
                **{name: row[name] for name in GAP_FIELDS},
                "lapses_on": None if lapses_on is None else lapses_on.isoformat(),
                "opened_at": None if opened_at is None else moment(opened_at),
                "resolved_at": None if resolved_at is None else moment(resolved_at),
            }
        )
    return written


class AcknowledgeSerializer(serializers.Serializer[Any]):
    note = serializers.CharField()


class CoverageRowSerializer(serializers.Serializer[Any]):
    domain = serializers.CharField()
    name = serializers.CharField()
    capabilities = serializers.IntegerField()
    capabilities_by_state = serializers.DictField(child=serializers.IntegerField())
    unscanned = serializers.IntegerField(
        help_text="Today's rows: capabilities no scan has evaluated yet (counted in `capabilities`, in no "
        "state). Always 0 with `as_of`, which evaluates the rules at that date."
    )
    provisions_by_status = serializers.DictField(child=serializers.IntegerField())
    coverage_ratio = serializers.FloatField(allow_null=True, help_text="Secured capabilities / capabilities.")


class AimSerializer(serializers.Serializer[Any]):
    """DESIGN.md's aims report columns, and the aim's capabilities with their state."""

    aim_code = serializers.CharField()
    aim_title = serializers.CharField()
    verdict = serializers.ChoiceField(choices=AimVerdict.choices)
    capabilities = serializers.IntegerField(help_text="How many capabilities serve the aim.")
    secured = serializers.IntegerField()
    in_negotiation = serializers.IntegerField()
    uncovered = serializers.IntegerField()
    capability_states = serializers.DictField(
        child=serializers.ChoiceField(choices=CoverageState.choices),
        help_text="Each capability's state, by code.",
    )


# `partial` is an attribute of every DRF serializer: the column is declared after the class.
_aim_fields = {**AimSerializer._declared_fields, "partial": serializers.IntegerField()}
AimSerializer._declared_fields = {
    name: _aim_fields[name]
    for name in (
        "aim_code",
        "aim_title",
        "verdict",
        "capabilities",
        "secured",
        "partial",
        "in_negotiation",
        "uncovered",
        "capability_states",
    )
}


class GapMoveSerializer(serializers.Serializer[Any]):
    """DESIGN.md's changes report columns."""

    change = serializers.ChoiceField(choices=["opened", "escalated", "eased", "resolved"])
    kind = serializers.ChoiceField(choices=GapKind.choices)
    severity = serializers.ChoiceField(choices=Level.choices)
    previous_severity = serializers.ChoiceField(choices=Level.choices, allow_null=True)
    subject_type = serializers.ChoiceField(choices=["capability", "provision"])
    subject_code = serializers.CharField()
    subject_name = serializers.CharField()
    domain = serializers.CharField()
    explanation = serializers.CharField()


class EventSerializer(serializers.Serializer[Any]):
    on = serializers.DateField()
    kind = serializers.ChoiceField(
        choices=["status_change", "position", "discussion", "provision_change", "capability_change"]
    )
    subject_type = serializers.ChoiceField(choices=["capability", "provision"])
    subject_code = serializers.CharField()
    summary = serializers.CharField()
    note = serializers.CharField(allow_blank=True)


class ChangesSerializer(serializers.Serializer[Any]):
    gaps = GapMoveSerializer(source="rows", many=True)
    events = EventSerializer(many=True, help_text="The record's events in (from, to].")


# `from` is a Python keyword: the two dates are declared after the class, in the document's order.
ChangesSerializer._declared_fields = {
    "from": serializers.DateField(source="start", help_text="D1"),
    "to": serializers.DateField(source="end", help_text="D2"),
    **ChangesSerializer._declared_fields,
}


_WITHHELD_COUNT = "Null for a reader not cleared to every marking (the scan counted what they may not see)."


class GapScanSerializer(serializers.ModelSerializer[GapScan]):
    evaluated_subjects = serializers.IntegerField(read_only=True, allow_null=True, help_text=_WITHHELD_COUNT)
    opened = serializers.IntegerField(read_only=True, allow_null=True, help_text=_WITHHELD_COUNT)
    updated = serializers.IntegerField(read_only=True, allow_null=True, help_text=_WITHHELD_COUNT)
    resolved = serializers.IntegerField(read_only=True, allow_null=True, help_text=_WITHHELD_COUNT)
    unchanged = serializers.IntegerField(read_only=True, allow_null=True, help_text=_WITHHELD_COUNT)

    class Meta:
        model = GapScan
        fields = [
            "id",
            "as_of",
            "trigger",
            "full",
            "started_at",
            "duration_ms",
            *GapScan.COUNTS,
            "updated_at",
        ]
        extra_kwargs = {
            "duration_ms": {
                "help_text": "Empty while it runs: a full scan reconciles batch by batch, its counts growing "
                "as each batch commits (empty for good if it died half-way; the next scan redoes it)."
            }
        }

    def to_representation(self, instance: GapScan) -> dict[str, Any]:
        data = super().to_representation(instance)
        if not self.context["reader"].sees_everything:
            return {**data, **dict.fromkeys(GapScan.COUNTS)}
        return data


class ScanQueuedSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=["queued"])
    request = serializers.IntegerField(
        allow_null=True, help_text="The scan request (null: folded into one already waiting)."
    )


class ErrorSerializer(serializers.Serializer[Any]):
    """Every 4xx answer has this shape."""

    status = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()
    field_errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="For invalid input: the messages for each field.",
    )
    refusal = serializers.ChoiceField(
        choices=MoveRefusal.MOVE_CODES,
        required=False,
        help_text="On a refused status move (409): the rule that refused it. `already_in_status`: the "
        "provision already had that status (a repeated move: safe to have retried).",
    )
    current_version = serializers.IntegerField(
        required=False, help_text="On a 412: the provision's version now (also the ETag header)."
    )


class ErrorEnvelopeSerializer(serializers.Serializer[Any]):
    error = ErrorSerializer()


class ApiTokenSerializer(serializers.ModelSerializer[ApiToken]):
    user = serializers.CharField(source="user.username", read_only=True)
    clearance = serializers.ChoiceField(
        choices=[("", "The user's clearance"), *Marking.choices],
        read_only=True,
        help_text="A marking, or empty: the user's clearance.",
    )

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "user",
            "prefix",
            "clearance",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        ]
        read_only_fields = fields


class ApiTokenCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    clearance = serializers.ChoiceField(
        choices=Marking.choices,
        required=False,
        default="",
        allow_blank=True,
        help_text="Lower than your own to restrict the token; blank: yours.",
    )


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown this once: only a hash is stored.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]
        read_only_fields = fields
