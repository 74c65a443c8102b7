"""API views: parse, call one service, selector or rule, render. Access is decided by
provisions.permissions (through the querysets and the services), never here."""

from __future__ import annotations

import dataclasses
import datetime
import re
from typing import Any, cast

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotAuthenticated, NotFound, ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response

from provisions.api import serializers
from provisions.api.conventions import CursorPages, MayEditProvision
from provisions.api.errors import PreconditionRequired
from provisions.api.provision_rows import provision_rows
from provisions.api.queries import KnownQueryParameters
from provisions.filters import (
    ApiTokenFilter,
    CapabilityFilter,
    GapApiFilter,
    ProvisionFilter,
    updated_since_filter,
)
from provisions.history import provision_history
from provisions.models import (
    CODE_PATTERN,
    ApiToken,
    Capability,
    Domain,
    Gap,
    GapScan,
    Party,
    Precedent,
    Provision,
    ScanTrigger,
    StatusChange,
    Territory,
    User,
)
from provisions.permissions import Reader, can_acknowledge_gaps, ensure, reader_of
from provisions.redaction import GAP_ROW_READS, Redaction, gap_row, gap_rows
from provisions.reports.gaps import (
    GapReportFilters,
    ReportFilterInvalid,
    gap_report,
)
from provisions.rules import parse_as_of
from provisions.selectors import visible_gaps
from provisions.services.dated import discussion_record
from provisions.services.provisions import coverage_set, position_set, provision_update
from provisions.services.scans import gap_acknowledge, scan_request
from provisions.services.status import provision_transition
from provisions.services.tokens import api_token_create, api_token_revoke

ERRORS = {
    code: OpenApiResponse(serializers.ErrorEnvelopeSerializer, description=description)
    for code, description in {
        400: "Invalid input; field_errors says which values and why.",
        401: "No or bad credentials.",
        403: "The caller's role or clearance does not allow it.",
        404: "Not found (or above the caller's clearance).",
        406: "The Accept header asks for a format the API does not answer in (JSON, or HTML for a browser).",
        409: "The status move is not allowed by the lifecycle.",
        412: "The provision changed since the version sent (If-Match or version).",
        413: "The body is larger than the API reads (DATA_UPLOAD_MAX_MEMORY_SIZE).",
        415: "The body's Content-Type is not one the API reads (application/json, or a form).",
        428: "A write needs the version it is based on (If-Match or version).",
        429: "Too many requests for this token.",
    }.items()
}
READ_ERRORS = {code: ERRORS[code] for code in (400, 401, 403, 404, 406, 429)}
WRITE_ERRORS = ERRORS


def _given_version(request: Request, body_version: int | None) -> int | None:
    """The version a write says it is based on: If-Match ("3" or W/"3") or the body's version."""
    header = request.headers.get("If-Match", "").strip()
    if header:
        # ASCII digits, few enough for a version: int() of thousands of digits raises (a 500).
        match = re.fullmatch(r'(?:W/)?"([0-9]{1,18})"', header)
        if match is None:
            raise ValidationError({"If-Match": ['expected the ETag of the provision, e.g. "3"']})
        return int(match.group(1))
    return body_version


def _expected_version(request: Request, body_version: int | None) -> int:
    """The version an edit is based on, which it must give (428 otherwise)."""
    version = _given_version(request, body_version)
    if version is None:
        raise PreconditionRequired()
    return version


def _caller(request: Request) -> Reader:
    """Who is calling (HasRole has let no one without a role through)."""
    reader = reader_of(request)
    if reader.user is None:
        raise NotAuthenticated()
    return reader


def _calling_user(request: Request) -> User:
    user = _caller(request).user
    if user is None:
        raise NotAuthenticated()
    return user


def _as_of(request: Request) -> datetime.date | None:
    raw = request.query_params.get("as_of")
    if raw in (None, ""):
        return None
    try:
        return parse_as_of(raw)
    except ValueError as invalid:
        raise ValidationError({"as_of": [str(invalid)]}) from None


