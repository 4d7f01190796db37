"""The generation pipeline: claim, route, call (retry, fall back), normalise, store, record."""

from __future__ import annotations

import enum
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import kombu.exceptions
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as StorageConnectionError
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)
from django.db.models import Case, Count, F, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Concat
from django.utils import timezone

from config.exceptions import ServiceError
from config.text import is_text
from imagegen import imaging, routing
from imagegen.breaker import CircuitBreaker
from imagegen.exceptions import (
    ContentRefused,
    GenerationInProgress,
    ImageConflict,
    ImageGone,
    ImageNotGenerated,
    ImageSuperseded,
    InvalidStorageKey,
    NoImageDrawn,
    ProjectGone,
    ProvidersFailed,
    ProvidersTimedOut,
    StorageUnavailable,
    TooManyInFlight,
    TooManyQueued,
)
from imagegen.models import BatchMembership, GeneratedImage, GenerationAttempt, ImageBatch
from imagegen.providers.base import (
    CircuitOpen,
    ContentBlocked,
    GenerationRequest,
    GenerationResult,
    ImageProvider,
    ProviderBadOutput,
    ProviderError,
    ProviderNoImage,
    ProviderTimeout,
)
from imagegen.providers.registry import get_providers
from projects.models import Project

logger = logging.getLogger(__name__)
sleep = time.sleep  # module-level so tests can observe the waits without waiting

SUCCESS_MESSAGE = "Image generated successfully"
REPLAY_MESSAGE = "Image already generated for this uuid; returning the stored result (replay)"


@dataclass(frozen=True)
class GenerationOutcome:
    image: GeneratedImage
    replayed: bool = False

    @property
    def message(self) -> str:
        return REPLAY_MESSAGE if self.replayed else self.image.message


@dataclass(frozen=True)
class AttemptRecord:
    """One provider call as it happened, written to the database after the calls are over."""

    provider: str
    provider_model: str
    outcome: str
    latency_ms: int
    http_status: int | None = None
    vendor_request_id: str = ""
    cost_usd: Decimal = Decimal(0)
    detail: str = ""
    usage: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderSuccess:
    provider: ImageProvider
    result: GenerationResult
    jpeg: imaging.JpegImage


class ProvidersExhausted(Exception):
    """Every provider in the order failed; carries the attempts and the deciding error."""

    def __init__(self, attempts: list[AttemptRecord], errors: list[tuple[str, ProviderError]]):
        super().__init__("all providers failed")
        self.attempts = attempts
        self.errors = errors


def compose_prompt(visual_prompt: str, art_style: str) -> str:
    """The prompt sent upstream: the scene, then the art style."""
    return f"{visual_prompt}. Art style: {art_style}" if art_style else visual_prompt


def routing_fields(decision: routing.RoutingDecision) -> dict[str, object]:
    """The routing decision as the image row stores it."""
    return {
        "routing_category": decision.category,
        "routing_confidence": decision.confidence,
        "routing_signals": list(decision.signals),
        "router_version": decision.version,
    }


IMAGES_PREFIX = "images"


def project_namespace(project_id: str) -> str:
    """Where a project's images live in storage; nothing of another project is under it."""
    return f"{IMAGES_PREFIX}/{project_id}/"


def image_key(*, project_id: str, uuid: str) -> str:
    """The storage key of a segment's image; unique per project, so never shared across users."""
    return f"{project_namespace(project_id)}{uuid}.jpg"


def image_key_owner(key: str) -> tuple[str, str] | None:
    """The (project id, uuid) whose `image_key` is `key`, or None for any other key."""
    project_id, _, name = key.removeprefix(f"{IMAGES_PREFIX}/").partition("/")
    uuid = name.removesuffix(".jpg")
    if key == image_key(project_id=project_id, uuid=uuid) and uuid and "/" not in uuid:
        return project_id, uuid
    return None


# ---------------------------------------------------------------------------------------------
# Claiming: the database decides who generates, so it holds across processes and machines.
# ---------------------------------------------------------------------------------------------
def image_claim(
    *,
    user,
    project,
    visual_prompt: str,
    art_style: str,
    uuid: str,
    model: str = "auto",
    aspect_ratio: str | None = None,
    status: str = GeneratedImage.Status.RUNNING,
) -> GenerationOutcome:
    """Create (or take over a failed) row for `(project, uuid)` in `status`, or replay a success.

    Raises `ImageConflict` when the uuid already holds a different prompt or style,
    `GenerationInProgress` when another request is generating it, `TooManyInFlight` past the
    per-user cap on `running` claims, `TooManyQueued` past the one on `pending` claims.
    """
    aspect_ratio = aspect_ratio or settings.IMAGEGEN_DEFAULT_ASPECT_RATIO
    fields = _claim_fields(
        visual_prompt=visual_prompt,
        art_style=art_style,
        aspect_ratio=aspect_ratio,
        model=model,
        status=status,
    )
    for _ in range(2):
        try:
            with transaction.atomic():
                if not Project.objects.lock_for_images(project.pk):
                    raise ProjectGone
                _lock_owner(user)
                existing = (
                    GeneratedImage.objects.select_for_update()
                    .filter(project=project, uuid=uuid)
                    .first()
                )
                if existing is None:
                    _check_key_free(project_id=project.pk, uuid=uuid)
                    _check_capacity(user, status)
                    image = GeneratedImage.objects.create(
                        project=project, user=user, uuid=uuid, **fields
                    )
                    return GenerationOutcome(image)
                if _is_replay(existing, visual_prompt, art_style, aspect_ratio):
                    return GenerationOutcome(existing, replayed=True)
                _check_claimable(existing)
                _check_key_free(project_id=project.pk, uuid=uuid)
                _check_capacity(user, status)
                for name, value in fields.items():
                    setattr(existing, name, value)
                existing.save(update_fields=[*fields, "updated_at"])
                return GenerationOutcome(existing)
        except IntegrityError:
            # A concurrent request inserted the same (project, uuid) first: read its row.
            continue
    raise GenerationInProgress(_in_progress_message(uuid), headers={"Retry-After": "5"})


def _claim_fields(
    *, visual_prompt: str, art_style: str, aspect_ratio: str, model: str, status: str
) -> dict[str, object]:
    """What a claim writes on a new or taken-over row: the request, its route, a clean slate."""
    return {
        "visual_prompt": visual_prompt,
        "art_style": art_style,
        "aspect_ratio": aspect_ratio,
        "requested_model": model,
        "status": status,
        "background": status == GeneratedImage.Status.PENDING,
        "model": "",
        "provider_model": "",
        "message": "",
        "error_code": "",
        "block_reason": "",
        **routing_fields(routing.route(visual_prompt, art_style)),
        "started_at": timezone.now() if status == GeneratedImage.Status.RUNNING else None,
        "finished_at": None,
    }


def _is_replay(
    image: GeneratedImage, visual_prompt: str, art_style: str, aspect_ratio: str
) -> bool:
    if image.status != GeneratedImage.Status.SUCCEEDED:
        return False
    same = (image.visual_prompt, image.art_style, image.aspect_ratio)
    if same == (visual_prompt, art_style, aspect_ratio):
        return True
    raise ImageConflict(
        f"uuid {image.uuid!r} in this project already has an image made from a different prompt, "
        "art style or aspect ratio. Use a new uuid, or PATCH the existing image.",
        id=image.id,
    )


def _check_claimable(image: GeneratedImage) -> None:
    if image.status == GeneratedImage.Status.PENDING:
        raise GenerationInProgress(
            f"An image for uuid {image.uuid!r} is queued for generation in the background; "
            f"follow it with GET /image-gen?id={image.id}, or retry later to get the result.",
            headers={"Retry-After": "5"},
            id=image.id,
        )
    if image.status == GeneratedImage.Status.RUNNING and not _is_stale(image):
        raise GenerationInProgress(
            _in_progress_message(image.uuid), headers={"Retry-After": "5"}, id=image.id
        )


def _is_stale(image: GeneratedImage) -> bool:
    lease = timedelta(seconds=settings.IMAGEGEN_RUNNING_LEASE)
    stamp = image.started_at or image.updated_at
    return image.status == GeneratedImage.Status.RUNNING and stamp < timezone.now() - lease


def _in_progress_message(uuid: str) -> str:
    return (
        f"An image for uuid {uuid!r} is being generated right now; "
        "retry in a few seconds to get the result."
    )


