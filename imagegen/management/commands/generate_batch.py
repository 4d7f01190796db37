"""`manage.py generate_batch`: a whole storyboard from a CSV or JSON file, several at a time."""

from __future__ import annotations

import csv
import io
import json
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.db import connections
from django.utils.text import Truncator

from config.commands import OperatorCommand
from config.exceptions import ServiceError
from config.text import shown
from imagegen.exceptions import GenerationInProgress, ImageConflict, ImageSuperseded
from imagegen.management.generation import generate, get_project, validate_item
from imagegen.management.tables import format_table
from imagegen.models import GeneratedImage
from projects.models import Project

logger = logging.getLogger(__name__)

# A storyboard of IMAGEGEN_BATCH_MAX_ITEMS (200) items of the longest prompts and styles, every
# character written as a JSON escape, takes under 2.5 MB: anything larger is not one.
MAX_FILE_BYTES = 4 * 2**20
REQUIRED = ("visual_prompt", "art_style", "uuid")
OPTIONAL = ("model", "aspect_ratio")
BAR_WIDTH = 24


@dataclass(frozen=True)
class ItemResult:
    uuid: str
    result: str  # generated, skipped (already generated: a replay) or failed
    message: str
    seconds: float
    # The row this item generated, replayed or recorded its failure on; None when it failed on
    # another request's image under its uuid (or before any row).
    image_id: str | None = None
    # False for a uuid that holds another prompt's image: a re-run fails it the same way.
    retryable: bool = True


# Refusals that name another request's image: a different prompt under the uuid, a generation
# in progress or queued, a run that took the row over. Its route, size and cost are not the item's.
OTHER_REQUESTS_IMAGE = (ImageConflict, GenerationInProgress, ImageSuperseded)


class Command(OperatorCommand):
    help = (
        "Generate every image of a storyboard for a project, as its owner, through the same "
        "pipeline as POST /image-gen. FILE is a CSV with the header "
        "visual_prompt,art_style,uuid[,model][,aspect_ratio] or a JSON array of objects with "
        "those keys (see examples/storyboard.csv), of at most IMAGEGEN_BATCH_MAX_ITEMS items "
        "(as POST /image-gen/batch) and 4 MiB. The whole file is validated first: one bad "
        "row and nothing is generated. Prints a progress line per finished item and a summary "
        "table; exits non-zero when any item failed. Re-running the same file skips the items "
        "that already succeeded and retries the others."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="The storyboard: a .csv or .json file.")
        parser.add_argument("--project", required=True, help="The project id (as in the API).")
        parser.add_argument(
            "--concurrency",
            type=int,
            default=4,
            help="Images generated at once, each in its own thread (default 4; at most "
            "IMAGEGEN_MAX_IN_FLIGHT_PER_USER).",
        )
        parser.add_argument(
            "--format",
            choices=("csv", "json"),
            help="The file's format when its extension does not say (.csv or .json).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        concurrency = options["concurrency"]
        cap = settings.IMAGEGEN_MAX_IN_FLIGHT_PER_USER
        if not 1 <= concurrency <= cap:
            raise CommandError(f"--concurrency must be between 1 and {cap}, not {concurrency}.")
        project = get_project(options["project"])
        path = options["file"]
        items = read_items(path, options["format"] or path.suffix.lower().lstrip("."))
        validated = validate_items(items, project=project)

        self.stdout.write(
            f"Generating {len(validated)} images for project {project.name!r} ({project.pk}), "
            f"{concurrency} at a time."
        )
        started = time.monotonic()
        try:
            results = self.run(validated, project=project, concurrency=concurrency)
        except BatchInterrupted as interrupted:
            finished = interrupted.finished
            self.summarise(finished, project=project, seconds=time.monotonic() - started)
            raise CommandError(
                f"Interrupted: {len(finished)} of {len(validated)} items finished and "
                f"{len(validated) - len(finished)} were not started. Re-run the same command to "
                "continue; the items that succeeded are skipped.",
                returncode=130,
            ) from None
        self.summarise(results, project=project, seconds=time.monotonic() - started)
        failed = [result for result in results if result.result == "failed"]
        if failed:
            raise CommandError(failure_message(failed, total=len(results)))

    def run(
        self, items: list[dict[str, Any]], *, project: Project, concurrency: int
    ) -> list[ItemResult]:
        """Generate the items on a thread pool, in file order; a progress line per finished one.

        Ctrl-C starts no further item (each is a paid vendor call): the ones in progress finish
        and are recorded, then `BatchInterrupted` carries what finished. A second Ctrl-C stops
        the waiting and the summary with a `CommandError` (status 130); the calls already made
        still end before the process does, unless a third Ctrl-C ends it at once (their rows
        stay `running` until their lease runs out).
        """
        results: list[ItemResult | None] = [None] * len(items)
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix="generate_batch")
        futures: dict[Future, int] = {}

        def collect(finishing: Iterable[Future]) -> None:
            for future in as_completed(finishing):
                if results[futures[future]] is None:
                    results[futures[future]] = future.result()
                    done = sum(result is not None for result in results)
                    self.stdout.write(progress_line(done, len(items), results[futures[future]]))

        wait_for_pool = True
        try:
            # Queued inside the try: a Ctrl-C while queueing is answered as any other.
            for index, item in enumerate(items):
                futures[pool.submit(generate_one, item, project)] = index
            collect(futures)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            self.stderr.write(
                "Interrupted: no further item starts; waiting for the ones in progress "
                "(Ctrl-C again to skip the summary)."
            )
            try:
                # A cancelled future never completes: wait only for those that started.
                collect([future for future in futures if not future.cancelled()])
            except KeyboardInterrupt:
                # Say so now: the process waits for the calls in progress when it exits, and
                # Python would answer a third Ctrl-C there with a traceback from its exit code.
                wait_for_pool = False
                if self._called_from_command_line:  # not a shell's or a program's own Ctrl-C
                    restore_default_interrupt()
                not_started = len(items) - sum(not future.cancelled() for future in futures)
                raise CommandError(
                    f"Interrupted again: the summary is skipped, and {not_started} of "
                    f"{len(items)} items were not started. Re-run the same command to continue; "
                    "the items that succeeded are skipped. Ctrl-C once more to stop without "
                    "waiting for the calls in progress.",
                    returncode=130,
                ) from None
            raise BatchInterrupted([result for result in results if result is not None]) from None
        finally:
            pool.shutdown(wait=wait_for_pool)
        return results

    def summarise(self, results: list[ItemResult], *, project: Project, seconds: float) -> None:
        rows = {
            image.pk: image
            for image in GeneratedImage.objects.filter(
                project=project, pk__in=[result.image_id for result in results if result.image_id]
            )
        }
        table = [("uuid", "result", "route", "bytes", "cost USD", "seconds", "message")]
        for result in results:
            table.append(
                (
                    result.uuid,
                    result.result,
                    *image_cells(rows.get(result.image_id)),
                    f"{result.seconds:.1f}",
                    Truncator(result.message).chars(70),
                )
            )
        self.stdout.write("")
        for line in format_table(table, right_aligned=(3, 4, 5)):
            self.stdout.write(line)
        counts = Counter(result.result for result in results)
        cost = sum((image.cost_usd for image in rows.values()), Decimal(0))
        summary = (
            f"{len(results)} items: {counts['generated']} generated, {counts['skipped']} "
            f"already done (skipped), {counts['failed']} failed in {seconds:.1f} s; "
            f"these images have cost ${cost:.4f} so far."
        )
        style = self.style.ERROR if counts["failed"] else self.style.SUCCESS
        self.stdout.write("")
        self.stdout.write(style(summary))
        for result in results:
            if result.result == "failed":
                self.stdout.write(f"  {result.uuid}: {result.message}")


