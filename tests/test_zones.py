"""Wall times to UTC without pandas (issue 10): zoneinfo-based resolution of local times,
compared with pandas' ``tz_localize`` over many DST changes in several zones."""

import datetime as dt
import zoneinfo

import numpy as np
import pytest

from sessiondata import Calendar
from sessiondata.calendar import _wall_to_utc_ns, resolve_wall_ns

pd = pytest.importorskip("pandas")

# Zones whose changes fall on the hour (pandas places those right), and zones with
# half-hour DST or changes at odd minutes (pandas' shift_forward lands after the change).
HOURLY = ["America/New_York", "Europe/Berlin", "Europe/London", "Europe/Dublin",
          "Australia/Sydney", "America/Sao_Paulo", "Asia/Tehran", "America/Santiago",
          "Africa/Casablanca", "Asia/Kolkata", "UTC"]
ODD = ["Australia/Lord_Howe", "America/St_Johns", "Pacific/Chatham", "Pacific/Apia"]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def wall_grid(start="1995-01-01", end="2031-01-01", step_min=15, seed=0):
    base = np.arange(np.datetime64(start), np.datetime64(end),
                     np.timedelta64(step_min, "m")).astype("datetime64[ns]").view(np.int64)
    rng = np.random.default_rng(seed)
    extra = base[::11] + rng.integers(0, step_min * 60, len(base[::11])) * 10**9 + 123
    return np.concatenate([base, extra])


def pandas_utc(wall, tz):
    idx = pd.DatetimeIndex(wall.view("datetime64[ns]"))
    local = idx.tz_localize(tz, ambiguous=np.ones(len(idx), bool), nonexistent="shift_forward")
    return np.asarray(local.as_unit("ns").asi8, dtype=np.int64)


def wall_of(utc_ns, tz):
    t = (EPOCH + dt.timedelta(microseconds=utc_ns // 1000)).astimezone(tz).replace(tzinfo=None)
    return (t - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1) * 1000 + utc_ns % 1000


@pytest.mark.parametrize("zone", HOURLY)
def test_equals_pandas_over_dst_changes(zone):
    tz = zoneinfo.ZoneInfo(zone)
    wall = wall_grid()
    assert np.array_equal(_wall_to_utc_ns(wall, tz), pandas_utc(wall, tz))


@pytest.mark.parametrize("zone", ODD)
def test_odd_changes_land_on_the_change(zone):
    tz = zoneinfo.ZoneInfo(zone)
    wall = wall_grid(step_min=15)
    got, nonexistent, ambiguous, oob = resolve_wall_ns(wall, tz)
    want = pandas_utc(wall, tz)
    assert not oob.any()
    diff = np.flatnonzero(got != want)
    # Only wall times inside a spring-forward gap differ, and ours is the change itself: the
    # first instant whose wall time is at or after the asked one.
    assert nonexistent[diff].all()
    for i in diff[:50].tolist():
        assert wall_of(int(got[i]), tz) >= wall[i] > wall_of(int(got[i]) - 1, tz)


def test_masks_name_gaps_and_folds():
    tz = zoneinfo.ZoneInfo("America/New_York")
    wall = np.array(["2024-03-10T02:30", "2024-11-03T01:30", "2024-07-01T12:00"],
                    dtype="datetime64[ns]").view(np.int64)
    utc, nonexistent, ambiguous, oob = resolve_wall_ns(wall, tz)
    assert nonexistent.tolist() == [True, False, False]
    assert ambiguous.tolist() == [False, True, False]
    assert utc.view("datetime64[ns]").astype(str).tolist() == [
        "2024-03-10T07:00:00.000000000",      # the change, 03:00 EDT
        "2024-11-03T05:30:00.000000000",      # first 01:30 (EDT)
        "2024-07-01T16:00:00.000000000"]


def test_int64_edges_do_not_wrap():
    tz = zoneinfo.ZoneInfo("America/New_York")
    top = np.iinfo(np.int64).max
    wall = np.array([top - 10**9, -top + 10**9], dtype=np.int64)
    utc, _ne, _amb, oob = resolve_wall_ns(wall, tz)
    assert oob.tolist() == [True, False]      # New York is behind UTC: the top one overflows
    assert utc[1] == wall[1] + 5 * 3600 * 10**9 or utc[1] == wall[1] + 17762 * 10**9


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/Berlin", "Australia/Sydney",
                                  "Australia/Lord_Howe", "Asia/Tokyo"])
def test_weekly_calendar_windows_across_dst(zone):
    cal = Calendar.weekly(zone, "01:30", "23:45", "Mon-Sun")
    start = int(np.datetime64("2019-01-01", "ns").astype(np.int64))
    end = int(np.datetime64("2025-01-01", "ns").astype(np.int64))
    w = cal.windows(start, end)
    tz = zoneinfo.ZoneInfo(zone)
    days = w.sessions[w.session_ids].astype("datetime64[D]").astype("datetime64[ns]").view(np.int64)
    want_open = pandas_utc(days + 90 * 60 * 10**9, tz)
    exact = want_open == w.open_ns
    # Differences only where pandas misplaces a gap's wall time (Lord Howe's 30-minute DST).
    assert exact.all() or (zone == "Australia/Lord_Howe" and exact.mean() > 0.99)
