"""API views of the reports: coverage by domain, the aims scorecard, what changed between two dates,
the round briefing pack. Parse, call one report or rule, render (as provisions.api.views)."""

from __future__ import annotations

import datetime
import io
from typing import Any

from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from provisions.api import serializers
from provisions.api.queries import KnownQueryParameters
from provisions.api.views import AS_OF, READ_ERRORS, _as_of, _caller
from provisions.permissions import Reader, can_export, ensure
from provisions.reports import briefing, catalogue
from provisions.reports.aims import aims_report
from provisions.reports.changes import changes_report
from provisions.rules import PeriodInvalid, coverage_by_domain, evaluate_gaps, parse_period
from provisions.selectors import coverage_by_domain_as_scanned
from provisions.services.past import kept_for_past_day


class CoverageView(KnownQueryParameters, APIView):
    """One row per domain: capabilities by coverage state, provisions by status, coverage ratio.
    Today's (no `as_of`): the states the scans recorded, as the overview shows them, in a fixed
    number of queries; with `as_of`: the rules evaluated at that date."""

    @extend_schema(
        parameters=[AS_OF], responses={200: serializers.CoverageRowSerializer(many=True), **READ_ERRORS}
    )
    def get(self, request: Request) -> Response:
        as_of, caller = _as_of(request), _caller(request)
        if as_of is None:
            rows = coverage_by_domain_as_scanned(caller)
        else:  # kept for a past day until a write reaches back to it, like the overview's
            rows = kept_for_past_day(
                "coverage", as_of, caller.markings, lambda: _coverage_then(caller, as_of)
            )
        return Response(serializers.CoverageRowSerializer(rows, many=True).data)


def _coverage_then(reader: Reader, as_of: datetime.date) -> list[dict[str, Any]]:
    """The rows as the rules give them at a date (nothing is left unscanned by an evaluation)."""
    evaluation = evaluate_gaps(as_of=as_of)
    return [{**row, "unscanned": 0} for row in coverage_by_domain(evaluation=evaluation, reader=reader)]


class AimsView(KnownQueryParameters, APIView):
    """The aims scorecard: each aim's verdict and its capabilities by coverage state (DESIGN.md)."""

    @extend_schema(parameters=[AS_OF], responses={200: serializers.AimSerializer(many=True), **READ_ERRORS})
    def get(self, request: Request) -> Response:
        report = aims_report(as_of=_as_of(request))
        rows = [
            {**row, "capability_states": {code: state.value for code, _, state in aim.capabilities}}
            for row, aim in zip(report.rows, report.aims, strict=True)
        ]
        return Response(serializers.AimSerializer(rows, many=True).data)


def _period(request: Request) -> tuple[datetime.date, datetime.date]:
    """`from` and `to` (default: the 30 days up to today); a 400 names what is wrong."""
    params = request.query_params
    try:
        return parse_period(params.get("from"), params.get("to"), today=timezone.localdate())
    except PeriodInvalid as invalid:
        raise ValidationError({invalid.field: [str(invalid)]}) from None


class ChangesView(KnownQueryParameters, APIView):
    """What changed between two dates: the gaps that moved and the record's events in between."""

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, description="D1 (default: 30 days ago)."),
            OpenApiParameter("to", OpenApiTypes.DATE, description="D2 (default: today)."),
        ],
        responses={200: serializers.ChangesSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        start, end = _period(request)
        report = changes_report(start=start, end=end, reader=_caller(request))
        return Response(serializers.ChangesSerializer(report).data)


class PdfRenderer(BaseRenderer):
    """Lets a caller ask for `Accept: application/pdf`; the view hands it the document's bytes."""

    media_type = "application/pdf"
    format = "pdf"
    charset = None
    render_style = "binary"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        return data if isinstance(data, bytes) else b""


class BriefingView(KnownQueryParameters, APIView):
    """The round briefing pack as a PDF (analysts and above), marked with the highest marking among
    the provisions it contains or names (also in `X-Protective-Marking`)."""

    renderer_classes = [JSONRenderer, PdfRenderer]

    @extend_schema(
        operation_id="getBriefingPack",
        parameters=[
            OpenApiParameter(
                "from", OpenApiTypes.DATE, description="The previous round (default: 30 days ago)."
            ),
            OpenApiParameter("to", OpenApiTypes.DATE, description="This round (default: today)."),
        ],
        responses={
            (200, "application/pdf"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="The pack (tagged PDF); its protective marking (OFFICIAL, OFFICIAL-SENSITIVE "
                "or SECRET) on every page and in the `X-Protective-Marking` header.",
            ),
            **READ_ERRORS,
        },
    )
    def get(self, request: Request) -> HttpResponseBase:
        reader = _caller(request)
        ensure(can_export(reader), "analysts and above export reports")
        start, end = _period(request)
        pack = briefing.briefing_pack(start=start, end=end, reader=reader)
        buffer = io.BytesIO()
        briefing.render_pdf(pack, buffer)
        response = HttpResponse(buffer.getvalue(), content_type="application/pdf")
        name = catalogue.file_name("briefing", "pdf", pack)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["X-Protective-Marking"] = pack.marking.label
        return response

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(response, Response):  # an error: always JSON, whatever was accepted
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)
