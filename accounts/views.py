"""simplejwt's token views, throttled per client against password guessing."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework.throttling import AnonRateThrottle
from rest_framework_simplejwt import views as jwt_views
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer

from config.cache import CacheOptionalThrottle
from config.openapi import ErrorSerializer, error_responses

WRONG_CREDENTIALS = OpenApiResponse(
    ErrorSerializer, description="Wrong username or password, or an invalid refresh token."
)


class AuthRateThrottle(CacheOptionalThrottle, AnonRateThrottle):
    scope = "auth"


@extend_schema_view(
    post=extend_schema(
        summary="Log in: get an access and a refresh token",
        description="The access token (15 min) goes in `Authorization: Bearer <access>`.",
        responses={
            200: TokenObtainPairSerializer,
            **error_responses(400, 429),
            401: WRONG_CREDENTIALS,
        },
        examples=[
            OpenApiExample(
                "Credentials",
                request_only=True,
                value={"username": "demo", "password": "correct-horse-battery"},
            )
        ],
    )
)
class TokenObtainView(jwt_views.TokenObtainPairView):
    throttle_classes = (AuthRateThrottle,)


@extend_schema_view(
    post=extend_schema(
        summary="Refresh: trade a refresh token for a new pair",
        description=(
            "The refresh token rotates: the one sent is blacklisted. A refresh token trades "
            "once: of requests racing with the same one, one gets a pair, the others a 401."
        ),
        request=TokenRefreshSerializer,
        responses={
            200: TokenRefreshSerializer,
            **error_responses(400, 429),
            401: WRONG_CREDENTIALS,
        },
    )
)
class TokenRefreshView(jwt_views.TokenRefreshView):
    throttle_classes = (AuthRateThrottle,)


@extend_schema_view(
    post=extend_schema(
        summary="Log out: retire a refresh token",
        description=(
            "The refresh token is blacklisted and never trades for a pair again; access tokens "
            "already issued from it live out their 15 minutes. To retire every token of an "
            "account at once, change its password."
        ),
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="Retired; the body is `{}`."),
            **error_responses(400, 429),
            401: WRONG_CREDENTIALS,
        },
    )
)
class TokenBlacklistView(jwt_views.TokenBlacklistView):
    throttle_classes = (AuthRateThrottle,)
