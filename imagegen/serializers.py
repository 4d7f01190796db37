"""The image API's shapes: the seed's snake_case POST body, camelCase records, the PATCH body."""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from datetime import datetime, tzinfo
from decimal import ROUND_HALF_EVEN, Context, Decimal
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils import timezone
from drf_spectacular.extensions import (
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request

from config.fields import StrictCharField, WholeValueRegexValidator
from config.ids import ID_PATTERN
from config.text import shown
from imagegen.models import GeneratedImage
from imagegen.providers.base import ASPECT_RATIOS
from imagegen.providers.registry import get_providers
from imagegen.services import IMAGES_PREFIX

# The strictest configured route (Recraft V2/V3) takes 1000 characters of prompt in all: the
# scene, ". Art style: " and the style must fit together.
MAX_VISUAL_PROMPT_CHARS = 800
MAX_ART_STYLE_CHARS = 180
UUID_PATTERN = r"^[A-Za-z0-9._-]{1,100}$"
UUID_MESSAGE = "Must be 1 to 100 characters of letters, digits, '.', '_' or '-'."
PROJECT_ID_MESSAGE = "Must be a project's id, as /projects gives it: 1 to 40 letters or digits."


def project_id_field() -> StrictCharField:
    """`projectId` in a body: exactly a project's id (nothing trimmed, as ids are compared)."""
    return StrictCharField(
        max_length=40,
        trim_whitespace=False,
        validators=[WholeValueRegexValidator(f"^{ID_PATTERN}$", message=PROJECT_ID_MESSAGE)],
    )


class ModelChoiceField(StrictCharField):
    """`auto` or the name of a configured provider route, exactly: the schema's enum admits no
    spaces around it, as `uuid` and `aspect_ratio` do not."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        choices = ["auto", *get_providers()]
        if value not in choices:
            raise serializers.ValidationError(
                f"Unknown model {shown(value)}; choose one of: {', '.join(choices)}."
            )
        return value


class ModelChoiceFieldSchema(OpenApiSerializerFieldExtension):
    """In the schema, `model` is `auto` or a route `IMAGEGEN_ROUTES` sends prompts to: the
    routes of a server with every vendor configured. The schema does not change with what one
    server has configured, so the description says how a server narrows it."""

    target_class = ModelChoiceField
    priority = 1  # before config.openapi.CharFieldSchema, which matches every CharField

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict:
        routes = dict.fromkeys(settings.IMAGEGEN_ROUTES.values())
        return {
            "type": "string",
            "enum": ["auto", *routes],
            "description": "`auto` routes the prompt by its content; a route name forces that "
            "route. A server takes only the routes it has configured (`IMAGEGEN_PROVIDERS`) and "
            "answers 400 to the others: with one vendor key, only that vendor's route; in a "
            "local run without keys, `offline-sketch` instead of these.",
        }


def aspect_ratio_field() -> serializers.ChoiceField:
    """One of the ratios every provider can make; a wrong one is not echoed back."""
    return serializers.ChoiceField(
        choices=ASPECT_RATIOS,
        required=False,
        error_messages={
            "invalid_choice": f"Not a supported aspect ratio; choose one of: "
            f"{', '.join(ASPECT_RATIOS)}."
        },
    )


def _other_spelling(name: str) -> str:
    """`name` in the API's other naming: snake_case bodies, camelCase records and `projectId`."""
    if "_" in name:
        head, *rest = name.split("_")
        return head + "".join(part.capitalize() for part in rest)
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda match: f"_{match[1].lower()}", name)


