"""django-storages' S3 backend: one boto3 resource per process, one PUT per image."""

from __future__ import annotations

import threading
from typing import ClassVar

from boto3.resources.base import ServiceResource
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

    @property
    def connection(self) -> ServiceResource:
        key = self._connection_key()
        connection = self._shared_connections.get(key)
        if connection is None:
            with self._connections_lock:
                connection = self._shared_connections.get(key)
                if connection is None:
                    connection = self._shared_connections[key] = super().connection
        return connection

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
