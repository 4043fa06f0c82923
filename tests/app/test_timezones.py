"""The display zone: times shown with their offset named, times typed read in the zone, UTC underneath."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from app import timezones

TAIPEI = timezones.load("Asia/Taipei")


def test_a_stored_moment_is_shown_in_taiwan_time_with_its_offset():
    assert timezones.shown(datetime(2026, 3, 1, 16, 30, tzinfo=timezone.utc), TAIPEI) == "2026/03/02 00:30:00 UTC+08:00"


def test_a_moment_typed_without_a_zone_is_in_the_display_zone_and_one_with_a_zone_keeps_it():
    assert timezones.to_utc(datetime(2026, 3, 2, 0, 30), TAIPEI) == datetime(2026, 3, 1, 16, 30, tzinfo=timezone.utc)
    given = datetime.fromisoformat("2026-03-02T00:30:00+00:00")
    assert timezones.to_utc(given, TAIPEI) == given


def test_a_zone_with_summer_time_names_the_offset_of_that_moment():
    berlin = timezones.load("Europe/Berlin")
    assert timezones.shown(datetime(2026, 1, 15, 12, tzinfo=timezone.utc), berlin).endswith("13:00:00 UTC+01:00")
    assert timezones.shown(datetime(2026, 7, 15, 12, tzinfo=timezone.utc), berlin).endswith("14:00:00 UTC+02:00")


@pytest.mark.parametrize("name", ["Nowhere/City", "", None, "../zoneinfo/UTC"])
def test_a_name_that_is_no_zone_is_a_value_error(name):
    with pytest.raises(ValueError):
        timezones.load(name)


def test_the_label_calls_asia_taipei_taiwan_time(app):
    with app.test_request_context(headers={"Accept-Language": "zh-TW"}):
        assert timezones.zone_label(TAIPEI) == "臺灣時間 (Asia/Taipei, UTC+08:00)"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert timezones.zone_label(TAIPEI) == "Taiwan time (Asia/Taipei, UTC+08:00)"
        assert timezones.zone_label(timezones.load("UTC")) == "UTC (UTC+00:00)"
