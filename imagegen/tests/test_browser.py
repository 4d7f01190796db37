"""The admin and the API docs as a person uses them: headless Chromium against a live server."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from accounts.tests.factories import PASSWORD, UserFactory
from imagegen import services
from imagegen.models import GeneratedImage

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(django_settings.BASE_DIR) / "artifacts"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1440,1200",
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is absent: apt-get install -y chromium chromium-driver",
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, live_server, settings, file_storage) -> Page:
    # Images on the file system, served by the live server under MEDIA_URL.
    settings.MEDIA_ROOT = file_storage
    browser.delete_all_cookies()
    return Page(browser, live_server.url)


class Page:
    """The browser at the live server, with the few gestures the tests need."""

    def __init__(self, driver, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def open(self, path: str) -> None:
        self.driver.get(f"{self.base_url}{path}")

    def find(self, selector: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def wait_for(self, selector: str, *, text: str = "", timeout: float = 10):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        locator = (By.CSS_SELECTOR, selector)
        condition = (
            expected_conditions.text_to_be_present_in_element(locator, text)
            if text
            else expected_conditions.visibility_of_element_located(locator)
        )
        WebDriverWait(self.driver, timeout).until(condition)
        return self.find(selector)

    def log_in(self, username: str) -> None:
        """Submit the login form and wait for the answer page: the login page itself also has
        a #site-name, so waiting for that alone can race the POST. The old page is marked and
        the wait is for a loaded page without the mark (Chrome may answer a question about the
        old page's elements mid-navigation with an "inspector error", not a stale element)."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        self.open(reverse("admin:login"))
        self.find("#id_username").send_keys(username)
        self.find("#id_password").send_keys(PASSWORD)
        self.driver.execute_script("window.loginFormPage = true;")
        self.find("input[type=submit]").click()
        WebDriverWait(self.driver, 10, ignored_exceptions=(WebDriverException,)).until(
            lambda driver: driver.execute_script(
                "return !window.loginFormPage && document.readyState === 'complete';"
            )
        )

    def image_loaded(self, selector: str, *, timeout: float = 10) -> bool:
        """Whether the browser fetched and decoded the image (not just rendered an <img>) within
        `timeout` seconds: images load after the page that holds them."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        def decoded(driver) -> bool:
            return driver.execute_script(
                "const image = document.querySelector(arguments[0]);"
                "return image !== null && image.complete && image.naturalWidth > 0;",
                selector,
            )

        try:
            return WebDriverWait(self.driver, timeout).until(decoded)
        except TimeoutException:
            return False

    def messages(self) -> list[str]:
        from selenium.webdriver.common.by import By

        return [item.text for item in self.driver.find_elements(By.CSS_SELECTOR, ".messagelist li")]

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        assert self.driver.save_screenshot(str(path))
        return path


@pytest.fixture
def generated_image(project, fake_vendor_server) -> GeneratedImage:
    """An image made by the real pipeline against the loopback fake vendors."""
    return services.image_generate(
        user=project.owner,
        project=project,
        visual_prompt="A sleek eco-friendly water bottle on a wooden desk with green plants",
        art_style="modern minimalist photography",
        uuid="segment-001-image",
    ).image


def test_staff_browse_edit_and_regenerate_an_image(page, generated_image, fake_vendor_server):
    staff = UserFactory(is_staff=True, is_superuser=True)
    image = generated_image

    page.log_in(staff.username)
    page.wait_for("#site-name")
    page.open(reverse("admin:imagegen_generatedimage_changelist"))
    page.wait_for("#result_list")
    assert page.image_loaded("#result_list img.imagegen-image")
    assert image.uuid in page.find("#result_list").text

    page.find(f'#result_list a[href$="/{image.pk}/change/"]').click()
    page.wait_for("#generatedimage_form")
    assert page.image_loaded("#generatedimage_form img.imagegen-image")
    assert (
        page.find("#generatedimage_form img.imagegen-image")
        .get_attribute("src")
        .startswith(f"{page.base_url}/media/images/{image.project_id}/")
    )
    assert "realistic" in page.find(".field-routing_category").text
    assert "recraft-ai" in page.find("#attempts-group").text

    prompt = page.find("#id_visual_prompt")
    prompt.clear()
    prompt.send_keys("A steel water bottle on a mossy rock at sunset")
    page.find("input[name=_continue]").click()
    page.wait_for(".messagelist", text="was changed successfully")
    image.refresh_from_db()
    assert image.visual_prompt == "A steel water bottle on a mossy rock at sunset"

    page.find("form.imagegen-regenerate button").click()
    page.wait_for(".messagelist", text="Regenerated 1 image(s)")
    assert page.messages() == [f"Regenerated 1 image(s): {image.uuid}."]
    assert page.driver.current_url.endswith(f"/{image.pk}/change/")
    assert page.image_loaded("#generatedimage_form img.imagegen-image")
    image.refresh_from_db()
    assert image.attempts.count() == 2
    assert fake_vendor_server.calls("recraft") == 2
    assert fake_vendor_server.requests[-1][1]["prompt"].startswith("A steel water bottle")

    screenshot = page.screenshot("admin-image-regenerated.png")
    assert screenshot.stat().st_size > 10_000


def test_staff_regenerate_from_the_list_with_the_action(page, generated_image, fake_vendor_server):
    staff = UserFactory(is_staff=True, is_superuser=True)

    page.log_in(staff.username)
    page.wait_for("#site-name")
    page.open(reverse("admin:imagegen_generatedimage_changelist"))
    page.find(f'input[name=_selected_action][value="{generated_image.pk}"]').click()
    page.find("select[name=action] option[value=regenerate_selected]").click()
    page.find("button[name=index]").click()

    page.wait_for(".messagelist", text="Regenerated 1 image(s)")
    assert page.image_loaded("#result_list img.imagegen-image")
    assert fake_vendor_server.calls("recraft") == 2
    page.screenshot("admin-image-list.png")


def test_project_page_shows_its_images_and_total_cost(page, generated_image):
    staff = UserFactory(is_staff=True, is_superuser=True)

    page.log_in(staff.username)
    page.wait_for("#site-name")
    page.open(reverse("admin:projects_project_change", args=(generated_image.project_id,)))

    page.wait_for("#images-group")
    assert page.image_loaded("#images-group img.imagegen-image")
    assert "0.035" in page.find(".field-total_cost").text
    page.screenshot("admin-project.png")


def test_non_staff_cannot_enter_the_admin(page, user):
    page.log_in(user.username)

    error = page.wait_for(".errornote")
    assert "correct username and password for a staff account" in error.text
    page.open(reverse("admin:imagegen_generatedimage_changelist"))
    assert "/admin/login/" in page.driver.current_url


def test_api_docs_render_offline(page):
    page.open("/docs")

    title = page.wait_for(".swagger-ui .info .title", text="Image generation API", timeout=20)
    assert "Image generation API" in title.text
    page.wait_for('.opblock-summary-path[data-path="/image-gen"]')
    page.wait_for('.opblock-summary-path[data-path="/image-gen/{image_id}"]')
    page.screenshot("api-docs.png")