def _check_capacity(user, status: str) -> None:
    """The per-user cap on images in `status`: `_check_in_flight` or `_check_queued`."""
    if status == GeneratedImage.Status.RUNNING:
        _check_in_flight(user)
    else:
        _check_queued(user)


def _check_key_free(*, project_id: str, uuid: str) -> None:
    """The key a generation of `uuid` writes is no other image's object (an image whose s3_key
    was changed to it): the generation would overwrite that image's picture."""
    key = image_key(project_id=project_id, uuid=uuid)
    holder = _first_id(
        GeneratedImage.objects.filter(project_id=project_id, s3_key=key).exclude(uuid=uuid)
    )
    if holder is not None:
        raise ImageConflict(
            f"uuid {uuid!r} stores its image at {key!r}, which is image {holder}'s object (its "
            "s3_key was changed to it): use another uuid, or change that image's s3_key first."
        )


def _lock_image(image: GeneratedImage, *, with_owner: bool) -> GeneratedImage:
    """`image`'s row, read again and locked until the transaction ends; `with_owner`, after its
    project's and owner's, in the claims' order. Raises `ProjectGone` or `ImageGone` when
    either was deleted meanwhile."""
    if with_owner:
        if not Project.objects.lock_for_images(image.project_id):
            raise ProjectGone
        _lock_owner(image.user_id)
    locked = GeneratedImage.objects.select_for_update().filter(pk=image.pk).first()
    if locked is None:
        raise ImageGone
    return locked


def _first_id(images: QuerySet[GeneratedImage]) -> str | None:
    return images.values_list("pk", flat=True).first()


def _lock_owner(user) -> None:
    """Lock the owner's row (`user` or a user id) until the transaction commits, so concurrent
    requests count its images one after the other and the per-user caps hold.

    Every transaction that claims or queues images takes its locks in one order: the project,
    then the owner, then image rows (and new rows' uuids). A request and a storyboard for the
    same uuid that took them in different orders each waited for the other (a deadlock).
    """
    user_id = getattr(user, "pk", user)
    # FOR NO KEY UPDATE: it orders the owner's claims but lets foreign-key checks through (an
    # admin edit's LogEntry, a row that refers to the user), which FOR UPDATE would make wait.
    get_user_model().objects.select_for_update(no_key=True).filter(pk=user_id).values_list(
        "pk"
    ).get()


def _check_in_flight(user) -> None:
    """Raise `TooManyInFlight` when `user` (or a user id) is at the cap. Call it inside the
    transaction that starts the generation, with the owner's row locked (`_lock_owner`)."""
    cap = settings.IMAGEGEN_MAX_IN_FLIGHT_PER_USER
    user_id = getattr(user, "pk", user)
    since = timezone.now() - timedelta(seconds=settings.IMAGEGEN_RUNNING_LEASE)
    running = GeneratedImage.objects.filter(
        user_id=user_id,
        status=GeneratedImage.Status.RUNNING,
        background=False,
        started_at__gte=since,
    ).count()
    if running >= cap:
        raise TooManyInFlight(
            f"You already have {running} generations in progress (the limit is {cap}); "
            "wait for some to finish.",
            headers={"Retry-After": "5"},
        )


def _check_queued(user, *, adding: int = 1) -> None:
    """Raise `TooManyQueued` when `user` (or a user id) would have more than its cap of images
    pending once `adding` more are (0: the new ones are recorded in this transaction already).
    Call it inside the transaction that queues them, with the owner's row locked (`_lock_owner`).
    """
    cap = settings.IMAGEGEN_MAX_QUEUED_PER_USER
    user_id = getattr(user, "pk", user)
    queued = GeneratedImage.objects.filter(
        user_id=user_id, status=GeneratedImage.Status.PENDING
    ).count()
    if queued + adding > cap:
        raise TooManyQueued(
            f"This would leave {queued + adding} of your images waiting for generation (the "
            f"limit is {cap}); wait for some to finish, or send fewer.",
            headers={"Retry-After": "30"},
        )


# ---------------------------------------------------------------------------------------------
# Calling providers: retries with backoff, circuit breakers, fallback.
# ---------------------------------------------------------------------------------------------
def provider_order(*, routed: str, requested: str = "auto") -> list[ImageProvider]:
    """The chosen provider first (the request's `model`, else the routed one), then the others.

    A route that is not configured is skipped, so a keyless local run still generates.
    """
    providers = get_providers()
    first = requested if requested != "auto" else routed
    ordered = [providers[first]] if first in providers else []
    ordered += [provider for name, provider in providers.items() if name != first]
    return ordered


def backoff_delay(attempt: int, retry_after: float | None) -> float:
    """Seconds before retry number `attempt` (0-based): the vendor's wait, or full jitter."""
    if retry_after is not None:
        return min(retry_after, settings.IMAGEGEN_RETRY_AFTER_CAP)
    ceiling = min(settings.IMAGEGEN_BACKOFF_CAP, settings.IMAGEGEN_BACKOFF_BASE * 2**attempt)
    return random.uniform(0, ceiling)  # noqa: S311  (jitter, not cryptography)


def provider_attempt(
    provider: ImageProvider,
    request: GenerationRequest,
    *,
    renew_lease: Callable[[], None] | None = None,
) -> ProviderSuccess:
    """One call to `provider`, its answer converted to our JPEG.

    `renew_lease` is called once a call slot is held after waiting `LEASE_RENEWAL_WAIT` or
    longer for it. Raises the provider's `ProviderError`, or `ProviderBadOutput` for bytes that
    are no usable image.
    """
    with provider_slot(provider.name) as waited:
        if renew_lease is not None and waited >= LEASE_RENEWAL_WAIT:
            renew_lease()
        result = provider.generate(request, timeout=settings.IMAGEGEN_PROVIDER_TIMEOUT)
    try:
        jpeg = imaging.to_jpeg(
            result.image_bytes,
            max_bytes=settings.IMAGEGEN_MAX_IMAGE_BYTES,
            quality=settings.IMAGEGEN_JPEG_QUALITY,
        )
    except imaging.InvalidImage as exc:
        raise ProviderBadOutput(
            f"{provider.name} returned unusable image data: {exc}",
            http_status=result.http_status,
            vendor_request_id=result.vendor_request_id,
            provider_model=result.provider_model,
            cost_usd=result.cost_usd,
            usage=result.usage,
        ) from exc
    return ProviderSuccess(provider=provider, result=result, jpeg=jpeg)


# Outcomes that mean our side is wrong (a request the vendor calls malformed, a key it refuses):
# every call fails the same way until someone acts, so they are logged as errors.
_OUTCOMES_LOGGED_AS_ERRORS = frozenset(
    {GenerationAttempt.Outcome.REJECTED, GenerationAttempt.Outcome.CREDENTIALS}
)


def _log_attempt(image_id: str, record: AttemptRecord) -> None:
    if record.outcome == GenerationAttempt.Outcome.SUCCEEDED:
        level = logging.INFO
    elif record.outcome in _OUTCOMES_LOGGED_AS_ERRORS:
        level = logging.ERROR
    else:
        level = logging.WARNING
    logger.log(
        level,
        "provider_attempt image=%s provider=%s model=%s outcome=%s status=%s latency_ms=%d "
        "request_id=%s cost_usd=%s",
        image_id,
        record.provider,
        record.provider_model,
        record.outcome,
        record.http_status or "-",
        record.latency_ms,
        record.vendor_request_id or "-",
        record.cost_usd,
    )


def _record(
    attempts: list[AttemptRecord],
    image_id: str,
    provider: ImageProvider,
    started: float,
    **fields: object,
) -> None:
    record = AttemptRecord(
        provider=provider.name,
        latency_ms=int((time.monotonic() - started) * 1000),
        **{"provider_model": provider.model, **fields},
    )
    attempts.append(record)
    _log_attempt(image_id, record)


