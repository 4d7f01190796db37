"""`manage.py generate_image`: one segment's image, answered with the API's JSON."""

from __future__ import annotations

import json
import uuid as uuid_lib
from typing import Any

from django.core.management.base import CommandError, CommandParser
from rest_framework.utils.encoders import JSONEncoder

from config.commands import OperatorCommand
from config.exceptions import ServiceError
from imagegen.management.generation import answer, generate, get_project, validate_item


class Command(OperatorCommand):
    help = (
        "Generate one image for a project, exactly as POST /image-gen does (same validation, "
        "routing, retries, fallback, storage and record), as the project's owner, and print the "
        "API's JSON answer. Running it again with the same --uuid, prompt and style replays the "
        "stored image without calling a vendor. Exits non-zero, after printing the API's error "
        "JSON, when generation fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="The project id (as in the API).")
        parser.add_argument("--prompt", required=True, help="The visual prompt (1-800 chars).")
        parser.add_argument(
            "--style", default="", help="The art style (up to 180 chars; default none)."
        )
        parser.add_argument(
            "--uuid",
            help="The segment's id within the project ([A-Za-z0-9._-], up to 100 chars); "
            "default: a new random one.",
        )
        parser.add_argument(
            "--model",
            default="auto",
            help="'auto' (route by content, the default) or a configured route name, "
            "e.g. recraft-ai or google-imagen (see `manage.py imagegen_providers`).",
        )
        parser.add_argument(
            "--aspect-ratio", help="1:1, 16:9, 9:16, 4:3, 3:4, 3:2 or 2:3 (default 16:9)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        project = get_project(options["project"])
        item = {
            "visual_prompt": options["prompt"],
            "art_style": options["style"],
            # Only a missing --uuid gets a new one: an empty one (an unset shell variable) is
            # refused by validation, or every run would make another image.
            "uuid": f"cli-{uuid_lib.uuid4().hex[:16]}"
            if options["uuid"] is None
            else options["uuid"],
            "model": options["model"],
        }
        if options["aspect_ratio"] is not None:
            item["aspect_ratio"] = options["aspect_ratio"]
        validated = validate_item(item, project=project)
        try:
            body = answer(generate(validated, project=project))
        except ServiceError as exc:
            self.stdout.write(json.dumps(exc.as_body(), cls=JSONEncoder, indent=2))
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps(body, cls=JSONEncoder, indent=2))
