"""gunicorn: `gunicorn -c gunicorn.conf.py config.wsgi` holds many slow vendor calls at once.

A generation waits 10-40 s on its vendor with the database connection already released, so a
request costs a parked thread (~50 KB), not a process: gthread workers, one per core, each with
many threads. Every value can be overridden from the environment (GUNICORN_*).
https://docs.gunicorn.org/en/stable/settings.html
"""

from __future__ import annotations

import gc
import multiprocessing
import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = _int("GUNICORN_WORKERS", multiprocessing.cpu_count())
# Requests in flight per worker; keep AWS_MAX_POOL_CONNECTIONS (S3 connections) at least as high.
threads = _int("GUNICORN_THREADS", 128)
# Connections a worker accepts beyond its busy threads before the kernel queues the rest.
worker_connections = _int("GUNICORN_WORKER_CONNECTIONS", 1000)
backlog = _int("GUNICORN_BACKLOG", 2048)
# A request may take attempts x provider timeout x providers + backoff; the worker is only
# restarted when it stops answering its master for this long.
timeout = _int("GUNICORN_TIMEOUT", 600)
# On SIGTERM, and when a worker is recycled (max_requests), requests in flight get this long to
# finish: as long as one may take, or they were cut off with no answer and their rows stayed
# `running` until the lease ran out. A supervisor's stop timeout must exceed it.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", timeout)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle workers now and then so a slow leak cannot grow without bound.
max_requests = _int("GUNICORN_MAX_REQUESTS", 10000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 1000)
# Heartbeat files in memory: a busy disk must not look like a hung worker.
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", "/dev/shm")  # noqa: S108
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")


def post_worker_init(worker: object) -> None:
    """Warm the worker up (config/warmup.py), then move the loaded application's objects out of
    the garbage collector's sight.

    Every full collection otherwise walks all of Django's long-lived objects; under load that
    cost a list page about a millisecond (bench/lists.py).
    https://docs.python.org/3/library/gc.html#gc.freeze
    """
    from config.warmup import warm_up

    warm_up()
    gc.freeze()
