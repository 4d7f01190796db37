"""JWT endpoints: obtain a pair with username + password, refresh (rotating, blacklisted)."""

from django.urls import re_path

from accounts.views import TokenObtainView, TokenRefreshView

urlpatterns = [
    re_path(r"^auth/token/?$", TokenObtainView.as_view(), name="token-obtain"),
    re_path(r"^auth/token/refresh/?$", TokenRefreshView.as_view(), name="token-refresh"),
]
