"""Tests for sessiondata.calendar: sessions, windows, DST, exchanges."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessiondata.calendar import Calendar, Windows

NS = 1_000_000_000
MINUTE = 60 * NS
HOUR = 3600 * NS
DAY = 86_400 * NS

CME_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz"


def ns(text: str) -> int:
    """UTC nanoseconds of an ISO timestamp."""
    return int(np.datetime64(text, "ns").astype(np.int64))


def utc(values) -> list[str]:
    """ISO minutes of UTC nanoseconds, for readable comparisons."""
    return [str(v)[:16] for v in np.asarray(values).astype("datetime64[ns]")]


def days(*labels: str) -> np.ndarray:
    return np.array(labels, dtype="datetime64[D]")


def assert_invariants(w: Windows) -> None:
    """The documented Windows contract."""
    for name, dtype in (("open_ns", np.int64), ("close_ns", np.int64), ("session_ids", np.int64)):
        arr = getattr(w, name)
        assert arr.dtype == dtype, name
        assert arr.flags.c_contiguous and not arr.flags.writeable, name
    assert w.sessions.dtype == np.dtype("datetime64[D]")
    assert not w.sessions.flags.writeable
    assert len(w.open_ns) == len(w.close_ns) == len(w.session_ids) == len(w)
    if len(w):
        assert np.all(w.close_ns > w.open_ns)
        assert np.all(w.open_ns[1:] >= w.close_ns[:-1])
        assert np.all(np.diff(w.open_ns) > 0)
        assert np.all(np.diff(w.session_ids) >= 0)
        assert w.session_ids[0] == 0 and w.session_ids[-1] == w.n_sessions - 1
        assert np.all(np.diff(w.sessions.astype(np.int64)) > 0)


# --------------------------------------------------------------------------- always


def test_always_one_contiguous_window_per_utc_day():
    w = Calendar.always().windows(ns("2023-12-30T12:00"), ns("2024-03-02T00:00"))
    assert_invariants(w)
    labels = np.arange(np.datetime64("2023-12-30"), np.datetime64("2024-03-02"))
    np.testing.assert_array_equal(w.sessions, labels)
    np.testing.assert_array_equal(w.open_ns, labels.astype("datetime64[ns]").astype(np.int64))
    np.testing.assert_array_equal(w.close_ns - w.open_ns, np.full(len(w), DAY))
    np.testing.assert_array_equal(w.close_ns[:-1], w.open_ns[1:])
    np.testing.assert_array_equal(w.session_ids, np.arange(len(w)))


def test_always_basics():
    cal = Calendar.always()
    assert cal is Calendar.always()
    assert cal.name == "ALWAYS" and cal.tz.key == "UTC" and cal.coverage is None
    assert repr(cal) == "Calendar('ALWAYS', tz='UTC')"
    assert cal.is_session("2024-02-29") and cal.is_session(dt.date(2023, 12, 25))
    assert cal.session_of(ns("2024-02-29T23:59:59")) == np.datetime64("2024-02-29")
    assert cal.session_of(ns("2024-03-01T00:00")) == np.datetime64("2024-03-01")
    assert len(cal.sessions("2024-01-01", "2024-12-31")) == 366


def test_always_twenty_years_of_minutes_is_fast():
    cal = Calendar.always()
    start, end = ns("2004-01-01"), ns("2024-01-01")
    w = cal.windows(start, end)
    assert len(w) == 7305
    best = min(_elapsed(cal.windows, start, end) for _ in range(20))
    assert best < 5e-3


def _elapsed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- weekly


def test_weekly_nyse_hours_follow_both_dst_changes_of_2024():
    cal = Calendar.weekly("America/New_York", "09:30", "16:00", "Mon-Fri")
    w = cal.windows(ns("2024-03-08"), ns("2024-03-12"))
    np.testing.assert_array_equal(w.sessions, days("2024-03-08", "2024-03-11"))
    assert utc(w.open_ns) == ["2024-03-08T14:30", "2024-03-11T13:30"]
    assert utc(w.close_ns) == ["2024-03-08T21:00", "2024-03-11T20:00"]
    w = cal.windows(ns("2024-11-01"), ns("2024-11-05"))
    np.testing.assert_array_equal(w.sessions, days("2024-11-01", "2024-11-04"))
    assert utc(w.open_ns) == ["2024-11-01T13:30", "2024-11-04T14:30"]


def test_weekly_matches_pandas_localisation_for_a_whole_year():
    pd = pytest.importorskip("pandas")
    cal = Calendar.weekly("Europe/London", "08:00", "16:30")
    w = cal.windows(ns("2024-01-01"), ns("2025-01-01"))
    assert_invariants(w)
    labels = pd.DatetimeIndex(w.sessions.astype("datetime64[ns]"))
    assert set(labels.day_of_week) == {0, 1, 2, 3, 4} and len(labels) == 262
    expect_open = (labels + pd.Timedelta("8h")).tz_localize("Europe/London").tz_convert(None)
    expect_close = (labels + pd.Timedelta("16h30min")).tz_localize("Europe/London").tz_convert(None)
    np.testing.assert_array_equal(w.open_ns, expect_open.as_unit("ns").asi8)
    np.testing.assert_array_equal(w.close_ns, expect_close.as_unit("ns").asi8)


def test_weekly_lunch_break_gives_two_windows_per_session():
    cal = Calendar.weekly("Asia/Shanghai", "09:30", "15:00", breaks=[("11:30", "13:00")])
    w = cal.windows(ns("2024-01-02"), ns("2024-01-04"))
    assert_invariants(w)
    np.testing.assert_array_equal(w.sessions, days("2024-01-02", "2024-01-03"))
    np.testing.assert_array_equal(w.session_ids, [0, 0, 1, 1])
    assert utc(w.open_ns[w.session_slice(0)]) == ["2024-01-02T01:30", "2024-01-02T05:00"]
    assert utc(w.close_ns[w.session_slice(0)]) == ["2024-01-02T03:30", "2024-01-02T07:00"]


def test_weekly_session_opening_the_evening_before():
    cal = Calendar.weekly("America/Chicago", "17:00", "16:00", "Mon-Fri")
    w = cal.session_windows("2024-01-02")
    assert utc(w.open_ns) == ["2024-01-01T23:00"] and utc(w.close_ns) == ["2024-01-02T22:00"]
    # Monday's session opens on Sunday evening; this one straddles the spring change.
    w = cal.session_windows("2024-03-11")
    assert utc(w.open_ns) == ["2024-03-10T22:00"] and utc(w.close_ns) == ["2024-03-11T21:00"]
    assert not cal.is_session("2024-03-10")
    assert cal.session_of(ns("2024-03-10T22:00")) == np.datetime64("2024-03-11")
    assert cal.session_of(ns("2024-03-11T21:30")) is None


def test_weekly_breaks_after_midnight_in_an_overnight_session():
    cal = Calendar.weekly("UTC", "22:00", "21:00", breaks=[("23:00", "23:15"), ("02:00", "03:00")])
    w = cal.session_windows("2024-01-03")
    assert utc(w.open_ns) == ["2024-01-02T22:00", "2024-01-02T23:15", "2024-01-03T03:00"]
    assert utc(w.close_ns) == ["2024-01-02T23:00", "2024-01-03T02:00", "2024-01-03T21:00"]


def test_weekly_holidays_and_early_closes():
    cal = Calendar.weekly(
        "America/New_York", "09:30", "16:00",
        holidays=["2024-07-04", dt.date(2024, 12, 25), np.datetime64("2024-07-06")],
        early_closes={"2024-07-03": "13:00", dt.date(2024, 12, 24): dt.time(13, 0)},
    )
    np.testing.assert_array_equal(
        cal.sessions("2024-07-01", "2024-07-08"),
        days("2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05", "2024-07-08"),
    )
    assert not cal.is_session("2024-07-04")
    with pytest.raises(ValueError, match="2024-07-04 is not a session of weekly"):
        cal.session_windows("2024-07-04")
    assert utc(cal.session_windows("2024-07-03").close_ns) == ["2024-07-03T17:00"]
    assert utc(cal.session_windows("2024-12-24").close_ns) == ["2024-12-24T18:00"]
    assert utc(cal.session_windows("2024-07-05").close_ns) == ["2024-07-05T20:00"]


def test_weekly_early_close_during_or_before_a_break():
    cal = Calendar.weekly(
        "Asia/Shanghai", "09:30", "15:00", breaks=[("11:30", "13:00")],
        early_closes={"2024-01-02": "12:00", "2024-01-03": "14:00", "2024-01-04": "11:00"},
    )
    assert utc(cal.session_windows("2024-01-02").close_ns) == ["2024-01-02T03:30"]
    w = cal.session_windows("2024-01-03")
    assert utc(w.close_ns) == ["2024-01-03T03:30", "2024-01-03T06:00"]
    assert utc(cal.session_windows("2024-01-04").close_ns) == ["2024-01-04T03:00"]


def test_weekly_nonexistent_local_time_moves_forward():
    cal = Calendar.weekly("America/New_York", "02:30", "03:30", "Mon-Sun")
    w = cal.session_windows("2024-03-10")  # 02:00 -> 03:00 EDT
    assert utc(w.open_ns) == ["2024-03-10T07:00"] and utc(w.close_ns) == ["2024-03-10T07:30"]
    # A window wholly inside the skipped hour vanishes, and so does its session.
    gap = Calendar.weekly("America/New_York", "02:10", "02:50", "Mon-Sun")
    assert not gap.is_session("2024-03-10") and gap.is_session("2024-03-11")
    assert len(gap.windows(ns("2024-03-10"), ns("2024-03-11"))) == 0


def test_weekly_ambiguous_local_time_takes_first_occurrence():
    cal = Calendar.weekly("America/New_York", "01:30", "03:00", "Mon-Sun")
    w = cal.session_windows("2024-11-03")  # 02:00 EDT -> 01:00 EST
    assert utc(w.open_ns) == ["2024-11-03T05:30"] and utc(w.close_ns) == ["2024-11-03T08:00"]


def test_weekly_midnight_close_and_day_specs():
    whole = Calendar.weekly("UTC", "00:00", "24:00", "Mon-Sun")
    assert whole.windows(ns("2024-01-01"), ns("2024-03-01")) == Calendar.always().windows(
        ns("2024-01-01"), ns("2024-03-01")
    )
    sun_thu = Calendar.weekly("Asia/Jerusalem", "10:00", "17:00", "Sun-Thu")
    assert sun_thu.name == "weekly(Asia/Jerusalem 10:00-17:00 Sun-Thu)"
    np.testing.assert_array_equal(
        sun_thu.sessions("2024-01-05", "2024-01-09"), days("2024-01-07", "2024-01-08", "2024-01-09")
    )
    for spec in ([0, 2, 4], ["Mon", "wednesday", "Fri"], "Mon,Wed,Fri", (np.int64(4), 2, 0)):
        cal = Calendar.weekly("UTC", "09:00", "17:00", spec, name="mwf")
        assert cal.name == "mwf"
        np.testing.assert_array_equal(
            cal.sessions("2024-01-01", "2024-01-07"), days("2024-01-01", "2024-01-03", "2024-01-05")
        )


def test_weekly_repr_and_tz():
    cal = Calendar.weekly("America/New_York", dt.time(9, 30), "16:00:00")
    assert repr(cal) == "Calendar('weekly(America/New_York 09:30-16:00 Mon-Fri)', tz='America/New_York')"
    assert cal.tz.key == "America/New_York" and cal.coverage is None


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"tz": "Mars/Olympus_Mons"}, "Mars/Olympus_Mons"),
        ({"tz": ""}, "''"),
        ({"open": "25:00"}, "25:00"),
        ({"open": "9h30"}, "9h30"),
        ({"open": "24:00"}, "24:00"),
        ({"close": "16:60"}, "16:60"),
        ({"days": ""}, "''"),
        ({"days": []}, r"\[\]"),
        ({"days": "Funday"}, "Funday"),
        ({"days": "Mon-Fryday"}, "Fryday"),
        ({"days": [7]}, "7"),
        ({"breaks": [("08:00", "09:00")]}, "08:00, 09:00"),
        ({"breaks": [("12:00", "11:00")]}, "12:00, 11:00"),
        ({"breaks": [("15:00", "16:00")]}, "15:00, 16:00"),
        ({"breaks": [("11:00", "12:00"), ("11:30", "13:00")]}, "11:30"),
        ({"breaks": [("11:00",)]}, "11:00"),
        ({"breaks": [("11:00", "1200")]}, "1200"),
        ({"holidays": ["2024-02-30"]}, "2024-02-30"),
        ({"early_closes": {"2024-01-06": "12:00"}}, "2024-01-06"),
        ({"early_closes": {"2024-01-04": "17:00"}}, "17:00"),
        ({"early_closes": {"2024-01-04": "08:00"}}, "08:00"),
        ({"early_closes": {"not a date": "12:00"}}, "not a date"),
        ({"holidays": ["2024-01-04"], "early_closes": {"2024-01-04": "12:00"}}, "2024-01-04"),
    ],
)
def test_weekly_bad_values_raise_value_error_naming_them(kwargs, named):
    args = {"tz": "America/New_York", "open": "09:30", "close": "16:00", **kwargs}
    with pytest.raises(ValueError, match=named):
        Calendar.weekly(**args)


@pytest.mark.parametrize(
    "kwargs",
    [{"tz": 5}, {"open": 930}, {"days": 3.5}, {"breaks": "11:30-13:00"}, {"early_closes": ["2024-01-04"]},
     {"holidays": [20240101]}],
)
def test_weekly_wrong_types_raise_type_error(kwargs):
    args = {"tz": "America/New_York", "open": "09:30", "close": "16:00", **kwargs}
    with pytest.raises(TypeError):
        Calendar.weekly(**args)


# --------------------------------------------------------------------------- windows()


@pytest.fixture(scope="module")
def lunch():
    return Calendar.weekly("Asia/Shanghai", "09:30", "15:00", breaks=[("11:30", "13:00")])


def test_windows_returns_whole_sessions(lunch):
    morning_only = lunch.windows(ns("2024-01-02T02:00"), ns("2024-01-02T02:30"))
    assert len(morning_only) == 2 and morning_only.n_sessions == 1
    assert morning_only == lunch.session_windows("2024-01-02")
    last_minute = lunch.windows(ns("2024-01-02T06:59"), ns("2024-01-02T07:00"))
    assert last_minute == lunch.session_windows("2024-01-02")


def test_windows_bounds_are_half_open(lunch):
    assert len(lunch.windows(ns("2024-01-02T04:00"), ns("2024-01-02T04:30"))) == 0  # lunch
    assert len(lunch.windows(ns("2024-01-02T03:30"), ns("2024-01-02T05:00"))) == 0  # close .. next open
    assert len(lunch.windows(ns("2024-01-02T00:00"), ns("2024-01-02T01:30"))) == 0  # up to the open
    assert len(lunch.windows(ns("2024-01-02T01:29"), ns("2024-01-02T01:31"))) == 2
    assert lunch.session_of(ns("2024-01-02T03:29:59")) == np.datetime64("2024-01-02")
    assert lunch.session_of(ns("2024-01-02T03:30")) is None
    assert lunch.session_of(ns("2024-01-02T05:00")) == np.datetime64("2024-01-02")


def test_windows_invariants_and_read_only(lunch):
    w = lunch.windows(ns("2024-01-01"), ns("2025-01-01"))
    assert_invariants(w)
    assert w.n_sessions == 262 and len(w) == 524
    with pytest.raises(ValueError):
        w.open_ns[0] = 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.open_ns = w.close_ns  # type: ignore[misc]
    sl = w.session_slice(-1)
    assert (sl.start, sl.stop) == (522, 524)
    with pytest.raises(IndexError):
        w.session_slice(262)


def test_windows_chunked_equals_whole(lunch):
    whole = lunch.windows(ns("2024-01-01"), ns("2024-04-01"))
    cut = ns("2024-02-14T12:00")  # between two sessions
    a, b = lunch.windows(ns("2024-01-01"), cut), lunch.windows(cut, ns("2024-04-01"))
    np.testing.assert_array_equal(np.concatenate([a.open_ns, b.open_ns]), whole.open_ns)
    np.testing.assert_array_equal(np.concatenate([a.close_ns, b.close_ns]), whole.close_ns)
    np.testing.assert_array_equal(np.concatenate([a.sessions, b.sessions]), whole.sessions)
    for cut in (ns("2024-02-14T02:00"), ns("2024-02-14T04:00")):  # in a window, in the lunch break
        a, b = lunch.windows(ns("2024-01-01"), cut), lunch.windows(cut, ns("2024-04-01"))
        assert a.sessions[-1] == b.sessions[0] == np.datetime64("2024-02-14")
        assert len(a) + len(b) == len(whole) + 2  # both halves hold that session whole


def test_windows_argument_checks(lunch):
    assert len(lunch.windows(ns("2024-01-02T02:00"), ns("2024-01-02T02:00"))) == 0
    assert len(lunch.windows(np.int64(ns("2024-01-02")), np.int64(ns("2024-01-03")))) == 2
    with pytest.raises(ValueError, match="end_ns must be >= start_ns"):
        lunch.windows(ns("2024-01-03"), ns("2024-01-02"))
    with pytest.raises(TypeError, match="start_ns"):
        lunch.windows(1.5e18, ns("2024-01-02"))
    with pytest.raises(ValueError, match="years"):
        lunch.windows(-(2**63) + 1, 0)
    with pytest.raises(ValueError, match="end must not be before start"):
        lunch.sessions("2024-02-01", "2024-01-01")
    with pytest.raises(ValueError, match="2024-13-01"):
        lunch.is_session("2024-13-01")


def test_date_arguments_accept_the_usual_types(lunch):
    pd = pytest.importorskip("pandas")
    for value in ("2024-01-02", dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 15, 0),
                  np.datetime64("2024-01-02"), np.datetime64("2024-01-02T10:00"), pd.Timestamp("2024-01-02")):
        assert lunch.is_session(value), value


# --------------------------------------------------------------------------- Windows


def test_windows_constructor_validates_and_copies():
    opens = np.array([0, 10, 30], dtype=np.int64)
    w = Windows(opens, np.array([5, 20, 40]), np.array([0, 0, 1]), days("2024-01-01", "2024-01-02"))
    assert_invariants(w)
    assert opens.flags.writeable and w.open_ns is not opens  # the caller's array stays theirs
    assert repr(w) == "Windows(3 windows, 2 sessions, 2024-01-01..2024-01-02)"
    assert w.session_slice(1) == slice(2, 3)
    np.testing.assert_array_equal(
        w.locate(np.array([-1, 0, 4, 5, 9, 10, 29, 39, 40], dtype=np.int64)), [-1, 0, 0, -1, -1, 1, -1, 2, -1]
    )
    assert len(Windows.empty()) == 0 and Windows.empty().n_sessions == 0
    bad = [
        (np.array([0, 10]), np.array([15, 20]), np.array([0, 0]), days("2024-01-01")),  # overlap
        (np.array([0, 10]), np.array([0, 20]), np.array([0, 0]), days("2024-01-01")),  # empty window
        (np.array([0, 10]), np.array([5, 20]), np.array([0, 2]), days("2024-01-01", "2024-01-02")),
        (np.array([0, 10]), np.array([5, 20]), np.array([1, 0]), days("2024-01-01", "2024-01-02")),
        (np.array([0, 10]), np.array([5, 20]), np.array([0, 1]), days("2024-01-02", "2024-01-01")),
        (np.array([0.0, 10.0]), np.array([5, 20]), np.array([0, 1]), days("2024-01-01", "2024-01-02")),
    ]
    for args in bad:
        with pytest.raises(ValueError):
            Windows(*args)


# --------------------------------------------------------------------------- exchange


def test_exchange_without_exchange_calendars_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "exchange_calendars", None)
    with pytest.raises(ImportError, match=r'pip install "sessiondata\[calendars\]"'):
        Calendar.exchange("XLON")


@pytest.fixture(scope="module")
def xcals():
    return pytest.importorskip("exchange_calendars")


def test_exchange_xnys_half_day_and_holiday(xcals):
    cal = Calendar.exchange("XNYS")
    assert repr(cal) == "Calendar('XNYS', tz='America/New_York')"
    w = cal.session_windows("2024-11-29")
    assert utc(w.open_ns) == ["2024-11-29T14:30"] and utc(w.close_ns) == ["2024-11-29T18:00"]
    assert not cal.is_session("2024-07-04")
    with pytest.raises(ValueError, match="2024-07-04 is not a session of XNYS"):
        cal.session_windows("2024-07-04")
    np.testing.assert_array_equal(
        cal.sessions("2024-07-01", "2024-07-05"), days("2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05")
    )


def test_exchange_aliases_and_case(xcals):
    assert Calendar.exchange("NYSE").name == "XNYS"
    assert Calendar.exchange("xnys") is Calendar.exchange("XNYS")


def test_exchange_xhkg_lunch_break(xcals):
    w = Calendar.exchange("XHKG").session_windows("2024-01-02")
    assert utc(w.open_ns) == ["2024-01-02T01:30", "2024-01-02T05:00"]
    assert utc(w.close_ns) == ["2024-01-02T04:00", "2024-01-02T08:00"]


@pytest.mark.parametrize("code", ["XNYS", "XHKG", "XLON", "CMES"])
def test_exchange_matches_its_schedule(xcals, code):
    pd = pytest.importorskip("pandas")
    cal = Calendar.exchange(code)
    schedule = xcals.get_calendar(code).schedule.loc["2020-01-01":"2024-12-31"]
    w = cal.windows(ns("2020-01-01"), ns("2025-01-01"))
    assert_invariants(w)
    np.testing.assert_array_equal(w.sessions, schedule.index.values.astype("datetime64[D]"))

    def col(name):
        return pd.DatetimeIndex(schedule[name]).tz_convert(None).as_unit("ns").asi8

    has_break = ~pd.isna(schedule["break_start"]).to_numpy()
    first = np.searchsorted(w.session_ids, np.arange(w.n_sessions))
    last = np.searchsorted(w.session_ids, np.arange(w.n_sessions), side="right") - 1
    np.testing.assert_array_equal(w.open_ns[first], col("open"))
    np.testing.assert_array_equal(w.close_ns[last], col("close"))
    np.testing.assert_array_equal(last - first + 1, np.where(has_break, 2, 1))
    np.testing.assert_array_equal(w.close_ns[first[has_break]], col("break_start")[has_break])
    np.testing.assert_array_equal(w.open_ns[last[has_break]], col("break_end")[has_break])


def test_exchange_cme_globex_closes_at_16_chicago(xcals):
    cal = Calendar.exchange("CME_GLOBEX")
    assert cal is Calendar.exchange("CMEG")
    assert cal.name == "CME_GLOBEX" and cal.tz.key == "America/Chicago"
    w = cal.session_windows("2024-01-02")
    assert utc(w.open_ns) == ["2024-01-01T23:00"] and utc(w.close_ns) == ["2024-01-02T22:00"]
    w = cal.session_windows("2024-07-02")  # summer time: 17:00-16:00 CDT
    assert utc(w.open_ns) == ["2024-07-01T22:00"] and utc(w.close_ns) == ["2024-07-02T21:00"]
    w = cal.session_windows("2024-01-15")  # MLK day: CMES closes at 12:00 CT, Globex at 16:00
    assert utc(w.open_ns) == ["2024-01-14T23:00"] and utc(w.close_ns) == ["2024-01-15T22:00"]
    assert not cal.is_session("2024-01-01")
    assert cal.session_of(ns("2024-01-02T22:30")) is None  # the daily pause
    assert cal.session_of(ns("2024-01-02T23:00")) == np.datetime64("2024-01-03")


@pytest.mark.skipif(not CME_FILE.exists(), reason="shared CME sample data not present")
def test_exchange_cme_globex_against_real_6e_bars(xcals):
    pd = pytest.importorskip("pandas")
    bars = pd.read_csv(CME_FILE)
    # The file stamps each bar at its end; windows hold bar starts.
    start = pd.to_datetime(bars["timestamp_utc"]).to_numpy("datetime64[ns]").astype(np.int64) - MINUTE
    cal = Calendar.exchange("CME_GLOBEX")
    w = cal.windows(int(start[0]), int(start[-1]) + MINUTE)
    assert w.sessions[0] == np.datetime64("2024-01-02") and w.sessions[-1] == np.datetime64("2024-02-01")
    outside = start[w.locate(start) < 0]
    # Every bar is inside a window, MLK day too: CMES ends that session at 12:00 CT, yet 6E
    # kept trading, thinly, until the 16:00 CT pause, and CME_GLOBEX keeps that close.
    assert len(outside) == 0
    mlk = (start >= ns("2024-01-15T18:00")) & (start < ns("2024-01-15T22:00"))
    assert mlk.sum() == 155


def test_exchange_unknown_code(xcals):
    with pytest.raises(ValueError, match=r"unknown calendar code 'XXXX'.*XNYS.*get_calendar_names\(\)"):
        Calendar.exchange("XXXX")


def test_exchange_widens_to_the_range_asked(xcals):
    # Issue 10: exchange_calendars builds ~20 years back by default; the calendar widens its
    # schedule to the sessions a query needs (data of 1990, or of a year ahead).
    cal = Calendar.exchange("XNYS")
    w = cal.windows(ns("1990-01-01"), ns("1990-02-01"))
    assert len(w) == 22   # January 1990: 23 weekdays, New Year's Day a holiday
    assert str(cal.coverage[0]) <= "1990-01-02"
    assert list(cal.sessions("1990-01-01", "1990-01-05").astype(str)) == [
        "1990-01-02", "1990-01-03", "1990-01-04", "1990-01-05"]
    last = cal.coverage[1]
    assert cal.is_session(np.datetime64(last) + 400) in (True, False)
    assert cal.coverage[1] >= np.datetime64(last) + 400


def test_exchange_outside_what_it_can_build(xcals):
    cal = Calendar.exchange("XNYS")
    with pytest.raises(ValueError, match=r"outside the range covered by XNYS: sessions \S+ to \S+"):
        cal.sessions("1600-01-01", "1600-02-01")


# --------------------------------------------------------------------------- properties

ZONES = ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata",
         "Pacific/Chatham", "America/Sao_Paulo", "Asia/Tokyo"]


@st.composite
def weekly_calendars(draw):
    """A valid weekly calendar with up to two breaks, holidays and early closes, and its weekdays."""
    tz = draw(st.sampled_from(ZONES))
    open_min = draw(st.integers(0, 1439))
    length = draw(st.integers(1, 1440))  # session length in minutes; overnight when it wraps
    close_min = (open_min + length) % 1440
    if close_min == 0 and open_min + length == 1440:
        close_text = "24:00"
    else:
        close_text = _hhmm(close_min)
    # Break edges as minutes after the open, strictly inside the session, paired in order.
    edges = sorted(draw(st.sets(st.integers(1, length - 1), max_size=4))) if length > 2 else []
    offsets = edges[: len(edges) // 2 * 2]
    breaks = [(_hhmm((open_min + a) % 1440), _hhmm((open_min + b) % 1440)) for a, b in zip(offsets[::2], offsets[1::2])]
    weekdays = sorted(draw(st.sets(st.integers(0, 6), min_size=1)))
    base = np.datetime64("2024-01-01")
    holidays = [base + d for d in draw(st.lists(st.integers(0, 400), max_size=20))]
    candidates = [base + d for d in draw(st.lists(st.integers(0, 400), max_size=10))]
    early = {
        d: _hhmm((open_min + draw(st.integers(1, length))) % 1440)
        for d in candidates
        if d not in holidays and (d.astype(np.int64) + 3) % 7 in weekdays
    }
    cal = Calendar.weekly(tz, _hhmm(open_min), close_text, weekdays, breaks=breaks, holidays=holidays,
                          early_closes=early)
    return cal, set(weekdays), set(holidays)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(weekly_calendars(), st.integers(0, 400 * 24 * 60), st.integers(0, 40 * 24 * 60))
def test_weekly_windows_properties(case, start_min, span_min):
    cal, weekdays, holidays = case
    start = ns("2024-01-01") + start_min * MINUTE
    end = start + span_min * MINUTE
    w = cal.windows(start, end)
    assert_invariants(w)
    if not len(w):
        return
    labels = w.sessions.astype(np.int64)
    assert set(((labels + 3) % 7).tolist()) <= weekdays
    assert not set(w.sessions.tolist()) & {h.item() for h in holidays}
    # Each session has a window meeting [start, end), and comes whole.
    for k, label in enumerate(w.sessions):
        sl = w.session_slice(k)
        assert np.any((w.open_ns[sl] < end) & (w.close_ns[sl] > start))
        assert cal.session_windows(label) == Windows(
            w.open_ns[sl], w.close_ns[sl], np.zeros(sl.stop - sl.start, dtype=np.int64), w.sessions[k : k + 1]
        )
    # Windows know their session, and the gaps between them belong to nobody.
    assert cal.session_of(int(w.open_ns[0])) == w.sessions[w.session_ids[0]]
    assert cal.session_of(int(w.close_ns[-1]) - 1) == w.sessions[-1]
    assert cal.session_of(int(w.close_ns[-1])) != w.sessions[-1]
    np.testing.assert_array_equal(cal.sessions(w.sessions[0], w.sessions[-1]), w.sessions)


@pytest.mark.parametrize("make", [
    lambda: Calendar.always(),
    lambda: Calendar.weekly("Europe/Berlin", "09:00", "17:30", breaks=[("12:00", "13:00")],
                            holidays=["2024-01-02"], early_closes={"2024-12-24": "14:00"}),
    lambda: Calendar.exchange("XNYS"),
    lambda: Calendar.exchange("CME_GLOBEX"),
], ids=["always", "weekly", "XNYS", "CME_GLOBEX"])
def test_a_calendar_pickles_by_name_and_parameters(make):
    """A Dask worker gets the calendar by pickle (cloudpickle too): an exchange calendar by
    its code (no lock, no schedule), 24/7 as the one instance, a weekly one by its rule; the
    copy has the same sessions."""
    import pickle

    try:
        cal = make()
    except ImportError:
        pytest.skip("exchange_calendars is not installed")
    lo = int(np.datetime64("2024-01-01", "ns").astype(np.int64))
    hi = int(np.datetime64("2025-01-10", "ns").astype(np.int64))
    cal.windows(lo, hi)  # a cache filled first: it does not travel
    blob = pickle.dumps(cal)
    assert len(blob) < 2000
    copy = pickle.loads(blob)
    assert copy.name == cal.name and copy.tz == cal.tz
    assert copy.windows(lo, hi) == cal.windows(lo, hi)
    if cal is Calendar.always() or cal.coverage is not None:
        assert copy is cal  # one instance per process
    cloudpickle = pytest.importorskip("cloudpickle")
    assert pickle.loads(cloudpickle.dumps(cal)).windows(lo, hi) == cal.windows(lo, hi)


def test_exchange_calendars_are_kept_on_disk_for_the_next_process(tmp_path):
    """A second process reads the built windows back without importing exchange_calendars
    (a second or more at each start of the command line), and gets the same windows."""
    import subprocess
    import sys

    pytest.importorskip("exchange_calendars")
    script = (
        "import sys, sessiondata as sd\n"
        "c = sd.Calendar.exchange('XNYS')\n"
        "w = c.windows(1672531200000000000, 1704067200000000000)\n"
        "print('exchange_calendars' in sys.modules, len(w), int(w.open_ns.sum() % 997),"
        " c.name, c.tz)\n"
    )
    env = dict(__import__("os").environ, SESSIONDATA_CACHE=str(tmp_path))
    first, second = (subprocess.run([sys.executable, "-c", script], env=env, text=True,
                                    capture_output=True, check=True).stdout.split()
                     for _ in range(2))
    assert first[0] == "True" and second[0] == "False"
    assert first[1:] == second[1:] and first[1] == "250"
    assert list(tmp_path.glob("calendars/XNYS-ec*.npz"))
    env["SESSIONDATA_CACHE"] = "off"
    off = subprocess.run([sys.executable, "-c", script], env=env, text=True,
                         capture_output=True, check=True).stdout.split()
    assert off[0] == "True" and off[1:] == first[1:]


# --------------------------------------------------------------------------- issue 19


@pytest.mark.parametrize("code, start, end, first", [
    ("XBOM", "2000-01-03", "2000-01-07", "2000-01-03"),   # served from 1997
    ("XSES", "1990-01-02", "1990-01-05", "1990-01-02"),   # served from 1986
    ("XSHG", "1995-01-03", "1995-01-06", "1995-01-03"),   # served from 1990
    ("XSAU", "2028-06-01", "2028-06-08", "2028-06-01"),   # served to 2029
    ("XSAU", "2029-12-23", "2029-12-31", "2029-12-23"),   # its very last days
])
def test_exchange_widens_up_to_the_library_bounds(xcals, code, start, end, first):
    # Issue 19: the 366-day margin crossed the library's bound_min/bound_max and the whole
    # widening was refused; now it is clipped to them.  Compared with the library's answer.
    import exchange_calendars as xc

    cal = Calendar.exchange(code)
    got = cal.sessions(start, end)
    lib = xc.get_calendar(code, start=start, end=end).sessions_in_range(start, end)
    assert [str(d) for d in got] == [str(d.date()) for d in lib]
    assert str(got[0]) == first


def test_exchange_beyond_the_library_bounds_is_a_clear_error(xcals):
    cal = Calendar.exchange("XSAU")
    with pytest.raises(ValueError, match=r"outside the range covered by XSAU: sessions "
                                         r"\S+ to 2029-12-31"):
        cal.sessions("2030-01-06", "2030-01-10")
    cal = Calendar.exchange("XBOM")
    with pytest.raises(ValueError, match=r"outside the range covered by XBOM: sessions "
                                         r"1997-01-01 to"):
        cal.sessions("1996-12-02", "1997-01-10")


def test_fx_week():
    fx = Calendar.fx()
    assert fx.name == "FX" and fx.tz.key == "America/New_York"
    # Winter: Sunday 22:00 UTC to Friday 22:00 UTC, five sessions, no weekend.
    w = fx.windows(ns("2013-02-01"), ns("2013-02-09"))
    assert list(w.sessions.astype(str)) == ["2013-02-01", "2013-02-04", "2013-02-05",
                                            "2013-02-06", "2013-02-07", "2013-02-08"]
    k = list(w.sessions.astype(str)).index("2013-02-04")
    assert utc(w.open_ns[k:k + 1]) == ["2013-02-03T22:00"]
    assert utc(w.close_ns[-1:]) == ["2013-02-08T22:00"]
    # Summer: 21:00 UTC.
    assert utc(fx.session_windows("2013-07-01").open_ns) == ["2013-06-30T21:00"]


def test_exchange_with_its_own_hours(xcals):
    # XEUR's holidays, 09:00-22:00 Berlin: exchange_calendars gives 2006 today's 08:00 open.
    plain = Calendar.exchange("XEUR")
    assert utc(plain.session_windows("2006-01-03").open_ns) == ["2006-01-03T07:00"]
    cal = Calendar.exchange("XEUR@09:00-22:00")
    assert cal.name == "XEUR@09:00-22:00" and cal.tz.key == "Europe/Berlin"
    w = cal.session_windows("2006-01-03")
    assert utc(w.open_ns) == ["2006-01-03T08:00"] and utc(w.close_ns) == ["2006-01-03T21:00"]
    # The same sessions as the exchange (holidays kept), one window each.
    assert list(cal.sessions("2006-12-20", "2007-01-05")) == \
        list(plain.sessions("2006-12-20", "2007-01-05"))
    assert Calendar.exchange("XEUR", hours="09:00-22:00").name == cal.name
    # Summer time follows the zone.
    assert utc(cal.session_windows("2006-07-03").open_ns) == ["2006-07-03T07:00"]
    # Overnight hours open the evening before.
    night = Calendar.exchange("XNYS@18:00-17:00")
    assert utc(night.session_windows("2024-03-05").open_ns) == ["2024-03-04T23:00"]
    import pickle

    again = pickle.loads(pickle.dumps(cal))
    assert again.session_windows("2006-01-03") == w
    with pytest.raises(ValueError, match="'9-22'.*HH:MM-HH:MM"):
        Calendar.exchange("XEUR@9-22")