def _try_provider(
    provider: ImageProvider,
    request: GenerationRequest,
    *,
    attempts: list[AttemptRecord],
    errors: list[tuple[str, ProviderError]],
    image_id: str,
    renew_lease: Callable[[], None] | None,
) -> ProviderSuccess | None:
    """Up to `IMAGEGEN_PROVIDER_ATTEMPTS` calls to one provider; None when it gave up."""
    breaker = CircuitBreaker(provider.name)
    first_error = len(errors)
    for attempt in range(settings.IMAGEGEN_PROVIDER_ATTEMPTS):
        started = time.monotonic()
        if not breaker.allow():
            reason = breaker.last_failure()
            skipped = CircuitOpen(
                f"skipped: {provider.name} failed repeatedly"
                + (f" (last: {reason})" if reason else "")
                + f"; next trial in {breaker.seconds_until_trial():.0f} s"
            )
            _record(
                attempts,
                image_id,
                provider,
                started,
                outcome=skipped.outcome,
                detail=skipped.message,
            )
            errors.append((provider.name, skipped))
            return None
        try:
            success = provider_attempt(provider, request, renew_lease=renew_lease)
        except ProviderError as exc:
            _record(
                attempts,
                image_id,
                provider,
                started,
                outcome=exc.outcome,
                provider_model=exc.provider_model or provider.model,
                http_status=exc.http_status,
                vendor_request_id=exc.vendor_request_id,
                cost_usd=exc.cost_usd,
                detail=exc.message[:500],
                usage=exc.usage,
            )
            errors.append((provider.name, exc))
            if exc.counts_against_breaker:
                breaker.record_failure(exc.message)
            else:
                breaker.record_success()  # it answered (a block, a 400): the vendor is up
            if not exc.retryable or _answered_alike_enough(exc, errors[first_error:]):
                return None
            if attempt + 1 < settings.IMAGEGEN_PROVIDER_ATTEMPTS:
                sleep(backoff_delay(attempt, exc.retry_after))
            continue
        breaker.record_success()
        _record(
            attempts,
            image_id,
            provider,
            started,
            outcome=GenerationAttempt.Outcome.SUCCEEDED,
            provider_model=success.result.provider_model,
            http_status=success.result.http_status,
            vendor_request_id=success.result.vendor_request_id,
            cost_usd=success.result.cost_usd,
            usage=success.result.usage,
        )
        return success
    return None


def _answered_alike_enough(exc: ProviderError, errors: list[tuple[str, ProviderError]]) -> bool:
    """True once this provider gave `exc`'s kind of failure its `max_attempts` times."""
    alike = sum(1 for _, error in errors if type(error) is type(exc))
    return exc.max_attempts is not None and alike >= exc.max_attempts


def call_providers(
    request: GenerationRequest,
    order: list[ImageProvider],
    *,
    image_id: str = "",
    renew_lease: Callable[[], None] | None = None,
) -> tuple[ProviderSuccess, list[AttemptRecord], list[tuple[str, ProviderError]]]:
    """Try each provider in `order` until one returns a usable image.

    Retryable errors are retried on the same provider with backoff that honours the vendor's
    requested wait; credentials and rejected requests move on at once; after a safety block,
    at most one more provider is asked (none with `IMAGEGEN_FALLBACK_ON_BLOCK` off).
    Raises `ProvidersExhausted` with every attempt made.
    """
    attempts: list[AttemptRecord] = []
    errors: list[tuple[str, ProviderError]] = []
    providers_left_after_block: int | None = None
    for provider in order:
        if providers_left_after_block == 0:
            break
        if providers_left_after_block is not None:
            providers_left_after_block -= 1
        success = _try_provider(
            provider,
            request,
            attempts=attempts,
            errors=errors,
            image_id=image_id,
            renew_lease=renew_lease,
        )
        if success is not None:
            return success, attempts, errors
        if providers_left_after_block is None and isinstance(errors[-1][1], ContentBlocked):
            providers_left_after_block = 1 if settings.IMAGEGEN_FALLBACK_ON_BLOCK else 0
    raise ProvidersExhausted(attempts, errors)


def _error_summary(errors: list[tuple[str, ProviderError]]) -> str:
    """One entry per provider, in the order they were tried: its last error from a real call,
    or, when every call to it was skipped, why (the breaker keeps the vendor's last failure)."""
    last: dict[str, ProviderError] = {}
    for name, exc in errors:
        if name not in last or not isinstance(exc, CircuitOpen):
            last[name] = exc
    return "; ".join(f"{name}: {exc.message}" for name, exc in last.items())


def _failure_for(exhausted: ProvidersExhausted):
    """The domain error that explains an exhausted provider order to the caller."""
    blocks = [exc for _, exc in exhausted.errors if isinstance(exc, ContentBlocked)]
    if blocks:
        block = blocks[-1]
        return (
            ContentRefused(
                f"The content was blocked by the provider's safety filter ({block.block_reason}). "
                "Rephrase the visual prompt and try again.",
            ),
            "content_blocked",
            block.block_reason,
        )
    if not exhausted.errors:
        return (
            ProvidersFailed(
                "No image provider is configured; set RECRAFT_API_KEY or GEMINI_API_KEY."
            ),
            "no_provider",
            "",
        )
    summary = _error_summary(exhausted.errors)
    if all(isinstance(exc, ProviderNoImage) for _, exc in exhausted.errors):
        # Every provider was asked (none skipped) and none drew anything: the prompt is the
        # cause, so the task does not retry it either.
        return (
            NoImageDrawn(
                f"No provider drew an image for this prompt ({summary}). Describe the picture "
                "more concretely and try again."
            ),
            "no_image",
            "",
        )
    called = [exc for _, exc in exhausted.errors if not isinstance(exc, CircuitOpen)]
    if called and all(isinstance(exc, ProviderTimeout) for exc in called):
        return (
            ProvidersTimedOut(f"Every image provider timed out ({summary}). Try again later."),
            "providers_timed_out",
            "",
        )
    return (
        ProvidersFailed(f"Every image provider failed ({summary}). Try again later."),
        "providers_failed",
        "",
    )


# ---------------------------------------------------------------------------------------------
# Running a claimed image to the end.
# ---------------------------------------------------------------------------------------------
def _release_db_connection() -> None:
    # Vendor calls take 10-40 s: holding a PostgreSQL connection through them exhausts the
    # server under bursts. Django reconnects on the next query.
    if not connection.in_atomic_block:
        connection.close()


def _fallback_note(success: ProviderSuccess, errors: list[tuple[str, ProviderError]]) -> str:
    """The success message, naming each provider that failed before and how (once each)."""
    reasons: dict[str, list[str]] = {}
    for name, exc in errors:
        if name == success.provider.name:
            continue
        reason = exc.outcome.replace("_", " ")
        if isinstance(exc, ContentBlocked):
            reason = f"{reason}: {exc.block_reason}"
        if reason not in reasons.setdefault(name, []):
            reasons[name].append(reason)
    if not reasons:
        return SUCCESS_MESSAGE
    summary = "; ".join(f"{name} {', '.join(outcomes)}" for name, outcomes in reasons.items())
    return f"{SUCCESS_MESSAGE} by {success.provider.name} after fallback ({summary})"


def _finish(image: GeneratedImage, *, attempts: list[AttemptRecord], **fields: object) -> bool:
    """Write a generation's outcome and attempts onto its row, if the row is still this run's.

    A conditional update, never a save of the copy read at claim time: the row may have been
    edited (PATCH), deleted (with its project) or taken over after its lease meanwhile. Returns
    False, writing nothing, when it is no longer this run's. On success `image` carries what was
    written (the outcome fields and the cost, which only this run changes while it owns the
    row), without reading the row back.
    """
    now = timezone.now()
    cost = sum((record.cost_usd for record in attempts), Decimal(0))
    with transaction.atomic():
        updated = GeneratedImage.objects.filter(
            pk=image.pk, status=GeneratedImage.Status.RUNNING, started_at=image.started_at
        ).update(cost_usd=F("cost_usd") + cost, finished_at=now, updated_at=now, **fields)
        if updated:
            GenerationAttempt.objects.bulk_create(
                GenerationAttempt(image=image, **asdict(record)) for record in attempts
            )
    if not updated:
        logger.warning("generation_superseded image=%s", image.id)
        return False
    for name, value in {**fields, "finished_at": now, "updated_at": now}.items():
        setattr(image, name, value)
    image.cost_usd += cost
    return True


def _finish_through_outage(
    image: GeneratedImage, *, attempts: list[AttemptRecord], **fields: object
) -> bool:
    """`_finish`, tried again while the database is unavailable (a restart, a failover), for up
    to `IMAGEGEN_RECORD_RETRY_SECONDS`: the image is paid for and stored, and giving up deletes
    it. Raises the database's error when the time is up."""
    budget = settings.IMAGEGEN_RECORD_RETRY_SECONDS
    deadline = time.monotonic() + budget
    waited, delay, failed = 0.0, 0.5, False
    while True:
        try:
            if failed and _landed(image, **fields):
                return True
            return _finish(image, attempts=attempts, **fields)
        except (OperationalError, InterfaceError):
            failed = True
            wait = min(delay, budget - waited)
            if wait <= 0 or time.monotonic() >= deadline:
                raise
            logger.warning("record_retry image=%s in=%.1fs", image.id, wait)
            if not connection.in_atomic_block:
                connection.close()  # a broken one goes back to the pool, to be discarded
            sleep(wait)
            waited, delay = waited + wait, min(delay * 2, 8.0)


