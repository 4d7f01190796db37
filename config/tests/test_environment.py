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
        # What int() and float() would take, but nobody writes in a setting.
        ("int", "1_000", "IMAGEGEN_TEST_SETTING='1_000' is not a whole number"),
        ("int", "\u0663", "IMAGEGEN_TEST_SETTING='\u0663' is not a whole number"),  # Arabic 3
        ("float", "1_0.5", "IMAGEGEN_TEST_SETTING='1_0.5' is not a number"),
        ("float", "\uff11", "IMAGEGEN_TEST_SETTING='\uff11' is not a number"),  # fullwidth 1
        ("bool", "ture", "IMAGEGEN_TEST_SETTING='ture' is not true or false"),
        ("bool", "flase", "IMAGEGEN_TEST_SETTING='flase' is not true or false"),
        ("bool", "2", "IMAGEGEN_TEST_SETTING='2' is not true or false"),
        ("bool", "", "IMAGEGEN_TEST_SETTING='' is not true or false"),
        ("bool", "ok", "IMAGEGEN_TEST_SETTING='ok' is not true or false"),
        ("bool", "y", "IMAGEGEN_TEST_SETTING='y' is not true or false"),
        ("bool", "n", "IMAGEGEN_TEST_SETTING='n' is not true or false"),
    ],
)
def test_a_malformed_value_is_refused_naming_the_variable_and_its_value(
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
        ("bool", "true", True),
        ("bool", " Yes ", True),
        ("bool", "on", True),
        ("bool", "1", True),
        ("bool", "False", False),
        ("bool", "off", False),
        ("bool", "no", False),
        ("bool", "0", False),
    ],
)
def test_numbers_and_switches_are_read_as_written(monkeypatch, cast, value, expected):
    monkeypatch.setenv("IMAGEGEN_TEST_SETTING", value)

    assert getattr(env, cast)("IMAGEGEN_TEST_SETTING", default=1) == expected


@pytest.mark.parametrize(("cast", "default"), [("float", 3.0), ("int", 3), ("bool", True)])
def test_an_unset_variable_takes_its_default(monkeypatch, cast, default):
    monkeypatch.delenv("IMAGEGEN_TEST_SETTING", raising=False)

    assert getattr(env, cast)("IMAGEGEN_TEST_SETTING", default=default) == default


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysq://app:not-to-be-shown@db/imagegen", "does not run on ('mysq')"),
        ("mysql://app:not-to-be-shown@db/imagegen", "does not run on ('mysql')"),
        ("postgres://app:not-to-be-shown@127.0.0.1:5432", "names no database"),
        ("postgres://app:not-to-be-shown@127.0.0.1:5432/", "names no database"),
    ],
)
def test_a_database_url_we_cannot_run_on_is_refused_by_name(monkeypatch, url, shown):
    monkeypatch.setenv("DATABASE_URL", url)

    with pytest.raises(ImproperlyConfigured) as refusal:
        env.db("DATABASE_URL")

    assert str(refusal.value).startswith("DATABASE_URL ")
    assert shown in str(refusal.value)
    assert "not-to-be" not in str(refusal.value)


@pytest.mark.parametrize(
    "url", ["postgres://app@127.0.0.1:5432/imagegen", "postgresql://h/db", "sqlite:////tmp/x.db"]
)
def test_the_database_urls_we_run_on_are_read(monkeypatch, url):
    monkeypatch.setenv("DATABASE_URL", url)

    assert env.db("DATABASE_URL")["NAME"]


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
