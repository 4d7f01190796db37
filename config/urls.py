"""Top-level URLs: the API (no trailing slash needed), the admin, the schema, its docs, health."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from config import health
from config.views import SchemaView, SwaggerUIView

urlpatterns = [
    path("", include("accounts.urls")),
    path("", include("projects.urls")),
    path("", include("imagegen.urls")),
    path("admin/", admin.site.urls),
    re_path(r"^schema/?$", SchemaView.as_view(), name="schema"),
    re_path(r"^docs/?$", SwaggerUIView.as_view(url_name="schema"), name="docs"),
    re_path(r"^health/?$", health.StatusView.as_view(), name="health"),
    re_path(r"^health/live/?$", health.HealthView.as_view(checks=health.LIVENESS), name="live"),
    re_path(r"^health/ready/?$", health.HealthView.as_view(checks=health.READINESS), name="ready"),
]

if settings.DEBUG and not settings.AWS_STORAGE_BUCKET_NAME:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

handler400 = "config.views.bad_request"
handler403 = "config.views.permission_denied"
handler404 = "config.views.not_found"
handler500 = "config.views.server_error"
