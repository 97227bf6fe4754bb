from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.local_times import NotATime, names_its_offset, shown, time_typed, zone_named

PARIS = zone_named("Europe/Paris")
NOW = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)  # 16:30 in Paris


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("17:00", datetime(2026, 12, 1, 16, tzinfo=UTC)),  # later today, there
        ("16:00", datetime(2026, 12, 2, 15, tzinfo=UTC)),  # passed there today: tomorrow's
        ("5pm", datetime(2026, 12, 1, 16, tzinfo=UTC)),
        ("12am", datetime(2026, 12, 1, 23, tzinfo=UTC)),  # midnight there
        ("Tomorrow", datetime(2026, 12, 2, 8, tzinfo=UTC)),  # 09:00 there
        ("2026-12-05", datetime(2026, 12, 5, 8, tzinfo=UTC)),
        ("2026-12-01T09:00", datetime(2026, 12, 1, 8, tzinfo=UTC)),  # no offset: there
        ("2026-12-01T10:00Z", datetime(2026, 12, 1, 10, tzinfo=UTC)),  # an offset: that moment anywhere
        ("2026-12-01T10:00+05:00", datetime(2026, 12, 1, 5, tzinfo=UTC)),
    ],
)
def test_a_time_is_read_in_the_zone_of_whoever_typed_it_unless_it_names_its_offset(typed: str, meant: datetime) -> None:
    assert time_typed(typed, NOW, PARIS) == meant


def test_without_a_zone_a_time_is_read_in_utc() -> None:
    assert time_typed("17:00", NOW, None) == datetime(2026, 12, 1, 17, tzinfo=UTC)
    assert time_typed("tomorrow", NOW, None) == datetime(2026, 12, 2, 9, tzinfo=UTC)


def test_a_time_a_clock_change_skips_is_read_as_after_it() -> None:
    los_angeles = zone_named("America/Los_Angeles")
    night = datetime(2027, 3, 14, 8, tzinfo=UTC)  # 00:00 there; at 02:00 clocks go to 03:00
    assert time_typed("2:30", night, los_angeles) == datetime(2027, 3, 14, 10, 30, tzinfo=UTC)  # 03:30 PDT


@pytest.mark.parametrize("typed", ["17", "25:00", "13pm", "12:60", "4h", "soon", "2026-13-01"])
def test_what_is_no_time_is_refused(typed: str) -> None:
    with pytest.raises(NotATime):
        time_typed(typed, NOW, PARIS)


def test_a_moment_is_shown_in_the_persons_zone_with_utc_beside_it() -> None:
    assert shown(datetime(2026, 12, 1, 16, tzinfo=UTC), PARIS) == "2026-12-01 17:00 Europe/Paris time (16:00 UTC)"
    assert shown(datetime(2026, 12, 1, 23, 30, tzinfo=UTC), PARIS) == (
        "2026-12-02 00:30 Europe/Paris time (2026-12-01 23:30 UTC)"  # another day in UTC: its date too
    )
    assert shown(datetime(2026, 12, 1, 16, tzinfo=UTC), None) == "2026-12-01 16:00 UTC"
    assert shown(datetime(2026, 12, 1, 16, tzinfo=UTC), zone_named("Etc/UTC")) == "2026-12-01 16:00 UTC"


def test_a_zone_this_machine_does_not_know_is_no_zone() -> None:
    assert zone_named("Mars/Olympus_Mons") is None and zone_named("") is None and zone_named(None) is None
    assert names_its_offset("2026-12-01T10:00Z") and not names_its_offset("2026-12-01T10:00")
    assert not names_its_offset("17:00")


def test_a_time_the_clock_goes_back_over_is_the_next_of_its_two_occurrences() -> None:
    los_angeles = zone_named("America/Los_Angeles")
    # 2026-11-01: at 02:00 PDT clocks go back to 01:00 PST, so 01:30 comes twice
    first_pass = datetime(2026, 11, 1, 8, 45, tzinfo=UTC)  # 01:45 PDT
    second_pass = datetime(2026, 11, 1, 9, 15, tzinfo=UTC)  # 01:15 PST
    assert time_typed("1:30", first_pass, los_angeles) == datetime(2026, 11, 1, 9, 30, tzinfo=UTC)  # 01:30 PST
    assert time_typed("1:30", second_pass, los_angeles) == datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    assert time_typed("1:00", second_pass, los_angeles) == datetime(2026, 11, 2, 9, tzinfo=UTC)  # both passed


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("20261205", datetime(2026, 12, 5, 8, tzinfo=UTC)),  # a date alone, however written: 09:00 there
        ("2026-W50", datetime(2026, 12, 7, 8, tzinfo=UTC)),  # an ISO week: its Monday
        ("2026-w50-3", datetime(2026, 12, 9, 8, tzinfo=UTC)),
        ("2026-12-01T10:00z", datetime(2026, 12, 1, 10, tzinfo=UTC)),
    ],
)
def test_every_iso_form_of_a_date_is_read_as_a_date_alone_is(typed: str, meant: datetime) -> None:
    assert time_typed(typed, NOW, PARIS) == meant
    assert names_its_offset(typed) is typed.lower().endswith("z")


@pytest.mark.parametrize("name", ["UTC", "Etc/UCT", "GMT0", "Etc/GMT", "Zulu"])
def test_utc_under_any_name_is_shown_as_utc(name: str) -> None:
    assert shown(NOW, zone_named(name)) == "2026-12-01 15:30 UTC"


def test_a_moment_typed_to_the_second_is_shown_to_the_second() -> None:
    moment = datetime(2026, 12, 1, 0, 1, 47, tzinfo=UTC)
    assert shown(moment, PARIS) == "2026-12-01 01:01:47 Europe/Paris time (00:01:47 UTC)"
