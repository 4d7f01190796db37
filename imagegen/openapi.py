"""Request and answer examples of the image API for its OpenAPI schema, from the seed's docs."""

from drf_spectacular.utils import OpenApiExample

SEED_PROMPT = (
    "A sleek eco-friendly water bottle on a wooden desk with green plants in the background"
)
SEED_PROJECT_ID = "clxyz123abc"
SEED_IMAGE = {
    "id": "clxyz123img",
    "visualPrompt": f"{SEED_PROMPT}, focusing on sustainability and health benefits",
    "artStyle": "cinematic photography with soft lighting",
    "uuid": "segment-001-image",
    "success": True,
    "s3Key": f"images/{SEED_PROJECT_ID}/updated-segment-001-image.jpg",
    "model": "recraft-ai",
    "message": None,
    "imageSizeBytes": 245760,
    "projectId": SEED_PROJECT_ID,
    "userId": "42",
    "createdAt": "2025-01-16T10:30:00Z",
    "updatedAt": "2025-01-16T10:42:00Z",
    "status": "succeeded",
    "providerModel": "recraftv4_1",
    "width": 1344,
    "height": 768,
    "aspectRatio": "16:9",
    "costUsd": 0.035,
    "imageUrl": "https://bucket.s3.amazonaws.com/images/clxyz123abc/"
    "updated-segment-001-image.jpg?X-Amz-Signature=...",
    "routing": {
        "category": "realistic",
        "confidence": 0.9,
        "signals": ["art_style 'photography' -> realistic"],
        "version": "rules-1",
    },
    "batchId": None,
}

GENERATE_REQUEST = OpenApiExample(
    "Seed request",
    request_only=True,
    value={
        "visual_prompt": SEED_PROMPT,
        "art_style": "modern minimalist photography",
        "uuid": "segment-001-image",
        "projectId": SEED_PROJECT_ID,
    },
)
GENERATE_ANSWER = OpenApiExample(
    "Seed answer",
    response_only=True,
    status_codes=["201"],
    value={
        "success": True,
        "s3_key": f"images/{SEED_PROJECT_ID}/segment-001-image.jpg",
        "model": "recraft-ai",
        "message": "Image generated successfully",
        "image_size_bytes": 245760,
        "id": "clxyz123img",
        "uuid": "segment-001-image",
        "status": "succeeded",
        "provider_model": "recraftv4_1",
        "width": 1344,
        "height": 768,
        "cost_usd": 0.035,
        "image_url": "https://bucket.s3.amazonaws.com/images/clxyz123abc/"
        "segment-001-image.jpg?X-Amz-Signature=...",
        "routing": SEED_IMAGE["routing"],
    },
)
LIST_ANSWER = OpenApiExample(
    "Your images", response_only=True, status_codes=["200"], value=SEED_IMAGE
)
PATCH_REQUEST = OpenApiExample(
    "Seed request",
    request_only=True,
    value={
        "visual_prompt": SEED_IMAGE["visualPrompt"],
        "art_style": SEED_IMAGE["artStyle"],
        "s3_key": SEED_IMAGE["s3Key"],
    },
)
PATCH_ANSWER = OpenApiExample(
    "Seed answer",
    response_only=True,
    status_codes=["200"],
    value={
        "success": True,
        "message": "Image prompt, art style, and S3 key updated successfully",
        "image": {**SEED_IMAGE, "project": {"id": SEED_PROJECT_ID, "name": "My Video Project"}},
    },
)
INVALID_PROMPT = {
    "success": False,
    "message": "Invalid input: visual_prompt: This field is required.",
    "code": "invalid",
    "errors": {"visual_prompt": ["This field is required."]},
}
