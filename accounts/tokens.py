"""Bearer tokens: read with the scheme in any case, refused once their user's password has
changed, and refresh tokens that can be traded for a new pair once, even by requests racing each
other.

simplejwt checks the blacklist when it reads the token and blacklists it later with
`get_or_create`: two requests carrying the same token could both pass the check, and the second
`get_or_create` then finds the first one's row and goes on, so both got a new pair. The
blacklist's unique token column decides instead: only the request that creates the row wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.serializers import (
    TokenBlacklistSerializer,
    TokenObtainPairSerializer,
    TokenRefreshSerializer,
)
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import RefreshToken, Token
from rest_framework_simplejwt.utils import get_md5_hash_password

# A user id claim the user model cannot take (a signed token made elsewhere): no such user.
_UNUSABLE_USER_ID = (ValueError, TypeError, ValidationError)


class SingleUseRefreshToken(RefreshToken):
    def blacklist(self) -> tuple[BlacklistedToken, bool]:
        blacklisted, created = super().blacklist()
        if not created:
            raise TokenError(_("Token is blacklisted"))
        return blacklisted, created


class StringsOnly:
    """A serializer whose writable fields take only JSON strings: DRF's CharField reads 123
    as "123", so `{"username": 123}` was a failed login (401), not bad input (400)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            errors = {
                name: ["Must be a string."]
                for name, field in self.fields.items()
                if not field.read_only
                and data.get(name) is not None
                and not isinstance(data[name], str)
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class TokenObtainStrictSerializer(StringsOnly, TokenObtainPairSerializer):
    """A username and its password, both JSON strings."""


class TokenRefreshOnceSerializer(StringsOnly, TokenRefreshSerializer):
    """`POST /auth/token/refresh` (SIMPLE_JWT's TOKEN_REFRESH_SERIALIZER)."""

    token_class = SingleUseRefreshToken

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        # simplejwt looks the token's user up with `.get()`: a deleted user is refused as a
        # deactivated one is, not a 500. It would also trade a token issued before the password
        # changed, whose access tokens are all refused: that is refused here, at once.
        refresh = self.token_class(attrs["refresh"])
        try:
            user = get_user_model().objects.get(
                **{api_settings.USER_ID_FIELD: refresh.get(api_settings.USER_ID_CLAIM)}
            )
        except (get_user_model().DoesNotExist, *_UNUSABLE_USER_ID):
            raise AuthenticationFailed(
                self.error_messages["no_active_account"], "no_active_account"
            ) from None
        check_password_unchanged(refresh, user)
        return super().validate(attrs)


class TokenBlacklistStrictSerializer(StringsOnly, TokenBlacklistSerializer):
    """`POST /auth/token/blacklist` (log out): the refresh token is never traded again."""


def check_password_unchanged(token: Token, user: Any) -> None:
    """Refuse a token issued before `user`'s password last changed (SIMPLE_JWT's
    CHECK_REVOKE_TOKEN: tokens carry a digest of the password hash they were issued under)."""
    check_revocable(token)
    if token.get(api_settings.REVOKE_TOKEN_CLAIM) != get_md5_hash_password(user.password):
        raise PasswordChanged


def check_revocable(token: Token) -> None:
    """Refuse a token from before tokens carried the password's digest (issued by an earlier
    release), saying so: it is not that the password changed."""
    if api_settings.REVOKE_TOKEN_CLAIM not in token.payload:
        raise TokenPredatesRevocation


class PasswordChanged(AuthenticationFailed):
    default_detail = _("The password has changed since this token was issued; log in again.")
    default_code = "password_changed"


class TokenPredatesRevocation(AuthenticationFailed):
    default_detail = _(
        "This token was issued before tokens could be revoked by a password change; log in again."
    )
    default_code = "token_outdated"


class BearerAuthentication(JWTAuthentication):
    """simplejwt's token check, with the scheme read in any case (`bearer`, `BEARER`): HTTP's
    authentication schemes are case-insensitive (RFC 9110, section 11.1)."""

    def get_raw_token(self, header: bytes) -> bytes | None:
        scheme, _, rest = header.partition(b" ")
        if scheme.lower() == b"bearer":
            header = b"Bearer " + rest
        return super().get_raw_token(header)

    def get_user(self, validated_token: Token) -> Any:
        check_revocable(validated_token)
        try:
            return super().get_user(validated_token)
        except _UNUSABLE_USER_ID:
            raise InvalidToken(_("Token contained no recognizable user identification")) from None
        except AuthenticationFailed as exc:
            # simplejwt's own refusal nests its code: {"detail": ..., "code": "password_changed"}.
            if isinstance(exc.detail, dict) and exc.detail.get("code") == "password_changed":
                raise PasswordChanged from None
            raise


class BearerAuthenticationScheme(SimpleJWTScheme):
    """The schema's `jwtAuth` security scheme, as drf-spectacular states simplejwt's."""

    target_class = BearerAuthentication
