"""Admin for generated images."""

from django.contrib import admin

from imagegen.models import GeneratedImage


@admin.register(GeneratedImage)
class GeneratedImageAdmin(admin.ModelAdmin):
    list_display = ("uuid", "project", "model", "status", "image_size_bytes", "created_at")
    search_fields = ("visual_prompt", "art_style", "uuid")
    list_filter = ("model", "status")
