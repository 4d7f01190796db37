"""Image API routes; each path works with and without a trailing slash."""

from django.urls import re_path

from imagegen import views

urlpatterns = [
    re_path(r"^image-gen/?$", views.ImageListCreateView.as_view(), name="image-list"),
    re_path(
        r"^image-gen/(?P<image_id>[A-Za-z0-9]{1,40})/?$",
        views.ImageDetailView.as_view(),
        name="image-detail",
    ),
]
