"""django-storages' S3 backend: one boto3 resource per process, one PUT per image."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from boto3.resources.base import ServiceResource
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.core.files import File
from storages.backends.s3 import S3Storage as BaseS3Storage
from storages.utils import clean_name


class S3Storage(BaseS3Storage):
    """S3 storage whose threads, and instances, share one boto3 resource (and so one client).

    django-storages makes each thread its own resource from a new session, which loads botocore's
    S3 model again: 60-150 ms of CPU for every fresh thread of a gunicorn or Celery worker, 128
    of them at once in a burst (and threads that reach `default_storage` together each make their
    own instance). The backend only ever reaches S3 through the resource's client (`meta.client`,
    thread-safe) and new `Object`s, and already shares its `bucket` between threads, so one
    resource per set of connection settings serves them all; it is made once, under a lock.
    """

    _connections_lock: ClassVar[threading.Lock] = threading.Lock()
    _shared_connections: ClassVar[dict[tuple, ServiceResource]] = {}

    def _connection_key(self) -> tuple:
        config = self.client_config
        return (
            self.endpoint_url,
            self.region_name,
            self.access_key,
            self.secret_key,
            self.security_token,
            self.session_profile,
            self.use_ssl,
            self.verify,
            repr(sorted(getattr(config, "_user_provided_options", {}).items())),
        )

    def _shared(self, made: dict[tuple, Any], make: Callable[[], Any]) -> Any:
        """What `make` makes for this store's connection settings, made once per process."""
        key = self._connection_key()
        value = made.get(key)
        if value is None:
            with self._connections_lock:
                value = made.get(key)
                if value is None:
                    value = made[key] = make()
        return value

    @property
    def connection(self) -> ServiceResource:
        return self._shared(self._shared_connections, lambda: super(S3Storage, self).connection)

    def holds(self, name: str, data: bytes) -> bool:
        """Whether the object at `name` is `data` (its ETag is the MD5 of a single-part put): a
        put whose answer was lost (a connection closed or timed out after the body was sent)
        may have been stored all the same. False when that cannot be told."""
        key = self._normalize_name(clean_name(name))
        try:
            # The probe's client: a store that stopped answering has held the put long enough.
            head = self._probe_client().head_object(Bucket=self.bucket_name, Key=key)
        except (BotoCoreError, ClientError):
            return False
        return head.get("ETag", "").strip('"') == hashlib.md5(data).hexdigest()  # noqa: S324

    # A health probe must answer within seconds: one try, short timeouts.
    _probe_clients: ClassVar[dict[tuple, object]] = {}
    PROBE_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"total_max_attempts": 1})

    def probe(self, name: str) -> None:
        """List `name` once, with the probe's short timeouts: raises when the bucket is missing,
        refuses our credentials or does not answer in time; writes nothing."""
        self._probe_client().list_objects_v2(
            Bucket=self.bucket_name, Prefix=self._normalize_name(clean_name(name)), MaxKeys=1
        )

    def _probe_client(self):
        """A client of this store's settings with the probe's short timeouts, one per process."""
        return self._shared(
            self._probe_clients,
            lambda: self._create_session().client(
                "s3",
                region_name=self.region_name,
                use_ssl=self.use_ssl,
                endpoint_url=self.endpoint_url,
                config=self.client_config.merge(self.PROBE_CONFIG),
                verify=self.verify,
            ),
        )

    def _save(self, name: str, content: File) -> str:
        """One PutObject for content under the multipart threshold (every image): s3transfer's
        transfer manager, which the base class goes through, doubles the CPU of an upload."""
        size = getattr(content, "size", None)
        if self.gzip or size is None or size >= self.transfer_config.multipart_threshold:
            return super()._save(name, content)
        cleaned_name = clean_name(name)
        key = self._normalize_name(cleaned_name)
        params = self._get_write_parameters(key, content)
        content.seek(0)
        body = content.read()
        self.connection.meta.client.put_object(
            Bucket=self.bucket_name,
            Key=key,
            Body=body.encode() if isinstance(body, str) else body,
            **params,
        )
        return cleaned_name