def _landed(image: GeneratedImage, **fields: object) -> bool:
    """Whether this run's outcome is on its row already: the connection can drop after the
    server committed `_finish` but before it said so. Then `image` takes what was written."""
    written = (
        GeneratedImage.objects.filter(
            pk=image.pk,
            started_at=image.started_at,
            status=fields["status"],
            s3_key=fields["s3_key"],
        )
        .values("cost_usd", "finished_at", "updated_at")
        .first()
    )
    if written is None:
        return False
    for name, value in {**fields, **written}.items():
        setattr(image, name, value)
    return True


def _record_failure(
    image: GeneratedImage,
    *,
    attempts: list[AttemptRecord],
    message: str,
    error_code: str,
    block_reason: str = "",
    model: str = "",
    provider_model: str = "",
) -> None:
    _finish(
        image,
        attempts=attempts,
        status=GeneratedImage.Status.FAILED,
        message=message,
        error_code=error_code,
        block_reason=block_reason[:200],
        model=model or (attempts[-1].provider if attempts else ""),
        provider_model=provider_model or (attempts[-1].provider_model if attempts else ""),
    )


def image_run(image: GeneratedImage) -> GeneratedImage:
    """Generate, store and record a claimed image; return it succeeded.

    Raises `ContentRefused` or `NoImageDrawn` (422), `ProvidersFailed` (502), `ProvidersTimedOut`
    (504) or `StorageUnavailable` (503) after recording the failure on the row; nothing is
    stored then.
    Any other exception (a bug, the database) is re-raised after the row is marked failed, so
    a retry is not refused as "in progress" for a whole lease.
    """
    try:
        return _run(image)
    except ServiceError:
        raise
    except Exception:
        logger.exception("generation_crashed image=%s", image.id)
        _release(
            image,
            error_code="internal",
            message="The generation failed on an internal error; it has been logged. Retry.",
        )
        raise


def _run(image: GeneratedImage) -> GeneratedImage:
    request = GenerationRequest(
        prompt=compose_prompt(image.visual_prompt, image.art_style),
        aspect_ratio=image.aspect_ratio,
        category=image.routing_category,
    )
    routed = settings.IMAGEGEN_ROUTES.get(image.routing_category, "")
    order = provider_order(routed=routed, requested=image.requested_model)
    _release_db_connection()
    try:
        success, attempts, errors = call_providers(
            request, order, image_id=image.id, renew_lease=lambda: _renew_lease(image)
        )
    except ProvidersExhausted as exhausted:
        error, code, block_reason = _failure_for(exhausted)
        _record_failure(
            image,
            attempts=exhausted.attempts,
            message=error.message,
            error_code=code,
            block_reason=block_reason,
        )
        error.extra.update(id=image.id, model=image.model)
        raise error from None

    key = image_key(project_id=image.project_id, uuid=image.uuid)
    try:
        stored_key = _store_through_outage(image, key, success.jpeg.data)
    except ImageSuperseded:
        raise
    except Exception as exc:
        logger.exception("storage_failed image=%s key=%s", image.id, key)
        message = f"The image was generated but could not be stored ({type(exc).__name__}). Retry."
        _record_failure(
            image,
            attempts=attempts,
            message=message,
            error_code="storage_unavailable",
            model=success.provider.name,
            provider_model=success.result.provider_model,
        )
        raise StorageUnavailable(message, id=image.id, model=success.provider.name) from exc

    try:
        recorded = _finish_through_outage(
            image,
            attempts=attempts,
            status=GeneratedImage.Status.SUCCEEDED,
            model=success.provider.name,
            provider_model=success.result.provider_model,
            message=_fallback_note(success, errors),
            error_code="",
            block_reason="",
            s3_key=stored_key,
            image_size_bytes=len(success.jpeg.data),
            width=success.jpeg.width,
            height=success.jpeg.height,
        )
    except Exception:
        # The row did not commit (the database may be down): the object must not outlive it,
        # unless a row has it after all (a commit whose answer was lost). With the database
        # still away, it is left to `imagegen_reconcile`.
        with suppress(DatabaseError):
            _delete_keys([stored_key])
        _release(
            image,
            error_code="record_failed",
            message="The image was generated but could not be recorded. Retry.",
            stored_key=stored_key,
        )
        raise
    if not recorded:
        # Another run writes this same key when the row was taken over after its lease, or
        # deleted and asked for again: the object is left to that run (deleting the image or
        # its project removes it, as does imagegen_reconcile). Otherwise nothing wants it.
        taken_over = GeneratedImage.objects.filter(
            project_id=image.project_id,
            uuid=image.uuid,
            status__in=(GeneratedImage.Status.PENDING, GeneratedImage.Status.RUNNING),
        ).exists()
        if not taken_over:
            _delete_keys([stored_key])
        raise _superseded(image)
    return image


def _still_running(image: GeneratedImage) -> bool:
    """Whether the row is still this run's, looked up just before its object is stored.

    Without it, a run whose image was deleted and generated again meanwhile (a new row, the
    same key) put its picture over the new row's when its vendor call ended last. The check
    holds no lock and no connection through the put: a deletion and a whole new generation
    would have to fit between the two. With the database away the run stores, and records
    through the outage as before.
    """
    try:
        return GeneratedImage.objects.filter(
            pk=image.pk, status=GeneratedImage.Status.RUNNING, started_at=image.started_at
        ).exists()
    except (OperationalError, InterfaceError):
        return True
    finally:
        _release_db_connection()


def _store_through_outage(image: GeneratedImage, key: str, data: bytes) -> str:
    """Store a paid image's JPEG at `key`, trying again while the storage fails in a way that
    passes (refused or dropped connections, timeouts, 5xx, SlowDown) for up to
    `IMAGEGEN_RECORD_RETRY_SECONDS`: giving up means the retry pays the vendor again. A put
    whose answer was lost but which stored the object counts as stored.

    Raises `ImageSuperseded`, storing nothing, when before a try the row is no longer this
    run's: deleted (then perhaps asked for again, and generated into the same key) or taken
    over while the vendor was called or while the storage was waited for."""
    deadline = time.monotonic() + settings.IMAGEGEN_RECORD_RETRY_SECONDS
    delay = 0.5
    while True:
        if not _still_running(image):
            logger.warning("generation_superseded image=%s before storing", image.id)
            raise _superseded(image)
        started = time.monotonic()
        try:
            return default_storage.save(key, ContentFile(data))
        except Exception as exc:
            if _stored_anyway(key, data):
                # The put landed but its answer was lost (a closed connection, a read timeout).
                logger.warning("storage_answer_lost image=%s key=%s: it is stored", image.id, key)
                return key
            # The next try may take as long as this one (an S3 that does not answer holds each
            # for the client's timeouts and tries, two minutes): it starts only if it can end
            # within the budget.
            took = time.monotonic() - started
            if not _storage_may_recover(exc) or time.monotonic() + delay + took > deadline:
                raise
            logger.warning(
                "store_retry image=%s in=%.1fs (%s)", image.id, delay, type(exc).__name__
            )
            sleep(delay)
            delay = min(delay * 2, 8.0)