AS_OF = OpenApiParameter(
    "as_of", OpenApiTypes.DATE, description="Evaluate read-only at this date (YYYY-MM-DD)."
)


@extend_schema_view(
    list=extend_schema(responses={200: serializers.DomainSerializer(many=True), **READ_ERRORS}),
    retrieve=extend_schema(responses={200: serializers.DomainSerializer, **READ_ERRORS}),
)
class DomainViewSet(KnownQueryParameters, viewsets.ReadOnlyModelViewSet[Domain]):
    serializer_class = serializers.DomainSerializer
    queryset = Domain.objects.select_related("pillar", "partnership").order_by("id")
    filterset_class = updated_since_filter(Domain)
    lookup_field = "code"
    lookup_value_regex = CODE_PATTERN
    ordering_fields = ["code", "name"]


@extend_schema_view(
    list=extend_schema(
        parameters=[AS_OF], responses={200: serializers.CapabilitySerializer(many=True), **READ_ERRORS}
    ),
    retrieve=extend_schema(
        parameters=[AS_OF], responses={200: serializers.CapabilitySerializer, **READ_ERRORS}
    ),
)
class CapabilityViewSet(KnownQueryParameters, viewsets.ReadOnlyModelViewSet[Capability]):
    """Capabilities with today's lapse date, criticality and fallback, or those of `as_of`."""

    serializer_class = serializers.CapabilitySerializer
    queryset = Capability.objects.select_related("domain").prefetch_related("changes").order_by("code")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "as_of": _as_of(self.request)}

    lookup_field = "code"
    lookup_value_regex = CODE_PATTERN
    filterset_class = CapabilityFilter
    ordering_fields = ["code", "lapses_on", "criticality"]


@extend_schema_view(
    list=extend_schema(responses={200: serializers.TerritorySerializer(many=True), **READ_ERRORS}),
    retrieve=extend_schema(responses={200: serializers.TerritorySerializer, **READ_ERRORS}),
)
class TerritoryViewSet(KnownQueryParameters, viewsets.ReadOnlyModelViewSet[Territory]):
    serializer_class = serializers.TerritorySerializer
    queryset = Territory.objects.order_by("id")
    filterset_class = updated_since_filter(Territory)
    lookup_field = "code"
    lookup_value_regex = CODE_PATTERN


@extend_schema_view(
    list=extend_schema(responses={200: serializers.PrecedentSerializer(many=True), **READ_ERRORS}),
    retrieve=extend_schema(responses={200: serializers.PrecedentSerializer, **READ_ERRORS}),
)
class PrecedentViewSet(KnownQueryParameters, viewsets.ReadOnlyModelViewSet[Precedent]):
    serializer_class = serializers.PrecedentSerializer
    queryset = Precedent.objects.order_by("id")
    filterset_class = updated_since_filter(Precedent)
    lookup_field = "code"
    lookup_value_regex = CODE_PATTERN


