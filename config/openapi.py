"""The OpenAPI schema's shared parts: the one error shape, what each status means, text
patterns, seed paths."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from config.fields import text_pattern


class ErrorSerializer(serializers.Serializer):
    """Every failure: `success` is false, `message` says what to do, `code` is stable."""

    success = serializers.BooleanField(help_text="Always false.")
    message = serializers.CharField(help_text="What went wrong and what to do about it.")
    code = serializers.CharField(
        help_text="A stable code: invalid, not_authenticated, not_found, uuid_conflict, "
        "in_progress, content_blocked, no_image, providers_failed, providers_timed_out, "
        "storage_unavailable, throttled, too_many_in_flight, too_many_queued, ..."
    )
    errors = serializers.DictField(
        required=False, help_text="Invalid input only: the messages per field."
    )


ERROR_MEANINGS = {
    400: "Invalid input: the field is named in `message` and `errors`. Nothing was changed.",
    401: "Missing, expired or invalid access token.",
    404: "It does not exist, or it is not yours (the two are indistinguishable).",
    409: "The uuid holds a different prompt (`uuid_conflict`), or is being generated or queued "
    "(`in_progress`, with `Retry-After`); or a new `s3_key` for an image that has not been "
    "generated (`not_generated`); or the image or its project deleted, or its row taken over, "
    "while this request generated it (`image_superseded`: nothing was kept).",
    411: "The body was sent chunked: send it with a `Content-Length` header.",
    413: "The body is over `API_MAX_BODY_BYTES` (4 MiB by default).",
    415: "The body is not JSON.",
    422: "The vendors' safety filters refused the content (`content_blocked`), or every vendor "
    "answered the prompt without an image (`no_image`); rephrase it.",
    429: "Too many requests, too many generations running, or too many images queued "
    "(`Retry-After` says when to retry).",
    502: "Every provider failed (`providers_failed`); the failure is recorded, nothing stored.",
    503: "The storage could not be reached (`storage_unavailable`): the image could not be "
    "stored, or a new `s3_key` checked; retry.",
    504: "Every provider attempt timed out (`providers_timed_out`).",
}
ERROR_EXAMPLES = {
    401: {
        "success": False,
        "message": "Authentication credentials were not provided.",
        "code": "not_authenticated",
    },
    404: {
        "success": False,
        "message": "Not found: it does not exist or you do not have access to it.",
        "code": "not_found",
    },
    409: {
        "success": False,
        "message": "uuid 'segment-001-image' in this project already has an image made from a "
        "different prompt, art style or aspect ratio. Use a new uuid, or PATCH the existing image.",
        "code": "uuid_conflict",
        "id": "clxyz123img",
    },
    422: {
        "success": False,
        "message": "The content was blocked by the provider's safety filter (PROHIBITED_CONTENT). "
        "Rephrase the visual prompt and try again.",
        "code": "content_blocked",
        "id": "clxyz123img",
        "model": "google-imagen",
    },
}


# Headers the API reads or sets besides authentication, stated where they apply.
PREFER = OpenApiParameter(
    "Prefer",
    str,
    OpenApiParameter.HEADER,
    description="`respond-async` (RFC 7240): answer `202` at once and generate in the background "
    "instead of waiting; other preferences are ignored.",
    examples=[OpenApiExample("Background", value="respond-async")],
)
PREFERENCE_APPLIED = OpenApiParameter(
    "Preference-Applied",
    str,
    OpenApiParameter.HEADER,
    response=[202],
    description="`respond-async` when the request was queued.",
)
LOCATION = OpenApiParameter(
    "Location",
    str,
    OpenApiParameter.HEADER,
    response=[202],
    description="The absolute URL to poll for the outcome.",
)
RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    int,
    OpenApiParameter.HEADER,
    response=[409],
    description="Seconds to wait before trying again (with `in_progress`).",
)
RETRY_AFTER_HEADER = {
    "schema": {"type": "integer"},
    "description": "Seconds to wait before trying again.",
}


NEXT_PAGE = OpenApiParameter(
    "Link",
    str,
    OpenApiParameter.HEADER,
    response=[200],
    description='`<url>; rel="next"` when there is a next page; absent on the last one.',
)


def error_responses(
    *statuses: int, examples: dict[int, dict[str, Any]] | None = None
) -> dict[int, OpenApiResponse]:
    """`extend_schema(responses=...)` entries for these error statuses, in the error shape.

    `examples` adds or replaces the example body of a status.
    """
    examples = {**ERROR_EXAMPLES, **(examples or {})}
    return {
        status: OpenApiResponse(
            ErrorSerializer,
            description=ERROR_MEANINGS[status],
            examples=[
                OpenApiExample(
                    f"Error {status}",
                    value=examples[status],
                    status_codes=[str(status)],
                    response_only=True,
                )
            ]
            if status in examples
            else [],
        )
        for status in statuses
    }


class CharFieldSchema(OpenApiSerializerFieldExtension):
    """In request bodies, a string field's `pattern` states the characters it refuses and, if it
    refuses a blank, that whitespace alone is one (`text_pattern`). A field with a pattern of its
    own keeps it: those admit neither control characters nor whitespace."""

    target_class = serializers.CharField
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict | None:
        field = self.target
        schema = auto_schema._map_serializer_field(field, direction, bypass_extensions=True)
        if (
            direction == "request"
            and schema is not None
            and schema.get("type") == "string"
            and "pattern" not in schema  # the field's own (extend_schema_field)
            and not any(isinstance(validator, RegexValidator) for validator in field.validators)
        ):
            schema["pattern"] = text_pattern(field)
        return schema


def paths_without_trailing_slash(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """Document `/image-gen`, as the seed does, not `/image-gen/` (both work)."""
    result["paths"] = {path.rstrip("/") or "/": item for path, item in result["paths"].items()}
    return result


def document_retry_after(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """Every 429 carries `Retry-After`, whichever limit refused it (a throttle or a per-user
    cap): added to each one here rather than declared on each view."""
    for operations in result["paths"].values():
        for operation in operations.values():
            refused = operation.get("responses", {}).get("429")
            if refused is not None:
                refused.setdefault("headers", {})["Retry-After"] = RETRY_AFTER_HEADER
    return result