def _storage_may_recover(exc: Exception) -> bool:
    """Whether a storage error is the kind that passes: the S3 client's connection errors and
    timeouts, or S3 answering 5xx or asking to slow down; not a refusal (credentials, a missing
    bucket), and not the file system's errors (a full disk does not empty itself)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or error.get("Code") in ("SlowDown", "RequestTimeout")
    return isinstance(exc, StorageConnectionError | HTTPClientError)


def _stored_anyway(key: str, data: bytes) -> bool:
    """Whether a save that raised stored `data` at `key` all the same (S3 only)."""
    holds = getattr(default_storage, "holds", None)
    return holds is not None and holds(key, data)


def _superseded(image: GeneratedImage) -> ImageSuperseded:
    return ImageSuperseded(
        "The image was deleted or restarted while it was being generated; "
        "nothing was kept. Send the request again if you still need it.",
        id=image.id,
    )


def _renew_lease(image: GeneratedImage) -> None:
    """Start a running image's lease again, as its vendor call is about to begin.

    Waiting for a provider's call slot (`IMAGEGEN_PROVIDER_CONCURRENCY`) is the queue, not a
    dead worker: without this, the sweep took rows of a busy, healthy worker for abandoned and
    their calls were paid twice. Raises `ImageSuperseded`, before the call is paid for, when
    the row stopped being this run's while it waited.
    """
    now = timezone.now()
    renewed = GeneratedImage.objects.filter(
        pk=image.pk, status=GeneratedImage.Status.RUNNING, started_at=image.started_at
    ).update(started_at=now, updated_at=now)
    _release_db_connection()
    if not renewed:
        logger.warning("generation_superseded image=%s while waiting for a call slot", image.id)
        raise _superseded(image)
    image.started_at = now


def _release(image: GeneratedImage, *, error_code: str, message: str, stored_key: str = "") -> None:
    """Mark a generation that could not end normally as failed, if the row is still this
    run's, so a retry need not wait out the running lease; a row still on a deleted object
    (`stored_key`) lets go of it. With the database away, a thread does it once it is back."""
    if image.id in _releasing_later:
        return  # the database was away for this run's first release: it is being retried
    try:
        _mark_ended(
            image,
            status=GeneratedImage.Status.FAILED,
            error_code=error_code,
            message=message,
            stored_key=stored_key,
        )
    except DatabaseError:
        logger.exception("%s image=%s", error_code, image.id)
        _release_later(image, error_code=error_code, message=message, stored_key=stored_key)


def _mark_ended(
    image: GeneratedImage, *, status: str, error_code: str, message: str, stored_key: str
) -> None:
    """This run's row, if it still is, in `status` (failed, or pending to run again)."""
    now = timezone.now()
    GeneratedImage.objects.filter(
        pk=image.pk, status=GeneratedImage.Status.RUNNING, started_at=image.started_at
    ).update(
        status=status,
        error_code=error_code,
        message=message,
        s3_key=Case(When(s3_key=stored_key, then=Value("")), default=F("s3_key")),
        finished_at=None if status == GeneratedImage.Status.PENDING else now,
        updated_at=now,
    )


# Images whose release waits for the database (`_release_later`), by id.
_releasing_later: set[str] = set()
_releasing_later_lock = threading.Lock()


def _release_later(image: GeneratedImage, **fields: str) -> None:
    """Once the database is back, from a thread of its own, mark the row failed, or `pending`
    again for a background image (its task's retry, or the sweep, runs it), trying for up to
    `IMAGEGEN_RUNNING_LEASE` (the sweep's after that). Without it, a row whose run ended during
    an outage stayed `running`, and its uuid answered 409 `in_progress`, for the whole lease."""
    with _releasing_later_lock:
        if image.id in _releasing_later:
            return
        _releasing_later.add(image.id)
    if image.background:
        fields = {
            **fields,
            "error_code": "",
            "message": "Queued again: the database was unavailable as its generation ended.",
        }
    status = GeneratedImage.Status.PENDING if image.background else GeneratedImage.Status.FAILED

    def release() -> None:
        deadline, delay = time.monotonic() + settings.IMAGEGEN_RUNNING_LEASE, 1.0
        try:
            while time.monotonic() < deadline:
                sleep(delay)
                try:
                    _mark_ended(image, status=status, **fields)
                except DatabaseError:
                    connection.close()  # broken: the next try takes another
                    delay = min(delay * 2, 30.0)
                else:
                    logger.info("released_later image=%s", image.id)
                    return
        finally:
            connection.close()
            _releasing_later.discard(image.id)

    threading.Thread(target=release, name=f"release-{image.id}", daemon=True).start()


def image_generate(
    *,
    user,
    project,
    visual_prompt: str,
    art_style: str,
    uuid: str,
    model: str = "auto",
    aspect_ratio: str | None = None,
    background: bool = False,
) -> GenerationOutcome:
    """Generate a segment's image now, or replay the stored one for a repeated request.

    With `background`, the image is recorded as `pending` and queued (`images_enqueue`) instead
    of generated here. Raises what `image_claim` raises, then (in the foreground) what
    `image_run` raises.
    """
    claimed = image_claim(
        user=user,
        project=project,
        visual_prompt=visual_prompt,
        art_style=art_style,
        uuid=uuid,
        model=model,
        aspect_ratio=aspect_ratio,
        status=GeneratedImage.Status.PENDING if background else GeneratedImage.Status.RUNNING,
    )
    if claimed.replayed:
        return claimed
    if background:
        images_enqueue(image_ids=[claimed.image.id])
        _settle(claimed.image)
        return claimed
    return GenerationOutcome(image_run(claimed.image))


# ---------------------------------------------------------------------------------------------
# Editing and deleting.
# ---------------------------------------------------------------------------------------------
# C0 and C1 control characters, DEL and backslashes have no place in a storage key.
_KEY_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")
# S3's limit on a key, in bytes of UTF-8.
MAX_KEY_BYTES = 1024


def is_plain_key(s3_key: str) -> bool:
    """No `..`, `.` or empty segments (so no leading or trailing `/`), backslashes or control
    characters (the schema's `s3_key` pattern says the same)."""
    return not _KEY_FORBIDDEN.search(s3_key) and all(
        segment not in ("", ".", "..") for segment in s3_key.split("/")
    )


def validate_image_key(*, image: GeneratedImage, s3_key: str) -> str:
    """Accept only an existing key inside the image's own project namespace, in canonical form.

    Raises `InvalidStorageKey` for traversal (`..`), `.` or empty segments (so absolute paths
    and trailing slashes), backslashes, control characters, keys over 1024 bytes, keys of other
    projects, the key of another image, and keys with no object behind them.
    """
    namespace = project_namespace(image.project_id)
    if not is_plain_key(s3_key):
        raise InvalidStorageKey(
            "s3_key must be a plain relative key: no '..', '.' or empty segments, no leading or "
            "trailing '/', backslashes or control characters."
        )
    if len(s3_key.encode()) > MAX_KEY_BYTES:
        raise InvalidStorageKey(f"s3_key must be at most {MAX_KEY_BYTES} bytes of UTF-8.")
    if not s3_key.startswith(namespace):
        raise InvalidStorageKey(f"s3_key must be a key under {namespace!r} (this image's project).")
    _check_key_unheld(image=image, s3_key=s3_key)
    # The storage reads below can take minutes while S3 does not answer (the upload client's
    # four tries of 30 s, per call): they must not hold one of the pool's connections.
    _release_db_connection()
    if not default_storage.exists(s3_key):
        # S3 answers a missing bucket with the same 404 as a missing key: a bucket that is gone
        # (or misnamed) is the storage's fault, which the listing raises, not the caller's.
        probe = getattr(default_storage, "probe", None)
        if probe is not None:
            probe(s3_key)
        raise InvalidStorageKey(f"There is no stored object at {s3_key!r}.")
    return s3_key


def _check_key_unheld(*, image: GeneratedImage, s3_key: str) -> None:
    """Two rows on one object: deleting either would take the other's image with it. Nor may
    an image take the key another segment's generation writes: its next generation would
    overwrite the picture."""
    holder = _first_id(GeneratedImage.objects.filter(s3_key=s3_key).exclude(pk=image.pk))
    if holder is not None:
        raise InvalidStorageKey(f"{s3_key!r} is the stored object of image {holder}.")
    owner = image_key_owner(s3_key)
    if owner is None or owner == (image.project_id, image.uuid):
        return
    segment = _first_id(GeneratedImage.objects.filter(project_id=owner[0], uuid=owner[1]))
    if segment is not None:
        raise InvalidStorageKey(
            f"{s3_key!r} is where image {segment} (uuid {owner[1]!r}) stores its generations; "
            "choose another key."
        )


def _check_generated(image: GeneratedImage) -> None:
    if image.status != GeneratedImage.Status.SUCCEEDED:
        raise ImageNotGenerated(
            f"Only a generated image's s3_key can be changed; this one is {image.status}.",
            id=image.id,
        )


