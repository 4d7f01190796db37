"""Project routes; paths work with and without a trailing slash."""

from rest_framework.routers import SimpleRouter

from projects.views import ProjectViewSet

router = SimpleRouter()
router.trailing_slash = "/?"  # the constructor only knows "/" or ""
router.register("projects", ProjectViewSet, basename="project")

urlpatterns = router.urls
