"""The storyboard API: submit many images at once (`POST /image-gen/batch`), follow them (GET)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.openapi import LOCATION, RETRY_AFTER, error_responses
from config.throttling import GenerationThrottle
from imagegen import selectors, services
from imagegen.models import ImageBatch
from imagegen.serializers import (
    BatchAcceptedSerializer,
    BatchStatusSerializer,
    ImageBatchCreateSerializer,
)
from projects.selectors import owned_project


class BatchCreateView(APIView):
    """`POST /image-gen/batch`: record a storyboard's images and generate them in the background."""

    throttle_classes = (GenerationThrottle,)

    @extend_schema(
        summary="Submit a storyboard",
        description="Checks every item first (one bad item, or a uuid repeated in the batch, is a "
        "`400` naming `items[<index>].<field>`, and nothing is recorded or queued), records the "
        "images as `pending`, queues one generation per image and answers `202` at once. Items "
        "whose `(projectId, uuid)` already succeeded with the same prompt are reported as "
        "`succeeded` and not generated again. Follow progress with `GET /image-gen/batch/<id>`.",
        request=ImageBatchCreateSerializer,
        parameters=[LOCATION, RETRY_AFTER],
        responses={
            202: BatchAcceptedSerializer,
            **error_responses(400, 401, 404, 409, 411, 413, 415, 429),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = ImageBatchCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = owned_project(user=request.user, project_id=data["projectId"])
        outcome = services.batch_create(
            user=request.user,
            project=project,
            items=[services.BatchItem(**item) for item in data["items"]],
        )
        replayed = sum(item.replayed for item in outcome.items)
        answer = {
            "success": True,
            "message": f"Queued {len(outcome.items) - replayed} image(s) for generation; "
            f"{replayed} already generated.",
            "batchId": outcome.batch.id,
            "projectId": project.id,
            "items": [item.image for item in outcome.items],
        }
        return Response(
            BatchAcceptedSerializer(answer).data,
            status=status.HTTP_202_ACCEPTED,
            headers={
                "Location": request.build_absolute_uri(
                    reverse("image-batch-detail", args=[outcome.batch.id])
                )
            },
        )


class BatchDetailView(APIView):
    """`GET /image-gen/batch/<batchId>`: one of the caller's storyboards and its images."""

    @extend_schema(
        summary="Follow a storyboard",
        description="Images per status, `done` once none is pending or running, the cost so far "
        "(USD), and every image of the batch in the list's shape.",
        responses={200: BatchStatusSerializer, **error_responses(401, 404)},
    )
    def get(self, request: Request, batch_id: str) -> Response:
        batch = get_object_or_404(ImageBatch, pk=batch_id, user=request.user)
        progress = services.batch_progress(batch=batch)
        answer = {
            "success": True,
            "batchId": batch.id,
            "projectId": batch.project_id,
            "createdAt": batch.created_at,
            "total": progress.total,
            "done": progress.done,
            "counts": progress.counts,
            "costUsd": progress.cost_usd,
            "items": selectors.batch_images(batch=batch),
        }
        return Response(BatchStatusSerializer(answer, context={"request": request}).data)
