"""Factories for generated images."""

from decimal import Decimal

import factory

from imagegen.models import GeneratedImage, GenerationAttempt
from projects.tests.factories import ProjectFactory


class GeneratedImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GeneratedImage

    project = factory.SubFactory(ProjectFactory)
    user = factory.SelfAttribute("project.owner")
    uuid = factory.Sequence(lambda number: f"segment-{number:03d}-image")
    visual_prompt = "A sleek eco-friendly water bottle on a wooden desk"
    art_style = "modern minimalist photography"
    aspect_ratio = "16:9"
    status = GeneratedImage.Status.SUCCEEDED
    model = "recraft-ai"
    provider_model = "recraftv4_1"
    message = "Image generated successfully"
    s3_key = factory.LazyAttribute(lambda image: f"images/{image.project.id}/{image.uuid}.jpg")
    image_size_bytes = 245760
    width = 1344
    height = 768


class GenerationAttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GenerationAttempt

    image = factory.SubFactory(GeneratedImageFactory)
    provider = factory.SelfAttribute("image.model")
    provider_model = factory.SelfAttribute("image.provider_model")
    outcome = GenerationAttempt.Outcome.SUCCEEDED
    http_status = 200
    latency_ms = 1200
    cost_usd = Decimal("0.035")
