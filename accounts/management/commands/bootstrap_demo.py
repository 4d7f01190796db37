"""`manage.py bootstrap_demo`: a demo user and project for a local run, with a ready curl line."""

from __future__ import annotations

import secrets

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import transaction
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User
from config.commands import OperatorCommand
from projects.models import Project

DEMO_PROJECT = "Demo video project"


class Command(OperatorCommand):
    help = (
        "Create (or reset) the local demo user and its demo project, and print the credentials, "
        "a fresh access token and a curl command for the seed's POST /image-gen example. "
        "The password changes on every run. It resets only an account it made itself (marked "
        "as a demo account), never another user's."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="demo")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, username: str, base_url: str, **options) -> None:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(username=username, is_demo=True)
            try:
                user.full_clean(exclude=["password"])
            except ValidationError as exc:
                raise CommandError(f"--username {username!r}: {' '.join(exc.messages)}") from exc
        elif not user.is_demo or user.is_staff:
            raise CommandError(
                f"{username!r} is an existing account that bootstrap_demo did not make; it "
                "resets only its own demo accounts. Choose another --username."
            )
        password = secrets.token_urlsafe(12)
        with transaction.atomic():  # a new password only together with the project
            user.set_password(password)
            user.save()
            # Names are not unique: the demo user may have made another of that name.
            project = Project.objects.filter(owner=user, name=DEMO_PROJECT).order_by(
                "created_at"
            ).first() or Project.objects.create(owner=user, name=DEMO_PROJECT)
        access = RefreshToken.for_user(user).access_token
        self.stdout.write(self.style.SUCCESS("Demo account ready"))
        self.stdout.write(f"  username:   {username}\n  password:   {password}")
        self.stdout.write(f"  project id: {project.id}")
        self.stdout.write(f"  API docs:   {base_url}/docs")
        self.stdout.write(f"  access token (15 min): {access}")
        self.stdout.write("Try the seed's example:")
        self.stdout.write(
            f"  curl -s -X POST {base_url}/image-gen -H 'Authorization: Bearer {access}' "
            "-H 'Content-Type: application/json' -d '{\"visual_prompt\": \"A sleek eco-friendly "
            'water bottle on a wooden desk with green plants in the background", "art_style": '
            '"modern minimalist photography", "uuid": "segment-001-image", '
            f'"projectId": "{project.id}"}}\''
        )
