"""JWT endpoints: obtain a pair with username + password, refresh (rotating, blacklisted), log
out (blacklist a refresh token)."""

from django.urls import re_path

from accounts.views import TokenBlacklistView, TokenObtainView, TokenRefreshView

urlpatterns = [
    re_path(r"^auth/token/?$", TokenObtainView.as_view(), name="token-obtain"),
    re_path(r"^auth/token/refresh/?$", TokenRefreshView.as_view(), name="token-refresh"),
    re_path(r"^auth/token/blacklist/?$", TokenBlacklistView.as_view(), name="token-blacklist"),
]