def _stored_jpeg_fields(s3_key: str) -> dict[str, object]:
    """What the record says of the object at `s3_key`: its size and dimensions, read from it.

    Raises `InvalidStorageKey` when the object is larger than any image we store or is not a
    JPEG (every record describes one).
    """
    size = default_storage.size(s3_key)
    if size > settings.IMAGEGEN_MAX_IMAGE_BYTES:
        raise InvalidStorageKey(
            f"The object at {s3_key!r} is {size} bytes, over the "
            f"{settings.IMAGEGEN_MAX_IMAGE_BYTES}-byte cap of a stored image."
        )
    with default_storage.open(s3_key) as stored:
        data = stored.read()
    try:
        width, height = imaging.jpeg_size(data)
    except imaging.InvalidImage as exc:
        raise InvalidStorageKey(f"The object at {s3_key!r} is no JPEG image: {exc}.") from None
    return {"s3_key": s3_key, "image_size_bytes": len(data), "width": width, "height": height}


def describe_changes(changed: list[str]) -> str:
    """The seed's message: "Image prompt, art style, and S3 key updated successfully"."""
    labels = {"visual_prompt": "prompt", "art_style": "art style", "s3_key": "S3 key"}
    names = [labels[key] for key in labels if key in changed]
    # The seed's Oxford comma for three names; "a and b" for two.
    joined = " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])}, and {names[-1]}"
    return f"Image {joined} updated successfully"


def image_update(
    *,
    image: GeneratedImage,
    visual_prompt: str | None = None,
    art_style: str | None = None,
    s3_key: str | None = None,
) -> list[str]:
    """Change an image's prompt, style and/or storage key; return the fields that were sent.

    It does not regenerate: an edit made while the image is generated stays, over the result.
    A queued image is routed anew for its new prompt. A new key takes the object's size and
    dimensions onto the record. Raises `ImageNotGenerated` for a key on an image that has not
    succeeded, `InvalidStorageKey` (see `validate_image_key`, and for an object that is no
    JPEG) and `ImageGone` for an image deleted meanwhile; nothing is changed then. `image` is
    refreshed with what was written.
    """
    sent = {
        name: value
        for name, value in (
            ("visual_prompt", visual_prompt),
            ("art_style", art_style),
            ("s3_key", s3_key),
        )
        if value is not None
    }
    stored: dict[str, object] = {}
    if s3_key is not None:
        # Storage is read before the row is locked: a slow S3 must not hold the row, nor a
        # request for its uuid waiting with the owner's lock, nor the owner's requests behind.
        _check_generated(image)
        try:
            stored = _stored_jpeg_fields(validate_image_key(image=image, s3_key=s3_key))
        except (BotoCoreError, ClientError, OSError) as exc:  # S3's and the file system's
            logger.exception("storage_read_failed image=%s key=%s", image.id, s3_key)
            raise StorageUnavailable(
                f"The storage could not be read ({type(exc).__name__}); nothing was changed. "
                "Retry later.",
                id=image.id,
            ) from exc
    with transaction.atomic():
        # Locked: a worker taking a queued image waits, and then generates what was written.
        # With a key, the owner's lock too (the image's owner owns its project): a claim for the
        # uuid whose key this is waits, then sees the key taken.
        current = _lock_image(image, with_owner=s3_key is not None)
        if s3_key is not None:
            # What may have changed since: the image's status, another row taking the key.
            _check_generated(current)
            _check_key_unheld(image=current, s3_key=s3_key)
        changes: dict[str, object] = {**sent, **stored}
        if current.status == GeneratedImage.Status.PENDING and changes.keys() - {"s3_key"}:
            prompt = changes.get("visual_prompt", current.visual_prompt)
            style = changes.get("art_style", current.art_style)
            changes.update(routing_fields(routing.route(prompt, style)))
        for name, value in changes.items():
            setattr(current, name, value)
        current.save(update_fields=[*changes, "updated_at"])
    image.refresh_from_db()
    return list(sent)


# Keys per deletion task: a project of thousands of images is several small messages.
DELETE_KEYS_PER_TASK = 500


def delete_objects_on_commit(keys: list[str]) -> None:
    """Delete stored objects in the background once the surrounding transaction commits.

    The request that deleted the rows does not wait for storage: an S3 that stops answering
    held a project's DELETE for minutes, one read timeout per object. Without a broker the
    deletions run in-process at commit, as every task does. A broker outage leaves the objects
    to `imagegen_reconcile` (one warning), which finds objects no row refers to.
    """
    keys = [key for key in keys if key]
    if keys:
        transaction.on_commit(lambda: _queue_deletions(keys))


def _publish_failed(
    exc: Exception, event: str, left: Sequence[str], *, left_as: str = "left_pending"
) -> None:
    """Log a task that could not be queued, once, with what is left unqueued. kombu reports a
    broker that refuses or stops answering as OperationalError; anything else is a fault of
    ours and keeps its traceback."""
    logger.warning(
        "%s %s=%d error=%s: %s",
        event,
        left_as,
        len(left),
        type(exc).__name__,
        exc,
        exc_info=not isinstance(exc, kombu.exceptions.OperationalError),
    )


def _queue_deletions(keys: list[str]) -> None:
    from imagegen.tasks import delete_objects  # the task module calls into this one

    for start in range(0, len(keys), DELETE_KEYS_PER_TASK):
        try:
            delete_objects.delay(keys[start : start + DELETE_KEYS_PER_TASK])
        except Exception as exc:
            _publish_failed(exc, "delete_enqueue_failed", keys[start:], left_as="left_to_reconcile")
            return


def objects_delete(*, keys: list[str]) -> None:
    """Delete the stored objects of deleted images, later, from a task; a failure is logged and
    left to reconcile.

    By then a key may hold a new object: the same uuid generated again (its row refers to the
    key only once the generation is recorded, after the object is written), or a PATCH
    pointing another image at it. A key that a row refers to, or that is the generation key
    of a uuid a row holds again, is kept.
    """
    kept = set(GeneratedImage.objects.filter(s3_key__in=keys).values_list("s3_key", flat=True))
    generation_keys = {key: owner for key in keys if (owner := image_key_owner(key))}
    if generation_keys:
        held = Q()
        for project_id, uuid in generation_keys.values():
            held |= Q(project_id=project_id, uuid=uuid)
        again = set(GeneratedImage.objects.filter(held).values_list("project_id", "uuid"))
        kept |= {key for key, owner in generation_keys.items() if owner in again}
    _delete_keys([key for key in keys if key not in kept], keep_referenced=False)


def _delete_keys(keys: list[str], *, keep_referenced: bool = True) -> None:
    """Delete `keys` from storage now, except those a row refers to, unless `keep_referenced`
    is off (the caller's own row did not commit, or the caller checked already). A key may
    have been generated anew for another row meanwhile: a PATCH can point an image at the key
    a later uuid generates into. A failure is logged and left to `imagegen_reconcile`."""
    kept = (
        set(GeneratedImage.objects.filter(s3_key__in=keys).values_list("s3_key", flat=True))
        if keep_referenced
        else set()
    )
    left = [key for key in keys if key not in kept]
    deleted: list[str] = []
    for key in left:
        try:
            default_storage.delete(key)
        except Exception:
            # The row is gone already; `imagegen_reconcile` finds and removes the orphans. The
            # rest is left to it too: a store that stops answering held a task one full client
            # timeout (about 2 minutes) per key, 500 keys a task.
            logger.exception(
                "storage_delete_failed key=%s left_to_reconcile=%d", key, len(left) - len(deleted)
            )
            break
        deleted.append(key)
    _let_go_of_deleted(deleted)


def _let_go_of_deleted(keys: list[str]) -> None:
    """The rows were checked before the deletes, which can take minutes while S3 flaps (the
    client's retries): meanwhile the same uuid may have been generated again into its key, or
    a PATCH pointed an image at it, and the delete then removed that row's new object. Such a
    row is marked failed (`object_missing`), as `imagegen_reconcile --fix` would, rather than
    left succeeded on nothing: the same request generates it again."""
    if not keys:
        return
    try:
        hit = list(
            GeneratedImage.objects.filter(s3_key__in=keys, status__in=FINISHED).values_list(
                "pk", "s3_key"
            )
        )
        for image_id, key in hit:
            if image_mark_missing(image_id=image_id, key=key):
                logger.warning("object_deleted_under_row image=%s key=%s", image_id, key)
    except DatabaseError:
        logger.exception("object_recheck_failed keys=%d: left to imagegen_reconcile", len(keys))


def object_keys(images: Iterable[tuple[str, str, str]]) -> list[str]:
    """The stored objects of images given as (project id, uuid, s3_key): each one's key, and the
    key its generations write to, which a run that lost the row to a takeover may have left."""
    keys = (
        key
        for project_id, uuid, s3_key in images
        for key in (s3_key, image_key(project_id=project_id, uuid=uuid))
    )
    return list(dict.fromkeys(key for key in keys if key))