class ProvisionViewSet(
    KnownQueryParameters, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Provision]
):
    """Provisions up to the caller's clearance, with positions, coverage and alignment inline."""

    serializer_class = serializers.ProvisionSerializer
    permission_classes = [MayEditProvision]
    lookup_field = "reference"
    lookup_value_regex = CODE_PATTERN
    filterset_class = ProvisionFilter
    ordering_fields = ["reference", "status", "target_date", "updated_at"]
    ordering = ["reference"]
    pagination_class = CursorPages

    def get_queryset(self) -> QuerySet[Provision]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the shape: no caller
            return Provision.objects.none()
        provisions = Provision.objects.visible_to(_caller(self.request)).order_by("reference")
        as_of = _as_of(self.request) if self.request.method == "GET" else None
        if as_of is None:
            return provisions
        # As it stood then: only the provisions that existed.
        existed = StatusChange.objects.filter(changed_on__lte=as_of).values("provision_id")
        return provisions.filter(pk__in=existed)

    def get_serializer_context(self) -> dict[str, Any]:
        as_of = _as_of(self.request) if self.request.method == "GET" else None
        return {**super().get_serializer_context(), "as_of": as_of}

    def _respond(self, provision: Provision, status_code: int = status.HTTP_200_OK) -> Response:
        (row,) = provision_rows([provision.pk])
        response = Response(row, status=status_code)
        response["ETag"] = f'"{row["version"]}"'
        return response

    @extend_schema(
        parameters=[AS_OF], responses={200: serializers.ProvisionSerializer(many=True), **READ_ERRORS}
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A page of provisions: the page's ids, then their rows in a fixed number of queries."""
        ordered = self.filter_queryset(self.get_queryset()).only(*self.ordering_fields)
        page = self.paginate_queryset(ordered) or []
        return self.get_paginated_response(provision_rows([p.pk for p in page], as_of=_as_of(request)))

    @extend_schema(parameters=[AS_OF], responses={200: serializers.ProvisionSerializer, **READ_ERRORS})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        as_of = _as_of(request)
        if as_of is not None:  # the record as it stood: no version to write against
            return Response(provision_rows([self.get_object().pk], as_of=as_of)[0])
        return self._respond(self.get_object())

    @extend_schema(
        request=serializers.ProvisionUpdateSerializer,
        responses={200: serializers.ProvisionSerializer, **WRITE_ERRORS},
        parameters=[OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, description='e.g. "3"')],
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        provision = self.get_object()
        given = serializers.ProvisionUpdateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        changes = dict(given.validated_data)
        version = _expected_version(request, changes.pop("version", None))
        reason = changes.pop("reason", "")
        effective_on = changes.pop("effective_on", None)
        provision_update(
            provision=provision,
            by=_caller(request),
            expected_version=version,
            reason=reason,
            effective_on=effective_on,
            **changes,
        )
        return self._respond(provision)

    @extend_schema(
        request=serializers.TransitionSerializer,
        responses={
            200: serializers.ProvisionSerializer,
            **{c: r for c, r in WRITE_ERRORS.items() if c != 428},
        },
        parameters=[
            OpenApiParameter(
                "If-Match", str, OpenApiParameter.HEADER, description='Optional, e.g. "3": refuse if stale.'
            )
        ],
    )
    @action(detail=True, methods=["post"])
    def transition(self, request: Request, reference: str | None = None) -> Response:
        """Move the provision's status (the lifecycle of DESIGN.md decides what is allowed)."""
        provision = self.get_object()
        given = serializers.TransitionSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        # DESIGN's contract is {"to", "note"}: a move is checked against the lifecycle under the row's
        # lock, so the version is optional here; when given, a stale one is refused (412).
        version = _given_version(request, given.validated_data.get("version"))
        provision_transition(
            provision=provision,
            to=given.validated_data["to"],
            note=given.validated_data["note"],
            by=_caller(request),
            expected_version=version,
            source="api",
        )
        return self._respond(provision)

    @extend_schema(
        request=serializers.PositionInputSerializer,
        responses={200: serializers.ProvisionSerializer, **WRITE_ERRORS},
        parameters=[OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, description='e.g. "3"')],
    )
    @action(detail=True, methods=["post"])
    def positions(self, request: Request, reference: str | None = None) -> Response:
        """Record a party's position (its stance, firmness and note)."""
        provision = self.get_object()
        given = serializers.PositionInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        party = Party.objects.filter(
            partnership_id=provision.domain.partnership_id, code=data["party"]
        ).first()
        if party is None:
            raise ValidationError({"party": [f"no party {data['party']!r} in this partnership"]})
        position_set(
            provision=provision,
            party=party,
            stance=data["stance"],
            firmness=data["firmness"],
            note=data["note"],
            by=_caller(request),
            expected_version=_expected_version(request, data.get("version")),
            reason=data["reason"],
            effective_on=data.get("effective_on"),
        )
        return self._respond(provision)

    @extend_schema(
        request=serializers.CoverageInputSerializer,
        responses={200: serializers.ProvisionSerializer, **WRITE_ERRORS},
        parameters=[OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, description='e.g. "3"')],
    )
    @action(detail=True, methods=["post"])
    def coverage(self, request: Request, reference: str | None = None) -> Response:
        """Make the provision cover a capability fully or partially (extent null: no longer)."""
        provision = self.get_object()
        given = serializers.CoverageInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        capability = Capability.objects.filter(code=data["capability"]).first()
        if capability is None:
            raise ValidationError({"capability": [f"no capability {data['capability']!r}"]})
        coverage_set(
            provision=provision,
            capability=capability,
            extent=data["extent"],
            by=_caller(request),
            expected_version=_expected_version(request, data.get("version")),
            reason=data["reason"],
            effective_on=data.get("effective_on"),
        )
        return self._respond(provision)

    @extend_schema(
        request=serializers.DiscussionInputSerializer,
        responses={
            200: serializers.ProvisionSerializer,
            **{c: r for c, r in WRITE_ERRORS.items() if c != 428},
        },
        parameters=[
            OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, description='Optional, e.g. "3"')
        ],
    )
    @action(detail=True, methods=["post"])
    def discussions(self, request: Request, reference: str | None = None) -> Response:
        """Record that the provision was discussed on a day without moving (it resets the stall clock)."""
        provision = self.get_object()
        given = serializers.DiscussionInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        discussion_record(
            provision=provision,
            by=_caller(request),
            on=data["on"],
            note=data["note"],
            expected_version=_given_version(request, data.get("version")),
        )
        return self._respond(provision)

    @extend_schema(responses={200: serializers.ProvisionHistorySerializer, **READ_ERRORS})
    @action(detail=True, methods=["get"])
    def history(self, request: Request, reference: str | None = None) -> Response:
        """Status changes, and every recorded change to the provision, its positions and coverage."""
        provision = self.get_object()
        history = provision_history(provision, reader=_caller(request))
        body = {
            "status_changes": serializers.StatusChangeSerializer(history.status_changes, many=True).data,
            "audit": [dataclasses.asdict(entry) for entry in history.audit],
        }
        return Response(serializers.ProvisionHistorySerializer(body).data)


