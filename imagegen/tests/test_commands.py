"""The operators' commands: generate_image, generate_batch, imagegen_providers, imagegen_stats."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import pytest
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from imagegen import services
from imagegen.breaker import CircuitBreaker
from imagegen.models import GeneratedImage, GenerationAttempt
from imagegen.selectors import route_stats
from imagegen.testing import vendor_payloads
from imagegen.tests.factories import GeneratedImageFactory, GenerationAttemptFactory

pytestmark = pytest.mark.django_db

STORYBOARD = Path(django_settings.BASE_DIR) / "examples" / "storyboard.csv"
HEADER = "visual_prompt,art_style,uuid,model,aspect_ratio\n"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def run_failing(*args: str) -> tuple[str, str]:
    """(stdout, CommandError message) of a command that must fail."""
    out = io.StringIO()
    with pytest.raises(CommandError) as failure:
        call_command(*args, stdout=out)
    return out.getvalue(), str(failure.value)


# ---------------------------------------------------------------------------------------------
# generate_image
# ---------------------------------------------------------------------------------------------
def test_generate_image_prints_the_api_answer(project, vendors):
    vendors.recraft()

    answer = json.loads(
        run(
            "generate_image",
            "--project",
            project.pk,
            "--prompt",
            "A sleek eco-friendly water bottle on a wooden desk",
            "--style",
            "modern minimalist photography",
            "--uuid",
            "segment-001-image",
            "--aspect-ratio",
            "1:1",
        )
    )

    assert list(answer)[:5] == ["success", "s3_key", "model", "message", "image_size_bytes"]
    assert answer["success"] is True
    assert answer["model"] == "recraft-ai"
    assert answer["message"] == "Image generated successfully"
    assert answer["s3_key"] == f"images/{project.pk}/segment-001-image.jpg"
    assert default_storage.exists(answer["s3_key"])
    image = GeneratedImage.objects.get(pk=answer["id"])
    assert (image.user, image.aspect_ratio) == (project.owner, "1:1")
    assert json.loads(vendors.mock.calls[0].request.body)["size"] == "1024x1024"


def test_generate_image_twice_replays_without_a_vendor_call(project, vendors):
    vendors.recraft()
    args = ("generate_image", "--project", project.pk, "--prompt", "A desk", "--uuid", "seg-1")
    run(*args)

    answer = json.loads(run(*args))

    assert answer["message"] == services.REPLAY_MESSAGE
    assert vendors.calls("recraft") == 1


def test_generate_image_without_uuid_makes_one(project, vendors):
    vendors.recraft()

    answer = json.loads(run("generate_image", "--project", project.pk, "--prompt", "A desk"))

    assert answer["uuid"].startswith("cli-")


@pytest.mark.parametrize(
    ("options", "body"),
    [
        (["--prompt", ""], {"visual_prompt": ""}),
        (["--prompt", "x" * 801], {"visual_prompt": "x" * 801}),
        (["--prompt", "a\x00b"], {"visual_prompt": "a\x00b"}),
        (["--style", "y" * 181], {"art_style": "y" * 181}),
        (["--uuid", "segment 1/../x"], {"uuid": "segment 1/../x"}),
        (["--model", "dall-e"], {"model": "dall-e"}),
        (["--aspect-ratio", "5:4"], {"aspect_ratio": "5:4"}),
        (["--uuid", ""], {"uuid": ""}),  # an unset shell variable must not mean "a new image"
        (["--aspect-ratio", ""], {"aspect_ratio": ""}),
    ],
)
def test_generate_image_refuses_bad_input_with_the_api_message(
    api, project, vendors, options, body
):
    seed = {"visual_prompt": "A desk", "art_style": "", "uuid": "seg-1", "projectId": project.pk}
    api_message = api.post("/image-gen", {**seed, **body}, format="json").json()["message"]
    defaults = ["--prompt", "A desk", "--uuid", "seg-1"]

    _, message = run_failing("generate_image", "--project", project.pk, *defaults, *options)

    assert message == api_message
    assert message.startswith("Invalid input: ")
    assert not GeneratedImage.objects.exists()
    assert vendors.calls("recraft") == vendors.calls("gemini") == 0


def test_generate_image_refuses_an_unknown_project(vendors):
    _, message = run_failing("generate_image", "--project", "nope", "--prompt", "A desk")

    assert message.startswith("No project with id 'nope'.")
    assert not GeneratedImage.objects.exists()


@pytest.mark.parametrize("project_id", ["x" * 10_000, "c0mf\x00", "", "proj 1"])
def test_generate_image_refuses_what_cannot_be_a_project_id(vendors, project_id):
    _, message = run_failing("generate_image", "--project", project_id, "--prompt", "A desk")

    assert message.startswith("--project ")
    assert "is not a project id: Must be a project's id, as /projects gives it" in message
    assert len(message) < 300
    assert not GeneratedImage.objects.exists()


def test_generate_image_failure_prints_the_api_error_and_exits_non_zero(project, vendors, no_sleep):
    vendors.recraft(503, b"overloaded")
    vendors.gemini(503, vendor_payloads.gemini_error(503, "UNAVAILABLE"))

    out, message = run_failing(
        "generate_image", "--project", project.pk, "--prompt", "A desk", "--uuid", "seg-1"
    )

    body = json.loads(out)
    assert body["success"] is False
    assert body["code"] == "providers_failed"
    assert body["message"] == message
    assert message.startswith("Every image provider failed")
    assert GeneratedImage.objects.get().status == "failed"


# ---------------------------------------------------------------------------------------------
# generate_batch: input problems are reported before anything is generated.
# ---------------------------------------------------------------------------------------------
def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def csv_rows(*rows: str) -> str:
    return HEADER + "".join(f"{row}\n" for row in rows)


GOOD_ROW = "A desk at dawn,photography,seg-1,,"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("board.csv", None, "No such file: "),
        ("board.txt", "hello", "Cannot tell the format of "),
        ("board.csv", "", "The CSV header is (empty)"),
        ("board.csv", HEADER, "holds no items"),
        (
            "board.csv",
            "visual_prompt,uuid\nA desk,seg-1\n",
            "The CSV header is visual_prompt,uuid; it needs visual_prompt,art_style,uuid "
            "and may add model,aspect_ratio, each once (missing: art_style).",
        ),
        ("board.csv", "visual_prompt,art-style,uuid\n", "(unknown: art-style)"),
        ("board.csv", "visual_prompt,art_style,uuid,uuid\n", "each once"),
        ("board.csv", csv_rows("A desk,photo,seg-1,,,surplus"), "row at line 2 does not have 5"),
        ("board.csv", csv_rows("A desk,photo"), "The row at line 2 does not have 5 cells"),
        (
            "board.csv",
            csv_rows(GOOD_ROW, '"A cat\non two lines",photo,seg-2,,', "A dog,photo"),
            "The row at line 5 does not have 5 cells",
        ),
        (
            "board.csv",
            csv_rows(GOOD_ROW, '"A desk,photo,seg-2,,', "A cat,photo,seg-3,,"),
            "Malformed CSV in the row at line 3: unexpected end of data",
        ),
        ("board.csv", "visual_prompt,art_style,uuid\nCaf\xe9,x,y\n".encode("latin-1"), "UTF-8"),
        ("board.json", "[{", "Invalid JSON: "),
        ("board.json", "[" * 100_000 + "]" * 100_000, "Invalid JSON: "),
        ("board.json", '{"visual_prompt": "A desk"}', "The JSON must be an array of objects"),
        ("board.json", '["A desk"]', "The JSON must be an array of objects"),
        ("board.json", "[]", "holds no items"),
        ("board.json", '[{"visual_prompt": "A", "style": "b", "uuid": "c"}]', "unknown keys"),
        (
            "board.csv",
            csv_rows(GOOD_ROW, f"{'x' * 801},photo,seg-2,,", "A cat,photo,seg 3,,"),
            "2 of 3 items are invalid; nothing was generated:\n"
            "  item 2 (uuid 'seg-2'): Invalid input: visual_prompt: Ensure this field has no "
            "more than 800 characters.\n"
            "  item 3 (uuid 'seg 3'): Invalid input: uuid: Must be 1 to 100 characters",
        ),
        (
            "board.json",
            '[{"visual_prompt": "A desk", "art_style": "", "uuid": 7}]',
            "item 1 (uuid 7): Invalid input: uuid: Must be a string.",
        ),
        ("board.csv", csv_rows(GOOD_ROW, GOOD_ROW), "item 2: uuid 'seg-1' appears more than once"),
        ("board.csv", csv_rows("A desk,photo,seg-1,dall-e,"), "Unknown model 'dall-e'"),
        ("board.csv", csv_rows("A desk,photo,seg-1,,5:4"), "Not a supported aspect ratio"),
    ],
)
def test_batch_refuses_bad_files_and_changes_nothing(
    tmp_path, project, vendors, name, content, expected
):
    path = str(tmp_path / name) if content is None else write(tmp_path, name, content)

    out, message = run_failing("generate_batch", path, "--project", project.pk)

    assert expected in message
    assert out == ""
    assert not GeneratedImage.objects.exists()
    assert vendors.calls("recraft") == vendors.calls("gemini") == 0


LONG = "k" * 10_000


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "board.json",
            json.dumps([{"visual_prompt": "A", "art_style": "", "uuid": "s", LONG: 1}]),
            f"Item 1 has unknown keys: '{'k' * 37}…'.",
        ),
        (
            "board.json",
            json.dumps([{"visual_prompt": "A", "uuid": "s", **{f"k{n}": 1 for n in range(9999)}}]),
            "Item 1 has unknown keys: 'k0', 'k1', 'k10', 'k100', 'k1000' and 9994 more.",
        ),
        (
            "board.csv",
            f"visual_prompt,art_style,uuid,{LONG}\n",
            f"The CSV header is visual_prompt,art_style,uuid,{'k' * 50}…; it needs "
            "visual_prompt,art_style,uuid and may add model,aspect_ratio, each once "
            f"(unknown: {'k' * 29}…).",
        ),
        (
            "board.csv",
            "visual_prompt,art_style,uuid," + ",".join(f"c{n}" for n in range(9999)) + "\n",
            "(unknown: c0, c1, c2, c3, c4 and 9994 more).",
        ),
        (
            "board.csv",
            csv_rows(f"A desk,photo,{LONG},,"),
            f"item 1 (uuid '{'k' * 37}…'): Invalid input: uuid: ",
        ),
    ],
)
def test_batch_echoes_what_it_refuses_briefly(tmp_path, project, name, content, expected):
    path = write(tmp_path, name, content)

    _, message = run_failing("generate_batch", path, "--project", project.pk)

    assert expected in message
    assert len(message) < 400


def test_batch_refuses_a_directory(tmp_path, project):
    (tmp_path / "board.csv").mkdir()

    _, message = run_failing("generate_batch", str(tmp_path / "board.csv"), "--project", project.pk)

    assert "is a directory" in message


def test_batch_refuses_a_file_it_cannot_read_in_one_line(tmp_path, project, monkeypatch):
    path = write(tmp_path, "board.csv", csv_rows(GOOD_ROW))

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    # The tests may run as root, whom file modes do not stop.
    monkeypatch.setattr(Path, "open", refuse)

    _, message = run_failing("generate_batch", path, "--project", project.pk)

    assert message == f"Cannot read {path}: Permission denied."


def test_batch_refuses_a_path_through_a_file(tmp_path, project):
    path = write(tmp_path, "board.csv", csv_rows(GOOD_ROW))

    _, message = run_failing("generate_batch", f"{path}/inner.csv", "--project", project.pk)

    assert message == f"Cannot read {path}/inner.csv: Not a directory."


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("file_format", ["csv", "json"])
def test_batch_reads_no_more_than_the_size_cap(project, file_format):
    _, message = run_failing(
        "generate_batch", "/dev/zero", "--format", file_format, "--project", project.pk
    )

    assert message == (
        "/dev/zero is larger than 4 MiB, far more than a storyboard: check the file, or split it."
    )


def test_batch_takes_at_most_the_apis_number_of_items(tmp_path, project, settings, vendors):
    settings.IMAGEGEN_BATCH_MAX_ITEMS = 2
    path = write(tmp_path, "board.csv", csv_rows(*(f"Scene {n},photo,seg-{n},," for n in range(3))))

    out, message = run_failing("generate_batch", path, "--project", project.pk)

    assert message.startswith(
        f"{path} holds more than 2 items, the most a batch takes (IMAGEGEN_BATCH_MAX_ITEMS, as "
        "for POST /image-gen/batch)."
    )
    assert out == ""
    assert not GeneratedImage.objects.exists()


@pytest.mark.parametrize("concurrency", ["0", "33"])
def test_batch_refuses_a_concurrency_out_of_bounds(tmp_path, project, concurrency):
    path = write(tmp_path, "board.csv", csv_rows(GOOD_ROW))

    _, message = run_failing(
        "generate_batch", path, "--project", project.pk, "--concurrency", concurrency
    )

    assert message == f"--concurrency must be between 1 and 32, not {concurrency}."


def test_batch_refuses_an_unknown_project(tmp_path):
    path = write(tmp_path, "board.csv", csv_rows(GOOD_ROW))

    _, message = run_failing("generate_batch", path, "--project", "nope")

    assert message.startswith("No project with id 'nope'.")


# ---------------------------------------------------------------------------------------------
# generate_batch: bounded concurrency, progress, summary (threads need committed data).
# ---------------------------------------------------------------------------------------------
def fake_outcome(item, *, project):
    return services.GenerationOutcome(GeneratedImage(uuid=item["uuid"], message="ok"))


def test_batch_runs_exactly_the_requested_number_at_once(tmp_path, project, monkeypatch):
    running, peak, lock = 0, 0, threading.Lock()
    # Three must meet here, or the batch cannot finish: a smaller pool would break the barrier.
    barrier = threading.Barrier(3, timeout=5)

    def generate(item, *, project):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        barrier.wait()
        time.sleep(0.01)
        with lock:
            running -= 1
        return fake_outcome(item, project=project)

    monkeypatch.setattr("imagegen.management.commands.generate_batch.generate", generate)
    rows = [f"Scene {number},photo,seg-{number},," for number in range(6)]
    path = write(tmp_path, "board.csv", csv_rows(*rows))

    out = run("generate_batch", path, "--project", project.pk, "--concurrency", "3")

    assert peak == 3
    assert "6 items: 6 generated, 0 already done (skipped), 0 failed" in out


def test_batch_reports_an_unexpected_error_and_finishes_the_rest(tmp_path, project, monkeypatch):
    def generate(item, *, project):
        if item["uuid"] == "seg-1":
            raise RuntimeError("bug")
        return fake_outcome(item, project=project)

    monkeypatch.setattr("imagegen.management.commands.generate_batch.generate", generate)
    path = write(tmp_path, "board.csv", csv_rows(GOOD_ROW, "A cat,photo,seg-2,,"))

    out, message = run_failing("generate_batch", path, "--project", project.pk)

    assert "seg-1: Unexpected error (RuntimeError); it has been logged." in out
    assert "2 items: 1 generated, 0 already done (skipped), 1 failed" in out
    assert message.startswith("1 of 2 items failed")


class Interrupted(NamedTuple):
    started: list[str]  # the uuids
    failure: CommandError
    out: str
    err: str
    handlers: list[tuple[int, object]]  # what the command passed to `signal.signal`


def interrupted_batch(
    tmp_path, project, monkeypatch, *, ctrl_c: int, from_command_line: bool = True
) -> Interrupted:
    """A 10-item batch, one at a time, with Ctrl-C pressed `ctrl_c` times while the second item
    is generating, run as `manage.py` runs it (or, `from_command_line` False, from a program's
    own `call_command`). `signal.signal` only records what it is given: the test process keeps
    its own Ctrl-C handler."""
    started = []
    handlers: list[tuple[int, object]] = []
    out, err = io.StringIO(), io.StringIO()

    def generate(item, *, project):
        started.append(item["uuid"])
        if len(started) == 2:
            for _ in range(ctrl_c):
                os.kill(os.getpid(), signal.SIGINT)
                # As a person's would, the next press comes once this one was answered: two
                # signals before the main thread runs its handler count as one.
                deadline = time.monotonic() + 10
                while "waiting for the ones in progress" not in err.getvalue():
                    assert time.monotonic() < deadline, "Ctrl-C was not answered"
                    time.sleep(0.01)
                time.sleep(0.2)
        return fake_outcome(item, project=project)

    monkeypatch.setattr("imagegen.management.commands.generate_batch.generate", generate)
    rows = [f"Scene {number},photo,seg-{number},," for number in range(10)]
    path = write(tmp_path, "board.csv", csv_rows(*rows))

    monkeypatch.setattr(signal, "signal", lambda *handler: handlers.append(handler))
    monkeypatch.setattr(BaseCommand, "_called_from_command_line", from_command_line)
    with pytest.raises(CommandError) as failure:
        call_command(
            "generate_batch", path, "--project", project.pk, "--concurrency", "1",
            stdout=out, stderr=err,
        )  # fmt: skip
    return Interrupted(started, failure.value, out.getvalue(), err.getvalue(), handlers)


def test_ctrl_c_starts_no_further_item_and_reports_what_finished(tmp_path, project, monkeypatch):
    started, failure, out, err, handlers = interrupted_batch(
        tmp_path, project, monkeypatch, ctrl_c=1
    )

    assert started == ["seg-0", "seg-1"]
    assert failure.returncode == 130
    assert str(failure).startswith(
        "Interrupted: 2 of 10 items finished and 8 were not started. Re-run the same command"
    )
    assert "waiting for the ones in progress" in err
    assert "10 items:" not in out
    assert "2 items: 2 generated" in out
    assert handlers == []


def test_ctrl_c_while_the_items_are_being_queued_is_answered_the_same_way(
    tmp_path, project, monkeypatch
):
    class PoolInterruptedAtTheThirdItem(ThreadPoolExecutor):
        queued = 0

        def submit(self, *args, **kwargs):
            type(self).queued += 1
            if self.queued == 3:
                raise KeyboardInterrupt
            return super().submit(*args, **kwargs)

    monkeypatch.setattr(
        "imagegen.management.commands.generate_batch.ThreadPoolExecutor",
        PoolInterruptedAtTheThirdItem,
    )
    generated = []

    def generate(item, *, project):
        generated.append(item["uuid"])
        return fake_outcome(item, project=project)

    monkeypatch.setattr("imagegen.management.commands.generate_batch.generate", generate)
    path = write(
        tmp_path, "board.csv", csv_rows(*[f"Scene {n},photo,seg-{n},," for n in range(10)])
    )
    out = io.StringIO()

    with pytest.raises(CommandError) as failure:
        call_command(
            "generate_batch", path, "--project", project.pk, "--concurrency", "1", stdout=out
        )

    assert failure.value.returncode == 130
    finished = int(re.match(r"Interrupted: (\d) of 10 items finished", str(failure.value))[1])
    assert finished <= 2
    assert f"{finished} items: {finished} generated" in out.getvalue()
    assert len(generated) == finished


def test_a_second_ctrl_c_ends_the_batch_with_one_line_and_status_130(
    tmp_path, project, monkeypatch
):
    started, failure, out, _, handlers = interrupted_batch(tmp_path, project, monkeypatch, ctrl_c=2)

    assert started == ["seg-0", "seg-1"]
    assert failure.returncode == 130
    assert str(failure) == (
        "Interrupted again: the summary is skipped, and 8 of 10 items were not started. "
        "Re-run the same command to continue; the items that succeeded are skipped. Ctrl-C "
        "once more to stop without waiting for the calls in progress."
    )
    assert "items:" not in out
    # The process then waits for the call in progress as it exits: a third Ctrl-C ends it at
    # once, as the system does, not with a traceback from Python's exit code.
    assert handlers == [(signal.SIGINT, signal.SIG_DFL)]


def test_a_second_ctrl_c_leaves_a_calling_programs_own_handler_alone(
    tmp_path, project, monkeypatch
):
    *_, handlers = interrupted_batch(
        tmp_path, project, monkeypatch, ctrl_c=2, from_command_line=False
    )

    assert handlers == []


def test_batch_reads_a_file_whose_name_is_not_utf8(tmp_path, project, monkeypatch):
    monkeypatch.setattr("imagegen.management.commands.generate_batch.generate", fake_outcome)
    # A file name is bytes: one that is not UTF-8 reaches argv with a surrogate in its place.
    path = write(tmp_path, os.fsdecode(b"board-\xff.csv"), csv_rows(GOOD_ROW))

    out = run("generate_batch", path, "--project", project.pk)

    assert "1 items: 1 generated" in out


@pytest.mark.django_db(transaction=True)
def test_batch_generates_every_item_with_progress_and_a_summary(
    tmp_path, project, vendors, no_sleep
):
    vendors.recraft()
    vendors.gemini()
    path = write(
        tmp_path,
        "board.csv",
        csv_rows(GOOD_ROW, "A fox,watercolor illustration,seg-2,,9:16", "A car,photo,seg-3,,"),
    )

    out = run("generate_batch", path, "--project", project.pk, "--concurrency", "2")

    lines = out.splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert len(progress) == 3
    assert progress[-1].startswith("[########################] 3/3 100%")
    table = lines[lines.index(progress[-1]) + 2 :]
    assert table[0].split() == [
        "uuid", "result", "route", "bytes", "cost", "USD", "seconds", "message"
    ]  # fmt: skip
    assert [row.split()[:3] for row in table[1:4]] == [
        ["seg-1", "generated", "recraft-ai"],
        ["seg-2", "generated", "google-imagen"],
        ["seg-3", "generated", "recraft-ai"],
    ]
    assert "3 items: 3 generated, 0 already done (skipped), 0 failed" in out
    images = GeneratedImage.objects.order_by("uuid")
    assert [image.status for image in images] == ["succeeded"] * 3
    assert {image.user_id for image in images} == {project.owner_id}
    assert images[1].aspect_ratio == "9:16"


@pytest.mark.django_db(transaction=True)
def test_batch_rerun_skips_what_succeeded_and_retries_what_failed(
    tmp_path, project, vendors, no_sleep, settings
):
    settings.IMAGEGEN_FALLBACK_ON_BLOCK = False
    vendors.recraft()
    vendors.gemini(body=vendor_payloads.gemini_prompt_blocked())
    rows = csv_rows("A desk,photo,seg-1,recraft-ai,", "A fox,photo,seg-2,google-imagen,")
    path = write(tmp_path, "board.csv", rows)

    out, message = run_failing("generate_batch", path, "--project", project.pk)

    assert "seg-2: The content was blocked by the provider's safety filter" in out
    assert "2 items: 1 generated, 0 already done (skipped), 1 failed" in out
    assert message == (
        "1 of 2 items failed (see above). Re-run the same command to retry them; "
        "the items that succeeded are skipped."
    )
    vendors.mock.replace(
        "POST", vendors.gemini_url, json=vendor_payloads.gemini_success(), status=200
    )

    out = run("generate_batch", path, "--project", project.pk)

    assert "2 items: 1 generated, 1 already done (skipped), 0 failed" in out
    assert vendors.calls("recraft") == 1
    assert set(GeneratedImage.objects.values_list("status", flat=True)) == {"succeeded"}


@pytest.mark.django_db(transaction=True)
def test_a_failed_item_shows_no_route_bytes_or_cost_of_another_image(
    tmp_path, project, vendors, no_sleep
):
    vendors.recraft()
    other = GeneratedImageFactory(project=project, uuid="seg-1", cost_usd=Decimal("0.035"))
    path = write(tmp_path, "board.csv", csv_rows(GOOD_ROW, "A car,photo,seg-2,,"))

    out, message = run_failing("generate_batch", path, "--project", project.pk)

    assert message == (
        "1 of 2 items failed (see above). 1 of them (seg-1) use a uuid that holds an image of "
        "another prompt: a re-run fails them again; give them new uuids, or PATCH those images."
    )
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("seg-")}
    assert rows["seg-1"].split()[:3] == ["seg-1", "failed", "0.0"]
    assert "already has an image made from a" in rows["seg-1"]
    assert str(other.image_size_bytes) not in rows["seg-1"]
    assert rows["seg-2"].split()[:3] == ["seg-2", "generated", "recraft-ai"]
    cost = GeneratedImage.objects.get(uuid="seg-2").cost_usd
    assert f"these images have cost ${cost:.4f} so far." in out


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "content",
    [
        '[{"visual_prompt": "A desk", "art_style": "photo", "uuid": "seg-1"}]',
        '{"items": [{"visual_prompt": "A desk", "art_style": "photo", "uuid": "seg-1"}]}',
    ],
)
def test_batch_reads_json(tmp_path, project, vendors, content):
    vendors.recraft()
    path = write(tmp_path, "board.json", content)

    out = run("generate_batch", path, "--project", project.pk)

    assert "1 items: 1 generated" in out
    assert GeneratedImage.objects.get().uuid == "seg-1"


@pytest.mark.django_db(transaction=True)
def test_batch_threads_give_back_their_database_connections(tmp_path, project, vendors):
    vendors.recraft()
    path = write(tmp_path, "board.csv", csv_rows(*(f"Scene {n},photo,seg-{n},," for n in range(8))))

    def sessions() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            )
            return cursor.fetchone()[0]

    before = sessions()
    run("generate_batch", path, "--project", project.pk, "--concurrency", "4")

    # A closed session may linger in pg_stat_activity for a moment.
    deadline = time.monotonic() + 2
    while sessions() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sessions() <= before


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_example_storyboard_generates_in_one_command(project, fake_vendor_server):
    out = run("generate_batch", str(STORYBOARD), "--project", project.pk)

    assert "20 items: 20 generated, 0 already done (skipped), 0 failed" in out
    assert GeneratedImage.objects.filter(status="succeeded").count() == 20
    assert fake_vendor_server.calls("recraft") + fake_vendor_server.calls("gemini") == 20


# ---------------------------------------------------------------------------------------------
# imagegen_providers
# ---------------------------------------------------------------------------------------------
def test_providers_lists_configuration_with_keys_masked():
    out = run("imagegen_providers")

    assert "recraft-ai (RecraftProvider)" in out
    assert "google-imagen (GoogleImageProvider)" in out
    assert "model:     recraftv4_1" in out
    assert "base_url:  https://gemini.test/v1beta" in out
    assert "api_key:   ...-key" in out
    assert "test-recraft-key" not in out
    assert "test-gemini-key" not in out
    assert "routes:    realistic" in out
    assert "routes:    artistic, text" in out
    assert out.count("circuit:   closed") == 2
    assert "2 of 2 providers usable: recraft-ai, google-imagen." in out


def open_circuit(name: str) -> None:
    breaker = CircuitBreaker(name)
    for _ in range(breaker.threshold):
        breaker.record_failure()


def test_providers_shows_an_open_circuit():
    open_circuit("recraft-ai")

    out = run("imagegen_providers")

    assert "circuit:   open (next trial in 30 s)" in out
    assert "1 of 2 providers usable: google-imagen." in out


def test_providers_exits_non_zero_when_every_circuit_is_open():
    open_circuit("recraft-ai")
    open_circuit("google-imagen")

    _, message = run_failing("imagegen_providers")

    assert message == "0 of 2 providers usable: image generation would fail."


def test_providers_exits_non_zero_when_none_is_configured(settings):
    settings.IMAGEGEN_PROVIDERS = {}

    _, message = run_failing("imagegen_providers")

    assert message.startswith("No image provider is configured: set RECRAFT_API_KEY")


def test_providers_exits_non_zero_on_a_broken_configuration(settings):
    settings.IMAGEGEN_PROVIDERS = {"recraft-ai": {"BACKEND": "imagegen.providers.nope.Nope"}}

    _, message = run_failing("imagegen_providers")

    assert "Could not find provider backend 'imagegen.providers.nope.Nope'" in message


def test_providers_ping_calls_each_provider_once(vendors):
    vendors.recraft()
    vendors.gemini()

    out = run("imagegen_providers", "--ping")

    assert "ping:      ok: a 64x36 WEBP image from recraftv4_1, cost $0.035" in out
    assert "ping:      ok: a 64x36 PNG image from gemini-2.5-flash-image, cost $0.0387" in out
    assert vendors.calls("recraft") == vendors.calls("gemini") == 1


def test_providers_ping_reports_a_failure_and_the_rest_still_count(vendors):
    vendors.recraft(401, b"401 request unauthorized")
    vendors.gemini()

    out = run("imagegen_providers", "--ping")

    assert "ping:      FAILED (credentials): Recraft answered HTTP 401" in out
    assert "1 of 2 providers usable: google-imagen." in out


def test_providers_ping_exits_non_zero_when_every_provider_fails(vendors):
    vendors.recraft(200, vendor_payloads.recraft_success(b"<svg/>"))
    vendors.gemini(400, vendor_payloads.gemini_invalid_key())

    out, message = run_failing("imagegen_providers", "--ping")

    assert "FAILED (bad_output)" in out
    assert "FAILED (credentials)" in out
    assert message == "0 of 2 providers usable: image generation would fail."


# ---------------------------------------------------------------------------------------------
# imagegen_stats
# ---------------------------------------------------------------------------------------------
def finished(**fields) -> GeneratedImage:
    return GeneratedImageFactory(finished_at=timezone.now(), **fields)


@pytest.fixture
def week_of_work():
    """recraft-ai: 3 images (2 succeeded), 100 calls of 10..1000 ms; google-imagen: 1 image."""
    recraft = [finished(), finished(), finished(status="failed", s3_key="")]
    GenerationAttempt.objects.bulk_create(
        GenerationAttempt(
            image=recraft[number % 3],
            provider="recraft-ai",
            outcome="succeeded" if number % 2 else "unavailable",
            latency_ms=10 * (number + 1),
            cost_usd=Decimal("0.01"),
        )
        for number in range(100)
    )
    GenerationAttemptFactory(
        image=recraft[2], provider="recraft-ai", outcome="circuit_open", latency_ms=0
    )
    google = finished(model="google-imagen")
    GenerationAttemptFactory(image=google, latency_ms=20_000, cost_usd=Decimal("0.039"))
    old = finished(model="google-imagen")
    GeneratedImage.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=8))
    stale = GenerationAttemptFactory(image=old, latency_ms=99_999)
    GenerationAttempt.objects.filter(pk=stale.pk).update(
        created_at=timezone.now() - timedelta(days=8)
    )


def test_route_stats_per_route_and_all(week_of_work):
    stats = {row.route: row for row in route_stats(since=timezone.now() - timedelta(days=7))}

    recraft, google, total = stats["recraft-ai"], stats["google-imagen"], stats["all"]
    assert (recraft.images_succeeded, recraft.images_failed) == (2, 1)
    assert recraft.success_rate == pytest.approx(2 / 3)
    assert (recraft.calls, recraft.calls_succeeded) == (100, 50)
    assert recraft.cost_usd == Decimal("1.00")
    assert recraft.latency_ms == {50: 500, 95: 950, 99: 990}
    assert (google.images_succeeded, google.calls, google.latency_ms[50]) == (1, 1, 20_000)
    assert (total.images_succeeded, total.images_failed, total.calls) == (3, 1, 101)
    assert total.cost_usd == Decimal("1.039")
    assert list(stats) == ["google-imagen", "recraft-ai", "all"]


def test_stats_prints_a_table_per_route(week_of_work):
    out = run("imagegen_stats")

    lines = out.splitlines()
    assert lines[0].startswith("Image generation in the last 7 day(s), since ")
    assert lines[1].split() == [
        "route", "images", "succeeded", "failed", "success", "calls", "cost", "USD",
        "p50", "ms", "p95", "ms", "p99", "ms",
    ]  # fmt: skip
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows["recraft-ai"] == ["3", "2", "1", "66.7%", "100", "1.0000", "500", "950", "990"]
    assert rows["google-imagen"] == ["1", "1", "0", "100.0%", "1", "0.0390"] + ["20000"] * 3
    assert rows["all"][:6] == ["4", "3", "1", "75.0%", "101", "1.0390"]


def test_stats_period_is_the_last_days(week_of_work):
    out = run("imagegen_stats", "--days", "30")

    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert rows["google-imagen"][:2] == ["2", "2"]
    assert rows["google-imagen"][-1] == "99999"


def test_stats_says_so_when_nothing_happened():
    out = run("imagegen_stats", "--days", "1")

    assert out.splitlines()[1] == "No image finished and no provider was called in this period."


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ("0", "--days must be"),
        ("-3", "--days must be"),
        ("800000", "--days must be a whole number of days from 1 to 100000"),
    ],
)
def test_stats_refuses_a_period_that_is_not_whole_days(days, message):
    _, error = run_failing("imagegen_stats", "--days", days)

    assert error.startswith(message)


def test_stats_refuses_days_that_are_not_a_number():
    with pytest.raises(CommandError, match="invalid int value: 'week'"):
        call_command("imagegen_stats", "--days", "week")


@pytest.mark.parametrize(
    "command", ["generate_image", "generate_batch", "imagegen_providers", "imagegen_stats"]
)
def test_every_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit):
        call_command(command, "--help")

    help_text = capsys.readouterr().out
    assert len(help_text) > 600
