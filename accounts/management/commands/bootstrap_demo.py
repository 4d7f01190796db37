"""`manage.py bootstrap_demo`: a demo user and project for a local run, with a ready curl line."""

from __future__ import annotations

import secrets

from django.core.management.base import BaseCommand
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User
from projects.models import Project


class Command(BaseCommand):
    help = (
        "Create (or reset) the local demo user and its demo project, and print the credentials, "
        "a fresh access token and a curl command for the seed's POST /image-gen example. "
        "The password changes on every run."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="demo")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, username: str, base_url: str, **options) -> None:
        password = secrets.token_urlsafe(12)
        user, _ = User.objects.get_or_create(username=username)
        user.set_password(password)
        user.save()
        project, _ = Project.objects.get_or_create(owner=user, name="Demo video project")
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
