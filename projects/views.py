"""Project API: list, create, read, rename and delete the caller's own projects."""

from __future__ import annotations

from rest_framework import status, viewsets
from rest_framework.response import Response

from projects import selectors, services
from projects.serializers import ProjectSerializer


class ProjectViewSet(viewsets.ModelViewSet):
    serializer_class = ProjectSerializer
    http_method_names = ("get", "post", "patch", "delete", "head", "options")
    lookup_value_regex = "[A-Za-z0-9]{1,40}"

    def get_queryset(self):
        return selectors.project_list(user=self.request.user)

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