class GapViewSet(
    KnownQueryParameters, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Gap]
):
    """Gaps as the scans recorded them; with `as_of`, a read-only evaluation at that date. One gap
    by its id (the id webhooks name), open or resolved."""

    serializer_class = serializers.GapSerializer
    filterset_class = GapApiFilter
    lookup_value_regex = r"\d+"
    ordering_fields = ["opened_at", "severity"]
    ordering = ["-opened_at", "-id"]
    pagination_class = CursorPages

    def get_queryset(self) -> QuerySet[Gap]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the shape: no caller
            return Gap.objects.none()
        return visible_gaps(_caller(self.request)).order_by("-opened_at", "-id")

    @extend_schema(parameters=[AS_OF], responses={200: serializers.GapSerializer(many=True), **READ_ERRORS})
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        as_of = _as_of(request)
        if as_of is None:
            gaps = self.filter_queryset(self.get_queryset()).only(*GAP_ROW_READS)
            page = self.paginate_queryset(gaps)
            today = timezone.localdate()
            rows = gap_rows(page or [], Redaction.for_reader(_caller(request)), today=today)
            return self.get_paginated_response(serializers.gap_json(rows))
        if request.query_params.get("state"):
            raise ValidationError({"state": ["a read-only evaluation (as_of) has no state"]})
        filters = GapReportFilters.from_query(request.query_params)
        try:
            report = gap_report(as_of=as_of, filters=filters, reader=_caller(request))
        except ReportFilterInvalid as invalid:
            field, _, message = str(invalid).partition(": ")
            raise ValidationError({field: [message]}) from invalid
        rows = [
            {**row, "id": None, "resolved_at": None, "acknowledged_by": None, "acknowledgement_note": None}
            for row in report.rows
        ]
        evaluated = cast(list[dict[str, Any]], self.paginate_queryset(rows) or [])
        return self.get_paginated_response(serializers.gap_json(evaluated))

    @extend_schema(responses={200: serializers.GapSerializer, **READ_ERRORS})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        gap = get_object_or_404(self.get_queryset(), pk=kwargs["pk"])
        row = gap_row(gap, Redaction.for_reader(_caller(request)), today=timezone.localdate())
        if row is None:  # a gap of a provision above the caller's clearance: as if there were none
            raise NotFound()
        return Response(serializers.GapSerializer(row).data)

    @extend_schema(
        request=serializers.AcknowledgeSerializer, responses={200: serializers.GapSerializer, **ERRORS}
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        """Acknowledge an open gap with a note; it stays open until the rules clear it."""
        gap = get_object_or_404(self.get_queryset(), pk=pk)  # DRF's: a malformed id is a 404, not a 500
        given = serializers.AcknowledgeSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        gap_acknowledge(gap=gap, by=_caller(request), note=given.validated_data["note"])
        row = gap_row(gap, Redaction.for_reader(_caller(request)), today=timezone.localdate())
        return Response(serializers.GapSerializer(row).data)


@extend_schema_view(
    list=extend_schema(responses={200: serializers.GapScanSerializer(many=True), **READ_ERRORS}),
    retrieve=extend_schema(responses={200: serializers.GapScanSerializer, **READ_ERRORS}),
)
class GapScanViewSet(
    KnownQueryParameters, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[GapScan]
):
    """Scans the engine ran. POST asks for a full scan, run by a worker."""

    serializer_class = serializers.GapScanSerializer
    lookup_value_regex = r"\d+"
    queryset = GapScan.objects.order_by("-started_at", "-id")
    filterset_class = updated_since_filter(GapScan, "a scan's row moves when it finishes")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "reader": _caller(self.request)}

    @extend_schema(request=None, responses={202: serializers.ScanQueuedSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        ensure(can_acknowledge_gaps(_caller(request)), "analysts and above start scans")
        queued = scan_request(full=True, trigger=ScanTrigger.API)
        return Response({"status": "queued", "request": queued.pk if queued else None}, status=202)


@extend_schema_view(
    list=extend_schema(responses={200: serializers.ApiTokenSerializer(many=True), **READ_ERRORS}),
    destroy=extend_schema(responses={204: None, **ERRORS}),
)
class ApiTokenViewSet(
    KnownQueryParameters, mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet[ApiToken]
):
    """The caller's own tokens: create one (its key is shown once), list them, revoke one (DELETE)."""

    serializer_class = serializers.ApiTokenSerializer
    lookup_value_regex = r"\d+"
    filterset_class = ApiTokenFilter

    def get_queryset(self) -> QuerySet[ApiToken]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the shape: no caller
            return ApiToken.objects.none()
        return (
            ApiToken.objects.filter(user=_calling_user(self.request))
            .select_related("user")
            .order_by("-created_at")
        )

    @extend_schema(
        request=serializers.ApiTokenCreateSerializer,
        responses={201: serializers.ApiTokenCreatedSerializer, **ERRORS},
    )
    def create(self, request: Request) -> Response:
        given = serializers.ApiTokenCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        caller = _caller(request)
        token, key = api_token_create(owner=_calling_user(request), by=caller, **given.validated_data)
        token.key = key  # type: ignore[attr-defined]  # shown this once, never stored
        return Response(serializers.ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiToken) -> None:
        api_token_revoke(token=instance, by=_caller(self.request))
