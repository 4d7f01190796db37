"""simplejwt's token views, throttled per client against password guessing."""

from rest_framework.throttling import AnonRateThrottle
from rest_framework_simplejwt import views as jwt_views


class AuthRateThrottle(AnonRateThrottle):
    scope = "auth"


class TokenObtainView(jwt_views.TokenObtainPairView):
    throttle_classes = (AuthRateThrottle,)


class TokenRefreshView(jwt_views.TokenRefreshView):
    throttle_classes = (AuthRateThrottle,)
