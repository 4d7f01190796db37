"""What every load benchmark needs: its own database, loopback services it starts and stops itself.

A benchmark opens `Harness()` as a context manager, asks it for the services it needs (moto S3,
the fake vendors, gunicorn, a Celery worker), and everything is stopped on the way out. All of
it listens on 127.0.0.1 on free ports; the database is this run's own (`imagegen_bench_<pid>`),
migrated afresh and dropped at the end. `BENCH_POSTGRES` (the server), `BENCH_DATABASE` and
`BENCH_BROKER_URL` (Redis db 4 by default, emptied by the storyboard bench: give concurrent runs
their own) override them.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
PG_URL = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
DATABASE = os.environ.get("BENCH_DATABASE", f"imagegen_bench_{os.getpid()}")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/4")
BUCKET = "imagegen-bench"
MOTO_KEY = "bench"  # moto accepts any key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {seconds:.0f} s")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def image_arguments(parser: argparse.ArgumentParser) -> None:
    """`--size` and `--content` of the fake vendors' images, as every load benchmark takes them."""
    parser.add_argument("--size", default="1024x1024", help="the fake vendors' image size, WxH")
    parser.add_argument(
        "--content",
        choices=("flat", "photo"),
        default="flat",
        help="flat: one colour (quick to decode); photo: decodes about as a photograph does",
    )


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


class TreeSampler:
    """Samples the RSS of a process and its children (summed) and the PostgreSQL connections to
    the bench database, in a background thread, keeping the peaks."""

    def __init__(self, pid: int, *, interval: float = 0.02) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_rss = 0
        self.peak_connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self, processes: list[psutil.Process]) -> int:
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
            for sample in itertools.count():
                if self._stop.is_set():
                    break
                if sample % 50 == 0:
                    # Listing children reads every process on the machine: not at every sample,
                    # or the sampler takes CPU from what it measures.
                    processes = [self.root, *self.root.children(recursive=True)]
                self.peak_rss = max(self.peak_rss, self._rss(processes))
                count = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (DATABASE,)
                ).fetchone()[0]
                self.peak_connections = max(self.peak_connections, count)
                time.sleep(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.root)


def tree_cpu_seconds(root: psutil.Process) -> float:
    """User and system CPU seconds of a process and its children."""
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


class CpuLedger:
    """Where the machine's CPU went between `__enter__` and `__exit__`: each process the harness
    started (with its children), PostgreSQL (every `postgres` process, those started meanwhile
    included) and this process (the client), in seconds. The parts share the machine's cores,
    so together they explain a wall time that one part's CPU alone does not."""

    def __init__(self, harness: Harness) -> None:
        self.started = {
            name: psutil.Process(process.pid) for name, process in harness.processes.items()
        }
        self.seconds: dict[str, float] = {}

    @staticmethod
    def _postgres() -> dict[int, float]:
        seconds = {}
        for process in psutil.process_iter(["name"]):
            if process.info["name"] == "postgres":
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    seconds[process.pid] = times.user + times.system
        return seconds

    def _read(self) -> tuple[dict[str, float], dict[int, float]]:
        parts = {name: tree_cpu_seconds(process) for name, process in self.started.items()}
        times = psutil.Process().cpu_times()  # without the children: they are the parts above
        parts["client (this process)"] = times.user + times.system
        return parts, self._postgres()

    def __enter__(self) -> CpuLedger:
        self._before = self._read()
        return self

    def __exit__(self, *exc_info: object) -> None:
        (parts, postgres), (parts_before, postgres_before) = self._read(), self._before
        self.seconds = {name: parts[name] - parts_before[name] for name in parts}
        self.seconds["postgres"] = sum(
            seconds - postgres_before.get(pid, 0.0) for pid, seconds in postgres.items()
        )

    def report(self) -> str:
        total = sum(self.seconds.values())
        parts = ", ".join(f"{name} {seconds:.2f}" for name, seconds in self.seconds.items())
        return f"machine CPU {total:.2f} s on {os.cpu_count()} cores: {parts}"


