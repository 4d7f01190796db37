"""Refresh tokens that can be traded for a new pair once, even by requests racing each other.

simplejwt checks the blacklist when it reads the token and blacklists it later with
`get_or_create`: two requests carrying the same token could both pass the check, and the second
`get_or_create` then finds the first one's row and goes on, so both got a new pair. The
blacklist's unique token column decides instead: only the request that creates the row wins.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import RefreshToken


class SingleUseRefreshToken(RefreshToken):
    def blacklist(self) -> tuple[BlacklistedToken, bool]:
        blacklisted, created = super().blacklist()
        if not created:
            raise TokenError(_("Token is blacklisted"))
        return blacklisted, created


class TokenRefreshOnceSerializer(TokenRefreshSerializer):
    """`POST /auth/token/refresh` (SIMPLE_JWT's TOKEN_REFRESH_SERIALIZER)."""

    token_class = SingleUseRefreshToken
