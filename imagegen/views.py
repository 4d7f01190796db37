"""The image API: generate (POST), list (GET), read, edit (PATCH) and delete one image."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from imagegen import services
from imagegen.filters import ImageFilter
from imagegen.models import GeneratedImage
from imagegen.pagination import LinkHeaderCursorPagination
from imagegen.serializers import (
    GenerationAnswerSerializer,
    ImageGenerateSerializer,
    ImagePatchSerializer,
    ImageSerializer,
    ImageWithProjectSerializer,
)
from projects.models import Project


class GenerationThrottle(ScopedRateThrottle):
    """`IMAGEGEN_THROTTLE_RATE` per user, on generation only (reads are not throttled)."""

    def allow_request(self, request: Request, view: object) -> bool:
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


def prefers_respond_async(request: Request) -> bool:
    """True when the `Prefer` header (RFC 7240) asks for `respond-async`."""
    preferences = request.headers.get("Prefer", "").split(",")
    return any(item.split(";")[0].strip().lower() == "respond-async" for item in preferences)


def owned_images(request: Request):
    return GeneratedImage.objects.filter(user=request.user)


class ImageListCreateView(generics.ListAPIView):
    """`GET /image-gen` lists the caller's images; `POST /image-gen` generates one."""

    serializer_class = ImageSerializer
    filterset_class = ImageFilter
    pagination_class = LinkHeaderCursorPagination
    throttle_classes = (GenerationThrottle,)
    throttle_scope = "image-generation"

    def get_queryset(self):
        return owned_images(self.request)

    @extend_schema(request=ImageGenerateSerializer, responses={201: GenerationAnswerSerializer})
    def post(self, request: Request) -> Response:
        serializer = ImageGenerateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = get_object_or_404(Project, pk=data["projectId"], owner=request.user)
        respond_async = prefers_respond_async(request)
        outcome = services.image_generate(
            user=request.user,
            project=project,
            visual_prompt=data["visual_prompt"],
            art_style=data["art_style"],
            uuid=data["uuid"],
            model=data["model"],
            aspect_ratio=data.get("aspect_ratio"),
            background=respond_async,
        )
        if respond_async and not outcome.replayed:
            answer = GenerationAnswerSerializer(
                outcome.image, context={"message": services.QUEUED_MESSAGE, "request": request}
            )
            location = reverse("image-detail", args=[outcome.image.id])
            return Response(
                answer.data,
                status=status.HTTP_202_ACCEPTED,
                headers={
                    "Preference-Applied": "respond-async",
                    "Location": request.build_absolute_uri(location),
                },
            )
        answer = GenerationAnswerSerializer(
            outcome.image, context={"message": outcome.message, "request": request}
        )
        code = status.HTTP_200_OK if outcome.replayed else status.HTTP_201_CREATED
        return Response(answer.data, status=code)


class ImageDetailView(generics.RetrieveAPIView):
    """`GET`, `PATCH` and `DELETE /image-gen/<id>` on one of the caller's images."""

    serializer_class = ImageSerializer
    lookup_url_kwarg = "image_id"

    def get_queryset(self):
        return owned_images(self.request).select_related("project")

    @extend_schema(request=ImagePatchSerializer, responses={200: ImageWithProjectSerializer})
    def patch(self, request: Request, image_id: str) -> Response:
        image = self.get_object()
        serializer = ImagePatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changed = services.image_update(image=image, **serializer.validated_data)
        return Response(
            {
                "success": True,
                "message": services.describe_changes(changed),
                "image": ImageWithProjectSerializer(image, context={"request": request}).data,
            }
        )

    def delete(self, request: Request, image_id: str) -> Response:
        services.image_delete(image=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