class Harness:
    """Owns the bench database and every process a benchmark starts."""

    def __init__(self) -> None:
        self.stack = contextlib.ExitStack()
        self.logs = Path(tempfile.mkdtemp(prefix="imagegen-bench-"))
        self.env: dict[str, str] = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
            "DATABASE_URL": f"{PG_URL}/{DATABASE}",
            "IMAGEGEN_THROTTLE_RATE": "1000000/min",
            # Plain HTTP on loopback: no proxy in front to end TLS.
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "LOG_LEVEL": "WARNING",
        }
        self.env.pop("CELERY_BROKER_URL", None)
        self.processes: dict[str, subprocess.Popen] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stack.close()
        if exc_info[0] is None:
            shutil.rmtree(self.logs, ignore_errors=True)
        else:
            print(f"(process logs kept in {self.logs})", file=sys.stderr)

    def spawn(self, name: str, command: list[str], **kwargs: Any) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )
        self.stack.callback(self._stop, process, log)
        self.processes[name] = process
        return process

    @staticmethod
    def _stop(process: subprocess.Popen, log: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()

    def log_tail(self, name: str, lines: int = 30) -> str:
        return "\n".join((self.logs / f"{name}.log").read_text().splitlines()[-lines:])

    # -- services ------------------------------------------------------------------------------
    def database(self) -> None:
        """A fresh, migrated bench database (dropped again at the end)."""
        import psycopg

        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        # Dropped however the run ends, a failed migration included: names are per run.
        self.stack.callback(self._drop_database)
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--no-input", "--skip-checks", "-v", "0"],
            cwd=REPO_ROOT,
            env=self.env,
            check=True,
        )

    @staticmethod
    def _drop_database() -> None:
        import psycopg
        from django.conf import settings

        if settings.configured:
            from django.db import connections

            connections.close_all()
        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')

    def s3(self) -> str:
        """moto S3 in its own process, with the bench bucket; storage settings point at it."""
        port = free_port()
        self.spawn("moto", [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
        wait_until(lambda: port_open(port), seconds=30, what="moto")
        endpoint = f"http://127.0.0.1:{port}"
        self.env.update(
            AWS_STORAGE_BUCKET_NAME=BUCKET,
            AWS_S3_ENDPOINT_URL=endpoint,
            AWS_S3_REGION_NAME="us-east-1",
            AWS_ACCESS_KEY_ID=MOTO_KEY,
            AWS_SECRET_ACCESS_KEY=MOTO_KEY,
        )
        import boto3

        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=MOTO_KEY,
            aws_secret_access_key=MOTO_KEY,
        ).create_bucket(Bucket=BUCKET)
        return endpoint

    def vendors(self, *, latency: float, size: str = "1024x1024", content: str = "flat") -> str:
        """The loopback fake vendors in their own process; provider settings point at them."""
        port = free_port()
        self.spawn(
            "vendors",
            [PYTHON, "-m", "imagegen.testing.fake_vendors", "--port", str(port)]
            + ["--latency", str(latency), "--size", size, "--content", content],
        )
        wait_until(lambda: port_open(port), seconds=30, what="the fake vendors")
        base = f"http://127.0.0.1:{port}"
        self.env.update(
            RECRAFT_API_KEY="bench-recraft-key",
            RECRAFT_API_URL=f"{base}/recraft/v1",
            GEMINI_API_KEY="bench-gemini-key",
            GEMINI_API_URL=f"{base}/gemini/v1beta",
        )
        return base

    def gunicorn(self, **settings: str) -> tuple[str, subprocess.Popen]:
        """gunicorn with the repo's gunicorn.conf.py (GUNICORN_* overrides in `settings`)."""
        port = free_port()
        self.env.update(GUNICORN_BIND=f"127.0.0.1:{port}", **settings)
        process = self.spawn(
            "gunicorn", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "config.wsgi"]
        )
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: requests.get(f"{url}/image-gen", timeout=1).status_code == 401,
            seconds=60,
            what="gunicorn",
        )
        return url, process

    def celery_worker(self, *, concurrency: int | None = None) -> subprocess.Popen:
        """One `celery -A config worker --pool threads` on the Redis bench database (flushed);
        its concurrency is CELERY_WORKER_CONCURRENCY unless given."""
        import redis

        redis.Redis.from_url(BROKER_URL).flushdb()
        self.env["CELERY_BROKER_URL"] = BROKER_URL
        command = [str(BIN / "celery"), "-A", "config", "worker", "--pool", "threads"]
        if concurrency is not None:
            command += ["--concurrency", str(concurrency)]
        process = self.spawn("celery", [*command, "--loglevel", "INFO", "--without-gossip"])
        wait_until(
            lambda: " ready." in (self.logs / "celery.log").read_text(),
            seconds=60,
            what="the Celery worker",
        )
        return process

    # -- this process as a Django client of the bench database ------------------------------
    def django(self) -> None:
        """Set Django up in this process with the same settings the servers use."""
        os.environ.update(self.env)
        sys.path.insert(0, str(REPO_ROOT))
        import django

        django.setup()

    @staticmethod
    def owner(name: str) -> tuple[Any, Any, str]:
        """A user, a project of theirs and a bearer token for them."""
        from rest_framework_simplejwt.tokens import RefreshToken

        from accounts.models import User
        from projects.models import Project

        user = User.objects.create_user(username=name, password=secrets.token_urlsafe(16))
        project = Project.objects.create(owner=user, name=f"{name}'s storyboard")
        return user, project, f"Bearer {RefreshToken.for_user(user).access_token}"
