"""Settings read from the environment: a malformed value is refused by name, not misread."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings.base import env


@pytest.mark.parametrize(
    ("cast", "value", "expected"),
    [
        ("float", "abc", "IMAGEGEN_TEST_SETTING='abc' is not a number"),
        ("float", "", "IMAGEGEN_TEST_SETTING='' is not a number"),
        ("float", "1e3x", "IMAGEGEN_TEST_SETTING='1e3x' is not a number"),
        ("float", "6O", "IMAGEGEN_TEST_SETTING='6O' is not a number"),  # a letter O: not 6.0
        ("float", "nan", "IMAGEGEN_TEST_SETTING='nan' is not a number"),
        ("float", "inf", "IMAGEGEN_TEST_SETTING='inf' is not a number"),
        ("int", "abc", "IMAGEGEN_TEST_SETTING='abc' is not a whole number"),
        ("int", "1.5", "IMAGEGEN_TEST_SETTING='1.5' is not a whole number"),
        ("int", "x" * 10_000, "IMAGEGEN_TEST_SETTING='" + "x" * 47 + "…' is not a whole number"),
    ],
)
def test_a_malformed_number_is_refused_naming_the_variable_and_its_value(
    monkeypatch, cast, value, expected
):
    monkeypatch.setenv("IMAGEGEN_TEST_SETTING", value)

    with pytest.raises(ImproperlyConfigured) as refusal:
        getattr(env, cast)("IMAGEGEN_TEST_SETTING", default=1)

    assert str(refusal.value).startswith(expected)
    assert len(str(refusal.value)) < 200


@pytest.mark.parametrize(
    ("cast", "value", "expected"),
    [
        ("float", "2.5", 2.5),
        ("float", " 60 ", 60.0),
        ("float", "1e3", 1000.0),
        ("float", "-1", -1.0),
        ("int", "32", 32),
        ("int", " 7 ", 7),
    ],
)
def test_numbers_are_read_as_written(monkeypatch, cast, value, expected):
    monkeypatch.setenv("IMAGEGEN_TEST_SETTING", value)

    assert getattr(env, cast)("IMAGEGEN_TEST_SETTING", default=1) == expected


@pytest.mark.parametrize("cast", ["float", "int"])
def test_an_unset_variable_takes_its_default(monkeypatch, cast):
    monkeypatch.delenv("IMAGEGEN_TEST_SETTING", raising=False)

    assert getattr(env, cast)("IMAGEGEN_TEST_SETTING", default=3) == 3


@pytest.mark.parametrize(
    "url",
    [
        "postgres://app:not-to-be-shown@db:five/imagegen",
        # An unescaped / in the password: the parser's own message quotes what precedes it.
        "postgres://app:not-to-be/shown@db/imagegen",
    ],
)
def test_a_malformed_database_url_is_refused_by_name_without_its_password(monkeypatch, url):
    monkeypatch.setenv("DATABASE_URL", url)

    with pytest.raises(ImproperlyConfigured) as refusal:
        env.db("DATABASE_URL")

    assert str(refusal.value).startswith("DATABASE_URL is not a valid database URL (")
    assert "not-to-be" not in str(refusal.value)
    assert refusal.value.__cause__ is None