@transaction.atomic
def image_delete(*, image: GeneratedImage) -> None:
    """Delete an image's row and, after commit, its stored objects.

    The project and then the row are locked first, as claims lock them: a run recording its
    result (attempts) or a storyboard adding the image to a batch (a membership) commits before,
    and the cascade collects what it wrote; a project deletion waits, or comes first.
    """
    Project.objects.lock_for_images(image.project_id)
    locked = GeneratedImage.objects.select_for_update().filter(pk=image.pk).first()
    if locked is None:
        return
    delete_objects_on_commit(object_keys([(locked.project_id, locked.uuid, locked.s3_key)]))
    locked.delete()


# ---------------------------------------------------------------------------------------------
# Reconciling storage with the rows: objects nobody refers to, rows whose object is gone.
# ---------------------------------------------------------------------------------------------
FINISHED = (GeneratedImage.Status.SUCCEEDED, GeneratedImage.Status.FAILED)


@dataclass(frozen=True)
class StorageReport:
    """What `storage_inconsistencies` found: orphan keys, (image id, key) of broken rows, and
    keys that are not UTF-8 text (which no row can hold, so no row refers to them either)."""

    objects: int
    rows: int
    orphans: list[str]
    missing: list[tuple[str, str]]
    misnamed: list[str]


def stored_keys(prefix: str = IMAGES_PREFIX) -> Iterator[str]:
    """Every key under `prefix` in the default storage, walked with `listdir` (S3 or files)."""
    try:
        directories, files = default_storage.listdir(prefix)
    except FileNotFoundError:
        return  # the file system has no such directory yet
    for name in files:
        yield f"{prefix}/{name}"
    for directory in directories:
        yield from stored_keys(f"{prefix}/{directory}")


def storage_inconsistencies() -> StorageReport:
    """Objects under `images/` that no row refers to, and finished rows whose object is missing.

    Rows changed after the listing began are left out: their object may have been written after
    the walk passed its directory. A file whose name is not UTF-8 is reported apart, as
    `misnamed`, not as an orphan.
    """
    listed_at = timezone.now()
    listed = set(stored_keys())
    keys = {key for key in listed if is_text(key)}
    with_key = GeneratedImage.objects.exclude(s3_key="")
    referenced = set(with_key.values_list("s3_key", flat=True))
    rows = with_key.filter(status__in=FINISHED, updated_at__lt=listed_at).order_by("pk")
    checked = list(rows.values_list("pk", "s3_key"))
    return StorageReport(
        objects=len(listed),
        rows=len(checked),
        orphans=sorted(keys - referenced),
        missing=[(pk, key) for pk, key in checked if key not in keys],
        misnamed=sorted(listed - keys),
    )


class OrphanOutcome(enum.Enum):
    DELETED = "deleted"
    KEPT = "kept"  # written within the grace period, or a row refers to it now
    GONE = "gone"  # not there any more (deleted since the listing), or a link to nothing


def orphan_delete(*, key: str, written_before: datetime) -> OrphanOutcome:
    """Delete an object no row refers to if it was last written before `written_before`.

    A generation writes its object before its row commits: the grace period spares those. An
    object that cannot be dated and does not exist (it went after the listing, or is a link to
    nothing) is `GONE`, left as it is; other storage errors propagate.
    """
    if GeneratedImage.objects.filter(s3_key=key).exists():
        return OrphanOutcome.KEPT
    try:
        modified = default_storage.get_modified_time(key)
    except Exception as exc:
        # Each backend says "not found" its own way: the file system with FileNotFoundError (also
        # for a link to nothing, which it says exists), S3 with a 404 ClientError.
        if not isinstance(exc, FileNotFoundError) and default_storage.exists(key):
            raise
        return OrphanOutcome.GONE
    if modified >= written_before:
        return OrphanOutcome.KEPT
    default_storage.delete(key)
    return OrphanOutcome.DELETED


def image_mark_missing(*, image_id: str, key: str) -> bool:
    """Mark a finished row whose object is gone as failed (`object_missing`), so the same uuid
    generates again; returns False when the object is back or the row has moved on."""
    if default_storage.exists(key):
        return False
    marked = GeneratedImage.objects.filter(pk=image_id, s3_key=key, status__in=FINISHED).update(
        status=GeneratedImage.Status.FAILED,
        error_code="object_missing",
        message=f"The stored object {key!r} is missing; send the same request again to "
        "generate a new image.",
        s3_key="",
        image_size_bytes=None,
        width=None,
        height=None,
        updated_at=timezone.now(),
    )
    return marked == 1


def image_regenerate(*, image: GeneratedImage) -> GeneratedImage:
    """Generate a new image for an existing row from its current prompt, style and aspect ratio.

    Works on succeeded and failed rows alike (the stored object is replaced only on success; a
    failed regeneration keeps a succeeded row's image and says so in its message). Raises
    `ProjectGone` or `ImageGone` when either was deleted meanwhile, `GenerationInProgress` when
    the row is being generated right now, `TooManyInFlight` past the owner's cap, then what
    `image_run` raises.
    """
    decision = routing.route(image.visual_prompt, image.art_style)
    with transaction.atomic():
        locked = _lock_image(image, with_owner=True)
        _check_claimable(locked)
        _check_in_flight(locked.user_id)
        previous = (locked.status, locked.s3_key)
        GeneratedImage.objects.filter(pk=locked.pk).update(
            status=GeneratedImage.Status.RUNNING,
            background=False,
            message="",
            error_code="",
            block_reason="",
            **routing_fields(decision),
            started_at=timezone.now(),
            finished_at=None,
            updated_at=timezone.now(),
        )
    image.refresh_from_db()
    try:
        return image_run(image)
    except Exception as error:
        if previous[0] == GeneratedImage.Status.SUCCEEDED:
            reason = error.message if isinstance(error, ServiceError) else "an internal error"
            GeneratedImage.objects.filter(
                pk=image.pk, status=GeneratedImage.Status.FAILED, s3_key=previous[1]
            ).update(
                status=GeneratedImage.Status.SUCCEEDED,
                message=f"Regeneration failed ({reason}); the previous image is kept.",
                updated_at=timezone.now(),
            )
            image.refresh_from_db()
        raise


# ---------------------------------------------------------------------------------------------
# In the background: storyboards, the queue, and the sweep for generations whose worker died.
# ---------------------------------------------------------------------------------------------
LEASE_EXPIRED = "lease_expired"
# Seconds of waiting for a provider's call slot after which a generation's lease starts again.
LEASE_RENEWAL_WAIT = 1.0
QUEUED_MESSAGE = "Queued: the image is being generated in the background."

_provider_slots_lock = threading.Lock()
_provider_slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}


@contextmanager
def provider_slot(name: str) -> Iterator[float]:
    """Hold one of provider `name`'s `IMAGEGEN_PROVIDER_CONCURRENCY` call slots in this process;
    gives the seconds it waited for it.

    A burst (a storyboard on a worker of many threads) waits here instead of tripping the
    vendor's rate limit.
    """
    key = (name, settings.IMAGEGEN_PROVIDER_CONCURRENCY)
    with _provider_slots_lock:
        if key not in _provider_slots:
            _provider_slots[key] = threading.BoundedSemaphore(key[1])
        slots = _provider_slots[key]
    asked = time.monotonic()
    with slots:
        yield time.monotonic() - asked


def images_enqueue(*, image_ids: Sequence[str]) -> None:
    """Queue the generation of pending images, in order, once the current transaction commits.

    Outside a transaction they are queued at once; a rolled-back transaction queues nothing. A
    broker outage does not fail the caller: the first publish that fails (within
    CELERY_TASK_PUBLISH_RETRY_POLICY and the broker's socket timeouts) stops the rest, which
    would each wait out the same outage; one warning is logged, and the rows stay pending until
    `images_sweep_stale` queues them again.
    """
    from imagegen.tasks import generate_image  # the task module calls into this one

    def queue_generations() -> None:
        for queued, image_id in enumerate(image_ids):
            try:
                generate_image.delay(image_id)
            except Exception as exc:
                _publish_failed(exc, f"enqueue_failed queued={queued}", image_ids[queued:])
                return

    if image_ids:
        transaction.on_commit(queue_generations)


