"""factory_boy factories for the partnership model."""

from __future__ import annotations

import datetime

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from provisions import models


class PartnershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Partnership
        django_get_or_create = ("code",)

    code = "uk-eu-security"
    title = "UK–EU Security Partnership"


class PartyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Party
        django_get_or_create = ("partnership", "code")

    partnership = factory.SubFactory(PartnershipFactory)
    code = factory.Iterator(["UK", "EU"])
    name = factory.LazyAttribute(
        lambda party: {"UK": "United Kingdom", "EU": "European Union"}.get(party.code, party.code)
    )


class DomainFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Domain

    partnership = factory.SubFactory(PartnershipFactory)
    code = factory.Sequence(lambda n: f"domain-{n}")
    name = factory.Sequence(lambda n: f"Domain {n}")


class CapabilityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Capability

    code = factory.Sequence(lambda n: f"CAP-{n}")
    name = factory.Sequence(lambda n: f"Capability {n}")
    domain = factory.SubFactory(DomainFactory)
    criticality = models.Level.HIGH
    lapses_on = datetime.date(2020, 12, 31)


class ProvisionFactory(factory.django.DjangoModelFactory):
    """A provision with its first status change, dated `created_on` (default 2020-01-01)."""

    class Meta:
        model = models.Provision
        skip_postgeneration_save = True

    reference = factory.Sequence(lambda n: f"SP-{n:04d}")
    title = factory.Sequence(lambda n: f"Provision {n}")
    text = "The Parties shall cooperate."
    domain = factory.SubFactory(DomainFactory)
    status = models.Status.PROPOSED

    @factory.post_generation
    def created_on(self, create: bool, extracted: datetime.date | None, **kwargs: object) -> None:
        if create:
            models.StatusChange.objects.create(
                provision=self,
                from_status="",
                to_status=self.status,
                changed_on=extracted or datetime.date(2020, 1, 1),
            )


class CoverageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Coverage

    provision = factory.SubFactory(ProvisionFactory)
    capability = factory.SubFactory(CapabilityFactory)
    extent = models.Extent.FULL


class PositionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Position

    provision = factory.SubFactory(ProvisionFactory)
    party = factory.SubFactory(PartyFactory)
    stance = models.Stance.SUPPORTS
    firmness = models.Firmness.PROVISIONAL


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.org")
    password = factory.django.Password("correct horse battery staple")
    clearance = models.Marking.OFFICIAL

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        """UserFactory(role="negotiator"): joins the role's group (made by the roles migration)."""
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))

    @factory.post_generation
    def domains(self, create: bool, extracted: list[models.Domain] | None, **kwargs: object) -> None:
        """UserFactory(domains=[...]): the domains a negotiator negotiates in."""
        if create and extracted:
            self.domains.set(extracted)
