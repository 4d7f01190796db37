"""The image API: generate (POST), list (GET), read, edit (PATCH) and delete one image."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from config.ids import ID_PATTERN
from config.openapi import (
    LOCATION,
    NEXT_PAGE,
    PREFER,
    PREFERENCE_APPLIED,
    RETRY_AFTER,
    error_responses,
)
from config.pagination import LinkHeaderCursorPagination
from config.throttling import GenerationThrottle
from imagegen import openapi, services
from imagegen.filters import ImageFilter
from imagegen.models import GeneratedImage
from imagegen.serializers import (
    RECORD_COLUMNS,
    GenerationAnswerSerializer,
    ImageGenerateSerializer,
    ImagePatchSerializer,
    ImageSerializer,
    ImageWithProjectSerializer,
)
from projects.selectors import owned_project


def prefers_respond_async(request: Request) -> bool:
    """True when the `Prefer` header (RFC 7240) asks for `respond-async`."""
    preferences = request.headers.get("Prefer", "").split(",")
    return any(item.split(";")[0].strip().lower() == "respond-async" for item in preferences)


def owned_images(request: Request):
    return GeneratedImage.objects.filter(user=request.user)


@extend_schema_view(
    get=extend_schema(
        summary="List your images",
        description="Your images, newest first, as a JSON array; the next page's URL is in the "
        '`Link: <...>; rel="next"` header.',
        parameters=[
            # The filters refuse an empty value or one with spaces around it (400); any other
            # value that is not an id can match nothing (404).
            OpenApiParameter(
                "id",
                pattern=f"^{ID_PATTERN}$",
                description="Only the image with this id (404 if it is not yours).",
            ),
            OpenApiParameter(
                "projectId",
                pattern=f"^{ID_PATTERN}$",
                description="Only this project's images (404 if it is not yours).",
            ),
            NEXT_PAGE,
        ],
        responses={200: ImageSerializer(many=True), **error_responses(400, 401, 404)},
        examples=[openapi.LIST_ANSWER],
    )
)
class ImageListCreateView(generics.ListAPIView):
    """`GET /image-gen` lists the caller's images; `POST /image-gen` generates one."""

    serializer_class = ImageSerializer
    filterset_class = ImageFilter
    pagination_class = LinkHeaderCursorPagination
    throttle_classes = (GenerationThrottle,)

    def get_queryset(self):
        return owned_images(self.request)

    def get_serializer_class(self) -> type[serializers.Serializer]:
        # OPTIONS describes the body POST reads, not the record GET answers.
        if self.request is not None and self.request.method == "POST":
            return ImageGenerateSerializer
        return ImageSerializer

    def list(self, request: Request) -> Response:
        # Rows, not model instances: a page of 100 images is served at about three times the
        # cost of its bare SQL (bench/lists.py).
        rows = self.filter_queryset(self.get_queryset()).values(*RECORD_COLUMNS)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        summary="Generate a segment's image",
        description="Routes the prompt (realistic to Recraft AI, artistic or text to Google's "
        "Gemini image model, or the route named in `model`), generates, stores a JPEG at "
        "`images/<projectId>/<uuid>.jpg` and records it. `201` for a new image; `200` replays "
        "the stored one for the same `(projectId, uuid)`, prompt, style and aspect ratio, "
        "without calling a vendor. `model` is `auto` or a configured route name.",
        request=ImageGenerateSerializer,
        parameters=[
            PREFER,
            PREFERENCE_APPLIED,
            LOCATION,
            RETRY_AFTER,
        ],
        responses={
            201: GenerationAnswerSerializer,
            202: OpenApiResponse(
                GenerationAnswerSerializer,
                description="With `Prefer: respond-async`: recorded as `pending` and generated in "
                "the background (header `Preference-Applied: respond-async`); `Location` is the "
                "image to poll.",
            ),
            200: OpenApiResponse(
                GenerationAnswerSerializer, description="A replay of the stored image."
            ),
            **error_responses(
                400,
                401,
                404,
                409,
                411,
                413,
                415,
                422,
                429,
                502,
                503,
                504,
                examples={400: openapi.INVALID_PROMPT},
            ),
        },
        examples=[openapi.GENERATE_REQUEST, openapi.GENERATE_ANSWER],
    )
    def post(self, request: Request) -> Response:
        serializer = ImageGenerateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = owned_project(user=request.user, project_id=data["projectId"])
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
            # Without a broker the task has run already: its record's message says how it ended.
            queued = outcome.image.status == GeneratedImage.Status.PENDING
            message = services.QUEUED_MESSAGE if queued else outcome.image.message
            answer = GenerationAnswerSerializer(
                outcome.image, context={"message": message, "request": request}
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


class BodyRequiredSchema(AutoSchema):
    """Marks the request body required although no field of it is on its own: a PATCH needs
    one of its fields, whichever (`ImagePatchSerializerSchema`), so one without a body is a 400."""

    def _get_request_body(self, direction: str = "request") -> dict | None:
        request_body = super()._get_request_body(direction)
        if request_body is not None:
            request_body["required"] = True
        return request_body


@extend_schema_view(
    get=extend_schema(
        summary="Read one image", responses={200: ImageSerializer, **error_responses(401, 404)}
    ),
    delete=extend_schema(
        summary="Delete one image",
        description="Deletes the record and its stored object.",
        responses={204: None, **error_responses(401, 404, 429)},
    ),
)
class ImageDetailView(generics.RetrieveAPIView):
    """`GET`, `PATCH` and `DELETE /image-gen/<id>` on one of the caller's images."""

    serializer_class = ImageSerializer
    lookup_url_kwarg = "image_id"
    schema = BodyRequiredSchema()

    def get_queryset(self):
        return owned_images(self.request).select_related("project")

    @extend_schema(
        summary="Edit an image's prompt, style or storage key",
        description="Changes what is sent and nothing else; it does not regenerate (a queued "
        "image is routed anew for its new prompt). `s3_key` can change only on a succeeded image "
        "(`409 not_generated` otherwise) and must name an existing JPEG under "
        "`images/<projectId>/` of the image's own project, within the image size cap; the "
        "record takes its size and dimensions.",
        request=ImagePatchSerializer,
        responses={
            200: inline_serializer(
                "ImageUpdateAnswer",
                fields={
                    "success": serializers.BooleanField(),
                    "message": serializers.CharField(),
                    "image": ImageWithProjectSerializer(),
                },
            ),
            **error_responses(400, 401, 404, 409, 411, 413, 415, 429, 503),
        },
        examples=[openapi.PATCH_REQUEST, openapi.PATCH_ANSWER],
    )
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