def _settle(image: GeneratedImage) -> None:
    """Re-read a queued image once nothing is left to commit, if its task has run already.

    Without a broker (CELERY_TASK_ALWAYS_EAGER) the task runs in-process at commit, so the
    answer must carry the status it reached, not the `pending` it was queued with.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER and not connection.in_atomic_block:
        image.refresh_from_db()


def image_run_task(*, image_id: str) -> GeneratedImage | None:
    """Generate a queued image if this call is the one that moves it from pending to running.

    Returns None, generating nothing, when the image is gone or not pending (another delivery
    of the same task got it first, or it already finished). Raises what `image_run` raises,
    after recording the failure on the row.
    """
    now = timezone.now()
    won = GeneratedImage.objects.filter(pk=image_id, status=GeneratedImage.Status.PENDING).update(
        status=GeneratedImage.Status.RUNNING, started_at=now, finished_at=None, updated_at=now
    )
    image = GeneratedImage.objects.filter(pk=image_id).first() if won else None
    if image is None:
        return None
    return image_run(image)


def image_requeue(*, image_id: str, delay: float) -> bool:
    """Put a failed image back to `pending` before its task is retried in `delay` seconds.

    Returns False, changing nothing, when the image is not failed (anymore).
    """
    return bool(
        GeneratedImage.objects.filter(pk=image_id, status=GeneratedImage.Status.FAILED).update(
            status=GeneratedImage.Status.PENDING,
            message=Concat(Value(f"Retrying in {delay:.0f} s after: "), F("message")),
            finished_at=None,
            updated_at=timezone.now(),
        )
    )


@dataclass(frozen=True)
class BatchItem:
    """One segment of a storyboard, as `POST /image-gen/batch` takes it."""

    visual_prompt: str
    art_style: str
    uuid: str
    model: str = "auto"
    aspect_ratio: str | None = None


@dataclass(frozen=True)
class BatchOutcome:
    batch: ImageBatch
    items: list[GenerationOutcome]


def batch_create(*, user, project, items: Sequence[BatchItem]) -> BatchOutcome:
    """Record a storyboard's images as `pending` and queue one task per image after commit.

    Images already generated for the same `(project, uuid)` and prompt are replays: reported,
    not generated again. Every image of the storyboard, replays included, is an item of the new
    batch (and stays an item of any earlier one); the images it queues point at it as their
    `batch`. All or nothing: raises what `image_claim` raises for the first item it refuses (the
    message and `index` name it), and then nothing is recorded or queued.
    """
    with transaction.atomic():
        if not Project.objects.lock_for_images(project.pk):
            raise ProjectGone
        _lock_owner(user)
        batch = ImageBatch.objects.create(user=user, project=project)
        created = _create_pending(user=user, project=project, items=items)
        if created:
            _check_queued(user, adding=0)
        outcomes = []
        for index, item in enumerate(items):
            if item.uuid in created:
                outcomes.append(GenerationOutcome(created[item.uuid]))
                continue
            try:
                outcomes.append(
                    image_claim(
                        user=user,
                        project=project,
                        status=GeneratedImage.Status.PENDING,
                        **asdict(item),
                    )
                )
            except ServiceError as exc:
                raise type(exc)(
                    f"items[{index}]: {exc.message}", headers=exc.headers, index=index, **exc.extra
                ) from exc
        BatchMembership.objects.bulk_create(
            BatchMembership(batch=batch, image=outcome.image, position=position)
            for position, outcome in enumerate(outcomes)
        )
        queued = [outcome.image for outcome in outcomes if not outcome.replayed]
        GeneratedImage.objects.filter(pk__in=[image.pk for image in queued]).update(batch=batch)
        for image in queued:
            image.batch = batch
        images_enqueue(image_ids=[image.pk for image in queued])
    for outcome in outcomes:
        _settle(outcome.image)
    return BatchOutcome(batch=batch, items=outcomes)


def _create_pending(*, user, project, items: Sequence[BatchItem]) -> dict[str, GeneratedImage]:
    """Insert the items whose uuid the project does not hold yet as `pending`, in one statement;
    return them by uuid. The others (replays, conflicts, retries) are `image_claim`'s.

    A storyboard is mostly new segments: one insert instead of a claim each (a savepoint, a
    locking read and an insert) took a 200-item batch from about 800 round trips to a few. If a
    concurrent request inserts one of the uuids first, nothing is inserted here, and every item
    goes through `image_claim`, which settles such races.
    """
    uuids = {item.uuid for item in items}
    keys = {image_key(project_id=project.pk, uuid=uuid): uuid for uuid in uuids}
    # The items' rows, and images whose s3_key was changed to an item's key (which
    # `image_claim` refuses).
    taken = set()
    for uuid, s3_key in GeneratedImage.objects.filter(
        Q(uuid__in=uuids) | Q(s3_key__in=keys), project=project
    ).values_list("uuid", "s3_key"):
        taken.update(name for name in (uuid, keys.get(s3_key)) if name in uuids)
    rows = [
        GeneratedImage(
            project=project,
            user=user,
            uuid=item.uuid,
            **_claim_fields(
                visual_prompt=item.visual_prompt,
                art_style=item.art_style,
                aspect_ratio=item.aspect_ratio or settings.IMAGEGEN_DEFAULT_ASPECT_RATIO,
                model=item.model,
                status=GeneratedImage.Status.PENDING,
            ),
        )
        for item in items
        if item.uuid not in taken
    ]
    if len({row.uuid for row in rows}) != len(rows):
        return {}  # a uuid twice: image_claim refuses the second as it always has
    try:
        with transaction.atomic():
            GeneratedImage.objects.bulk_create(rows)
    except IntegrityError:
        return {}
    return {row.uuid: row for row in rows}


@dataclass(frozen=True)
class BatchProgress:
    """Where a storyboard stands: images per status and what they cost so far."""

    counts: dict[str, int]
    cost_usd: Decimal

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> bool:
        """True once no image is pending or running."""
        active = (GeneratedImage.Status.PENDING, GeneratedImage.Status.RUNNING)
        return not any(self.counts[status] for status in active)


def batch_progress(*, batch: ImageBatch) -> BatchProgress:
    """Counts per status and the cost of a batch's images, in one query."""
    totals = GeneratedImage.objects.filter(memberships__batch=batch).aggregate(
        cost=Sum("cost_usd"),
        **{status: Count("id", filter=Q(status=status)) for status in GeneratedImage.Status.values},
    )
    cost = totals.pop("cost") or Decimal(0)
    return BatchProgress(counts=totals, cost_usd=cost)


@dataclass(frozen=True)
class SweepResult:
    requeued: list[str]
    failed: list[str]


def images_sweep_stale() -> SweepResult:
    """Settle generations left behind by a worker that died, so none stays active forever.

    Past `IMAGEGEN_RUNNING_LEASE`: a `running` image is queued again once (marked
    `lease_expired`), and failed if it runs out of its lease a second time; a `pending` image
    whose task was lost (e.g. the broker was down) is queued again.
    """
    Status = GeneratedImage.Status
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.IMAGEGEN_RUNNING_LEASE)
    stale_running = GeneratedImage.objects.filter(status=Status.RUNNING).filter(
        Q(started_at__lt=cutoff) | Q(started_at__isnull=True, updated_at__lt=cutoff)
    )
    with transaction.atomic():
        failed = list(
            stale_running.filter(error_code=LEASE_EXPIRED)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        stale_running.filter(pk__in=failed).update(
            status=Status.FAILED,
            message="The generation was abandoned twice by its worker (it ran past the "
            f"{settings.IMAGEGEN_RUNNING_LEASE} s lease); submit it again.",
            finished_at=now,
            updated_at=now,
        )
        requeued = list(
            stale_running.exclude(error_code=LEASE_EXPIRED)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        stale_running.filter(pk__in=requeued).update(
            status=Status.PENDING,
            background=True,
            error_code=LEASE_EXPIRED,
            message="Queued again: the worker generating it stopped answering.",
            started_at=None,
            updated_at=now,
        )
        lost = list(
            GeneratedImage.objects.filter(status=Status.PENDING, updated_at__lt=cutoff)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        GeneratedImage.objects.filter(pk__in=lost, status=Status.PENDING).update(updated_at=now)
        images_enqueue(image_ids=[*requeued, *lost])
    if failed or requeued or lost:
        logger.warning(
            "sweep_stale requeued=%d failed=%d lost_pending=%d",
            len(requeued),
            len(failed),
            len(lost),
        )
    return SweepResult(requeued=[*requeued, *lost], failed=failed)
