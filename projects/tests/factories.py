"""Factories for projects."""

import factory

from accounts.tests.factories import UserFactory
from projects.models import Project


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda number: f"My Video Project {number}")
