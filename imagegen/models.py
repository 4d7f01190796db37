"""GeneratedImage (one per project and segment uuid), its provider attempts, and batches."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from config.ids import ID_LENGTH, new_id


class ImageBatch(models.Model):
    """A storyboard submitted at once; its images are generated in the background."""

    id = models.CharField(primary_key=True, max_length=ID_LENGTH, default=new_id, editable=False)
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="batches"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="image_batches"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name_plural = "image batches"

    def __str__(self) -> str:
        return self.id


class GeneratedImage(models.Model):
    """One segment's image: requested, being generated, stored, or failed with a reason."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.CharField(primary_key=True, max_length=ID_LENGTH, default=new_id, editable=False)
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="images")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="generated_images"
    )
    # The batch that last queued the image; a batch's items are its `memberships`.
    batch = models.ForeignKey(
        ImageBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="images"
    )
    uuid = models.CharField(max_length=100, help_text="The caller's id for the segment.")
    visual_prompt = models.TextField()
    art_style = models.TextField(blank=True)
    aspect_ratio = models.CharField(max_length=8)
    requested_model = models.CharField(max_length=32, default="auto")

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    background = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Queued for a worker (a storyboard, respond-async), not generated in a request: "
        "the per-user in-flight cap counts only request-time generations.",
    )
    model = models.CharField(
        max_length=32, blank=True, help_text="The route that produced (or last tried) the image."
    )
    provider_model = models.CharField(max_length=100, blank=True, help_text="Upstream model id.")
    message = models.TextField(blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    block_reason = models.CharField(max_length=200, blank=True)

    s3_key = models.CharField(max_length=1024, blank=True)
    image_size_bytes = models.PositiveIntegerField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # The sum of the attempts' costs, kept here so lists need no aggregate per row.
    cost_usd = models.DecimalField(max_digits=10, decimal_places=6, default=Decimal(0))

    routing_category = models.CharField(max_length=16, blank=True)
    routing_confidence = models.FloatField(null=True, blank=True)
    routing_signals = models.JSONField(default=list, blank=True)
    router_version = models.CharField(max_length=32, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = (
            models.UniqueConstraint(fields=("project", "uuid"), name="image_unique_project_uuid"),
        )
        indexes = (
            models.Index(
                fields=("user", "project", "-created_at", "-id"), name="image_user_proj_created"
            ),
            models.Index(fields=("user", "-created_at", "-id"), name="image_user_created"),
            models.Index(fields=("status", "started_at"), name="image_status_started"),
            # Which image holds a key: a key change, a new segment's claim, deletions.
            models.Index(fields=("s3_key",), name="image_s3_key"),
        )

    def __str__(self) -> str:
        return f"{self.project_id}/{self.uuid}"

    @property
    def success(self) -> bool:
        """The seed's boolean: true once the image is stored."""
        return self.status == self.Status.SUCCEEDED


class GenerationAttempt(models.Model):
    """One call to one provider: the audit trail and the bill."""

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded"
        UNAVAILABLE = "unavailable"
        RATE_LIMITED = "rate_limited"
        TIMEOUT = "timeout"
        BAD_OUTPUT = "bad_output"
        NO_IMAGE = "no_image"
        BLOCKED = "blocked"
        CREDENTIALS = "credentials"
        REJECTED = "rejected"
        CIRCUIT_OPEN = "circuit_open"

    image = models.ForeignKey(GeneratedImage, on_delete=models.CASCADE, related_name="attempts")
    provider = models.CharField(max_length=32)
    provider_model = models.CharField(max_length=100, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    vendor_request_id = models.CharField(max_length=200, blank=True)
    cost_usd = models.DecimalField(max_digits=10, decimal_places=6, default=Decimal(0))
    # The vendor's usage figures as it sent them: Recraft {"credits": ...}, Google's
    # usageMetadata. cost_usd is computed from them; these are what the invoice counts.
    usage = models.JSONField(default=dict, blank=True)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.provider} {self.outcome}"


class BatchMembership(models.Model):
    """An image as item number `position` of a batch.

    A storyboard keeps every item it was submitted with, also one generated before (a replay)
    or queued again by a later batch. Its counts and cost are those of its items as they stand,
    so an image in two batches counts in both. `GeneratedImage.batch` is only the batch that
    last queued the image.
    """

    batch = models.ForeignKey(ImageBatch, on_delete=models.CASCADE, related_name="memberships")
    image = models.ForeignKey(GeneratedImage, on_delete=models.CASCADE, related_name="memberships")
    position = models.PositiveIntegerField()

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=("batch", "position"), name="batch_item_position"),
            models.UniqueConstraint(fields=("batch", "image"), name="batch_item_once"),
        )

    def __str__(self) -> str:
        return f"{self.batch_id}[{self.position}]"