def failure_message(failed: list[ItemResult], *, total: int) -> str:
    """What to do about the failed items: re-run for most, a new uuid for a conflict."""
    message = f"{len(failed)} of {total} items failed (see above)."
    conflicts = [result.uuid for result in failed if not result.retryable]
    if len(conflicts) < len(failed):
        message += " Re-run the same command to retry them; the items that succeeded are skipped."
    if conflicts:
        message += (
            f" {len(conflicts)} of them ({', '.join(conflicts)}) use a uuid that holds an image "
            "of another prompt: a re-run fails them again; give them new uuids, or PATCH those "
            "images."
        )
    return message


def restore_default_interrupt() -> None:
    """Let the next Ctrl-C end the process at once, as the system does by default."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_DFL)


def image_cells(image: GeneratedImage | None) -> tuple[str, str, str]:
    """Route, size and cost so far of an item's row (blank when it has none)."""
    if image is None:
        return ("", "", "")
    return (image.model, str(image.image_size_bytes or ""), f"{image.cost_usd:.6f}")


def read_items(path: Path, file_format: str) -> list[dict[str, Any]]:
    """The file's items as dicts, or a `CommandError` that says what to fix."""
    if file_format not in ("csv", "json"):
        raise CommandError(f"Cannot tell the format of {path}: name it .csv or .json, or --format.")
    try:
        text = read_text(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from exc
    file = io.StringIO(text, newline="")
    cap = settings.IMAGEGEN_BATCH_MAX_ITEMS
    # A CSV is read row by row: the rows past the cap are never made.
    items = list(islice(read_csv(file) if file_format == "csv" else read_json(file), cap + 1))
    if not items:
        raise CommandError(f"{path} holds no items.")
    if len(items) > cap:
        raise CommandError(
            f"{path} holds more than {cap} items, the most a batch takes "
            "(IMAGEGEN_BATCH_MAX_ITEMS, as for POST /image-gen/batch). Split the storyboard, or "
            "raise the setting for this run."
        )
    return items


def read_text(path: Path) -> bytes:
    """The file's bytes, at most `MAX_FILE_BYTES` of them, or a `CommandError` saying why not."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise CommandError(f"No such file: {path}") from exc
    except IsADirectoryError as exc:
        raise CommandError(f"{path} is a directory; give the storyboard file.") from exc
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    if len(data) > MAX_FILE_BYTES:
        raise CommandError(
            f"{path} is larger than {MAX_FILE_BYTES // 2**20} MiB, far more than a storyboard: "
            "check the file, or split it."
        )
    return data


def read_csv(file: TextIO) -> Iterator[dict[str, Any]]:
    reader = csv.DictReader(file, strict=True)
    # The line a record starts on: a quoted cell may span lines, and an unterminated quote is
    # only noticed at the end of the file.
    start = 1
    try:
        header = [name.strip() for name in reader.fieldnames or ()]
        check_header(header)
        reader.fieldnames = header
        start = reader.line_num + 1
        for row in reader:
            if None in row or None in row.values():
                raise CommandError(
                    f"The row at line {start} does not have {len(header)} cells, like the header."
                )
            # An empty optional cell means "the default".
            yield {key: value for key, value in row.items() if value or key in REQUIRED}
            start = reader.line_num + 1
    except csv.Error as exc:
        raise CommandError(f"Malformed CSV in the row at line {start}: {exc}") from exc


def read_json(file: TextIO) -> list[dict[str, Any]]:
    try:
        data = json.load(file)
    except (ValueError, RecursionError) as exc:  # nested too deep to read: not a storyboard
        raise CommandError(f"Invalid JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise CommandError(
            'The JSON must be an array of objects (or {"items": [...]}), each with '
            f"{', '.join(REQUIRED)} and optionally {', '.join(OPTIONAL)}."
        )
    for number, item in enumerate(data, start=1):
        unknown = sorted(set(item) - {*REQUIRED, *OPTIONAL})
        if unknown:
            raise CommandError(
                f"Item {number} has unknown keys: {listed([shown(key) for key in unknown])}."
            )
    return data


def check_header(header: list[str]) -> None:
    missing = [name for name in REQUIRED if name not in header]
    unknown = [name for name in header if name not in (*REQUIRED, *OPTIONAL)]
    if missing or unknown or len(set(header)) != len(header):
        unknown_names = listed([Truncator(name).chars(30) for name in unknown])
        raise CommandError(
            f"The CSV header is {Truncator(','.join(header)).chars(80) or '(empty)'}; it needs "
            f"{','.join(REQUIRED)} and may add {','.join(OPTIONAL)}, each once"
            + (f" (missing: {', '.join(missing)})" if missing else "")
            + (f" (unknown: {unknown_names})" if unknown else "")
            + "."
        )


def listed(names: list[str], most: int = 5) -> str:
    """Names from the file, already clipped, as a message lists them: the first `most` only."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def validate_items(items: list[dict[str, Any]], *, project: Project) -> list[dict[str, Any]]:
    """Every item validated as the API would; all problems reported at once, nothing generated."""
    validated, problems, seen = [], [], set()
    for number, item in enumerate(items, start=1):
        try:
            data = validate_item(item, project=project)
        except CommandError as exc:
            problems.append(f"  item {number} (uuid {shown(item.get('uuid'))}): {exc}")
            continue
        if data["uuid"] in seen:
            problems.append(f"  item {number}: uuid {data['uuid']!r} appears more than once.")
        seen.add(data["uuid"])
        validated.append(data)
    if problems:
        raise CommandError(
            f"{len(problems)} of {len(items)} items are invalid; nothing was generated:\n"
            + "\n".join(problems)
        )
    return validated


class BatchInterrupted(Exception):
    """Ctrl-C stopped a batch; `finished` holds the results of the items that ran."""

    def __init__(self, finished: list[ItemResult]) -> None:
        super().__init__(f"{len(finished)} items finished")
        self.finished = finished


def generate_one(item: dict[str, Any], project: Project) -> ItemResult:
    """One item on a worker thread; its outcome, never an exception (the batch goes on)."""
    started, image_id = time.monotonic(), None
    retryable = True
    try:
        outcome = generate(item, project=project)
    except OTHER_REQUESTS_IMAGE as exc:
        result, message, retryable = "failed", exc.message, not isinstance(exc, ImageConflict)
    except ServiceError as exc:
        result, message, image_id = "failed", exc.message, exc.extra.get("id")
    except Exception as exc:
        # A bug must not lose the other items' results: log it, report the item as failed.
        logger.exception("generate_batch item failed uuid=%s", item["uuid"])
        result, message = "failed", f"Unexpected error ({type(exc).__name__}); it has been logged."
    else:
        image_id = outcome.image.pk
        result = "skipped" if outcome.replayed else "generated"
        message = (
            "already generated: the stored image is kept" if outcome.replayed else outcome.message
        )
    finally:
        # This thread's database connection must not outlive the command.
        connections.close_all()
    return ItemResult(
        uuid=item["uuid"],
        result=result,
        message=message,
        seconds=time.monotonic() - started,
        image_id=image_id,
        retryable=retryable,
    )


def progress_line(done: int, total: int, result: ItemResult) -> str:
    """A plain progress bar line (no terminal control codes: it works in logs and pipes)."""
    filled = BAR_WIDTH * done // total
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return (
        f"[{bar}] {done:>{len(str(total))}}/{total} {100 * done // total:>3}%  "
        f"{result.uuid} {result.result} ({result.seconds:.1f} s)"
    )
