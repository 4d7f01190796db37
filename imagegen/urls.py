"""Image API routes; each path works with and without a trailing slash."""

from django.urls import re_path

from config.ids import ID_PATTERN
from imagegen import batch_views, views

urlpatterns = [
    re_path(r"^image-gen/?$", views.ImageListCreateView.as_view(), name="image-list"),
    # Before the image detail route, which would take "batch" for an image id.
    re_path(r"^image-gen/batch/?$", batch_views.BatchCreateView.as_view(), name="image-batch"),
    re_path(
        rf"^image-gen/batch/(?P<batch_id>{ID_PATTERN})/?$",
        batch_views.BatchDetailView.as_view(),
        name="image-batch-detail",
    ),
    re_path(
        rf"^image-gen/(?P<image_id>{ID_PATTERN})/?$",
        views.ImageDetailView.as_view(),
        name="image-detail",
    ),
]
