"""Domain failures of image generation, each with its HTTP status and stable code."""

from rest_framework import status

from config.exceptions import ServiceError


class ImageConflict(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    code = "uuid_conflict"


class ProjectGone(ServiceError):
    """The project asked for is not the caller's, or was deleted while the request was on its
    way; named when its id is given."""

    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"

    def __init__(self, project_id: str | None = None) -> None:
        what = "it" if project_id is None else f"project {project_id!r}"
        super().__init__(f"Not found: {what} does not exist or you do not have access to it.")


class ImageGone(ServiceError):
    """The image was deleted while the request was on its way (any other 404 says the same)."""

    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"

    def __init__(self) -> None:
        super().__init__("Not found: it does not exist or you do not have access to it.")


class ImageSuperseded(ServiceError):
    """The row was deleted or taken over while its image was being generated."""

    status_code = status.HTTP_409_CONFLICT
    code = "image_superseded"


class GenerationInProgress(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    code = "in_progress"


class TooManyInFlight(ServiceError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    code = "too_many_in_flight"


class TooManyQueued(ServiceError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    code = "too_many_queued"


class ContentRefused(ServiceError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "content_blocked"


class NoImageDrawn(ServiceError):
    """Every provider answered this prompt without an image, for no policy reason."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "no_image"


class ProvidersFailed(ServiceError):
    status_code = status.HTTP_502_BAD_GATEWAY
    code = "providers_failed"


class ProvidersTimedOut(ServiceError):
    status_code = status.HTTP_504_GATEWAY_TIMEOUT
    code = "providers_timed_out"


class StorageUnavailable(ServiceError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "storage_unavailable"


class ImageNotGenerated(ServiceError):
    """A change that needs a generated image (a new `s3_key`) on one that has none yet."""

    status_code = status.HTTP_409_CONFLICT
    code = "not_generated"


class InvalidStorageKey(ServiceError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid_s3_key"
