"""Project API: list, create, read, rename and delete the caller's own projects."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.response import Response

from config.ids import ID_PATTERN
from config.openapi import NEXT_PAGE, error_responses
from config.pagination import LinkHeaderCursorPagination
from projects import selectors, services
from projects.models import Project
from projects.serializers import ProjectSerializer

PROJECT_EXAMPLES = [
    OpenApiExample("New project", request_only=True, value={"name": "My Video Project"}),
    OpenApiExample(
        "A project",
        response_only=True,
        value={
            "id": "clxyz123abc",
            "name": "My Video Project",
            "createdAt": "2025-01-16T10:00:00Z",
            "updatedAt": "2025-01-16T10:00:00Z",
            "userId": "42",
            "imageCount": 20,
            "totalCostUsd": 0.7,
        },
    ),
]


@extend_schema_view(
    list=extend_schema(
        summary="List your projects",
        description="Your projects, newest first, as a JSON array; the next page's URL is in the "
        '`Link: <...>; rel="next"` header.',
        parameters=[NEXT_PAGE],
        responses={200: ProjectSerializer(many=True), **error_responses(400, 401)},
    ),
    create=extend_schema(
        summary="Create a project",
        responses={201: ProjectSerializer, **error_responses(400, 401, 411, 413, 415, 429)},
        examples=PROJECT_EXAMPLES,
    ),
    retrieve=extend_schema(
        summary="Read one project", responses={200: ProjectSerializer, **error_responses(401, 404)}
    ),
    partial_update=extend_schema(
        summary="Rename a project",
        responses={200: ProjectSerializer, **error_responses(400, 401, 404, 411, 413, 415, 429)},
        examples=PROJECT_EXAMPLES,
    ),
    destroy=extend_schema(
        summary="Delete a project",
        description="Deletes the project, its images and their stored objects.",
        responses={204: None, **error_responses(401, 404, 429)},
    ),
)
class ProjectViewSet(viewsets.ModelViewSet):
    serializer_class = ProjectSerializer
    pagination_class = LinkHeaderCursorPagination
    http_method_names = ("get", "post", "patch", "delete", "head", "options")
    lookup_value_regex = ID_PATTERN

    def get_queryset(self):
        return selectors.project_list(user=self.request.user)

    def list(self, request, *args, **kwargs) -> Response:
        # The page first, then its projects' totals: each of their images is read once.
        projects = Project.objects.filter(owner=request.user)
        page = self.paginate_queryset(self.filter_queryset(projects))
        selectors.attach_image_totals(page)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def perform_create(self, serializer: ProjectSerializer) -> None:
        serializer.instance = services.project_create(
            user=self.request.user, name=serializer.validated_data["name"]
        )

    def create(self, request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.perform_create(serializer)
        project = self.get_queryset().get(pk=serializer.instance.pk)
        return Response(self.get_serializer(project).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer: ProjectSerializer) -> None:
        services.project_rename(project=serializer.instance, name=serializer.validated_data["name"])

    def perform_destroy(self, instance) -> None:
        services.project_delete(project=instance)
