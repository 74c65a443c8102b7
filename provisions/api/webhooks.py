"""API for managing webhook endpoints, administrators only (as in the admin): register one (its secret
is in the answer), change it, rotate its secret, list its deliveries with every attempt, send one
again. Parse, call one service in provisions.services.webhooks, render (as provisions.api.views)."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    OpenApiWebhook,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response

from provisions.api.conventions import HasRole
from provisions.api.queries import KnownQueryParameters
from provisions.api.serializers import GapSerializer
from provisions.api.views import ERRORS, READ_ERRORS, _caller
from provisions.filters import updated_since_filter
from provisions.models import (
    GapKind,
    Level,
    Marking,
    Status,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from provisions.permissions import can_administer, reader_of
from provisions.services.webhooks.endpoints import (
    webhook_endpoint_rotate_secret,
    webhook_endpoint_save,
    webhook_redeliver,
)

# --- shapes -------------------------------------------------------------------------------------------------


class WebhookEndpointSerializer(serializers.ModelSerializer[WebhookEndpoint]):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices),
        min_length=1,
        help_text="The events it is told of.",
    )
    clearance = serializers.ChoiceField(
        choices=Marking.choices,
        default=Marking.OFFICIAL,
        help_text="It is told nothing about provisions marked above this (at most your own clearance).",
    )
    url = serializers.URLField(max_length=500, help_text="Where deliveries are POSTed (a public address).")
    active = serializers.BooleanField(default=True)

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "events",
            "clearance",
            "active",
            "created_at",
            "updated_at",
            "previous_secret_expires_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at", "previous_secret_expires_at"]
        extra_kwargs = {
            "previous_secret_expires_at": {
                "help_text": "Until then deliveries are signed with the secret before the last rotation too."
            }
        }


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="`whsec_...`: the key receivers verify deliveries with (Standard Webhooks). Given "
        "when the endpoint is registered and when its secret is rotated.",
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = [*WebhookEndpointSerializer.Meta.read_only_fields, "secret"]


class WebhookAttemptSerializer(serializers.ModelSerializer[WebhookAttempt]):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "sent_at", "duration_ms", "status_code", "error", "response"]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer[WebhookDelivery]):
    attempt_log = WebhookAttemptSerializer(many=True, read_only=True, help_text="Every attempt, in order.")
    payload = serializers.JSONField(read_only=True, help_text="The body sent, as the receiver gets it.")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event",
            "state",
            "created_at",
            "attempts",
            "next_attempt_at",
            "delivered_at",
            "payload",
            "attempt_log",
        ]
        read_only_fields = fields


# --- what receivers are sent (the schema's `webhooks`) ------------------------------------------------------


class StatusChangedDataSerializer(serializers.Serializer[Any]):
    reference = serializers.CharField()
    title = serializers.CharField()
    domain = serializers.CharField(help_text="The domain's code.")
    marking = serializers.ChoiceField(choices=Marking.choices)
    changed_on = serializers.DateField()
    note = serializers.CharField(allow_blank=True)
    by = serializers.CharField(allow_null=True, help_text="Who moved it (null: the system).")

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()  # `from` is a Python keyword, `source` a serializer's attribute
        fields["from"] = serializers.ChoiceField(choices=Status.choices, allow_null=True)
        fields["to"] = serializers.ChoiceField(choices=Status.choices)
        fields["source"] = serializers.CharField(help_text="Where the move was made: web, api, import...")
        return fields


class ProvisionChangedDataSerializer(serializers.Serializer[Any]):
    reference = serializers.CharField(help_text="GET /api/v1/provisions/{reference}/ for the rest.")
    version = serializers.IntegerField(help_text="Its version after the change (the ETag).")
    updated_at = serializers.DateTimeField()
    marking = serializers.ChoiceField(choices=Marking.choices)


class ProvisionWithdrawnDataSerializer(serializers.Serializer[Any]):
    reference = serializers.CharField(
        help_text="Marked above this clearance: no longer shown to it (drop it from a copy)."
    )
    updated_at = serializers.DateTimeField()


class ReferenceChangedDataSerializer(serializers.Serializer[Any]):
    code = serializers.CharField(
        help_text="GET /api/v1/capabilities/{code}/ (a capability) or /api/v1/aims/ (an aim) for the rest."
    )
    updated_at = serializers.DateTimeField()


class ReferenceDeletedDataSerializer(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="The capability's code: it no longer exists.")


class GapEscalatedFromSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=GapKind.choices)
    severity = serializers.ChoiceField(choices=Level.choices)


class GapEventDataSerializer(GapSerializer):
    escalated_from = GapEscalatedFromSerializer(
        required=False, help_text="Only in gap.escalated: the gap as it was before."
    )


def envelope(
    name: str, data: type[serializers.Field[Any, Any, Any, Any]]
) -> type[serializers.Serializer[Any]]:
    """The envelope every event is told in (webhooks and the events feed), around its data."""
    return type(
        name,
        (serializers.Serializer,),
        {
            "event": serializers.ChoiceField(choices=WebhookEvent.choices),
            "id": serializers.CharField(
                help_text="The event's id, also in `webhook-id`: de-duplicate on it."
            ),
            "occurred_at": serializers.DateTimeField(),
            "clearance": serializers.ChoiceField(
                choices=Marking.choices,
                help_text="The endpoint's clearance, which the data was prepared for.",
            ),
            "data": data(),
        },
    )


SIGNED = (
    "Sent as Standard Webhooks (https://www.standardwebhooks.com) with the headers `webhook-id` (the "
    "event's id, the same on every attempt: de-duplicate on it), `webhook-timestamp` (seconds since the "
    "epoch when the attempt was sent) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` of "
    "`{id}.{timestamp}.{body}` keyed with the endpoint's `whsec_` secret; two, space-separated, for 24 "
    "hours after a rotation), and `X-Tracker-Event`."
)


def _webhook(event: WebhookEvent, envelope: type[serializers.Serializer[Any]]) -> OpenApiWebhook:
    return OpenApiWebhook(
        name=event.value,
        decorator=extend_schema(
            summary=f"{event.value}: {event.label}",
            request=envelope,
            description=SIGNED,
            responses={
                200: OpenApiResponse(description="Any 2xx: delivered. Anything else: tried again later.")
            },
        ),
    )


ProvisionChangedEvent = envelope("ProvisionChangedEvent", ProvisionChangedDataSerializer)
StatusChangedEvent = envelope("StatusChangedEvent", StatusChangedDataSerializer)
ProvisionWithdrawnEvent = envelope("ProvisionWithdrawnEvent", ProvisionWithdrawnDataSerializer)
GapEvent = envelope("GapEvent", GapEventDataSerializer)
ReferenceChangedEvent = envelope("ReferenceChangedEvent", ReferenceChangedDataSerializer)
ReferenceDeletedEvent = envelope("ReferenceDeletedEvent", ReferenceDeletedDataSerializer)
# Named one by one in settings (SPECTACULAR_SETTINGS["WEBHOOKS"] takes an import path per webhook).
PROVISION_CHANGED_WEBHOOK = _webhook(WebhookEvent.PROVISION_CHANGED, ProvisionChangedEvent)
STATUS_CHANGED_WEBHOOK = _webhook(WebhookEvent.PROVISION_STATUS_CHANGED, StatusChangedEvent)
PROVISION_WITHDRAWN_WEBHOOK = _webhook(WebhookEvent.PROVISION_WITHDRAWN, ProvisionWithdrawnEvent)
GAP_OPENED_WEBHOOK = _webhook(WebhookEvent.GAP_OPENED, GapEvent)
GAP_UPDATED_WEBHOOK = _webhook(WebhookEvent.GAP_UPDATED, GapEvent)
GAP_RESOLVED_WEBHOOK = _webhook(WebhookEvent.GAP_RESOLVED, GapEvent)
GAP_ESCALATED_WEBHOOK = _webhook(WebhookEvent.GAP_ESCALATED, GapEvent)
CAPABILITY_CHANGED_WEBHOOK = _webhook(WebhookEvent.CAPABILITY_CHANGED, ReferenceChangedEvent)
CAPABILITY_DELETED_WEBHOOK = _webhook(WebhookEvent.CAPABILITY_DELETED, ReferenceDeletedEvent)
AIM_CHANGED_WEBHOOK = _webhook(WebhookEvent.AIM_CHANGED, ReferenceChangedEvent)


# --- views --------------------------------------------------------------------------------------------------


class Administers(HasRole):
    message = "Only administrators manage webhook endpoints."

    def has_permission(self, request: Request, view: Any) -> bool:
        return can_administer(reader_of(request))


DELIVERY_ID = OpenApiParameter("delivery_id", OpenApiTypes.INT, OpenApiParameter.PATH)


@extend_schema_view(
    list=extend_schema(responses={200: WebhookEndpointSerializer(many=True), **READ_ERRORS}),
    retrieve=extend_schema(responses={200: WebhookEndpointSerializer, **READ_ERRORS}),
    create=extend_schema(responses={201: WebhookEndpointWithSecretSerializer, **ERRORS}),
    partial_update=extend_schema(responses={200: WebhookEndpointSerializer, **ERRORS}),
    destroy=extend_schema(responses={204: None, **ERRORS}),
)
class WebhookEndpointViewSet(
    KnownQueryParameters,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[WebhookEndpoint],
):
    """Webhook endpoints cleared no higher than the caller, an administrator."""

    serializer_class = WebhookEndpointSerializer
    permission_classes = [Administers]
    lookup_value_regex = r"\d+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    filterset_class = updated_since_filter(WebhookEndpoint, "any change, a rotated secret included")

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the shape: no caller
            return WebhookEndpoint.objects.none()
        return WebhookEndpoint.objects.filter(clearance__in=_caller(self.request).markings).order_by("id")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        given = WebhookEndpointSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_save(
            endpoint=WebhookEndpoint(**given.validated_data), by=_caller(request)
        )
        return Response(WebhookEndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint = self.get_object()
        given = WebhookEndpointSerializer(endpoint, data=request.data, partial=True)
        given.is_valid(raise_exception=True)
        for name, value in given.validated_data.items():
            setattr(endpoint, name, value)
        webhook_endpoint_save(endpoint=endpoint, by=_caller(request))
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(request=None, responses={200: WebhookEndpointWithSecretSerializer, **ERRORS})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        """A new secret; deliveries are signed with the old one too for 24 hours."""
        endpoint = webhook_endpoint_rotate_secret(endpoint=self.get_object(), by=_caller(request))
        return Response(WebhookEndpointWithSecretSerializer(endpoint).data)

    @extend_schema(responses={200: WebhookDeliverySerializer(many=True), **READ_ERRORS})
    @action(detail=True, methods=["get"], filter_backends=[])
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        """The endpoint's deliveries, newest first, with every attempt and the receiver's answers."""
        deliveries = self._deliveries(self.get_object())
        # The viewset's own objects are endpoints; this pages deliveries.
        page: Any = self.paginate_queryset(deliveries)  # type: ignore[arg-type]
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)

    @extend_schema(
        request=None, parameters=[DELIVERY_ID], responses={202: WebhookDeliverySerializer, **ERRORS}
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"deliveries/(?P<delivery_id>\d+)/redeliver",
        filter_backends=[],
    )
    def redeliver(self, request: Request, pk: str | None = None, delivery_id: str | None = None) -> Response:
        """Send a delivery again, as a new delivery of the same event (the same `webhook-id`)."""
        delivery = get_object_or_404(self._deliveries(self.get_object()), pk=delivery_id)
        again = webhook_redeliver(delivery=delivery, by=_caller(request))
        return Response(WebhookDeliverySerializer(again).data, status=status.HTTP_202_ACCEPTED)

    def _deliveries(self, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
        # A delivery carries its subject: only those prepared for a clearance the caller holds.
        return (
            endpoint.deliveries.filter(payload__clearance__in=_caller(self.request).markings)
            .select_related("endpoint")
            .prefetch_related(Prefetch("attempt_log", WebhookAttempt.objects.order_by("number")))
            .order_by("-created_at", "-id")
        )
