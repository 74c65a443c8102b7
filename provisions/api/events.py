"""`GET /api/v1/events/`: every recorded change, oldest first, from a cursor, as the caller's clearance
may see it, with the payloads webhooks send (provisions.services.webhooks.events.events_feed)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from provisions.api import errors
from provisions.api.queries import KnownQueryParameters
from provisions.api.serializers import ErrorEnvelopeSerializer
from provisions.api.views import READ_ERRORS, _caller
from provisions.api.webhooks import envelope
from provisions.services.webhooks.events import CursorExpired, CursorInvalid, events_feed

FEED_LIMIT_DEFAULT = 100
FEED_LIMIT_MAX = 1000


# The envelope webhooks send; its data is the event's own (see the schema's webhooks for each).
FeedEventSerializer = envelope("FeedEvent", serializers.JSONField)


class FeedPageSerializer(serializers.Serializer[Any]):
    results = FeedEventSerializer(many=True)
    cursor = serializers.CharField(
        allow_null=True,
        help_text="Pass it as `after` to read on (null: nothing read yet, start without one).",
    )
    has_more = serializers.BooleanField(help_text="More events wait: read on now rather than after a pause.")


class FeedQuerySerializer(serializers.Serializer[Any]):
    after = serializers.CharField(required=False, help_text="The cursor of the last page read.")
    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=FEED_LIMIT_MAX, default=FEED_LIMIT_DEFAULT
    )


class EventFeedView(KnownQueryParameters, APIView):
    """Every recorded change, oldest first: provisions created or changed (`provision.changed`: fetch
    the provision for its new state), status moves, gaps opened, updated, escalated and resolved,
    capabilities changed or deleted and aims changed (`capability.changed`, `aim.changed`: thin too).
    Follow it with the cursor: a page read now never misses an event committed later."""

    @extend_schema(
        operation_id="listEvents",
        parameters=[
            OpenApiParameter("after", OpenApiTypes.STR, description="The cursor of the last page read."),
            OpenApiParameter(
                "limit",
                OpenApiTypes.INT,
                description=f"At most this many (1 to {FEED_LIMIT_MAX}; {FEED_LIMIT_DEFAULT}).",
            ),
        ],
        responses={
            200: FeedPageSerializer,
            **READ_ERRORS,
            410: OpenApiResponse(
                ErrorEnvelopeSerializer,
                description="The cursor's events are no longer kept (EVENTS_KEPT_DAYS): copy the lists"
                " again and read the feed from its start.",
            ),
        },
    )
    def get(self, request: Request) -> Response:
        query = FeedQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            page = events_feed(
                reader=_caller(request),
                after=query.validated_data.get("after"),
                limit=query.validated_data["limit"],
            )
        except CursorInvalid as invalid:
            raise ValidationError({"after": [str(invalid)]}) from None
        except CursorExpired as expired:
            raise errors.CursorExpired(str(expired)) from None
        return Response({"results": page.events, "cursor": page.cursor, "has_more": page.has_more})