class RefusesOtherSpellings(serializers.Serializer):
    """A body field sent in the API's other naming is a 400 that names the right one, not
    ignored as unknown fields are: `aspectRatio` (as the records spell it) would otherwise give
    a paid 16:9 image that nobody asked for."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            misspelt = {
                other: [f"Unknown field; this body spells it {name!r}."]
                for name in self.fields
                if (other := _other_spelling(name)) != name and other in data
            }
            if misspelt:
                raise serializers.ValidationError(misspelt)
        return super().to_internal_value(data)


class ImageGenerateSerializer(RefusesOtherSpellings):
    """The body of `POST /image-gen` (the seed's fields plus `model` and `aspect_ratio`)."""

    visual_prompt = StrictCharField(max_length=MAX_VISUAL_PROMPT_CHARS, nfc=True)
    art_style = StrictCharField(max_length=MAX_ART_STYLE_CHARS, allow_blank=True, nfc=True)
    # The idempotency key is taken as sent: " seg-1" is not "seg-1" but a malformed key.
    uuid = StrictCharField(
        max_length=100,
        trim_whitespace=False,
        validators=[WholeValueRegexValidator(UUID_PATTERN, message=UUID_MESSAGE)],
    )
    projectId = project_id_field()  # noqa: N815  (the seed's name)
    model = ModelChoiceField(required=False, default="auto")
    aspect_ratio = aspect_ratio_field()


# The keys PATCH takes, as far as a pattern can say (`services.validate_image_key` decides, and
# also needs the object to exist): under `images/<projectId>/`, segments that are neither "."
# nor "..", without backslashes, control characters or lone surrogates.
_KEY_REFUSED = r"/\\\u0000-\u001f\u007f-\u009f\ud800-\udfff"
_KEY_SEGMENT = (
    rf"(?:[^.{_KEY_REFUSED}][^{_KEY_REFUSED}]*"
    rf"|\.[^.{_KEY_REFUSED}][^{_KEY_REFUSED}]*"
    rf"|\.\.[^{_KEY_REFUSED}]+)"
)
STORAGE_KEY_PATTERN = rf"^{IMAGES_PREFIX}/{ID_PATTERN}/{_KEY_SEGMENT}(?:/{_KEY_SEGMENT})*$"


@extend_schema_field({"type": "string", "maxLength": 1024, "pattern": STORAGE_KEY_PATTERN})
class StorageKeyField(StrictCharField):
    """A storage key, published in the schema with the shape `validate_image_key` accepts."""


class ImagePatchSerializer(RefusesOtherSpellings):
    """The body of `PATCH /image-gen/<id>`: prompt, style and/or key; read-only fields ignored."""

    visual_prompt = StrictCharField(max_length=MAX_VISUAL_PROMPT_CHARS, required=False, nfc=True)
    art_style = StrictCharField(
        max_length=MAX_ART_STYLE_CHARS, allow_blank=True, required=False, nfc=True
    )
    s3_key = StorageKeyField(max_length=1024, required=False, trim_whitespace=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError(
                "Send at least one of visual_prompt, art_style or s3_key."
            )
        return attrs


class ImagePatchSerializerSchema(OpenApiSerializerExtension):
    """In the schema, the PATCH body names at least one of its fields, as `validate` requires
    (`minProperties` would not do: other keys are ignored, so `{"id": 1}` is refused too)."""

    target_class = ImagePatchSerializer

    def map_serializer(self, auto_schema: Any, direction: str) -> dict:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["anyOf"] = [{"required": [name]} for name in schema["properties"]]
        return schema


class StorageUrlCache:
    """The storage's URL of each key, reused for half of `AWS_QUERYSTRING_EXPIRE`.

    Presigning an S3 URL costs botocore ~0.1 ms, a list page of 100 images ten times its
    database work. A URL handed out stays valid for at least the other half of its lifetime, and
    a stable URL lets browsers cache the image. Bounded (least recently used goes first) and
    cleared when the storage settings change.
    """

    def __init__(self, max_entries: int = 20_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def url(self, key: str) -> str:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                self._entries.move_to_end(key)
                return entry[1]
        url = default_storage.url(key)
        with self._lock:
            self._entries[key] = (now + settings.AWS_QUERYSTRING_EXPIRE / 2, url)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return url

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


storage_urls = StorageUrlCache()


@receiver(setting_changed)
def _clear_storage_urls(*, setting: str, **kwargs: object) -> None:
    if setting in {"STORAGES", "AWS_QUERYSTRING_EXPIRE", "MEDIA_URL"}:
        storage_urls.clear()


def image_url(image: GeneratedImage, request: Request | None = None) -> str | None:
    """A URL a browser can open: presigned on S3, absolute under MEDIA_URL on the file system."""
    if not image.s3_key:
        return None
    url = storage_urls.url(image.s3_key)
    if request is None or url.startswith(("https://", "http://")):
        return url
    return request.build_absolute_uri(url)


# How DRF's DecimalField(max_digits=10, decimal_places=6) renders a cost, without copying the
# decimal context for every value.
COST_QUANTUM = Decimal("0.000001")
COST_CONTEXT = Context(prec=10, rounding=ROUND_HALF_EVEN)


def iso_datetime(value: datetime | None, zone: tzinfo) -> str | None:
    """What DRF's DateTimeField renders (ISO 8601 in `zone`, `Z` for UTC), minus its per-value
    lookup of the current time zone."""
    if value is None:
        return None
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def routing_of(image: GeneratedImage) -> dict[str, Any]:
    return {
        "category": image.routing_category,
        "confidence": image.routing_confidence,
        "signals": image.routing_signals,
        "version": image.router_version,
    }


class GenerationAnswerSerializer(serializers.ModelSerializer):
    """The answer of `POST /image-gen`: the seed's five fields, then what we add.

    The message comes from the context: a replay says so, whatever the stored message is.
    """

    success = serializers.BooleanField()
    message = serializers.SerializerMethodField()
    cost_usd = serializers.DecimalField(max_digits=10, decimal_places=6, coerce_to_string=False)
    image_url = serializers.SerializerMethodField()
    routing = serializers.SerializerMethodField()

    class Meta:
        model = GeneratedImage
        fields = (
            "success",
            "s3_key",
            "model",
            "message",
            "image_size_bytes",
            "id",
            "uuid",
            "status",
            "provider_model",
            "width",
            "height",
            "cost_usd",
            "image_url",
            "routing",
        )
        read_only_fields = fields

    def get_message(self, image: GeneratedImage) -> str:
        return self.context.get("message") or image.message

    def get_image_url(self, image: GeneratedImage) -> str | None:
        return image_url(image, self.context.get("request"))

    def get_routing(self, image: GeneratedImage) -> dict[str, Any]:
        return routing_of(image)


# The columns an image record is built from: lists read only these.
RECORD_COLUMNS = (
    "id",
    "visual_prompt",
    "art_style",
    "uuid",
    "status",
    "s3_key",
    "model",
    "message",
    "image_size_bytes",
    "project_id",
    "user_id",
    "created_at",
    "updated_at",
    "provider_model",
    "width",
    "height",
    "aspect_ratio",
    "cost_usd",
    "routing_category",
    "routing_confidence",
    "routing_signals",
    "router_version",
    "batch_id",
)


class ImageSerializer(serializers.ModelSerializer):
    """A stored image in the seed's camelCase shape."""

    visualPrompt = serializers.CharField(source="visual_prompt")  # noqa: N815
    artStyle = serializers.CharField(source="art_style")  # noqa: N815
    success = serializers.BooleanField()
    s3Key = serializers.SerializerMethodField()  # noqa: N815
    message = serializers.SerializerMethodField()
    imageSizeBytes = serializers.IntegerField(  # noqa: N815
        source="image_size_bytes", allow_null=True
    )
    projectId = serializers.CharField(source="project_id")  # noqa: N815
    userId = serializers.SerializerMethodField()  # noqa: N815
    createdAt = serializers.DateTimeField(source="created_at")  # noqa: N815
    updatedAt = serializers.DateTimeField(source="updated_at")  # noqa: N815
    providerModel = serializers.CharField(source="provider_model")  # noqa: N815
    aspectRatio = serializers.CharField(source="aspect_ratio")  # noqa: N815
    costUsd = serializers.DecimalField(  # noqa: N815
        source="cost_usd", max_digits=10, decimal_places=6, coerce_to_string=False
    )
    imageUrl = serializers.SerializerMethodField()  # noqa: N815
    routing = serializers.SerializerMethodField()
    batchId = serializers.CharField(source="batch_id", allow_null=True)  # noqa: N815

    class Meta:
        model = GeneratedImage
        fields = (
            "id",
            "visualPrompt",
            "artStyle",
            "uuid",
            "success",
            "s3Key",
            "model",
            "message",
            "imageSizeBytes",
            "projectId",
            "userId",
            "createdAt",
            "updatedAt",
            "status",
            "providerModel",
            "width",
            "height",
            "aspectRatio",
            "costUsd",
            "imageUrl",
            "routing",
            "batchId",
        )
        read_only_fields = fields

    def get_s3Key(self, image: GeneratedImage) -> str | None:  # noqa: N802
        return image.s3_key or None

    def get_message(self, image: GeneratedImage) -> str | None:
        return image.message or None

    def get_userId(self, image: GeneratedImage) -> str:  # noqa: N802
        return str(image.user_id)

    def get_imageUrl(self, image: GeneratedImage) -> str | None:  # noqa: N802
        return image_url(image, self.context.get("request"))

    def get_routing(self, image: GeneratedImage) -> dict[str, Any]:
        return routing_of(image)

    def to_representation(self, image: GeneratedImage | dict[str, Any]) -> dict[str, Any]:
        """The record of an image, or of a row of its `RECORD_COLUMNS` (lists read `.values()`,
        no model instances), built directly from the declared fields' rules: DRF's generic walk
        over them, and the model instances, cost a list page of 100 images more than its SQL
        did (bench/lists.py). A test holds the two equal."""
        if isinstance(image, dict):
            image = SimpleNamespace(**image)
        zone = timezone.get_current_timezone()
        return {
            "id": image.id,
            "visualPrompt": image.visual_prompt,
            "artStyle": image.art_style,
            "uuid": image.uuid,
            "success": image.status == GeneratedImage.Status.SUCCEEDED,
            "s3Key": self.get_s3Key(image),
            "model": image.model,
            "message": self.get_message(image),
            "imageSizeBytes": image.image_size_bytes,
            "projectId": image.project_id,
            "userId": self.get_userId(image),
            "createdAt": iso_datetime(image.created_at, zone),
            "updatedAt": iso_datetime(image.updated_at, zone),
            "status": str(image.status),
            "providerModel": image.provider_model,
            "width": image.width,
            "height": image.height,
            "aspectRatio": image.aspect_ratio,
            "costUsd": image.cost_usd.quantize(COST_QUANTUM, context=COST_CONTEXT),
            "imageUrl": self.get_imageUrl(image),
            "routing": self.get_routing(image),
            "batchId": image.batch_id,
        }


class ImageWithProjectSerializer(ImageSerializer):
    """The PATCH answer's `image`: the record plus its project's id and name."""

    project = serializers.SerializerMethodField()

    class Meta(ImageSerializer.Meta):
        fields = (*ImageSerializer.Meta.fields, "project")
        read_only_fields = fields

    def get_project(self, image: GeneratedImage) -> dict[str, str]:
        return {"id": image.project_id, "name": image.project.name}

    def to_representation(self, image: GeneratedImage) -> dict[str, Any]:
        return {**super().to_representation(image), "project": self.get_project(image)}


# ---------------------------------------------------------------------------------------------
# Storyboards: `POST /image-gen/batch` and `GET /image-gen/batch/<batchId>`.
# ---------------------------------------------------------------------------------------------
class BatchItemSerializer(ImageGenerateSerializer):
    """One item of a batch: the body of `POST /image-gen` without `projectId`."""

    projectId = None  # noqa: N815  (the batch names the project once)


class BatchItemsField(serializers.ListField):
    """`items` of a batch: a list the serializer checks item by item in `validate`, to name
    each bad one by index and field."""


class BatchItemsFieldSchema(OpenApiSerializerFieldExtension):
    """In the schema, `items` is 1 to `IMAGEGEN_BATCH_MAX_ITEMS` batch items."""

    target_class = BatchItemsField

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict:
        item = auto_schema.resolve_serializer(BatchItemSerializer, direction)
        return {
            "type": "array",
            "items": item.ref,
            "minItems": 1,
            "maxItems": settings.IMAGEGEN_BATCH_MAX_ITEMS,
        }


class ImageBatchCreateSerializer(RefusesOtherSpellings):
    """The body of `POST /image-gen/batch`. All or nothing: every item is checked first, and
    the errors name each bad item by index and field (`items[3].visual_prompt`)."""

    projectId = project_id_field()  # noqa: N815
    items = BatchItemsField(
        allow_empty=False, help_text="Each item's uuid must differ from the others'."
    )

    def validate_items(self, items: list[Any]) -> list[Any]:
        limit = settings.IMAGEGEN_BATCH_MAX_ITEMS
        if len(items) > limit:
            raise serializers.ValidationError(
                f"A batch holds at most {limit} items; this one has {len(items)}."
            )
        return items

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, Any] = {}
        validated: list[dict[str, Any]] = []
        first_index: dict[str, int] = {}
        for index, raw_item in enumerate(attrs["items"]):
            named = raw_item.get("projectId") if isinstance(raw_item, dict) else None
            if named is not None and named != attrs["projectId"]:
                # Ignored otherwise: an item meant for another project would be made in this one.
                errors[f"items[{index}].projectId"] = [
                    f"{named!r} is not this batch's project ({attrs['projectId']!r}): a batch "
                    "makes all its items in the project it names."
                ]
                continue
            item = BatchItemSerializer(data=raw_item)
            if not item.is_valid():
                for field, messages in item.errors.items():
                    suffix = "" if field == "non_field_errors" else f".{field}"
                    errors[f"items[{index}]{suffix}"] = messages
                continue
            uuid = item.validated_data["uuid"]
            if uuid in first_index:
                errors[f"items[{index}].uuid"] = [
                    f"Duplicate uuid {uuid!r}: items[{first_index[uuid]}] has it already."
                ]
            first_index.setdefault(uuid, index)
            validated.append(item.validated_data)
        if errors:
            raise serializers.ValidationError(errors)
        return {**attrs, "items": validated}


class BatchItemStateSerializer(serializers.ModelSerializer):
    """An item of the `202` answer: which image it is and where it stands."""

    class Meta:
        model = GeneratedImage
        fields = ("id", "uuid", "status")
        read_only_fields = fields


class BatchAcceptedSerializer(serializers.Serializer):
    """The `202` answer of `POST /image-gen/batch`."""

    success = serializers.BooleanField()
    message = serializers.CharField()
    batchId = serializers.CharField()  # noqa: N815
    projectId = serializers.CharField()  # noqa: N815
    items = BatchItemStateSerializer(many=True)


class BatchStatusSerializer(serializers.Serializer):
    """The answer of `GET /image-gen/batch/<batchId>`: progress, cost so far, and the images."""

    success = serializers.BooleanField()
    batchId = serializers.CharField()  # noqa: N815
    projectId = serializers.CharField()  # noqa: N815
    createdAt = serializers.DateTimeField()  # noqa: N815
    total = serializers.IntegerField()
    done = serializers.BooleanField(help_text="True once no image is pending or running.")
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="Images per status.")
    costUsd = serializers.DecimalField(  # noqa: N815
        max_digits=12, decimal_places=6, coerce_to_string=False
    )
    items = ImageSerializer(many=True)
