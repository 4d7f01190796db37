"""Project API shapes (camelCase, like the image records)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers

from config.fields import StrictCharField
from projects.models import Project


class ProjectSerializer(serializers.ModelSerializer):
    name = StrictCharField(max_length=200)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)  # noqa: N815
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)  # noqa: N815
    userId = serializers.SerializerMethodField()  # noqa: N815
    imageCount = serializers.IntegerField(source="image_count", read_only=True)  # noqa: N815
    totalCostUsd = serializers.DecimalField(  # noqa: N815
        source="total_cost_usd",
        max_digits=12,
        decimal_places=6,
        read_only=True,
        coerce_to_string=False,
    )

    class Meta:
        model = Project
        fields = ("id", "name", "createdAt", "updatedAt", "userId", "imageCount", "totalCostUsd")
        read_only_fields = ("id",)

    def validate(self, attrs: dict) -> dict:
        # A PATCH is partial, but renaming is the only change a project takes.
        if "name" not in attrs:
            raise serializers.ValidationError({"name": ["This field is required."]})
        return attrs

    def get_userId(self, project: Project) -> str:  # noqa: N802
        return str(project.owner_id)


class ProjectSerializerSchema(OpenApiSerializerExtension):
    """In the schema, every request body needs `name`: drf-spectacular makes a PATCH body's
    fields optional, but `validate` requires it there too."""

    target_class = ProjectSerializer

    def map_serializer(self, auto_schema: Any, direction: str) -> dict:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["required"] = ["name"]
        return schema
